// What every console page stands on: building elements, calling the API with the bearer
// token, the error and result banners, and the router that shows one page at a time.

const TOKEN_KEY = 'purereducer.console.token';

// ---------------------------------------------------------------- DOM helpers

const $ = (selector, root = document) => root.querySelector(selector);

// Builds an element. Children are nodes or strings (strings become text nodes); null,
// undefined and false are skipped. Props: class, text, dataset, on<event>, anything else
// becomes an attribute (true gives an empty attribute).
export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'class') node.className = value;
    else if (name === 'text') node.textContent = String(value);
    else if (name === 'dataset') {
      for (const [k, v] of Object.entries(value)) node.dataset[k] = String(v);
    } else if (name.startsWith('on') && typeof value === 'function') {
      node.addEventListener(name.slice(2), value);
    } else node.setAttribute(name, value === true ? '' : String(value));
  }
  appendChildren(node, children);
  return node;
}

export function appendChildren(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
}

export const enc = encodeURIComponent;

function decodeSegment(segment) {
  try {
    return decodeURIComponent(segment);
  } catch (_) {
    return segment;
  }
}

// ---------------------------------------------------------------- API access

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch (_) {
    return '';
  }
}

function setToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch (_) {
    // Storage disabled: the token lasts as long as the input keeps it.
  }
}

function currentToken() {
  const input = $('#token');
  return (input && input.value.trim()) || getToken();
}

export async function api(method, path, { query, signal } = {}) {
  let url = `api/v1/${path}`;
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
    }
    const qs = params.toString();
    if (qs) url += `?${qs}`;
  }
  const headers = { Accept: 'application/json' };
  const token = currentToken();
  if (token) headers.Authorization = `Bearer ${token}`;

  let response;
  let body = '';
  try {
    response = await fetch(url, { method, headers, signal, cache: 'no-store' });
    body = await response.text();
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError(0, `cannot reach reducerd (${err && err.message ? err.message : err})`);
  }
  let data = null;
  if (body) {
    try {
      data = JSON.parse(body);
    } catch (_) {
      data = null;
    }
  }
  if (!response.ok) {
    const message = data && typeof data.error === 'string' && data.error
      ? data.error
      : (body.trim() || response.statusText || 'request failed');
    throw new ApiError(response.status, message);
  }
  if (data === null) throw new ApiError(response.status, 'the answer was not JSON');
  return data;
}

export function describeError(err) {
  if (!(err instanceof ApiError)) return String(err && err.message ? err.message : err);
  switch (err.status) {
    case 0: return err.message;
    case 401: return `Not authorized: ${err.message}. Enter a bearer token above.`;
    case 403: return `Forbidden: ${err.message}`;
    case 404: return `Not found: ${err.message}`;
    case 409: return `Conflict: ${err.message}`;
    default: return `Request failed (${err.status}): ${err.message}`;
  }
}

// ---------------------------------------------------------------- banners

export function showError(err) {
  $('#error-message').textContent = typeof err === 'string' ? err : describeError(err);
  $('#error').hidden = false;
}

export function clearError() {
  $('#error-message').textContent = '';
  $('#error').hidden = true;
}

// A result stays until the next navigation; `flash` keeps it through one more.
let keepResultOnce = false;

export function showResult(message, kind = 'ok') {
  const box = $('#action-result');
  box.textContent = message;
  box.dataset.kind = kind;
  box.hidden = false;
}

function clearResult() {
  const box = $('#action-result');
  box.textContent = '';
  box.hidden = true;
}

export function flash(message, kind) {
  showResult(message, kind);
  keepResultOnce = true;
}

// ---------------------------------------------------------------- pages and routing

// One shown page: its fetches are aborted and its timers cleared when another replaces it.
class Page {
  constructor(route) {
    this.route = route;
    this.controller = new AbortController();
    this.timers = new Set();
    this.cleanups = [];
    this.disposed = false;
  }

  dispose() {
    this.disposed = true;
    this.controller.abort();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const fn of this.cleanups) fn();
  }

  get(path, query) {
    return api('GET', path, { query, signal: this.controller.signal });
  }

  send(method, path) {
    return api(method, path, { signal: this.controller.signal });
  }

  later(fn, ms) {
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.disposed) fn();
    }, ms);
    this.timers.add(t);
  }

  show(...nodes) {
    if (this.disposed) return;
    const main = $('#app');
    main.replaceChildren(...nodes);
  }

  ready(name) {
    if (!this.disposed) document.body.dataset.ready = name;
  }
}

function parseHash() {
  let hash = location.hash.replace(/^#\/?/, '');
  let query = '';
  const q = hash.indexOf('?');
  if (q >= 0) {
    query = hash.slice(q + 1);
    hash = hash.slice(0, q);
  }
  const parts = hash.split('/').filter((p) => p !== '').map(decodeSegment);
  return { name: parts[0] || 'workflows', args: parts.slice(1), params: new URLSearchParams(query) };
}

// The pages by route name, given to start().
let routes = {};
let currentPage = null;

function render({ reload = false } = {}) {
  if (currentPage) currentPage.dispose();
  const route = parseHash();
  const handler = routes[route.name] || renderNotFound;
  delete document.body.dataset.ready;
  if (!reload) {
    clearError();
    if (keepResultOnce) keepResultOnce = false;
    else clearResult();
    $('#app').replaceChildren(el('p', { class: 'muted' }, 'Loading…'));
    window.scrollTo(0, 0);
  }
  for (const link of document.querySelectorAll('#nav a')) {
    link.classList.toggle('active', link.dataset.route === route.name);
  }
  const page = new Page(route);
  currentPage = page;
  Promise.resolve()
    .then(() => handler(page))
    .catch((err) => {
      if (page.disposed || (err && err.name === 'AbortError')) return;
      showError(err);
      page.show(failureNotice(err));
    });
}

export function reloadPage() {
  render({ reload: true });
}

// Goes to a hash, re-rendering when it is already the current one.
export function go(hash) {
  if (location.hash === hash) reloadPage();
  else location.hash = hash;
}

function failureNotice(err) {
  return el('section', { class: 'page' },
    el('h1', null, 'Could not load this page'),
    el('p', { class: 'muted' }, describeError(err)),
    el('p', null, el('button', { type: 'button', onclick: reloadPage }, 'Try again')));
}

// ---------------------------------------------------------------- unknown routes

function renderNotFound(page) {
  page.show(el('section', { class: 'page' },
    el('h1', null, 'Page not found'),
    el('p', null, 'There is no console page at this address. ',
      el('a', { href: '#/workflows' }, 'Go to the workflows'), '.')));
  page.ready('not-found');
}

// ---------------------------------------------------------------- start

// Starts the console; `pages` maps each route name to the function that renders its page.
export function start(pages) {
  routes = pages;
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
  else boot();
}

function boot() {
  const tokenInput = $('#token');
  tokenInput.value = getToken();
  tokenInput.addEventListener('input', () => setToken(tokenInput.value.trim()));
  // A changed token re-reads the page with it.
  tokenInput.addEventListener('change', () => {
    setToken(tokenInput.value.trim());
    clearError();
    reloadPage();
  });
  $('#error-dismiss').addEventListener('click', clearError);
  window.addEventListener('hashchange', () => render());
  if (!location.hash || location.hash === '#' || location.hash === '#/') {
    history.replaceState(null, '', '#/workflows');
  }
  render();
}
