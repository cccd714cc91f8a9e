// `/services/{service}`: latency percentiles over time with anomalies marked and regressions
// drawn with the versions on each side; error rate; throughput; endpoints and versions.

import { rows, lit } from '../api.js';
import { h, fill, section, table, figures, chartBox } from '../dom.js';
import { timeChart } from '../chart.js';
import { within, resolution } from '../range.js';
import { setParams } from '../nav.js';
import { ms, pct, num, count, time, toMs } from '../format.js';
import { latencyMetric, percentiles, logsOverTime } from '../queries.js';
import { anomalyTable, regressionTable, labelText } from './detections.js';
import { resourceSections } from './capacity.js';

export async function render(ctx, view) {
  const r = ctx.range;
  const [service] = ctx.args;
  const res = resolution(r);
  const picker = h('select', { id: 'metric', 'aria-label': 'metric' });
  const summary = h('div', { class: 'figures-slot' });
  const latency = chartBox('latency');
  const errors = chartBox('error-rate');
  const throughput = chartBox('throughput');
  const endpoints = h('div');
  const versionsBox = h('div');
  const anomaliesBox = h('div');
  const regressionsBox = h('div');
  view.append(
    h('h1', {}, h('a', { href: '/', 'data-nav': true, class: 'crumb' }, 'Services'), ' / ', service),
    h('div', { class: 'toolbar' }, h('label', {}, 'Metric ', picker)),
    summary,
    section('Latency percentiles', latency),
    h('div', { class: 'columns' }, section('Error rate', errors), section('Throughput', throughput)),
    h('div', { class: 'columns' }, section('Endpoints', endpoints), section('Versions', versionsBox)),
    section('Anomalies', anomaliesBox),
    section('Regressions', regressionsBox),
    resourceSections(ctx, service),
  );

  const names = await rows(`SELECT name, sum(count) AS n FROM metric_rollups_1h
    WHERE service = ${lit(service)} AND ${within('window_start', { from: r.from - 86400e3, to: r.to })} GROUP BY name ORDER BY name`);
  const metric = ctx.params.get('metric') || (await latencyMetric(r, service));
  for (const n of names) picker.append(h('option', { value: n.name, selected: n.name === metric }, n.name));
  picker.addEventListener('change', () => setParams({ metric: picker.value }));
  const m = lit(metric || '');
  const unit = /duration|latency|_ms$|\.ms$/i.test(metric || '') ? 'ms' : null;
  const fmtV = unit === 'ms' ? ms : num;

  const percentilesQ = metric ? percentiles(r, metric, service) : Promise.resolve({ total: null, over: [] });
  const overQ = percentilesQ.then((p) => p.over);
  const totalQ = percentilesQ.then((p) => [p.total]);
  const logsQ = logsOverTime(r, service);
  const anomaliesQ = rows(`SELECT window_start, service, name, labels, metric, observed, expected, lower, upper, score, severity
    FROM anomalies WHERE service = ${lit(service)} AND ${within('window_start', r)} ORDER BY window_start DESC LIMIT 500`);
  const regressionsQ = rows(`SELECT change_at, service, name, labels, metric, before, after, change_pct, version_before, version_after, kind
    FROM regressions WHERE service = ${lit(service)} AND ${within('change_at', r)} ORDER BY change_at DESC LIMIT 100`);

  ctx.load(summary, async () => {
    const [[t], logs] = await Promise.all([totalQ, logsQ]);
    const n = logs.reduce((a, l) => a + l.n, 0);
    const e = logs.reduce((a, l) => a + l.errors, 0);
    fill(summary, figures([
      { key: 'requests', label: metric ? `${metric} samples` : 'Samples', raw: t ? t.n : 0, value: count(t ? t.n : 0), note: t && t.n ? `${num(t.n / (r.ms / 1000))}/s` : null },
      { key: 'p50', label: 'p50', raw: t && t.p50, value: fmtV(t && t.p50) },
      { key: 'p95', label: 'p95', raw: t && t.p95, value: fmtV(t && t.p95) },
      { key: 'p99', label: 'p99', raw: t && t.p99, value: fmtV(t && t.p99) },
      { key: 'error-rate', label: 'Error rate', value: n ? pct(e / n) : '—', note: `${count(e)} errors in ${count(n)} log lines` },
    ]));
  });

  ctx.load(latency, async () => {
    const [over, anomalies, regressions] = await Promise.all([overQ, anomaliesQ, regressionsQ]);
    const pts = (k) => over.map((o) => [toMs(o.t), o[k]]);
    timeChart(latency, {
      title: `${metric} percentiles`, unit, from: r.from, to: r.to, height: 260,
      series: [
        { name: 'p50', cls: 'c0', points: pts('p50') },
        { name: 'p95', cls: 'c1', points: pts('p95') },
        { name: 'p99', cls: 'c2', points: pts('p99') },
      ],
      markers: anomalies.filter((a) => a.name === metric).map((a) => ({
        t: toMs(a.window_start), v: a.observed, cls: a.severity,
        label: `anomaly ${a.metric} ${labelText(a.labels)}: ${fmtV(a.observed)} (expected ${fmtV(a.expected)}), ${a.severity}`,
      })),
      vlines: regressions.filter((g) => g.name === metric).map((g) => ({
        t: toMs(g.change_at), cls: g.change_pct > 0 ? 'worse' : 'better',
        label: `${g.version_before || '?'} → ${g.version_after || '?'} ${g.change_pct > 0 ? '+' : ''}${num(g.change_pct)}% ${g.metric}`,
        title: `${time(g.change_at)} ${g.metric} ${labelText(g.labels)}: ${fmtV(g.before)} → ${fmtV(g.after)} (${g.version_before || '?'} → ${g.version_after || '?'})`,
      })),
      markerName: 'anomaly', vlineName: 'regression (versions before → after)',
      empty: metric ? `No ${metric} samples of ${service} in this range.` : `${service} has no metric in this range.`,
    });
  });

  ctx.load(errors, async () => {
    const [logs, anomalies] = await Promise.all([logsQ, anomaliesQ]);
    timeChart(errors, {
      title: 'error rate', unit: 'pct', from: r.from, to: r.to, height: 180,
      series: [{ name: 'error rate', cls: 'c3', points: logs.map((l) => [toMs(l.t), l.n ? l.errors / l.n : null]) }],
      markers: anomalies.filter((a) => a.metric === 'error_rate').map((a) => ({
        t: toMs(a.window_start), v: a.observed, cls: a.severity,
        label: `error-rate anomaly: ${pct(a.observed)} (expected ${pct(a.expected)})`,
      })),
      empty: `${service} wrote no logs in this range.`,
    });
  });

  ctx.load(throughput, async () => {
    const [over, logs] = await Promise.all([overQ, logsQ]);
    timeChart(throughput, {
      title: 'throughput', unit: 'rps', from: r.from, to: r.to, height: 180,
      series: [
        { name: `${metric || 'samples'} per second`, cls: 'c4', points: over.map((o) => [toMs(o.t), o.n / res.seconds]) },
        { name: 'log lines per second', cls: 'c5', dash: true, points: logs.map((l) => [toMs(l.t), l.n / res.seconds]) },
      ],
    });
  });

  ctx.load(endpoints, async () => {
    const list = metric ? await rows(`SELECT labels['endpoint'] AS endpoint, labels['method'] AS method, sum(count) AS n,
        quantile_merge(sketch, 0.5) AS p50, quantile_merge(sketch, 0.99) AS p99
      FROM ${res.table} WHERE service = ${lit(service)} AND name = ${m} AND ${within('window_start', r)}
      GROUP BY 1, 2 ORDER BY n DESC LIMIT 50`) : [];
    fill(endpoints, table([
      { name: 'Endpoint', value: (e) => h('code', {}, [e.method, e.endpoint].filter(Boolean).join(' ') || '(none)') },
      { name: 'Samples', num: true, value: (e) => count(e.n) },
      { name: 'p50', num: true, value: (e) => fmtV(e.p50) },
      { name: 'p99', num: true, value: (e) => fmtV(e.p99) },
    ], list));
  });

  ctx.load(versionsBox, async () => {
    const list = metric ? await rows(`SELECT version, sum(count) AS n, min(window_start) AS first_seen, max(window_end) AS last_seen,
        quantile_merge(sketch, 0.99) AS p99
      FROM ${res.table} WHERE service = ${lit(service)} AND name = ${m} AND ${within('window_start', r)}
      GROUP BY version ORDER BY first_seen`) : [];
    fill(versionsBox, table([
      { name: 'Version', value: (v) => h('code', {}, v.version || '(none)') },
      { name: 'Samples', num: true, value: (v) => count(v.n) },
      { name: 'p99', num: true, value: (v) => fmtV(v.p99) },
      { name: 'Seen', value: (v) => `${time(v.first_seen)} – ${time(v.last_seen).slice(11)}` },
    ], list));
  });

  ctx.load(anomaliesBox, async () => fill(anomaliesBox, anomalyTable((await anomaliesQ).slice(0, 50))));
  ctx.load(regressionsBox, async () => fill(regressionsBox, regressionTable(await regressionsQ, { service: true })));
}
