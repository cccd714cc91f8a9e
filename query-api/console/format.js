// How numbers, times and sizes read on the console.

const nf = (digits) => new Intl.NumberFormat('en-US', { maximumFractionDigits: digits });

/** A number with a sensible precision: 3 significant digits below 100, none above. */
export function num(v) {
  if (v == null || Number.isNaN(v)) return '—';
  const a = Math.abs(v);
  if (a >= 1e9) return nf(2).format(v / 1e9) + 'G';
  if (a >= 1e6) return nf(2).format(v / 1e6) + 'M';
  if (a >= 1e4) return nf(1).format(v / 1e3) + 'k';
  if (a >= 100) return nf(0).format(v);
  if (a >= 10) return nf(1).format(v);
  if (a >= 1) return nf(2).format(v);
  if (a === 0) return '0';
  return nf(3).format(v);
}

/** A whole count with separators. */
export const count = (v) => (v == null ? '—' : nf(0).format(v));

/** Milliseconds of latency. */
export function ms(v) {
  if (v == null || Number.isNaN(v)) return '—';
  if (Math.abs(v) >= 1000) return num(v / 1000) + ' s';
  return num(v) + ' ms';
}

/** A fraction as a percentage. */
export function pct(v, digits = 2) {
  if (v == null || Number.isNaN(v)) return '—';
  return nf(digits).format(v * 100) + '%';
}

/** Money in a currency (USD when the lake does not say). */
export function money(v, currency = 'USD', digits) {
  if (v == null || Number.isNaN(v)) return '—';
  const d = digits ?? (Math.abs(v) >= 1000 ? 0 : 2);
  try {
    return new Intl.NumberFormat('en-US', { style: 'currency', currency, maximumFractionDigits: d, minimumFractionDigits: d }).format(v);
  } catch {
    return nf(d).format(v) + ' ' + currency;
  }
}

/** Bytes in binary units. */
export function bytes(v) {
  if (v == null) return '—';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return num(v) + ' ' + u[i];
}

/** A duration in seconds, as a person says it. */
export function seconds(s) {
  if (s == null) return '—';
  if (s < 1) return nf(0).format(s * 1000) + ' ms';
  if (s < 90) return nf(0).format(s) + ' s';
  if (s < 5400) return nf(0).format(s / 60) + ' min';
  if (s < 172800) return nf(1).format(s / 3600) + ' h';
  return nf(1).format(s / 86400) + ' d';
}

/** Epoch milliseconds of an API time (RFC 3339 text, or a number). */
export function toMs(t) {
  if (t == null) return null;
  if (typeof t === 'number') return t;
  if (/^\d{4}-\d\d-\d\d$/.test(t)) return Date.parse(`${t}T00:00:00Z`);
  const s = /[zZ]|[+-]\d\d:?\d\d$/.test(t) ? t : t + 'Z';
  return Date.parse(s.replace(' ', 'T'));
}

const pad = (n) => String(n).padStart(2, '0');

/** A UTC time: `2026-12-03 10:15` (seconds when asked). */
export function time(t, withSeconds = false) {
  const m = toMs(t);
  if (m == null || Number.isNaN(m)) return '—';
  const d = new Date(m);
  const base = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
  return withSeconds ? `${base}:${pad(d.getUTCSeconds())}` : base;
}

/** How long ago a time was. */
export function ago(t) {
  const m = toMs(t);
  if (m == null || Number.isNaN(m)) return '—';
  const s = (Date.now() - m) / 1000;
  return s < 0 ? 'in ' + seconds(-s) : seconds(s) + ' ago';
}

/** A date of a cost: `2026-12-03`. */
export function day(t) {
  if (typeof t === 'string' && /^\d{4}-\d\d-\d\d$/.test(t)) return t;
  return time(t).slice(0, 10);
}

/** The value formatter of a unit name. */
export function byUnit(unit) {
  switch (unit) {
    case 'ms': return ms;
    case 'pct': return (v) => pct(v);
    case 'percent': return (v) => num(v) + '%';
    case 'rps': return (v) => num(v) + '/s';
    case 'money': return (v) => money(v);
    case 'bytes': return bytes;
    case 's': return seconds;
    default: return num;
  }
}
