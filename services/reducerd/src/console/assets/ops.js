// The operations pages: #/pipeline (outbox, watermarks, consumer groups), #/dead-letters
// (dead letters with Replay, gave-up actions with Retry) and #/health (service levels).

import { api, el, enc, reloadPage, showResult } from './core.js';
import {
  dash, formatAgeMs, formatDuration, formatNumber, retryButton, row, runAction, summary, table,
  text, timeCell, workflowHash,
} from './view.js';

const LIST_LIMIT = 100;

// ---------------------------------------------------------------- #/pipeline

export async function renderPipeline(page) {
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

export async function renderDeadLetters(page) {
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

export async function renderHealth(page) {
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
