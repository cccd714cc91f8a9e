// Building the page: elements, tables and sections, never HTML text (so nothing from the
// data can become markup).

/** An element: `h('a', {href: '/x', class: 'y'}, 'text', child)`. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v || {});
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** A link the console follows without reloading. */
export const link = (href, ...children) => h('a', { href, 'data-nav': true }, ...children);

/** A section with a heading. */
export function section(title, ...children) {
  return h('section', { class: 'card' }, h('h2', {}, title), ...children);
}

/**
 * A table: `columns` are `{name, value: row => text|Node, num: bool, raw: row => value}`
 * (`raw` becomes the cell's `data-value`, for tests and scripts); `empty` shows when there
 * are no rows.
 */
export function table(columns, rows, empty = 'Nothing in this range.') {
  if (!rows.length) return h('p', { class: 'muted empty' }, empty);
  return h('div', { class: 'table-wrap' },
    h('table', {},
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { class: c.num ? 'num' : null, scope: 'col' }, c.name)))),
      h('tbody', {}, rows.map((r) => h('tr', {}, columns.map((c) => h('td', {
        class: c.num ? 'num' : null,
        dataset: c.raw ? { value: String(c.raw(r)) } : null,
      }, c.value(r))))))));
}

/** A row of headline figures: `[{key, label, value, note, raw}]` (`raw`: `data-value`). */
export function figures(items) {
  return h('div', { class: 'figures' }, items.map((i) =>
    h('div', { class: 'figure', dataset: i.raw == null ? { figure: i.key || i.label } : { figure: i.key || i.label, value: String(i.raw) } },
      h('div', { class: 'figure-label' }, i.label),
      h('div', { class: 'figure-value' }, i.value),
      i.note ? h('div', { class: 'figure-note muted' }, i.note) : null)));
}

/** A severity or state badge. */
export const badge = (text, kind = text) => h('span', { class: `badge badge-${String(kind).toLowerCase()}` }, text);

/** A box that a chart is drawn into. */
export const chartBox = (name) => h('div', { class: 'chart', dataset: { chart: name } });

/** Replaces `el`'s children, skipping null and false ones. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}
