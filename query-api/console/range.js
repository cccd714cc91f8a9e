// The time range of a page (`?range=6h`, or `?from=…&to=…` for an absolute window) and the
// rollup table and bucket that answer it without a raw scan.

export const RANGES = [
  ['15m', 15 * 60e3], ['1h', 3600e3], ['6h', 6 * 3600e3], ['24h', 24 * 3600e3],
  ['7d', 7 * 86400e3], ['30d', 30 * 86400e3], ['90d', 90 * 86400e3],
];
export const REFRESH = [['off', 0], ['10s', 10e3], ['30s', 30e3], ['1m', 60e3], ['5m', 300e3]];

const parseTime = (v) => (v == null ? null : /^\d+$/.test(v) ? Number(v) : Date.parse(v));

/** The range the URL asks for, or the page's default. */
export function currentRange(params, fallback) {
  const from = parseTime(params.get('from'));
  const to = parseTime(params.get('to'));
  if (from != null && to != null && !Number.isNaN(from) && !Number.isNaN(to) && to > from) {
    return { from, to, label: 'custom', ms: to - from, absolute: true };
  }
  const name = params.get('range') || fallback;
  const found = RANGES.find(([n]) => n === name) || RANGES.find(([n]) => n === fallback);
  // The end is the next whole minute: every section of a page asks about the same window,
  // and loads within a minute ask the same queries (the API's result cache answers them).
  const now = Math.ceil(Date.now() / 60e3) * 60e3;
  return { from: now - found[1], to: now, label: found[0], ms: found[1], absolute: false };
}

/** A SQL timestamp literal of epoch milliseconds. */
export const ts = (m) => `TIMESTAMP '${new Date(m).toISOString().replace('Z', '')}'`;

/** `col` within the range. */
export const within = (col, r) => `${col} >= ${ts(r.from)} AND ${col} < ${ts(r.to)}`;

const NICE = [60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

/**
 * How to draw a range: the rollup table, and a bucket giving about 60 to 240 points.
 * Ranges over a day read the hourly rollups.
 */
export function resolution(r) {
  const want = r.ms / 1000 / 200;
  const seconds = NICE.find((s) => s >= want) || 86400;
  const hourly = r.ms > 26 * 3600e3;
  return {
    table: hourly ? 'metric_rollups_1h' : 'metric_rollups_1m',
    seconds: hourly ? Math.max(seconds, 3600) : seconds,
    get interval() { return `INTERVAL '${this.seconds} seconds'`; },
  };
}

/** The range as query parameters (for links that keep it). */
export function rangeQuery(r) {
  return r.absolute ? `from=${r.from}&to=${r.to}` : `range=${r.label}`;
}
