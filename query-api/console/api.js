// The API, with the token when the server asks for one. The token is kept in this browser's
// storage and sent in the Authorization header: it never appears in a URL.

const KEY = 'opslake.token';
let waiting = null;

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function headers(extra = {}) {
  const token = localStorage.getItem(KEY);
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

// The dialog cannot be dismissed without a token: the page has nothing to show without one.
document.getElementById('login').addEventListener('cancel', (e) => e.preventDefault());

/** Asks for the token once; every request waiting on it resumes after. */
function askForToken(rejected) {
  if (!waiting) {
    waiting = new Promise((resolve) => {
      const dialog = document.getElementById('login');
      const input = document.getElementById('login-token');
      const error = document.getElementById('login-error');
      error.hidden = !rejected;
      error.textContent = rejected ? 'That token was refused.' : '';
      const form = document.getElementById('login-form');
      form.onsubmit = (e) => {
        e.preventDefault();
        localStorage.setItem(KEY, input.value.trim());
        input.value = '';
        dialog.close();
        waiting = null;
        resolve();
      };
      if (!dialog.open) dialog.showModal();
      input.focus();
    });
  }
  return waiting;
}

/** A request to the API; a 401 asks for the token and retries. */
export async function request(path, init = {}) {
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(path, { ...init, headers: headers(init.headers) });
    if (res.status === 401 && attempt < 5) {
      const had = localStorage.getItem(KEY);
      if (had) localStorage.removeItem(KEY);
      await askForToken(Boolean(had));
      continue;
    }
    if (!res.ok) {
      let message = `${res.status} ${res.statusText}`;
      try { message = (await res.json()).error || message; } catch { /* not JSON */ }
      throw new ApiError(res.status, message);
    }
    return res;
  }
}

/** GET a JSON endpoint. */
export async function get(path) {
  return (await request(path)).json();
}

/** Runs a query; answers `{columns, rows, objects}` where objects are keyed by column. */
export async function sql(query) {
  const res = await request('/api/v1/sql', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sql: query }),
  });
  const body = await res.json();
  const names = body.columns.map((c) => c.name);
  body.objects = body.rows.map((r) => Object.fromEntries(names.map((n, i) => [n, r[i]])));
  return body;
}

/** The rows of a query as objects. */
export async function rows(query) {
  return (await sql(query)).objects;
}

/** A query's answer as CSV text. */
export async function csv(query) {
  const res = await request('/api/v1/sql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/csv' },
    body: JSON.stringify({ sql: query }),
  });
  return res.text();
}

/** Forgets the token (the next request asks again). */
export function signOut() { localStorage.removeItem(KEY); }
export const hasToken = () => Boolean(localStorage.getItem(KEY));

/** SQL string literal. */
export const lit = (s) => `'${String(s).replaceAll("'", "''")}'`;
