// The console's shell: routes URLs to pages, keeps the time range and auto refresh in the
// URL (so every view can be shared), and tells when a page is complete (`data-state` on the
// body, and the `opslake:complete` performance mark the tests and the benchmark read).

import { RANGES, REFRESH, currentRange } from './range.js';
import { h } from './dom.js';
import { navigate, setParams } from './nav.js';
import * as overview from './pages/overview.js';
import * as service from './pages/service.js';
import * as costs from './pages/costs.js';
import * as alerts from './pages/alerts.js';
import * as sqlPage from './pages/sql.js';
import * as pipeline from './pages/pipeline.js';

const ROUTES = [
  { re: /^\/$/, page: overview, name: 'overview', range: '6h' },
  { re: /^\/services\/([^/]+)\/?$/, page: service, name: 'overview', range: '6h' },
  { re: /^\/costs\/?$/, page: costs, name: 'costs', range: '30d' },
  { re: /^\/alerts\/?$/, page: alerts, name: 'alerts', range: '24h' },
  { re: /^\/sql\/?$/, page: sqlPage, name: 'sql', range: '24h' },
  { re: /^\/pipeline\/?$/, page: pipeline, name: 'pipeline', range: '1h' },
];

let generation = 0;
let timer = null;

function route(path) {
  for (const r of ROUTES) {
    const m = path.match(r.re);
    if (m) return { ...r, args: m.slice(1).map(decodeURIComponent) };
  }
  return null;
}

function syncControls(r, params, routeInfo) {
  const range = document.getElementById('range');
  if (!range.options.length) {
    for (const [name] of RANGES) range.append(h('option', { value: name }, `last ${name}`));
    range.append(h('option', { value: 'custom', disabled: true }, 'custom'));
    for (const [name] of REFRESH) document.getElementById('refresh').append(h('option', { value: name }, name));
  }
  range.value = r.label;
  document.getElementById('refresh').value = params.get('refresh') || 'off';
  for (const a of document.querySelectorAll('nav.pages a')) {
    a.classList.toggle('active', routeInfo && a.dataset.page === routeInfo.name);
    // Links between pages keep the range and refresh the user chose.
    const url = new URL(a.getAttribute('href'), location.origin);
    for (const k of ['range', 'refresh']) {
      if (params.get(k)) url.searchParams.set(k, params.get(k)); else url.searchParams.delete(k);
    }
    a.setAttribute('href', url.pathname + url.search);
  }
}

/** Draws the current URL's page; `refresh` keeps the old view until the new one is complete. */
async function render(refresh) {
  const gen = ++generation;
  clearTimeout(timer);
  const url = new URL(location.href);
  const info = route(url.pathname);
  const main = document.getElementById('main');
  const r = currentRange(url.searchParams, info ? info.range : '6h');
  syncControls(r, url.searchParams, info);
  document.body.dataset.state = 'loading';
  main.setAttribute('aria-busy', 'true');
  const view = h('div', { class: 'view' });
  if (!refresh) main.replaceChildren(view);
  const pending = [];
  let painted = false;
  const ctx = {
    range: r,
    params: url.searchParams,
    args: info ? info.args : [],
    stale: () => gen !== generation,
    /** Fills `box` with what `fill` draws; a failure shows in the box, not as a page error. */
    load(box, fill) {
      box.classList.add('loading');
      const p = Promise.resolve().then(fill).then(() => {
        // The first section drawn with its data: the page's first meaningful paint.
        if (gen === generation && !painted) { painted = true; performance.mark('opslake:first-data'); }
      }, (e) => {
        if (gen !== generation) return;
        box.replaceChildren(h('p', { class: 'error' }, `Could not load: ${e.message}`));
      }).finally(() => box.classList.remove('loading'));
      pending.push(p);
      return p;
    },
  };
  if (!info) {
    view.append(h('h1', {}, 'Not found'), h('p', {}, 'No console page is at this address. ', h('a', { href: '/', 'data-nav': true }, 'Services')));
  } else {
    try {
      await info.page.render(ctx, view);
    } catch (e) {
      view.append(h('p', { class: 'error' }, `Could not draw this page: ${e.message}`));
    }
  }
  // Pages may start more loads while earlier ones finish.
  for (let n = 0; n < pending.length; n = pending.length) await Promise.allSettled(pending.slice(n));
  if (gen !== generation) return;
  if (refresh) main.replaceChildren(view);
  main.setAttribute('aria-busy', 'false');
  document.body.dataset.state = 'ready';
  document.getElementById('updated').textContent = `updated ${new Date().toISOString().slice(11, 19)} UTC`;
  performance.mark('opslake:complete');
  const every = (REFRESH.find(([n]) => n === url.searchParams.get('refresh')) || [0, 0])[1];
  if (every) timer = setTimeout(() => render(true), every);
}

document.addEventListener('click', (e) => {
  const a = e.target.closest('a[data-nav]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const url = new URL(a.href);
  if (url.origin !== location.origin) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
  window.scrollTo(0, 0);
});
window.addEventListener('popstate', () => render(false));
window.addEventListener('opslake:navigate', () => render(false));
document.getElementById('range').addEventListener('change', (e) => setParams({ range: e.target.value, from: null, to: null }));
document.getElementById('refresh').addEventListener('change', (e) => setParams({ refresh: e.target.value === 'off' ? null : e.target.value }, true));
render(false);
