// The workflows pages: #/workflows lists a namespace's workflows; #/workflow/{namespace}/{key}
// shows one workflow's state, its history with what each version changed, and its dedup
// records, and follows new versions live.

import { ApiError, describeError, el, enc, go, showError } from './core.js';
import {
  diffStates, field, pretty, retryButton, row, runAction, statusBadge, summary, table, text,
  timeCell, workflowHash,
} from './view.js';

const WORKFLOWS_PAGE_SIZE = 50;
const HISTORY_PAGE_SIZE = 50;
const POLL_MS = 1000;

// ---------------------------------------------------------------- #/workflows

export async function renderWorkflows(page) {
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
  if (entry.deleted) {
    return el('p', { class: 'muted' }, 'The workflow was deleted: its state was removed, and a later action starts it again.');
  }
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

export async function renderWorkflow(page) {
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
      ['Version', wf.deleted ? `${wf.version} (deleted)` : wf.version, 'workflow-version'],
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
