// Calls page: searches GET /api/calls with the form's conditions. The
// conditions and page live in the address, so a search can be bookmarked
// and the back button returns to it.
import {
  currentUser, el, formatDuration, formatTime, getJson, setStatus, topBar,
} from './common.js';

const PAGE_SIZE = 50;
const TEXT_FIELDS = [
  'queue', 'agent', 'caller', 'request_type', 'disposition', 'min_talk_seconds', 'max_talk_seconds',
  'min_csat', 'max_csat',
];
const TIME_FIELDS = ['from', 'to'];

const form = document.getElementById('search');
const rows = document.querySelector('#calls tbody');
const previous = document.getElementById('previous');
const next = document.getElementById('next');
const pageLabel = document.getElementById('page');

// A datetime-local value is local time without a zone; the API wants
// RFC 3339, so it is converted through Date.
function toRfc3339(local) {
  const date = new Date(local);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

// The reverse, for filling the form from the address.
function toLocalInput(text) {
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) {
    return '';
  }
  const shifted = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return shifted.toISOString().slice(0, 19);
}

function searchFromForm() {
  const search = new URLSearchParams();
  for (const name of TIME_FIELDS) {
    const value = form.elements[name].value;
    const time = value ? toRfc3339(value) : null;
    if (time) {
      search.set(name, time);
    }
  }
  for (const name of TEXT_FIELDS) {
    const value = form.elements[name].value.trim();
    if (value) {
      search.set(name, value);
    }
  }
  return search;
}

function fillForm(search) {
  for (const name of TIME_FIELDS) {
    form.elements[name].value = search.has(name) ? toLocalInput(search.get(name)) : '';
  }
  for (const name of TEXT_FIELDS) {
    form.elements[name].value = search.get(name) || '';
  }
}

function row(call) {
  const link = el('a', { href: `/console/calls/${encodeURIComponent(call.id)}` }, formatTime(call.arrived_at));
  return el('tr', { 'data-call': call.id },
    el('td', {}, link),
    el('td', {}, call.caller),
    el('td', {}, call.queue ?? '—'),
    el('td', {}, call.request_type ?? '—'),
    el('td', {}, call.agent ?? '—'),
    el('td', { class: `disposition-${call.disposition}` }, call.disposition.replace('_', ' ')),
    el('td', { class: 'number' }, formatDuration(call.wait_seconds)),
    el('td', { class: 'number' }, formatDuration(call.talk_seconds)),
    el('td', { class: 'number' }, call.csat_score == null ? '—' : String(call.csat_score)),
    el('td', {}, call.recording_path ? formatDuration(call.recording_seconds) : '—'),
  );
}

async function show() {
  const search = new URLSearchParams(location.search);
  fillForm(search);
  const page = Math.max(0, Number.parseInt(search.get('page') || '0', 10) || 0);
  const query = new URLSearchParams(search);
  query.delete('page');
  query.set('limit', String(PAGE_SIZE + 1));
  query.set('offset', String(page * PAGE_SIZE));
  setStatus('Searching…');
  try {
    const calls = await getJson(`/api/calls?${query}`);
    const shown = calls.slice(0, PAGE_SIZE);
    rows.replaceChildren(...shown.map(row));
    previous.disabled = page === 0;
    next.disabled = calls.length <= PAGE_SIZE;
    pageLabel.textContent = `page ${page + 1}`;
    setStatus(shown.length === 0 ? 'No call matches.' : `${shown.length} calls on this page.`);
  } catch (failure) {
    rows.replaceChildren();
    setStatus(failure.message, true);
  }
}

function go(search) {
  history.pushState(null, '', search.toString() ? `?${search}` : location.pathname);
  show();
}

function goToPage(delta) {
  const search = new URLSearchParams(location.search);
  const page = Math.max(0, (Number.parseInt(search.get('page') || '0', 10) || 0) + delta);
  if (page === 0) {
    search.delete('page');
  } else {
    search.set('page', String(page));
  }
  go(search);
}

async function fillQueueNames() {
  try {
    const queues = await getJson('/api/queues');
    document.getElementById('queue-names').replaceChildren(
      ...queues.map((queue) => el('option', { value: queue.name })),
    );
  } catch {
    // Suggestions only; the search works without them.
  }
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  go(searchFromForm());
});
form.addEventListener('reset', () => {
  // After the browser cleared the fields.
  setTimeout(() => go(new URLSearchParams()), 0);
});
previous.addEventListener('click', () => goToPage(-1));
next.addEventListener('click', () => goToPage(1));
window.addEventListener('popstate', show);

const user = await currentUser();
topBar(user, 'calls');
fillQueueNames();
show();
