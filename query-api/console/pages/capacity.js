// Resource trends (CONTRACT section 10): the capacity list (what runs out first, and the
// series that leak) on the overview, and on a service's page each resource chart: every host's
// gauge, a leak's trend from when it began, and the forecast to the limit with its 80% band.

import { get, rows, lit } from '../api.js';
import { h, fill, link, section, table, chartBox } from '../dom.js';
import { timeChart } from '../chart.js';
import { within, resolution, rangeQuery } from '../range.js';
import { num, time, toMs, ago, bytes } from '../format.js';

const leaking = (l) => !String(l.method || '').endsWith(':cleared');
const where = (x) => [x.service, x.host].filter(Boolean).join(' / ');
const unitOf = (name) => (/memory|bytes/i.test(name) ? 'bytes' : null);
const fmtOf = (name) => (unitOf(name) === 'bytes' ? bytes : num);

/** The overview's capacity section: series that leak, and forecasts, soonest first. */
export function capacitySection(ctx) {
  const box = h('div');
  ctx.load(box, async () => {
    const body = await get('/api/v1/capacity');
    const leaks = (body.leaks || []).filter(leaking);
    const runsOut = (body.forecasts || []).filter((f) => f.exhausted_at != null);
    const href = (s) => `/services/${encodeURIComponent(s)}?${rangeQuery(ctx.range)}`;
    fill(box,
      h('h3', {}, 'Runs out first'),
      table([
        { name: 'Resource', value: (f) => link(href(f.service), `${where(f)} ${f.name}`) },
        { name: 'Now', num: true, value: (f) => `${fmtOf(f.name)(f.current)} of ${fmtOf(f.name)(f.limit)}` },
        { name: 'Reaches its limit', value: (f) => `${time(f.exhausted_at)} (${ago(f.exhausted_at)})`, raw: (f) => toMs(f.exhausted_at) },
        { name: '80% interval', value: (f) => `${time(f.exhausted_at_low)} – ${time(f.exhausted_at_high)}` },
        { name: 'Model', value: (f) => f.method },
      ], runsOut, 'No resource reaches its limit within the horizon.'),
      h('h3', {}, 'Memory leaks'),
      table([
        { name: 'Series', value: (l) => link(href(l.service), `${where(l)} ${l.name}`) },
        { name: 'Since', value: (l) => time(l.since) },
        { name: 'Version', value: (l) => h('code', {}, l.version || '(none)') },
        { name: 'Growth', num: true, value: (l) => `${fmtOf(l.name)(l.growth_per_hour)}/h (${num(l.growth_pct_per_day)}%/day)`, raw: (l) => l.growth_per_hour },
        { name: 'Restarts', num: true, value: (l) => String(l.restarts) },
      ], leaks, 'No memory series leaks.'));
  });
  return section('Capacity', box);
}

/** Points of a line from `(t0, v0)` reaching `limit` at `t1`, capped there, over `[t0, end]`. */
function towards(t0, v0, t1, limit, end) {
  if (t1 == null || t1 <= t0) return [];
  const steps = 24;
  const out = [];
  for (let i = 0; i <= steps; i++) {
    const t = t0 + ((end - t0) * i) / steps;
    const v = v0 + ((limit - v0) * (t - t0)) / (t1 - t0);
    out.push([t, Math.min(v, limit)]);
  }
  return out;
}

/** The service page's resource charts: one per gauge with a verdict or a forecast. */
export function resourceSections(ctx, service) {
  const r = ctx.range;
  const holder = h('div');
  ctx.load(holder, async () => {
    const body = await get(`/api/v1/capacity?service=${encodeURIComponent(service)}`);
    const leaks = (body.leaks || []).filter(leaking);
    const forecasts = body.forecasts || [];
    const names = [...new Set([...leaks, ...forecasts].map((x) => x.name))].slice(0, 4);
    if (!names.length) {
      fill(holder);
      return;
    }
    const res = resolution(r);
    const boxes = names.map((name) => {
      const box = chartBox(`resource-${name}`);
      drawResource(box, r, res, service, name, leaks.filter((l) => l.name === name), forecasts.filter((f) => f.name === name));
      return section(`Resource: ${name}`, box);
    });
    fill(holder, ...boxes);
  });
  return holder;
}

async function drawResource(box, r, res, service, name, leaks, forecasts) {
  const data = await rows(`SELECT coalesce(host, '') AS host, date_bin(${res.interval}, timestamp) AS t, max(value) AS v
    FROM metrics WHERE service = ${lit(service)} AND name = ${lit(name)} AND kind = 'gauge' AND ${within('timestamp', r)}
    GROUP BY 1, 2 ORDER BY 2`);
  const hosts = [...new Set(data.map((d) => d.host))];
  const series = hosts.map((host, i) => ({
    name: host || service, cls: `c${i % 6}`,
    points: data.filter((d) => d.host === host).map((d) => [toMs(d.t), d.v]),
  }));
  let to = r.to;
  const bands = [];
  const vlines = [];
  for (const l of leaks) {
    const first = series.find((s) => s.name === (l.host || service));
    const since = toMs(l.since);
    const at = first && first.points.find((p) => p[0] >= since);
    if (at) {
      const end = Math.min(r.to, Date.now());
      series.push({
        name: `leak trend ${l.host || ''} (+${fmtOf(name)(l.growth_per_hour)}/h)`, cls: 'c3', dash: true,
        points: [[at[0], at[1]], [end, at[1] + (l.growth_per_hour * (end - at[0])) / 3.6e6]],
      });
    }
    vlines.push({ t: since, cls: 'worse', label: `leak since ${time(l.since)} (${l.version || '?'})`, title: `${l.host || service}: leaking since ${time(l.since)}, version ${l.version || '?'}` });
  }
  for (const f of forecasts.filter((x) => x.exhausted_at != null)) {
    const c = toMs(f.computed_at);
    const [at, low, high] = [toMs(f.exhausted_at), toMs(f.exhausted_at_low), toMs(f.exhausted_at_high)];
    to = Math.max(to, high);
    series.push({ name: `forecast ${f.host || ''} → limit ${time(f.exhausted_at)}`, cls: 'c1', dash: true, points: towards(c, f.current, at, f.limit, high) });
    series.push({ name: 'limit', cls: 'c2', dash: true, points: [[c, f.limit], [high, f.limit]] });
    const upper = towards(c, f.current, low, f.limit, high);
    const lower = towards(c, f.current, high, f.limit, high);
    if (upper.length && lower.length) bands.push({ name: '80% interval', cls: 'c1', lower, upper });
  }
  timeChart(box, {
    title: `${name} of ${service}`, unit: unitOf(name), from: r.from, to, height: 220,
    series, bands, vlines, vlineName: 'leak began',
    empty: `No ${name} samples of ${service} in this range.`,
  });
}
