// Charts as SVG, drawn by the console itself (no library: a few KB, and nothing to fetch).
// A time chart has lines, bands (forecast intervals), stacked bars, markers (anomalies) and
// vertical lines (regressions, with the versions on each side); axes with units, a legend and
// a tooltip that follows the pointer. Charts redraw when their box changes size.

import { byUnit, time, day } from './format.js';

const NS = 'http://www.w3.org/2000/svg';
const M = { left: 58, right: 14, top: 14, bottom: 26 };

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v != null) el.setAttribute(k, v);
  for (const c of children) if (c) el.append(c);
  return el;
}

function niceStep(span, n) {
  const raw = span / Math.max(1, n);
  const mag = 10 ** Math.floor(Math.log10(raw || 1));
  const f = raw / mag;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * mag;
}

/** Ticks of a value axis from `lo` to `hi`: [ticks, top]. */
function valueTicks(lo, hi, n) {
  if (!(hi > lo)) hi = lo + (Math.abs(lo) || 1);
  const step = niceStep(hi - lo, n);
  const start = Math.floor(lo / step) * step;
  const top = Math.ceil(hi / step) * step;
  const ticks = [];
  for (let v = start; v <= top + step / 1e6; v += step) ticks.push(Number(v.toPrecision(12)));
  return [ticks, top, start];
}

const MIN = 60e3, HOUR = 3600e3, DAY = 86400e3;
const TIME_STEPS = [MIN, 2 * MIN, 5 * MIN, 10 * MIN, 15 * MIN, 30 * MIN, HOUR, 2 * HOUR, 3 * HOUR,
  6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY];

function timeTicks(from, to, width) {
  const want = Math.max(2, Math.floor(width / 90));
  const step = TIME_STEPS.find((st) => (to - from) / st <= want) || 30 * DAY;
  const ticks = [];
  for (let t = Math.ceil(from / step) * step; t <= to; t += step) ticks.push(t);
  const label = (t) => {
    if (step >= DAY) return day(t).slice(5);
    const full = time(t);
    return new Date(t).getUTCHours() === 0 && new Date(t).getUTCMinutes() === 0 && to - from > DAY
      ? full.slice(5, 10) : full.slice(11);
  };
  return { ticks, label };
}

/** The index of the point nearest `t` in points sorted by time. */
function nearest(points, t) {
  let lo = 0, hi = points.length - 1;
  if (hi < 0) return -1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (points[mid][0] < t) lo = mid + 1; else hi = mid;
  }
  if (lo > 0 && Math.abs(points[lo - 1][0] - t) < Math.abs(points[lo][0] - t)) lo--;
  return lo;
}

/** The typical spacing of a series' points: a gap of more than 3 of them breaks its line. */
function spacing(points) {
  const gaps = [];
  for (let i = 1; i < points.length; i++) gaps.push(points[i][0] - points[i - 1][0]);
  gaps.sort((a, b) => a - b);
  return gaps.length ? gaps[Math.floor(gaps.length / 2)] : Infinity;
}

