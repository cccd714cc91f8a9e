// `/sql`: an editor, results as a table and a chart, CSV download. `/sql?q=...` runs the
// query, and running one from the editor puts it in the URL, so a result can be shared.
// `$__timeFilter(column)` stands for the page's time range, as in Grafana.

import { get, sql, csv } from '../api.js';
import { h, fill, section, chartBox } from '../dom.js';
import { timeChart, categoryBars } from '../chart.js';
import { within } from '../range.js';
import { setParams } from '../nav.js';
import { toMs, count } from '../format.js';

const EXAMPLE = `SELECT service, sum(count) AS requests, quantile_merge(sketch, 0.99) AS p99_ms
FROM metric_rollups_1h
WHERE $__timeFilter(window_start)
GROUP BY service
ORDER BY p99_ms DESC`;
const SHOWN = 1000;

const isTime = (t) => /^(Timestamp|Date)/.test(t);
const isNum = (t) => /^(U?Int|Float|Decimal)/.test(t);

/** The query with the page's range in place of `$__timeFilter(col)`. */
export const expand = (q, r) => q.replace(/\$__timeFilter\(\s*([A-Za-z_][\w.]*)\s*\)/g, (_, col) => `(${within(col, r)})`);

export async function render(ctx, view) {
  const q = ctx.params.get('q');
  const editor = h('textarea', { id: 'sql-editor', spellcheck: 'false', rows: 8, 'aria-label': 'SQL' });
  editor.value = q ?? EXAMPLE;
  const run = h('button', { id: 'sql-run', type: 'button', class: 'primary' }, 'Run');
  const download = h('button', { id: 'sql-csv', type: 'button' }, 'Download CSV');
  const status = h('span', { id: 'sql-status', class: 'muted' });
  const tablesBox = h('div', { class: 'table-names' });
  const result = h('div', { id: 'sql-result' });
  const chart = chartBox('sql');
  const go = () => setParams({ q: editor.value });
  run.addEventListener('click', go);
  editor.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); go(); }
  });
  download.addEventListener('click', async () => {
    status.textContent = 'Preparing CSV…';
    try {
      const text = await csv(expand(editor.value, ctx.range));
      const a = h('a', { href: URL.createObjectURL(new Blob([text], { type: 'text/csv' })), download: 'opslake.csv' });
      document.body.append(a);
      a.click();
      a.remove();
      status.textContent = 'CSV downloaded.';
    } catch (e) {
      status.textContent = '';
      fill(result, h('p', { class: 'error' }, e.message));
    }
  });
  view.append(
    h('h1', {}, 'SQL'),
    h('div', { class: 'sql-layout' },
      section('Query', editor, h('div', { class: 'toolbar' }, run, download, status),
        h('p', { class: 'muted small' }, 'Ctrl+Enter runs. Read-only: SELECT, WITH, EXPLAIN, SHOW, DESCRIBE. $__timeFilter(column) is the range picked above.')),
      section('Tables', tablesBox)),
    section('Result', result, chart),
  );

  ctx.load(tablesBox, async () => {
    const { tables } = await get('/api/v1/tables');
    fill(tablesBox, ...tables.map((t) => h('details', {},
      h('summary', {}, t.name),
      h('ul', {}, t.columns.map((c) => h('li', {}, h('code', {}, c.name), h('span', { class: 'muted small' }, ` ${c.type}`)))))));
  });

  if (q == null) {
    fill(result, h('p', { class: 'muted' }, 'Run a query to see its result.'));
    return;
  }
  ctx.load(result, async () => {
    const started = performance.now();
    let body;
    try {
      body = await sql(expand(q, ctx.range));
    } catch (e) {
      fill(result, h('p', { class: 'error', id: 'sql-error' }, e.message));
      return;
    }
    const took = performance.now() - started;
    status.textContent = `${count(body.rows.length)} rows in ${Math.round(took)} ms${body.truncated ? ' (truncated)' : ''}`;
    const cols = body.columns;
    fill(result, 
      h('div', { class: 'table-wrap' }, h('table', { id: 'sql-table' },
        h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col', title: c.type, class: isNum(c.type) ? 'num' : null }, c.name)))),
        h('tbody', {}, body.rows.slice(0, SHOWN).map((row) => h('tr', {}, row.map((v, i) => h('td', { class: isNum(cols[i].type) ? 'num' : null }, cell(v)))))))),
      body.rows.length > SHOWN ? h('p', { class: 'muted' }, `First ${SHOWN} of ${count(body.rows.length)} rows shown; the CSV has them all.`) : null,
    );
    draw(chart, cols, body.rows);
  });
}

function cell(v) {
  if (v == null) return h('span', { class: 'muted' }, 'null');
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** A chart of the result when it has one to show: numbers over time, or numbers by name. */
function draw(box, cols, data) {
  const t = cols.findIndex((c) => isTime(c.type));
  const nums = cols.map((c, i) => [c, i]).filter(([c, i]) => isNum(c.type) && i !== t);
  const key = cols.findIndex((c, i) => i !== t && /^(Utf8|LargeUtf8|Utf8View|Dictionary)/.test(c.type));
  if (!nums.length || !data.length) { fill(box); return; }
  if (t >= 0) {
    const series = [];
    if (key >= 0) {
      const [c, i] = nums[0];
      for (const k of [...new Set(data.map((r) => r[key]))].slice(0, 8)) {
        series.push({ name: `${k} ${c.name}`, cls: `c${series.length}`, points: data.filter((r) => r[key] === k).map((r) => [toMs(r[t]), r[i]]).sort((a, b) => a[0] - b[0]) });
      }
    } else {
      for (const [c, i] of nums.slice(0, 8)) series.push({ name: c.name, cls: `c${series.length}`, points: data.map((r) => [toMs(r[t]), r[i]]).sort((a, b) => a[0] - b[0]) });
    }
    timeChart(box, { title: 'result', series });
  } else if (key >= 0) {
    const [, i] = nums[0];
    categoryBars(box, { title: 'result', labels: data.map((r) => r[key]), values: data.map((r) => r[i]) });
  } else {
    fill(box);
  }
}
