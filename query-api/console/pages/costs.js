// `/costs`: daily cost by provider or service with the 30-day forecast and its 80% and 95%
// bands, budgets against the month-end forecast, forecasts per provider, and savings
// opportunities (each opens its resource's daily cost).

import { get, rows, lit } from '../api.js';
import { h, fill, section, table, figures, chartBox, badge } from '../dom.js';
import { timeChart } from '../chart.js';
import { setParams } from '../nav.js';
import { money, pct, toMs } from '../format.js';
import { latestForecasts } from '../queries.js';

const DAY = 86400e3;
const dateLit = (m) => `DATE '${new Date(m).toISOString().slice(0, 10)}'`;

export async function render(ctx, view) {
  const r = ctx.range;
  const by = ctx.params.get('by') === 'service' ? 'service' : 'provider';
  // Costs are daily: a short range still shows two weeks.
  const from = Math.min(r.from, r.to - 14 * DAY);
  const summary = h('div', { class: 'figures-slot' });
  const chart = chartBox('daily-cost');
  const budgetsBox = h('div');
  const forecastBox = h('div');
  const oppBox = h('div');
  const toggle = h('select', { id: 'cost-by', 'aria-label': 'group costs by' },
    h('option', { value: 'provider', selected: by === 'provider' }, 'provider'),
    h('option', { value: 'service', selected: by === 'service' }, 'service'));
  toggle.addEventListener('change', () => setParams({ by: toggle.value }));
  view.append(
    h('h1', {}, 'Costs'),
    summary,
    section('Daily cost and the 30-day forecast', h('div', { class: 'toolbar' }, h('label', {}, 'Stack by ', toggle)), chart),
    h('div', { class: 'columns' }, section('Budgets', budgetsBox), section('Forecast by provider, next 30 days', forecastBox)),
    section('Savings opportunities', oppBox),
  );

  const dailyQ = rows(`SELECT date, coalesce(${by}, '(none)') AS k, sum(cost) AS cost, min(currency) AS currency
    FROM cost_daily WHERE date >= ${dateLit(from)} GROUP BY 1, 2 ORDER BY 1`);
  const totalFcQ = latestForecasts(`f.scope = 'total'`);
  const providerFcQ = latestForecasts(`f.scope = 'provider'`);
  const monthStart = new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), 1)).getTime();
  const nextMonth = new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth() + 1, 1)).getTime();
  const mtdQ = rows(`SELECT provider, service, resource_id, sum(cost) AS cost, max(date) AS last_day, min(currency) AS currency
    FROM cost_daily WHERE date >= ${dateLit(monthStart)} AND date < ${dateLit(nextMonth)} GROUP BY 1, 2, 3`);
  const oppQ = rows(`SELECT kind, provider, resource_id, service, resource_type, region, monthly_cost, estimated_monthly_savings,
      recommendation, evidence, currency FROM cost_opportunities ORDER BY estimated_monthly_savings DESC LIMIT 100`);

  ctx.load(chart, async () => {
    const [daily, fc] = await Promise.all([dailyQ, totalFcQ]);
    const keys = [...new Set(daily.map((d) => d.k))];
    const totals = keys.map((k) => [k, daily.filter((d) => d.k === k).reduce((a, d) => a + d.cost, 0)]).sort((a, b) => b[1] - a[1]);
    const shown = totals.slice(0, 7).map(([k]) => k);
    const groups = shown.map((k, i) => ({ name: k, cls: `c${i}`, points: daily.filter((d) => d.k === k).map((d) => [toMs(d.date), d.cost]) }));
    if (totals.length > 7) {
      const other = new Map();
      for (const d of daily.filter((x) => !shown.includes(x.k))) other.set(toMs(d.date), (other.get(toMs(d.date)) || 0) + d.cost);
      groups.push({ name: 'other', cls: 'c7', points: [...other.entries()].sort((a, b) => a[0] - b[0]) });
    }
    const pts = (k) => fc.map((f) => [toMs(f.date), f[k]]);
    timeChart(chart, {
      title: 'daily cost', unit: 'money', from, to: Math.max(r.to, ...fc.map((f) => toMs(f.date) + DAY)), height: 280,
      bars: { bucketMs: DAY, groups },
      bands: fc.length ? [
        { name: '95% interval', cls: 'band95', lower: pts('lower_95'), upper: pts('upper_95') },
        { name: '80% interval', cls: 'band80', lower: pts('lower_80'), upper: pts('upper_80') },
      ] : [],
      series: fc.length ? [{ name: `forecast (${fc[0].method})`, cls: 'forecast', points: pts('forecast').map(([t, v]) => [t + DAY / 2, v]) }] : [],
      empty: 'No billing data yet.',
    });
  });

  ctx.load(summary, async () => {
    const [mtd, fc, opp] = await Promise.all([mtdQ, totalFcQ, oppQ]);
    const currency = (mtd[0] || fc[0] || {}).currency || 'USD';
    const spent = mtd.reduce((a, m) => a + m.cost, 0);
    const lastDay = Math.max(0, ...mtd.map((m) => toMs(m.last_day)));
    const rest = fc.filter((f) => toMs(f.date) > lastDay && toMs(f.date) < nextMonth);
    const next30 = fc.slice(0, 30);
    const sum = (xs, k) => xs.reduce((a, f) => a + f[k], 0);
    fill(summary, figures([
      { key: 'month-to-date', label: 'This month so far', raw: spent, value: money(spent, currency) },
      { key: 'month-end', label: 'Month-end forecast', value: money(spent + sum(rest, 'forecast'), currency),
        note: rest.length ? `80%: ${money(spent + sum(rest, 'lower_80'), currency, 0)} – ${money(spent + sum(rest, 'upper_80'), currency, 0)}` : null },
      { key: 'next-30-days', label: 'Next 30 days', raw: sum(next30, 'forecast'), value: money(sum(next30, 'forecast'), currency),
        note: next30.length ? `80%: ${money(sum(next30, 'lower_80'), currency, 0)} – ${money(sum(next30, 'upper_80'), currency, 0)}` : 'no forecast yet' },
      { key: 'savings', label: 'Possible savings', value: `${money(opp.reduce((a, o) => a + o.estimated_monthly_savings, 0), currency)}/mo`, note: `${opp.length} opportunities` },
    ]));
  });

  ctx.load(budgetsBox, async () => {
    const [{ budgets }, mtd] = await Promise.all([get('/api/v1/budgets'), mtdQ]);
    // Only the forecasts of the budgets' own scopes and keys.
    const fcAll = budgets.length
      ? await latestForecasts(budgets.map((b) => `(f.scope = ${lit(b.scope)} AND f.key = ${lit(b.key)})`).join(' OR '))
      : [];
    const lastDay = Math.max(0, ...mtd.map((m) => toMs(m.last_day)));
    const list = budgets.map((b) => {
      const col = { provider: 'provider', service: 'service', resource: 'resource_id' }[b.scope];
      const spent = mtd.filter((m) => !col || m[col] === b.key).reduce((a, m) => a + m.cost, 0);
      const rest = fcAll.filter((f) => f.scope === b.scope && f.key === b.key && toMs(f.date) > lastDay && toMs(f.date) < nextMonth)
        .reduce((a, f) => a + f.forecast, 0);
      return { ...b, spent, projected: spent + rest };
    });
    fill(budgetsBox, table([
      { name: 'Budget', value: (b) => (b.scope === 'total' ? 'total' : `${b.scope} ${b.key}`) },
      { name: 'Monthly', num: true, value: (b) => money(b.monthly) },
      { name: 'Spent', num: true, value: (b) => money(b.spent) },
      { name: 'Month-end', num: true, value: (b) => money(b.projected) },
      { name: 'Of budget', num: true, value: (b) => badge(pct(b.projected / b.monthly, 0), b.projected > b.monthly ? 'critical' : b.projected > 0.8 * b.monthly ? 'warning' : 'ok') },
    ], list, 'No budget is configured ([[alerts.budgets]]).'));
  });

  ctx.load(forecastBox, async () => {
    const fc = await providerFcQ;
    const keys = [...new Set(fc.map((f) => f.key))];
    const list = keys.map((k) => {
      const xs = fc.filter((f) => f.key === k).slice(0, 30);
      const s = (c) => xs.reduce((a, f) => a + f[c], 0);
      return { key: k, forecast: s('forecast'), lo: s('lower_80'), hi: s('upper_80'), method: xs[0].method, currency: xs[0].currency };
    }).sort((a, b) => b.forecast - a.forecast);
    fill(forecastBox, table([
      { name: 'Provider', value: (f) => f.key },
      { name: 'Forecast', num: true, value: (f) => money(f.forecast, f.currency) },
      { name: '80% interval', num: true, value: (f) => `${money(f.lo, f.currency, 0)} – ${money(f.hi, f.currency, 0)}` },
      { name: 'Method', value: (f) => h('code', {}, f.method) },
    ], list, 'No forecast yet: it needs two weeks of bills.'));
  });

  ctx.load(oppBox, async () => {
    const opp = await oppQ;
    const detail = h('div', { class: 'detail' });
    const open = (o) => {
      const box = chartBox('resource-cost');
      fill(detail, h('h3', {}, `${o.resource_id}: daily cost`), box);
      ctx.load(box, async () => {
        const d = await rows(`SELECT date, sum(cost) AS cost, avg(utilization_mean) AS utilization FROM cost_daily
          WHERE resource_id = ${lit(o.resource_id)} AND date >= ${dateLit(from)} GROUP BY date ORDER BY date`);
        timeChart(box, { title: `${o.resource_id} daily cost`, unit: 'money', height: 180, bars: { bucketMs: DAY, groups: [{ name: 'cost', cls: 'c0', points: d.map((x) => [toMs(x.date), x.cost]) }] } });
      });
    };
    fill(oppBox, table([
      { name: 'Kind', value: (o) => badge(o.kind, 'info') },
      { name: 'Resource', value: (o) => h('button', { class: 'linkish', type: 'button', onclick: () => open(o), title: 'show its daily cost' }, o.resource_id) },
      { name: 'Service', value: (o) => o.service || '' },
      { name: 'Provider', value: (o) => o.provider },
      { name: 'Monthly cost', num: true, value: (o) => money(o.monthly_cost, o.currency) },
      { name: 'Saves/month', num: true, value: (o) => money(o.estimated_monthly_savings, o.currency), raw: (o) => o.estimated_monthly_savings },
      { name: 'Recommendation', value: (o) => o.recommendation },
    ], opp, 'No opportunity found.'), detail);
    if (opp.length) open(opp[0]);
  });
}