/** A line's path, broken at gaps, and its lone points (a line of one point draws nothing). */
function pathOf(points, x, y) {
  let d = '', prev = null, run = [];
  const lone = [];
  const gap = 3 * spacing(points);
  const end = () => { if (run.length === 1) lone.push(run[0]); run = []; };
  for (const [t, v] of points) {
    if (v == null || Number.isNaN(v)) { end(); continue; }
    if (prev != null && t - prev > gap) end();
    d += `${run.length ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
    run.push([x(t), y(v)]);
    prev = t;
  }
  end();
  return prev == null ? null : { d, lone };
}

/** Stacks groups of `[t, v]` points by time: each group's points become `[t, base, top]`. */
function stack(groups) {
  const base = new Map();
  return groups.map((g) => ({
    ...g,
    points: g.points.map(([t, v]) => {
      const b = base.get(t) || 0;
      base.set(t, b + (v || 0));
      return [t, b, b + (v || 0)];
    }),
  }));
}

/**
 * Draws a time chart into `box`. `spec`: `{unit, from, to, height, series: [{name, points,
 * cls, dash}], bars: {bucketMs, groups: [{name, points, cls}]}, bands: [{name, lower, upper,
 * cls}], markers: [{t, v, label, cls}], vlines: [{t, label, cls}], empty}`.
 */
export const timeChart = (box, spec) => mount(box, spec, drawTime);

/** Draws `spec` into `box` with `draw`, and again whenever the box changes width. */
function mount(box, spec, draw) {
  box.__spec = spec;
  box.__draw = draw;
  observe(box);
  draw(box, spec);
}

function drawTime(box, spec) {
  const fmt = byUnit(spec.unit);
  const width = Math.max(280, box.clientWidth || 600);
  box.__drawnWidth = box.clientWidth;
  const height = spec.height || 220;
  const series = (spec.series || []).filter((x) => x.points.length);
  const stacked = spec.bars ? stack(spec.bars.groups.filter((g) => g.points.length)) : [];
  const bands = (spec.bands || []).filter((b) => b.lower.length);
  const all = [
    ...series.flatMap((x) => x.points),
    ...stacked.flatMap((g) => g.points.map(([t, , top]) => [t, top])),
    ...bands.flatMap((b) => [...b.lower, ...b.upper]),
    ...(spec.markers || []).map((m) => [m.t, m.v]),
  ].filter(([, v]) => v != null && !Number.isNaN(v));
  box.replaceChildren();
  box.classList.add('chart');
  if (!all.length && !(spec.vlines || []).length) {
    box.append(Object.assign(document.createElement('p'), { className: 'muted empty', textContent: spec.empty || 'No data in this range.' }));
    box.dataset.drawn = '0';
    return;
  }
  const ts = all.map(([t]) => t).concat((spec.vlines || []).map((v) => v.t));
  let from = spec.from ?? Math.min(...ts);
  let to = spec.to ?? Math.max(...ts);
  if (spec.bars) { to = Math.max(to, Math.max(...ts) + spec.bars.bucketMs); }
  if (to <= from) { from -= MIN; to += MIN; }
  const vals = all.map(([, v]) => v);
  const lo = Math.min(0, ...vals);
  const [yt, top, bottom] = valueTicks(lo, Math.max(...vals), Math.max(2, Math.floor(height / 50)));
  const iw = width - M.left - M.right, ih = height - M.top - M.bottom;
  const x = (t) => M.left + ((t - from) / (to - from)) * iw;
  const y = (v) => M.top + ih - ((v - bottom) / (top - bottom || 1)) * ih;
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': spec.title || 'chart' });
  const grid = s('g', { class: 'grid' });
  for (const v of yt) {
    grid.append(s('line', { x1: M.left, x2: width - M.right, y1: y(v), y2: y(v) }));
    grid.append(s('text', { x: M.left - 6, y: y(v) + 4, class: 'axis-y' }, document.createTextNode(fmt(v))));
  }
  const tt = timeTicks(from, to, iw);
  for (const t of tt.ticks) {
    grid.append(s('line', { x1: x(t), x2: x(t), y1: M.top + ih, y2: M.top + ih + 4 }));
    grid.append(s('text', { x: x(t), y: height - 8, class: 'axis-x' }, document.createTextNode(tt.label(t))));
  }
  grid.append(s('line', { class: 'baseline', x1: M.left, x2: width - M.right, y1: M.top + ih, y2: M.top + ih }));
  svg.append(grid);
  for (const b of bands) {
    const up = b.upper.filter(([, v]) => v != null);
    const down = b.lower.filter(([, v]) => v != null).slice().reverse();
    const d = up.map(([t, v], i) => `${i ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)}`).join('')
      + down.map(([t, v]) => `L${x(t).toFixed(1)},${y(v).toFixed(1)}`).join('') + 'Z';
    svg.append(s('path', { d, class: `band ${b.cls || 'c0'}` }));
  }
  if (stacked.length) {
    const bw = Math.max(1, (spec.bars.bucketMs / (to - from)) * iw * 0.8);
    for (const g of stacked) {
      const gEl = s('g', { class: `bars ${g.cls}` });
      for (const [t, b, tp] of g.points) {
        if (tp === b) continue;
        gEl.append(s('rect', { x: x(t) + (spec.bars.bucketMs / (to - from)) * iw * 0.1, y: y(tp), width: bw, height: Math.max(0.5, y(b) - y(tp)) }));
      }
      svg.append(gEl);
    }
  }
  for (const sr of series) {
    const p = pathOf(sr.points, x, y);
    if (!p) continue;
    svg.append(s('path', { d: p.d, class: `line ${sr.cls || 'c0'}${sr.dash ? ' dash' : ''}` }));
    for (const [cx, cy] of p.lone) svg.append(s('circle', { cx, cy, r: 2.5, class: `dot ${sr.cls || 'c0'}` }));
  }
  for (const v of spec.vlines || []) {
    if (v.t < from || v.t > to) continue;
    const g = s('g', { class: `vline ${v.cls || ''}` });
    g.append(s('line', { x1: x(v.t), x2: x(v.t), y1: M.top, y2: M.top + ih }));
    const anchor = x(v.t) > width - 140 ? 'end' : 'start';
    g.append(s('text', { x: x(v.t) + (anchor === 'end' ? -4 : 4), y: M.top + 10, 'text-anchor': anchor }, document.createTextNode(v.label)));
    g.append(s('title', {}, document.createTextNode(v.title || v.label)));
    svg.append(g);
  }
  for (const m of spec.markers || []) {
    if (m.t < from || m.t > to || m.v == null) continue;
    const c = s('circle', { cx: x(m.t), cy: y(m.v), r: 5, class: `marker ${m.cls || ''}` });
    c.append(s('title', {}, document.createTextNode(m.label)));
    svg.append(c);
  }
  const cross = s('line', { class: 'cross', y1: M.top, y2: M.top + ih, x1: -10, x2: -10 });
  svg.append(cross);
  box.append(svg);
  box.append(legend(spec, series, stacked, bands));
  const tip = document.createElement('div');
  tip.className = 'tip';
  tip.hidden = true;
  box.append(tip);
  const hoverables = [...series, ...stacked.map((g) => ({ ...g, points: g.points.map(([t, b, tp]) => [t, tp - b]) }))];
  svg.addEventListener('pointermove', (e) => {
    const rect = svg.getBoundingClientRect();
    const px = ((e.clientX - rect.left) / rect.width) * width;
    if (px < M.left || px > width - M.right) { tip.hidden = true; return; }
    const t = from + ((px - M.left) / iw) * (to - from);
    let at = null;
    const lines = [];
    for (const sr of hoverables) {
      const i = nearest(sr.points, t);
      if (i < 0) continue;
      at = at ?? sr.points[i][0];
      lines.push([sr.name, sr.cls, fmt(sr.points[i][1])]);
    }
    const near = [...(spec.markers || []), ...(spec.vlines || [])].filter((m) => Math.abs(x(m.t) - px) < 8);
    tip.replaceChildren();
    const head = document.createElement('div');
    head.className = 'tip-time';
    head.textContent = time(at ?? t);
    tip.append(head);
    for (const [name, cls, v] of lines) {
      const row = document.createElement('div');
      const sw = document.createElement('span');
      sw.className = `swatch ${cls || 'c0'}`;
      row.append(sw, `${name}: ${v}`);
      tip.append(row);
    }
    for (const m of near) {
      const row = document.createElement('div');
      row.className = 'tip-note';
      row.textContent = m.title || m.label;
      tip.append(row);
    }
    cross.setAttribute('x1', x(at ?? t)); cross.setAttribute('x2', x(at ?? t));
    tip.hidden = false;
    const left = Math.min(Math.max(0, ((x(at ?? t)) / width) * rect.width + 12), rect.width - tip.offsetWidth - 4);
    tip.style.left = `${Math.max(0, left)}px`;
    tip.style.top = `${M.top}px`;
  });
  svg.addEventListener('pointerleave', () => { tip.hidden = true; cross.setAttribute('x1', -10); cross.setAttribute('x2', -10); });
  box.dataset.drawn = String(all.length);
}

function legend(spec, series, stacked, bands) {
  const el = document.createElement('div');
  el.className = 'legend';
  const item = (cls, name, kind) => {
    const i = document.createElement('span');
    i.className = 'legend-item';
    const sw = document.createElement('span');
    sw.className = `swatch ${kind} ${cls || 'c0'}`;
    i.append(sw, name);
    el.append(i);
  };
  for (const sr of series) item(sr.cls, sr.name, sr.dash ? 'dash' : 'line');
  for (const g of stacked) item(g.cls, g.name, 'box');
  for (const b of bands) item(b.cls, b.name, 'band');
  if ((spec.markers || []).length) item('marker', spec.markerName || 'anomaly', 'dot');
  if ((spec.vlines || []).length) item('vline', spec.vlineName || 'change', 'vbar');
  return el;
}

/** Horizontal bars of categories: `{labels, values, unit}`. */
export const categoryBars = (box, spec) => mount(box, spec, drawBars);

function drawBars(box, spec) {
  const fmt = byUnit(spec.unit);
  const n = Math.min(spec.labels.length, 30);
  const width = Math.max(280, box.clientWidth || 600);
  box.__drawnWidth = box.clientWidth;
  const row = 22, labelW = Math.min(200, width * 0.35), valueW = 70;
  const height = n * row + 8;
  const max = Math.max(0, ...spec.values.slice(0, n).filter((v) => v != null));
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': spec.title || 'bar chart' });
  for (let i = 0; i < n; i++) {
    const v = spec.values[i] || 0;
    const w = max > 0 ? ((width - labelW - valueW) * Math.max(0, v)) / max : 0;
    const g = s('g', { class: 'cat c0' });
    g.append(s('text', { x: labelW - 6, y: i * row + 16, class: 'axis-y' }, document.createTextNode(String(spec.labels[i]).slice(0, 32))));
    g.append(s('rect', { x: labelW, y: i * row + 4, width: Math.max(1, w), height: row - 8 }));
    g.append(s('text', { x: labelW + w + 4, y: i * row + 16, class: 'value' }, document.createTextNode(fmt(v))));
    svg.append(g);
  }
  box.replaceChildren(svg);
  box.dataset.drawn = String(n);
}

/** A small line of values, for tables. */
export function sparkline(values, cls = 'c0') {
  const w = 96, h = 24;
  const vs = values.filter((v) => v != null);
  const svg = s('svg', { viewBox: `0 0 ${w} ${h}`, width: w, height: h, class: 'spark', role: 'img', 'aria-label': 'trend' });
  if (vs.length < 2) return svg;
  const lo = Math.min(...vs), hi = Math.max(...vs);
  const d = values.map((v, i) => (v == null ? null : `${(i / (values.length - 1)) * (w - 2) + 1},${h - 2 - ((v - lo) / (hi - lo || 1)) * (h - 4)}`))
    .filter(Boolean).map((p, i) => (i ? 'L' : 'M') + p).join('');
  svg.append(s('path', { d, class: `line ${cls}` }));
  return svg;
}

const observed = new WeakSet();
let observer = null;
function observe(box) {
  if (observed.has(box)) return;
  observed.add(box);
  observer = observer || new ResizeObserver((entries) => {
    for (const e of entries) {
      const b = e.target;
      const w = Math.round(e.contentRect.width);
      if (w > 0 && b.__drawnWidth !== w && b.__spec) b.__draw(b, b.__spec);
    }
  });
  observer.observe(box);
}
