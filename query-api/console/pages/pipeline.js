// `/pipeline`: ingest rate per table, the consumer backlog on the brokers, how far behind
// the processor's jobs are, the lake's tables, and dead letters with their reasons.

import { get, rows } from '../api.js';
import { h, fill, section, table, figures, chartBox } from '../dom.js';
import { timeChart } from '../chart.js';
import { within, resolution } from '../range.js';
import { num, count, bytes, seconds, time, ago, toMs } from '../format.js';

export async function render(ctx, view) {
  const r = ctx.range;
  const summary = h('div', { class: 'figures-slot' });
  const ingest = chartBox('ingest-rate');
  const backlogBox = h('div');
  const processorBox = h('div');
  const tablesBox = h('div');
  const dlChart = chartBox('dead-letters');
  const dlBox = h('div');
  view.append(
    h('h1', {}, 'Pipeline'),
    summary,
    section('Ingest rate, last hour (rows committed per minute)', ingest),
    h('div', { class: 'columns' }, section('Consumer backlog', backlogBox), section('Processor lag', processorBox)),
    section('Dead letters', dlChart, dlBox),
    section('Lake tables', tablesBox),
  );
  const pipeQ = get('/api/v1/pipeline');
  const res = resolution(r);
  const dlCountQ = rows(`SELECT date_bin(${res.interval}, received_at) AS t, count(*) AS n FROM dead_letters
    WHERE ${within('received_at', r)} GROUP BY 1 ORDER BY 1`);

  ctx.load(summary, async () => {
    const [p, dl] = await Promise.all([pipeQ, dlCountQ]);
    const now = toMs(p.now);
    const recent = p.ingest.filter((x) => toMs(x.minute) >= now - 5 * 60e3);
    const perSecond = recent.reduce((a, x) => a + x.rows, 0) / 300;
    const waiting = p.backlog.partitions.reduce((a, x) => a + x.messages, 0);
    const lag = Math.max(0, ...p.processor.map((j) => j.lag_seconds));
    fill(summary, figures([
      { key: 'ingest-rate', label: 'Ingest, last 5 min', value: `${num(perSecond)} rows/s` },
      { key: 'backlog', label: 'Messages waiting', value: p.backlog.checked_at ? count(waiting) : '—', note: p.backlog.checked_at ? `measured ${ago(p.backlog.checked_at)}` : 'not measured yet (the processor measures it)' },
      { key: 'processor-lag', label: 'Processor lag', value: seconds(lag) },
      { key: 'dead-letters', label: 'Dead letters in range', value: count(dl.reduce((a, x) => a + x.n, 0)) },
      { key: 'lake-version', label: 'Lake version', value: count(p.lake_version) },
    ]));
  });

  ctx.load(ingest, async () => {
    const p = await pipeQ;
    const tables = [...new Set(p.ingest.map((x) => x.table))].sort();
    const now = toMs(p.now);
    timeChart(ingest, {
      title: 'rows ingested per minute', from: now - 3600e3, to: now, height: 200,
      bars: { bucketMs: 60e3, groups: tables.map((t, i) => ({ name: t, cls: `c${i}`, points: p.ingest.filter((x) => x.table === t).map((x) => [toMs(x.minute), x.rows]) })) },
      empty: 'Nothing was ingested in the last hour.',
    });
  });

  ctx.load(backlogBox, async () => {
    const p = await pipeQ;
    fill(backlogBox, 
      p.backlog.checked_at ? h('p', { class: 'muted small' }, `Brokers' high watermarks against the lake's offsets, ${time(p.backlog.checked_at, true)}.`) : null,
      table([
        { name: 'Topic', value: (x) => x.topic },
        { name: 'Partition', num: true, value: (x) => String(x.partition) },
        { name: 'Lake offset', num: true, value: (x) => count(x.lake_next) },
        { name: 'Waiting', num: true, value: (x) => h('span', { class: x.messages > 0 ? 'warn' : null }, count(x.messages)) },
      ], p.backlog.partitions, 'Not measured yet: the processor measures the backlog at each alerts evaluation.'));
  });

  ctx.load(processorBox, async () => {
    const p = await pipeQ;
    fill(processorBox, table([
      { name: 'Job', value: (j) => h('code', {}, j.job) },
      { name: 'Reads', value: (j) => j.table },
      { name: 'Folded up to', num: true, value: (j) => (j.version == null ? 'not started' : `v${count(j.version)}`) },
      { name: 'Versions behind', num: true, value: (j) => (j.versions_behind == null ? '—' : count(j.versions_behind)) },
      { name: 'Lag', num: true, value: (j) => h('span', { class: j.lag_seconds > 60 ? 'warn' : null }, seconds(j.lag_seconds)) },
    ], p.processor), p.alerts_evaluated_at ? h('p', { class: 'muted small' }, `Alerts last evaluated ${ago(p.alerts_evaluated_at)}.`) : null);
  });

  ctx.load(tablesBox, async () => {
    const p = await pipeQ;
    fill(tablesBox, table([
      { name: 'Table', value: (t) => h('code', {}, t.table) },
      { name: 'Files', num: true, value: (t) => count(t.files) },
      { name: 'Rows', num: true, value: (t) => count(t.rows), raw: (t) => `${t.table}=${t.rows}` },
      { name: 'Size', num: true, value: (t) => bytes(t.bytes) },
    ], p.tables, 'The lake is empty.'));
  });

  ctx.load(dlChart, async () => {
    const dl = await dlCountQ;
    if (!dl.length) { fill(dlChart); return; }
    timeChart(dlChart, {
      title: 'dead letters', from: r.from, to: r.to, height: 150,
      bars: { bucketMs: res.seconds * 1000, groups: [{ name: 'dead letters', cls: 'c3', points: dl.map((x) => [toMs(x.t), x.n]) }] },
      empty: 'No dead letter in this range.',
    });
  });

  ctx.load(dlBox, async () => {
    const list = await rows(`SELECT received_at, topic, "partition", "offset", error, substr(payload, 1, 160) AS payload
      FROM dead_letters WHERE ${within('received_at', r)} ORDER BY received_at DESC LIMIT 50`);
    fill(dlBox, table([
      { name: 'Received', value: (d) => time(d.received_at, true) },
      { name: 'Where', value: (d) => h('code', {}, `${d.topic}/${d.partition}@${d.offset}`) },
      { name: 'Reason', value: (d) => h('span', { class: 'error' }, d.error) },
      { name: 'Payload', value: (d) => h('code', { class: 'payload' }, d.payload) },
    ], list, 'No dead letter in this range.'));
  });
}
