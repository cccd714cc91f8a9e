// Moving between console views without a reload; the shell (app.js) redraws on the event.

/** Goes to `href` inside the console. */
export function navigate(href, replace = false) {
  if (replace) history.replaceState(null, '', href); else history.pushState(null, '', href);
  window.dispatchEvent(new Event('opslake:navigate'));
}

/** Sets (or, with null, removes) query parameters of the current URL and draws again. */
export function setParams(changes, replace = false) {
  const url = new URL(location.href);
  for (const [k, v] of Object.entries(changes)) {
    if (v == null) url.searchParams.delete(k); else url.searchParams.set(k, v);
  }
  navigate(url.pathname + url.search, replace);
}
