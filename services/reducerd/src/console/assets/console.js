// Pure Reducer web console: a single page over reducerd's JSON API (/api/v1).
// Every value from the server reaches the DOM as text (textContent or text nodes), never as
// markup. Pages are hash routes; each sets document.body.dataset.ready to its route name
// once its data is on screen.
'use strict';

(() => {
  const TOKEN_KEY = 'purereducer.console.token';
  const WORKFLOWS_PAGE_SIZE = 50;
  const HISTORY_PAGE_SIZE = 50;
  const LIST_LIMIT = 100;
  const POLL_MS = 1000;

  // ---------------------------------------------------------------- DOM helpers

  const $ = (selector, root = document) => root.querySelector(selector);

  // Builds an element. Children are nodes or strings (strings become text nodes); null,
  // undefined and false are skipped. Props: class, text, dataset, on<event>, anything else
  // becomes an attribute (true gives an empty attribute).
  function el(tag, props, ...children) {
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

  function appendChildren(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
  }

  const enc = encodeURIComponent;

  function decodeSegment(segment) {
    try {
      return decodeURIComponent(segment);
    } catch (_) {
      return segment;
    }
  }

  // ---------------------------------------------------------------- formatting

  const dash = '—';

  function text(value) {
    if (value === null || value === undefined || value === '') return dash;
    return String(value);
  }

  function timeCell(value) {
    if (!value) return dash;
    const date = new Date(value);
    const title = Number.isNaN(date.getTime()) ? null : date.toLocaleString();
    return el('time', { datetime: value, title }, String(value));
  }

  function formatDuration(totalSeconds) {
    if (totalSeconds === null || totalSeconds === undefined || Number.isNaN(Number(totalSeconds))) {
      return dash;
    }
    let s = Math.max(0, Math.floor(Number(totalSeconds)));
    const days = Math.floor(s / 86400);
    s -= days * 86400;
    const hours = Math.floor(s / 3600);
    s -= hours * 3600;
    const minutes = Math.floor(s / 60);
    s -= minutes * 60;
    const parts = [];
    if (days) parts.push(`${days} d`);
    if (hours) parts.push(`${hours} h`);
    if (minutes && !days) parts.push(`${minutes} min`);
    if (!days && !hours) parts.push(`${s} s`);
    return parts.join(' ');
  }

  function formatAgeMs(ms) {
    if (ms === null || ms === undefined) return dash;
    const n = Number(ms);
    if (Number.isNaN(n)) return String(ms);
    if (n < 1000) return `${Math.round(n)} ms`;
    if (n < 60000) return `${(n / 1000).toFixed(1)} s`;
    return formatDuration(n / 1000);
  }

  function formatNumber(value) {
    if (value === null || value === undefined) return dash;
    if (typeof value !== 'number') return String(value);
    if (Number.isInteger(value)) return String(value);
    return String(Number(value.toPrecision(4)));
  }

  function statusBadge(status) {
    const known = { COMMITTED: 'ok', REJECTED: 'warn', GAVE_UP: 'bad' };
    return el('span', { class: `badge badge-${known[status] || 'neutral'}` }, text(status));
  }

  function pretty(value) {
    return JSON.stringify(value, null, 2);
  }

  function workflowHash(namespace, key) {
    return `#/workflow/${enc(namespace || 'default')}/${enc(key)}`;
  }

  // ---------------------------------------------------------------- state diffs

  function isObject(value) {
    return value !== null && typeof value === 'object' && !Array.isArray(value);
  }

  function deepEqual(a, b) {
    if (a === b) return true;
    if (Array.isArray(a) || Array.isArray(b)) {
      if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
      return a.every((item, i) => deepEqual(item, b[i]));
    }
    if (isObject(a) && isObject(b)) {
      const ka = Object.keys(a);
      const kb = Object.keys(b);
      if (ka.length !== kb.length) return false;
      return ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && deepEqual(a[k], b[k]));
    }
    return false;
  }

  function childPath(path, key) {
    return /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
  }

  // Differences from `before` to `after`, one line per JSON path: objects are descended into,
  // lists and scalars change as a whole.
  function diffStates(before, after, path = '$', out = []) {
    if (isObject(before) && isObject(after)) {
      const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
      for (const key of [...keys].sort()) {
        const p = childPath(path, key);
        const had = Object.prototype.hasOwnProperty.call(before, key);
        const has = Object.prototype.hasOwnProperty.call(after, key);
        if (!had) out.push({ op: 'add', text: `+ ${p} = ${JSON.stringify(after[key])}` });
        else if (!has) out.push({ op: 'remove', text: `- ${p} (was ${JSON.stringify(before[key])})` });
        else diffStates(before[key], after[key], p, out);
      }
    } else if (!deepEqual(before, after)) {
      out.push({ op: 'change', text: `~ ${path}: ${JSON.stringify(before)} -> ${JSON.stringify(after)}` });
    }
    return out;
  }

  // ---------------------------------------------------------------- API access

  class ApiError extends Error {
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

  async function api(method, path, { query, signal } = {}) {
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

  function describeError(err) {
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

  function showError(err) {
    $('#error-message').textContent = typeof err === 'string' ? err : describeError(err);
    $('#error').hidden = false;
  }

  function clearError() {
    $('#error-message').textContent = '';
    $('#error').hidden = true;
  }

  // A result stays until the next navigation; `flash` keeps it through one more.
  let keepResultOnce = false;

  function showResult(message, kind = 'ok') {
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

  function flash(message, kind) {
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

  function reloadPage() {
    render({ reload: true });
  }

  // Goes to a hash, re-rendering when it is already the current one.
  function go(hash) {
    if (location.hash === hash) reloadPage();
    else location.hash = hash;
  }

  function failureNotice(err) {
    return el('section', { class: 'page' },
      el('h1', null, 'Could not load this page'),
      el('p', { class: 'muted' }, describeError(err)),
      el('p', null, el('button', { type: 'button', onclick: reloadPage }, 'Try again')));
  }

  // ---------------------------------------------------------------- shared widgets

  function table(id, headers, rows, emptyMessage) {
    const body = el('tbody');
    if (rows.length === 0) {
      body.append(el('tr', { class: 'empty' }, el('td', { colspan: headers.length }, emptyMessage)));
    } else {
      appendChildren(body, rows);
    }
    return el('table', { id, class: 'grid' },
      el('thead', null, el('tr', null, headers.map((h) => el('th', { scope: 'col' }, h)))),
      body);
  }

  function row(cells, props) {
    return el('tr', props, cells.map((c) => el('td', null, c instanceof Node ? c : text(c))));
  }

  function field(label, input) {
    return el('label', { class: 'field' }, el('span', null, label), input);
  }

  function summary(items) {
    return el('dl', { class: 'summary' },
      items.map(([label, value, id]) => el('div', null,
        el('dt', null, label),
        el('dd', { id }, value instanceof Node ? value : text(value)))));
  }

  // Runs an admin action from a button: the button is disabled meanwhile, and errors go to
  // the banner.
  async function runAction(button, action) {
    button.disabled = true;
    clearError();
    try {
      await action();
    } catch (err) {
      if (err && err.name === 'AbortError') return;
      showError(err);
      button.disabled = false;
    }
  }

  function retryButton(page, entry, after) {
    const namespace = entry.namespace || 'default';
    const button = el('button', {
      type: 'button',
      class: 'retry-button',
      dataset: { namespace, key: entry.workflow_key, actionId: entry.action_id },
    }, 'Retry');
    button.addEventListener('click', () => runAction(button, async () => {
      const path = `workflows/${enc(namespace)}/${enc(entry.workflow_key)}/retry/${enc(entry.action_id)}`;
      const res = await api('POST', path);
      const parts = [`Retry of action ${entry.action_id}: ${text(res.status)}`];
      if (res.version !== undefined && res.version !== null) parts.push(`at version ${res.version}`);
      let message = parts.join(' ');
      if (res.message) message += ` (${res.message})`;
      showResult(message, res.status === 'COMMITTED' ? 'ok' : 'warn');
      after();
    }));
    return button;
  }

  // ---------------------------------------------------------------- #/workflows

  async function renderWorkflows(page) {
    const params = page.route.params;
    const filters = {
      namespace: params.has('namespace') ? params.get('namespace') : 'default',
      type: params.get('type') || '',
      prefix: params.get('prefix') || '',
      status: params.get('status') || '',
    };
    const pageToken = params.get('page_token') || '';
    const data = await page.get('workflows', { ...filters, limit: WORKFLOWS_PAGE_SIZE, page_token: pageToken });
    const workflows = Array.isArray(data.workflows) ? data.workflows : [];

    const hashFor = (extra) => {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries({ ...filters, ...extra })) if (v) q.set(k, v);
      return `#/workflows?${q.toString()}`;
    };

    const inputs = {
      namespace: el('input', { name: 'namespace', value: filters.namespace, placeholder: 'default' }),
      type: el('input', { name: 'type', value: filters.type, placeholder: 'any' }),
      prefix: el('input', { name: 'prefix', value: filters.prefix, placeholder: 'any' }),
      status: el('input', { name: 'status', value: filters.status, placeholder: 'any' }),
    };
    const form = el('form', { id: 'workflows-filter', class: 'filters' },
      field('Namespace', inputs.namespace),
      field('Workflow type', inputs.type),
      field('Key prefix', inputs.prefix),
      field('Status', inputs.status),
      el('div', { class: 'filter-actions' },
        el('button', { type: 'submit' }, 'Apply'),
        el('a', { href: '#/workflows', class: 'secondary' }, 'Reset')));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const q = new URLSearchParams();
      for (const [k, input] of Object.entries(inputs)) {
        const v = input.value.trim();
        if (v) q.set(k, v);
      }
      go(`#/workflows?${q.toString()}`);
    });

    const rows = workflows.map((w) => row([
      el('a', { class: 'workflow-link', href: workflowHash(w.namespace || filters.namespace, w.workflow_key) },
        text(w.workflow_key)),
      w.workflow_type,
      w.version,
      w.status,
      timeCell(w.updated_at),
    ], { dataset: { key: w.workflow_key } }));

    const pager = el('div', { class: 'pager' },
      pageToken ? el('a', { href: hashFor({ page_token: '' }), class: 'secondary' }, 'First page') : null,
      data.next_page_token
        ? el('button', { type: 'button', id: 'next-page', onclick: () => go(hashFor({ page_token: data.next_page_token })) },
          'Next page')
        : null);

    page.show(el('section', { class: 'page' },
      el('h1', null, 'Workflows'),
      form,
      el('p', { class: 'muted' },
        workflows.length === 1 ? '1 workflow on this page' : `${workflows.length} workflows on this page`),
      table('workflows-table', ['Workflow key', 'Type', 'Version', 'Status', 'Updated'], rows,
        'No workflow matches these filters.'),
      pager));
    page.ready('workflows');
  }

  // ---------------------------------------------------------------- #/workflow

  function renderWorkflowLookup(page) {
    const namespace = el('input', { name: 'namespace', value: page.route.args[0] || 'default', required: true });
    const key = el('input', { name: 'key', required: true, placeholder: 'order-1' });
    const form = el('form', { id: 'workflow-lookup', class: 'filters' },
      field('Namespace', namespace),
      field('Workflow key', key),
      el('div', { class: 'filter-actions' }, el('button', { type: 'submit' }, 'Open')));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      if (key.value.trim()) go(workflowHash(namespace.value.trim() || 'default', key.value.trim()));
    });
    page.show(el('section', { class: 'page' }, el('h1', null, 'Open a workflow'), form));
    key.focus();
    page.ready('workflow-lookup');
  }

  // The state a committed entry is compared with: the closest older committed state among the
  // loaded entries, {} for version 1.
  function previousCommitted(entries, index, complete) {
    const entry = entries[index];
    if (Number(entry.version) <= 1) return { state: {}, note: null };
    for (let j = index + 1; j < entries.length; j += 1) {
      const older = entries[j];
      if (older.status === 'COMMITTED' && older.state !== null && older.state !== undefined
          && Number(older.version) < Number(entry.version)) {
        return { state: older.state, note: null };
      }
    }
    if (complete) return { state: {}, note: 'Compared with an empty state: earlier versions are not in the history.' };
    return null;
  }

  function diffBlock(entries, index, complete) {
    const entry = entries[index];
    if (entry.state === null || entry.state === undefined) {
      return el('p', { class: 'muted' }, 'State not recorded for this version.');
    }
    const previous = previousCommitted(entries, index, complete);
    if (!previous) return el('p', { class: 'muted' }, 'The previous version is on an older page of the history.');
    const lines = diffStates(previous.state, entry.state);
    return el('div', null,
      previous.note ? el('p', { class: 'muted' }, previous.note) : null,
      el('pre', { class: 'diff' },
        lines.length === 0
          ? el('span', { class: 'muted' }, '(no changes)')
          : lines.map((line) => el('span', { class: `diff-line diff-${line.op}` }, line.text))));
  }

  function entryDetails(entry) {
    const details = {
      correlation_id: entry.correlation_id,
      result_hash: entry.result_hash,
      workflow_type: entry.workflow_type,
      payload: entry.payload,
      intents: entry.intents,
    };
    return el('details', null, el('summary', null, 'Payload, intents and ids'),
      el('pre', { class: 'json' }, pretty(details)));
  }

  function historyTable(page, view, refresh) {
    const headers = ['Version', 'Status', 'Action type', 'Action id', 'Actor', 'Reason', 'Recorded', ''];
    const tableNode = el('table', { id: 'history-table', class: 'grid history' },
      el('thead', null, el('tr', null, headers.map((h) => el('th', { scope: 'col' }, h)))));
    const complete = !view.historyToken;
    if (view.entries.length === 0) {
      tableNode.append(el('tbody', null,
        el('tr', { class: 'empty' }, el('td', { colspan: headers.length }, 'No history recorded.'))));
    }
    view.entries.forEach((entry, index) => {
      const actions = entry.status === 'GAVE_UP'
        ? retryButton(page, { ...entry, namespace: view.namespace, workflow_key: view.key }, refresh)
        : '';
      const group = el('tbody', { class: 'entry', dataset: { version: entry.version, status: entry.status } },
        el('tr', { class: 'entry-row' },
          el('td', { class: 'version' }, `v${text(entry.version)}`),
          el('td', null, statusBadge(entry.status)),
          el('td', null, text(entry.action_type)),
          el('td', { class: 'mono' }, text(entry.action_id)),
          el('td', null, text(entry.actor)),
          el('td', { class: 'reason' }, text(entry.reason)),
          el('td', null, timeCell(entry.recorded_at)),
          el('td', null, actions)),
        el('tr', { class: 'entry-detail' },
          el('td', { colspan: headers.length },
            entry.status === 'COMMITTED' ? diffBlock(view.entries, index, complete) : null,
            entryDetails(entry))));
      tableNode.append(group);
    });
    return tableNode;
  }

  async function renderWorkflow(page) {
    const [namespace, key] = page.route.args;
    if (key === undefined) {
      renderWorkflowLookup(page);
      return;
    }
    const base = `workflows/${enc(namespace)}/${enc(key)}`;
    const view = { namespace, key, wf: null, entries: [], historyToken: '', dedup: [] };

    const fetchAll = () => Promise.all([
      page.get(base),
      page.get(`${base}/history`, { reverse: 'true', limit: HISTORY_PAGE_SIZE }),
      page.get(`${base}/dedup`),
    ]);
    const apply = ([wf, history, dedup]) => {
      view.wf = wf;
      view.entries = Array.isArray(history.entries) ? history.entries : [];
      view.historyToken = history.next_page_token || '';
      view.dedup = Array.isArray(dedup.records) ? dedup.records : [];
    };

    try {
      apply(await fetchAll());
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        showError(err);
        page.show(el('section', { class: 'page' },
          el('h1', null, `${namespace} / ${key}`),
          el('p', null, 'This workflow does not exist (or was deleted).'),
          el('p', null, el('a', { href: `#/workflows?namespace=${enc(namespace)}` }, 'Back to the workflows'))));
        return;
      }
      throw err;
    }

    const live = el('span', { id: 'live', class: 'live', dataset: { state: 'live' }, title: `Refreshed every ${POLL_MS / 1000} s` }, 'live');
    const setLive = (state, title) => {
      live.dataset.state = state;
      live.textContent = state;
      live.title = title || `Refreshed every ${POLL_MS / 1000} s`;
    };

    const summarySlot = el('div');
    const stateNode = el('pre', { id: 'workflow-state', class: 'json' });
    const historySlot = el('div');
    const dedupSlot = el('div');
    let refreshing = false;

    // Reads the workflow, its history and dedup records again; false when that failed (the
    // error is in the banner).
    const refresh = async () => {
      if (refreshing) return true;
      refreshing = true;
      try {
        apply(await fetchAll());
        draw();
        page.ready('workflow');
        return true;
      } catch (err) {
        if (page.disposed || (err && err.name === 'AbortError')) return false;
        showError(err);
        return false;
      } finally {
        refreshing = false;
      }
    };

    const loadOlder = async (button) => {
      await runAction(button, async () => {
        const history = await page.get(`${base}/history`, {
          reverse: 'true', limit: HISTORY_PAGE_SIZE, page_token: view.historyToken,
        });
        view.entries = view.entries.concat(Array.isArray(history.entries) ? history.entries : []);
        view.historyToken = history.next_page_token || '';
        drawHistory();
      });
    };

    const drawHistory = () => {
      const older = view.historyToken
        ? [el('div', { class: 'pager' }, el('button', {
          type: 'button', id: 'history-more', onclick: (e) => loadOlder(e.currentTarget),
        }, 'Load older entries'))]
        : [];
      historySlot.replaceChildren(historyTable(page, view, refresh), ...older);
    };

    const draw = () => {
      const wf = view.wf;
      summarySlot.replaceChildren(summary([
        ['Namespace', wf.namespace || namespace, 'workflow-namespace'],
        ['Type', wf.workflow_type, 'workflow-type'],
        ['Version', wf.version, 'workflow-version'],
        ['Updated', timeCell(wf.updated_at), 'workflow-updated'],
      ]));
      stateNode.textContent = pretty(wf.state === undefined ? null : wf.state);
      drawHistory();
      dedupSlot.replaceChildren(table('dedup-table', ['Action id', 'Status', 'Version', 'Expires'],
        view.dedup.map((r) => row([el('span', { class: 'mono' }, text(r.action_id)), r.status, r.version,
          timeCell(r.expires_at)])),
        'No dedup records.'));
    };

    draw();
    page.show(el('section', { class: 'page' },
      el('div', { class: 'page-head' },
        el('h1', null, el('span', { class: 'muted' }, `${namespace} / `), key),
        live),
      summarySlot,
      el('h2', null, 'Current state'),
      stateNode,
      el('h2', null, 'History'),
      el('p', { class: 'muted' }, 'Newest first; each committed version shows what it changed.'),
      historySlot,
      el('h2', null, 'Dedup records'),
      dedupSlot));
    page.ready('workflow');

    // Live updates: the workflow is read every second while the page is visible; a new
    // version reloads the history and dedup records.
    const poll = async () => {
      if (document.visibilityState !== 'visible') {
        setLive('paused', 'Paused while the page is hidden');
        page.later(poll, POLL_MS);
        return;
      }
      try {
        const wf = await page.get(base);
        const changed = wf.version !== view.wf.version || wf.updated_at !== view.wf.updated_at;
        if (!changed || await refresh()) setLive('live');
        else setLive('offline', 'The last refresh failed');
      } catch (err) {
        if (page.disposed || (err && err.name === 'AbortError')) return;
        if (err instanceof ApiError && err.status === 404) {
          setLive('gone', 'The workflow no longer exists');
          showError('This workflow no longer exists; it was deleted.');
          return;
        }
        setLive('offline', describeError(err));
        if (err instanceof ApiError && (err.status === 401 || err.status === 403)) showError(err);
      }
      page.later(poll, POLL_MS);
    };
    page.later(poll, POLL_MS);
  }

  // ---------------------------------------------------------------- #/pipeline

  async function renderPipeline(page) {
    const data = await page.get('pipeline');
    const outbox = data.outbox || {};
    const watermarks = Array.isArray(data.watermarks) ? data.watermarks : [];
    const groups = Array.isArray(data.consumer_groups) ? data.consumer_groups : [];

    const groupList = el('ul', { id: 'consumer-groups', class: 'plain-list' });
    if (groups.length === 0) {
      groupList.append(el('li', { class: 'muted' },
        data.mode === 'in-process' ? 'None: events are applied in process.' : 'No consumer groups.'));
    }
    for (const g of groups) {
      const topics = Array.isArray(g.topics) ? g.topics : [];
      groupList.append(el('li', null, el('strong', null, text(g.group)),
        el('span', { class: 'muted' }, topics.length ? ` — ${topics.join(', ')}` : ' — no topics')));
    }

    page.show(el('section', { class: 'page' },
      el('div', { class: 'page-head' },
        el('h1', null, 'Pipeline'),
        el('div', { class: 'spacer' }),
        el('button', { type: 'button', class: 'secondary', onclick: reloadPage }, 'Refresh')),
      summary([
        ['Mode', data.mode, 'pipeline-mode'],
        ['Outbox pending', outbox.pending, 'outbox-pending'],
        ['Oldest pending', formatAgeMs(outbox.oldest_pending_age_ms), 'outbox-oldest'],
      ]),
      el('h2', null, 'Watermarks'),
      table('pipeline-watermarks', ['Topic', 'Partition', 'Offset', 'Updated'],
        watermarks.map((w) => row([w.topic, w.partition, w.offset, timeCell(w.updated_at)])),
        'No watermarks recorded yet.'),
      el('h2', null, 'Consumer groups'),
      groupList));
    page.ready('pipeline');
  }

  // ---------------------------------------------------------------- #/dead-letters

  async function renderDeadLetters(page) {
    const [letters, gaveUp] = await Promise.all([
      page.get('dead-letters', { limit: LIST_LIMIT }),
      page.get('gave-up', { limit: LIST_LIMIT }),
    ]);
    const deadLetters = Array.isArray(letters.dead_letters) ? letters.dead_letters : [];
    const gaveUpList = Array.isArray(gaveUp.gave_up) ? gaveUp.gave_up : [];

    const replayButton = (letter) => {
      const button = el('button', { type: 'button', class: 'replay-button', dataset: { id: letter.id } }, 'Replay');
      button.addEventListener('click', () => runAction(button, async () => {
        const res = await api('POST', `dead-letters/${enc(letter.id)}/replay`);
        const detail = res.message ? `: ${res.message}` : '.';
        if (res.replayed) showResult(`Dead letter ${letter.id} replayed${detail}`, 'ok');
        else showResult(`Dead letter ${letter.id} was not replayed${detail}`, 'warn');
        reloadPage();
      }));
      return button;
    };

    const workflowLink = (namespace, key) => (key
      ? el('a', { href: workflowHash(namespace, key) }, key)
      : dash);

    const letterRows = deadLetters.map((d) => row([
      d.id,
      el('span', { class: 'mono' }, text(d.source)),
      d.namespace,
      workflowLink(d.namespace, d.workflow_key),
      d.version,
      d.event_type,
      el('span', { class: 'error-text' }, text(d.error)),
      timeCell(d.created_at),
      el('span', { class: 'replayed-at' }, d.replayed_at ? timeCell(d.replayed_at) : dash),
      d.replayed_at ? el('span') : replayButton(d),
    ], { dataset: { id: d.id } }));

    const gaveUpRows = gaveUpList.map((g) => row([
      g.namespace,
      workflowLink(g.namespace, g.workflow_key),
      g.version,
      el('span', { class: 'mono' }, text(g.action_id)),
      g.action_type,
      el('span', { class: 'mono' }, text(g.correlation_id)),
      el('span', { class: 'error-text' }, text(g.reason)),
      timeCell(g.recorded_at),
      retryButton(page, g, reloadPage),
    ]));

    page.show(el('section', { class: 'page' },
      el('div', { class: 'page-head' },
        el('h1', null, 'Dead letters'),
        el('div', { class: 'spacer' }),
        el('button', { type: 'button', class: 'secondary', onclick: reloadPage }, 'Refresh')),
      el('p', { class: 'muted' }, 'Events the pipeline could not apply. Replaying one applies it again.'),
      table('dead-letters-table',
        ['Id', 'Source', 'Namespace', 'Workflow key', 'Version', 'Event type', 'Error', 'Created', 'Replayed', ''],
        letterRows, 'No dead letters.'),
      el('h2', null, 'Gave-up actions'),
      el('p', { class: 'muted' }, 'Actions that were given up after their retries ran out. Retrying one runs it again.'),
      table('gave-up-table',
        ['Namespace', 'Workflow key', 'Version', 'Action id', 'Action type', 'Correlation id', 'Reason', 'Recorded', ''],
        gaveUpRows, 'No gave-up actions.')));
    page.ready('dead-letters');
  }

  // ---------------------------------------------------------------- #/health

  async function renderHealth(page) {
    const data = await page.get('health');
    const sla = Array.isArray(data.sla) ? data.sla : [];
    const breached = sla.filter((s) => s.ok === false).length;
    const badge = (ok) => {
      if (ok === true) return el('span', { class: 'badge badge-ok' }, 'ok');
      if (ok === false) return el('span', { class: 'badge badge-bad' }, 'breached');
      return el('span', { class: 'badge badge-neutral' }, 'n/a');
    };
    const roles = Array.isArray(data.roles) ? data.roles.join(', ') : data.roles;

    page.show(el('section', { class: 'page' },
      el('div', { class: 'page-head' },
        el('h1', null, 'Health'),
        el('div', { class: 'spacer' }),
        el('button', { type: 'button', class: 'secondary', onclick: reloadPage }, 'Refresh')),
      summary([
        ['Backend', data.backend, 'health-backend'],
        ['Roles', roles, 'health-roles'],
        ['Uptime', formatDuration(data.uptime_seconds), 'health-uptime'],
        ['SLAs', sla.length === 0 ? dash : (breached ? `${breached} of ${sla.length} breached` : 'all met'), 'health-sla-summary'],
      ]),
      el('h2', null, 'Service levels'),
      table('health-table', ['Name', 'Value', 'Unit', 'Target', 'Status'],
        sla.map((s) => row([s.name, formatNumber(s.value), s.unit, formatNumber(s.target), badge(s.ok)],
          { dataset: { ok: String(s.ok) } })),
        'No service levels reported.')));
    page.ready('health');
  }

  // ---------------------------------------------------------------- unknown routes

  function renderNotFound(page) {
    page.show(el('section', { class: 'page' },
      el('h1', null, 'Page not found'),
      el('p', null, 'There is no console page at this address. ',
        el('a', { href: '#/workflows' }, 'Go to the workflows'), '.')));
    page.ready('not-found');
  }

  const routes = {
    workflows: renderWorkflows,
    workflow: renderWorkflow,
    pipeline: renderPipeline,
    'dead-letters': renderDeadLetters,
    health: renderHealth,
  };

  // ---------------------------------------------------------------- start

  function start() {
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

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
