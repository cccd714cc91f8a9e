// Queries several pages share. Every default view reads what the processor has already
// computed (rollups, detections, costs, alerts), never a raw table.

import { rows, lit } from './api.js';
import { within, resolution } from './range.js';

/** Metric names that are request latencies, best first (OpenTelemetry's conventions). */
const LATENCY = ['http.server.request.duration', 'http.server.duration', 'rpc.server.duration'];

/**
 * The latency metric of the lake (or of one service): a conventional name when present, else
 * the busiest sample metric whose name says duration or latency, else the busiest.
 */
export async function latencyMetric(r, service) {
  const where = [within('window_start', { from: r.from - 86400e3, to: r.to })];
  if (service) where.push(`service = ${lit(service)}`);
  const names = await rows(`SELECT name, sum(count) AS n FROM metric_rollups_1h WHERE ${where.join(' AND ')} GROUP BY name ORDER BY n DESC`);
  const all = names.map((n) => n.name);
  return LATENCY.find((n) => all.includes(n)) || all.find((n) => /duration|latency/i.test(n)) || all[0] || null;
}

/**
 * Percentiles of a service's metric in one scan: `{total, over}`, the whole range's
 * `{n, p50, p95, p99}` and the same per bucket (`t`).
 */
export async function percentiles(r, metric, service) {
  const res = resolution(r);
  const bucket = `date_bin(${res.interval}, window_start)`;
  const all = await rows(`SELECT ${bucket} AS t, sum(count) AS n, quantile_merge(sketch, 0.5) AS p50,
      quantile_merge(sketch, 0.95) AS p95, quantile_merge(sketch, 0.99) AS p99
    FROM ${res.table} WHERE ${within('window_start', r)} AND name = ${lit(metric)} AND service = ${lit(service)}
    GROUP BY GROUPING SETS ((${bucket}), ()) ORDER BY t NULLS FIRST`);
  return { total: all.find((x) => x.t == null), over: all.filter((x) => x.t != null) };
}

/** A service's log lines per bucket: rows `{t, n, errors}`. */
export function logsOverTime(r, service) {
  const res = resolution(r);
  return rows(`SELECT date_bin(${res.interval}, window_start) AS t, sum(count) AS n,
      sum(error_count + fatal_count) AS errors
    FROM log_rollups_1m WHERE ${within('window_start', r)} AND service = ${lit(service)} GROUP BY t ORDER BY t`);
}

/**
 * Rollup rows covering exactly the range `r` (a FROM item): whole hours from the hourly
 * rollups, the edges from the minute rollups. An hour's sketch is the merge of its minutes',
 * so totals and percentiles are the same as from the minute rollups alone, from up to 60 times
 * fewer rows.
 */
export function coveringRollups(r, where, cols = 'service, count, sketch') {
  const H = 3600e3;
  const h1 = Math.ceil(r.from / H) * H;
  const h2 = Math.floor(r.to / H) * H;
  const minutes = (w) => `SELECT ${cols} FROM metric_rollups_1m WHERE (${w}) AND ${where}`;
  if (h2 <= h1) return `(${minutes(within('window_start', r))})`;
  const hours = `SELECT ${cols} FROM metric_rollups_1h WHERE ${within('window_start', { from: h1, to: h2 })} AND ${where}`;
  const edges = [
    r.from < h1 ? `(${within('window_start', { from: r.from, to: h1 })})` : null,
    r.to > h2 ? `(${within('window_start', { from: h2, to: r.to })})` : null,
  ].filter(Boolean);
  return edges.length ? `(${hours} UNION ALL ${minutes(edges.join(' OR '))})` : `(${hours})`;
}

/** The latest forecast of each scope and key asked for. */
export function latestForecasts(where) {
  return rows(`SELECT f.scope, f.key, f.date, f.forecast, f.lower_80, f.upper_80, f.lower_95, f.upper_95, f.method, f.currency
    FROM cost_forecasts f JOIN (SELECT scope, key, max(generated_at) AS g FROM cost_forecasts GROUP BY scope, key) l
      ON f.scope = l.scope AND f.key = l.key AND f.generated_at = l.g
    WHERE ${where} ORDER BY f.date`);
}
