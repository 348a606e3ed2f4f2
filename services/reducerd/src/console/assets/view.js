// What the pages draw with: value formatting, tables and summaries, admin action buttons,
// and the per-path diff between two workflow states.

import {
  api, appendChildren, clearError, el, enc, showError, showResult,
} from './core.js';

// ---------------------------------------------------------------- formatting

export const dash = '—';

export function text(value) {
  if (value === null || value === undefined || value === '') return dash;
  return String(value);
}

export function timeCell(value) {
  if (!value) return dash;
  const date = new Date(value);
  const title = Number.isNaN(date.getTime()) ? null : date.toLocaleString();
  return el('time', { datetime: value, title }, String(value));
}

export function formatDuration(totalSeconds) {
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

export function formatAgeMs(ms) {
  if (ms === null || ms === undefined) return dash;
  const n = Number(ms);
  if (Number.isNaN(n)) return String(ms);
  if (n < 1000) return `${Math.round(n)} ms`;
  if (n < 60000) return `${(n / 1000).toFixed(1)} s`;
  return formatDuration(n / 1000);
}

export function formatNumber(value) {
  if (value === null || value === undefined) return dash;
  if (typeof value !== 'number') return String(value);
  if (Number.isInteger(value)) return String(value);
  return String(Number(value.toPrecision(4)));
}

export function statusBadge(status) {
  const known = { COMMITTED: 'ok', REJECTED: 'warn', GAVE_UP: 'bad' };
  return el('span', { class: `badge badge-${known[status] || 'neutral'}` }, text(status));
}

export function pretty(value) {
  return JSON.stringify(value, null, 2);
}

export function workflowHash(namespace, key) {
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
export function diffStates(before, after, path = '$', out = []) {
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

// ---------------------------------------------------------------- shared widgets

export function table(id, headers, rows, emptyMessage) {
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

export function row(cells, props) {
  return el('tr', props, cells.map((c) => el('td', null, c instanceof Node ? c : text(c))));
}

export function field(label, input) {
  return el('label', { class: 'field' }, el('span', null, label), input);
}

export function summary(items) {
  return el('dl', { class: 'summary' },
    items.map(([label, value, id]) => el('div', null,
      el('dt', null, label),
      el('dd', { id }, value instanceof Node ? value : text(value)))));
}

// Runs an admin action from a button: the button is disabled meanwhile, and errors go to
// the banner.
export async function runAction(button, action) {
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

export function retryButton(page, entry, after) {
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
