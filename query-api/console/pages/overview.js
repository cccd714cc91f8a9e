// `/`: every service at a glance: throughput, error rate, p50/p95/p99 with a sparkline, open
// alerts, and the anomalies and regressions of the range.

import { get, rows, lit } from '../api.js';
import { h, fill, link, section, table, figures, badge, chartBox } from '../dom.js';
import { timeChart, sparkline } from '../chart.js';
import { within, resolution, rangeQuery } from '../range.js';
import { ms, pct, num, count, time, toMs, ago } from '../format.js';
import { latencyMetric, coveringRollups } from '../queries.js';
import { anomalyTable, regressionTable } from './detections.js';
import { capacitySection } from './capacity.js';

const serviceHref = (s, r, extra = '') => `/services/${encodeURIComponent(s)}?${rangeQuery(r)}${extra}`;

export async function render(ctx, view) {
  const r = ctx.range;
  const summary = h('div', { class: 'figures-slot' });
  const services = h('div');
  const chart = chartBox('p99-by-service');
  const alertsBox = h('div');
  const anomaliesBox = h('div');
  const regressionsBox = h('div');
  view.append(
    h('h1', {}, 'Services'),
    summary,
    section('Services', services),
    section('p99 latency by service', chart),
    h('div', { class: 'columns' },
      section('Open alerts', alertsBox),
      section('Recent anomalies', anomaliesBox)),
    section('Recent regressions', regressionsBox),
    capacitySection(ctx),
  );

  const metric = await latencyMetric(r);
  const res = resolution(r);
  const seconds = r.ms / 1000;
  // Totals of each service and of all in one query, from whole hours of the hourly rollups
  // and minutes at the edges; the series (p99 only) from the rollups of the chart's resolution.
  const totalsQ = metric
    ? rows(`SELECT service, sum(count) AS n, quantile_merge(sketch, 0.5) AS p50,
        quantile_merge(sketch, 0.95) AS p95, quantile_merge(sketch, 0.99) AS p99
        FROM ${coveringRollups(r, `name = ${lit(metric)}`)} AS covering
        GROUP BY GROUPING SETS ((service), ()) ORDER BY service`)
    : Promise.resolve([]);
  const latencyQ = totalsQ.then((all) => all.filter((x) => x.service != null));
  const overallQ = totalsQ.then((all) => all.filter((x) => x.service == null));
  const overTimeQ = metric
    ? rows(`SELECT service, date_bin(${res.interval}, window_start) AS t, quantile_merge(sketch, 0.99) AS p99
        FROM ${res.table} WHERE ${within('window_start', r)} AND name = ${lit(metric)} GROUP BY 1, 2 ORDER BY 2`)
    : Promise.resolve([]);
  const logsQ = rows(`SELECT service, sum(count) AS n, sum(error_count + fatal_count) AS errors
    FROM log_rollups_1m WHERE ${within('window_start', r)} GROUP BY service`);
  const anomalyCountsQ = rows(`SELECT service, count(*) AS n FROM anomalies WHERE ${within('window_start', r)} GROUP BY service`);
  const regressionCountsQ = rows(`SELECT service, count(*) AS n FROM regressions WHERE ${within('change_at', r)} GROUP BY service`);
  const alertsQ = get('/api/v1/alerts');

  ctx.load(services, async () => {
    const [lat, over, logs, an, rg, al] = await Promise.all([latencyQ, overTimeQ, logsQ, anomalyCountsQ, regressionCountsQ, alertsQ]);
    const by = new Map();
    const row = (s) => by.get(s) || by.set(s, { service: s, spark: [] }).get(s);
    for (const l of lat) Object.assign(row(l.service), l);
    for (const l of logs) Object.assign(row(l.service), { logs: l.n, errors: l.errors });
    // Services are those that serve requests or write logs; the rest (a cost gauge's
    // service) show in the anomaly and regression lists.
    for (const a of an) if (by.has(a.service)) row(a.service).anomalies = a.n;
    for (const g of rg) if (by.has(g.service)) row(g.service).regressions = g.n;
    for (const a of al.alerts) {
      const s = a.labels && a.labels.service;
      if (s && by.has(s)) row(s).alerts = (row(s).alerts || 0) + 1;
    }
    for (const o of over) row(o.service).spark.push(o.p99);
    const list = [...by.values()].sort((a, b) => a.service.localeCompare(b.service));
    fill(services, 
      metric ? h('p', { class: 'muted' }, `Latency and throughput of ${metric}; error rate from the logs.`) : null,
      table([
        { name: 'Service', value: (x) => link(serviceHref(x.service, r), x.service), raw: (x) => x.service },
        { name: 'Requests/s', num: true, value: (x) => (x.n == null ? '—' : num(x.n / seconds)), raw: (x) => x.n },
        { name: 'Error rate', num: true, value: (x) => (x.logs ? pct(x.errors / x.logs) : '—') },
        { name: 'p50', num: true, value: (x) => ms(x.p50) },
        { name: 'p95', num: true, value: (x) => ms(x.p95) },
        { name: 'p99', num: true, value: (x) => ms(x.p99), raw: (x) => x.p99 },
        { name: 'p99 trend', value: (x) => sparkline(x.spark) },
        { name: 'Alerts', num: true, value: (x) => (x.alerts ? badge(String(x.alerts), 'firing') : '0') },
        { name: 'Anomalies', num: true, value: (x) => count(x.anomalies || 0) },
        { name: 'Regressions', num: true, value: (x) => count(x.regressions || 0) },
      ], list, 'No service sent data in this range.'));
  });

  ctx.load(summary, async () => {
    const [overall, logs, lat, al] = await Promise.all([overallQ, logsQ, latencyQ, alertsQ]);
    const o = overall[0] || {};
    const n = logs.reduce((a, l) => a + (l.n || 0), 0);
    const errors = logs.reduce((a, l) => a + (l.errors || 0), 0);
    const firing = al.alerts.filter((a) => a.state === 'firing').length;
    fill(summary, figures([
      { key: 'services', label: 'Services', value: count(new Set([...lat.map((l) => l.service), ...logs.map((l) => l.service)]).size) },
      { key: 'requests', label: 'Requests', raw: o.n || 0, value: count(o.n || 0), note: o.n ? `${num(o.n / seconds)}/s` : null },
      { key: 'error-rate', label: 'Error rate', raw: n ? errors / n : null, value: n ? pct(errors / n) : '—', note: `${count(errors)} of ${count(n)} log lines` },
      { key: 'p99', label: 'p99 latency', raw: o.p99, value: ms(o.p99) },
      { key: 'alerts', label: 'Alerts firing', raw: firing, value: count(firing), note: `${al.alerts.length - firing} pending` },
    ]));
  });

  ctx.load(chart, async () => {
    const over = await overTimeQ;
    const names = [...new Set(over.map((o) => o.service))].sort();
    timeChart(chart, {
      title: 'p99 latency by service', unit: 'ms', from: r.from, to: r.to,
      series: names.map((s, i) => ({ name: s, cls: `c${i % 8}`, points: over.filter((o) => o.service === s).map((o) => [toMs(o.t), o.p99]) })),
      empty: metric ? `No ${metric} in this range.` : 'No latency metric in the lake yet.',
    });
    chart.dataset.bucketSeconds = String(res.seconds);
  });

  ctx.load(alertsBox, async () => {
    const al = await alertsQ;
    fill(alertsBox, table([
      { name: 'Severity', value: (a) => badge(a.severity || 'none') },
      { name: 'Alert', value: (a) => h('span', {}, h('strong', {}, a.alertname), ' ', a.labels && a.labels.service ? link(serviceHref(a.labels.service, r), a.labels.service) : '') },
      { name: 'Summary', value: (a) => (a.annotations && a.annotations.summary) || '' },
      { name: 'State', value: (a) => badge(a.state) },
      { name: 'Since', value: (a) => h('span', { title: time(a.starts_at) }, ago(a.starts_at)) },
    ], al.alerts.slice(0, 10), 'No alert is pending or firing.'),
    al.alerts.length > 10 ? link('/alerts', `All ${al.alerts.length} alerts`) : null);
  });

  ctx.load(anomaliesBox, async () => {
    const list = await rows(`SELECT window_start, service, name, labels, metric, observed, expected, lower, upper, severity
      FROM anomalies WHERE ${within('window_start', r)} ORDER BY window_start DESC LIMIT 10`);
    fill(anomaliesBox, anomalyTable(list, { short: true }));
  });

  ctx.load(regressionsBox, async () => {
    const list = await rows(`SELECT change_at, service, name, labels, metric, before, after, change_pct, version_before, version_after
      FROM regressions WHERE ${within('change_at', r)} ORDER BY change_at DESC LIMIT 10`);
    fill(regressionsBox, regressionTable(list));
  });
}
