// Tables of anomalies and regressions, shared by the overview and a service's page. An
// anomaly links to its window on the service's page; a regression shows the versions on
// each side of the change.

import { h, link, table, badge } from '../dom.js';
import { ms, pct, num, time, toMs } from '../format.js';

/** How an anomaly or regression metric reads: error rates as percentages, the rest as ms. */
export const metricFormat = (metric) => (metric === 'error_rate' ? (v) => pct(v) : ms);

/** The series' labels as `k=v` text. */
export const labelText = (labels) => Object.entries(labels || {}).map(([k, v]) => `${k}=${v}`).join(', ');

/** The service page around an anomaly's window (an hour centred on it). */
export function anomalyHref(a) {
  const t = toMs(a.window_start);
  const metric = a.name && a.name !== 'logs' ? `&metric=${encodeURIComponent(a.name)}` : '';
  return `/services/${encodeURIComponent(a.service)}?from=${t - 1800e3}&to=${t + 1800e3}${metric}`;
}

export function anomalyTable(list, { short = false } = {}) {
  return table([
    { name: 'Window', value: (a) => link(anomalyHref(a), time(a.window_start)) },
    short ? { name: 'Service', value: (a) => a.service } : null,
    { name: 'Series', value: (a) => h('span', {}, a.name, a.labels && Object.keys(a.labels).length ? h('span', { class: 'muted' }, ` ${labelText(a.labels)}`) : '') },
    { name: 'Metric', value: (a) => a.metric },
    { name: 'Observed', num: true, value: (a) => metricFormat(a.metric)(a.observed) },
    { name: 'Expected', num: true, value: (a) => metricFormat(a.metric)(a.expected) },
    short ? null : { name: 'Band', num: true, value: (a) => `${metricFormat(a.metric)(a.lower)} – ${metricFormat(a.metric)(a.upper)}` },
    { name: 'Severity', value: (a) => badge(a.severity) },
  ].filter(Boolean), list, 'No anomaly in this range.');
}

export function regressionTable(list, { service = false } = {}) {
  return table([
    { name: 'Change at', value: (g) => link(anomalyHref({ ...g, window_start: g.change_at }), time(g.change_at)) },
    service ? null : { name: 'Service', value: (g) => g.service },
    { name: 'Series', value: (g) => h('span', {}, g.name, g.labels && Object.keys(g.labels).length ? h('span', { class: 'muted' }, ` ${labelText(g.labels)}`) : '') },
    { name: 'Metric', value: (g) => g.metric },
    { name: 'Before → after', num: true, value: (g) => `${metricFormat(g.metric)(g.before)} → ${metricFormat(g.metric)(g.after)}` },
    { name: 'Change', num: true, value: (g) => h('span', { class: g.change_pct > 0 ? 'worse' : 'better' }, `${g.change_pct > 0 ? '+' : ''}${num(g.change_pct)}%`) },
    { name: 'Versions', value: (g) => versions(g) },
  ].filter(Boolean), list, 'No regression in this range.');
}

/** `1.2.0 → 1.3.0`, or what is known of it. */
export function versions(g) {
  if (!g.version_before && !g.version_after) return h('span', { class: 'muted' }, 'same version');
  return h('span', { class: 'versions' }, h('code', {}, g.version_before || '?'), ' → ', h('code', {}, g.version_after || '?'));
}
