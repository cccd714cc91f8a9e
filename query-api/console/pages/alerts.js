// `/alerts`: what is pending and firing now, rules that fail, the SLOs with their error
// budget (a burn-down over the range) and burn rates, and the alerts' history.

import { get, rows } from '../api.js';
import { h, fill, link, section, table, figures, chartBox, badge } from '../dom.js';
import { timeChart } from '../chart.js';
import { within, resolution } from '../range.js';
import { pct, num, count, time, ago, toMs } from '../format.js';
import { labelText } from './detections.js';

/** The console's own address of an alert's link (its query on the SQL page), else the link. */
function generator(a) {
  if (!a.generator_url) return '';
  try {
    const u = new URL(a.generator_url);
    if (u.pathname === '/sql') return link(`/sql${u.search}`, 'query');
    return h('a', { href: a.generator_url, rel: 'noopener' }, 'source');
  } catch { return ''; }
}

/** An alert's labels but its name and severity, which have their own columns. */
const ownLabels = (labels) => Object.fromEntries(Object.entries(labels || {}).filter(([k]) => !['alertname', 'severity'].includes(k)));

const burn = (v) => (v == null ? '—' : h('span', { class: v >= 14.4 ? 'worse' : v >= 1 ? 'warn' : null }, `${num(v)}×`));

export async function render(ctx, view) {
  const r = ctx.range;
  const summary = h('div', { class: 'figures-slot' });
  const activeBox = h('div');
  const errorsBox = h('div');
  const slosBox = h('div');
  const burndown = chartBox('error-budget');
  const historyBox = h('div');
  view.append(
    h('h1', {}, 'Alerts'),
    summary,
    section('Active alerts', activeBox, errorsBox),
    section('SLOs', slosBox),
    section('Error budget remaining', burndown),
    section('History', historyBox),
  );
  const activeQ = get('/api/v1/alerts');
  const slosQ = get('/api/v1/slos');

  ctx.load(summary, async () => {
    const [a, s] = await Promise.all([activeQ, slosQ]);
    const firing = a.alerts.filter((x) => x.state === 'firing').length;
    fill(summary, figures([
      { key: 'firing', label: 'Firing', raw: firing, value: count(firing) },
      { key: 'pending', label: 'Pending', value: count(a.alerts.length - firing) },
      { key: 'rule-errors', label: 'Failing rules', value: count(a.rule_errors.length) },
      { key: 'slos', label: 'SLOs out of budget', value: `${count(s.slos.filter((x) => x.error_budget_remaining < 0).length)} of ${count(s.slos.length)}` },
      { key: 'evaluated', label: 'Last evaluation', value: a.evaluated_at ? ago(a.evaluated_at) : 'never', note: a.evaluated_at ? time(a.evaluated_at, true) : null },
    ]));
  });

  ctx.load(activeBox, async () => {
    const a = await activeQ;
    fill(activeBox, table([
      { name: 'Severity', value: (x) => badge(x.severity || 'none') },
      { name: 'Alert', value: (x) => h('strong', {}, x.alertname) },
      { name: 'Labels', value: (x) => h('span', { class: 'muted small' }, labelText(ownLabels(x.labels))) },
      { name: 'Summary', value: (x) => (x.annotations && x.annotations.summary) || '' },
      { name: 'State', value: (x) => badge(x.state) },
      { name: 'Since', value: (x) => h('span', { title: time(x.starts_at, true) }, ago(x.starts_at)) },
      { name: 'Value', num: true, value: (x) => num(x.value) },
      { name: '', value: (x) => generator(x) },
    ], a.alerts, 'No alert is pending or firing.'));
    fill(errorsBox, a.rule_errors.length ? h('div', {}, h('h3', {}, 'Rules that fail'), table([
      { name: 'Rule', value: (e) => h('code', {}, e.rule) },
      { name: 'Error', value: (e) => h('span', { class: 'error' }, e.error) },
      { name: 'Since', value: (e) => time(e.since) },
    ], a.rule_errors)) : '');
  });

  ctx.load(slosBox, async () => {
    const s = await slosQ;
    fill(slosBox, table([
      { name: 'SLO', value: (x) => h('strong', {}, x.slo) },
      { name: 'SLI', num: true, value: (x) => pct(x.sli, 3) },
      { name: 'Objective', num: true, value: (x) => pct(x.objective, 3) },
      { name: 'Good / total', num: true, value: (x) => `${count(x.good)} / ${count(x.total)}` },
      { name: 'Budget left', value: (x) => budgetBar(x.error_budget_remaining), raw: (x) => x.error_budget_remaining },
      { name: '5m', num: true, value: (x) => burn(x.burn_rate_5m) },
      { name: '1h', num: true, value: (x) => burn(x.burn_rate_1h) },
      { name: '6h', num: true, value: (x) => burn(x.burn_rate_6h) },
      { name: '1d', num: true, value: (x) => burn(x.burn_rate_1d) },
      { name: '3d', num: true, value: (x) => burn(x.burn_rate_3d) },
    ], s.slos, 'No SLO is configured ([[slos]]).'));
  });

  ctx.load(burndown, async () => {
    const res = resolution(r);
    const list = await rows(`SELECT slo, date_bin(${res.interval}, computed_at) AS t, min(error_budget_remaining) AS remaining
      FROM slo_status WHERE ${within('computed_at', r)} GROUP BY 1, 2 ORDER BY 2`);
    const slos = [...new Set(list.map((x) => x.slo))].sort();
    timeChart(burndown, {
      title: 'error budget remaining', unit: 'pct', from: r.from, to: r.to, height: 200,
      series: slos.map((s, i) => ({ name: s, cls: `c${i % 8}`, points: list.filter((x) => x.slo === s).map((x) => [toMs(x.t), x.remaining]) })),
      empty: 'No SLO status in this range.',
    });
  });

  ctx.load(historyBox, async () => {
    const list = await rows(`SELECT at, alertname, state, severity, labels, annotations['summary'] AS summary, value, notified
      FROM alerts WHERE ${within('at', r)} ORDER BY at DESC LIMIT 200`);
    fill(historyBox, table([
      { name: 'At', value: (x) => time(x.at, true) },
      { name: 'Alert', value: (x) => h('strong', {}, x.alertname) },
      { name: 'State', value: (x) => badge(x.state) },
      { name: 'Severity', value: (x) => badge(x.severity) },
      { name: 'Labels', value: (x) => h('span', { class: 'muted small' }, labelText(ownLabels(x.labels))) },
      { name: 'Summary', value: (x) => x.summary || '' },
      { name: 'Notified', value: (x) => (x.notified ? 'yes' : h('span', { class: 'muted', title: 'older than alerts.max_age: recorded, not sent' }, 'no (history)')) },
    ], list, 'No alert changed state in this range.'));
  });
}

/** The share of the error budget left, as a bar (negative: overspent). */
function budgetBar(v) {
  const w = Math.max(0, Math.min(1, v || 0));
  const bar = h('span', { class: `budget ${v < 0 ? 'over' : v < 0.25 ? 'low' : 'ok'}` }, h('span', { class: 'budget-fill' }));
  bar.firstChild.style.width = `${(w * 100).toFixed(1)}%`;
  return h('span', { class: 'budget-cell' }, bar, ' ', pct(v, 1));
}
