// Wallboard: a tile per queue and the agents with their state, updated
// from the event stream without reloading. Agent states change from the
// events themselves. The events do not carry queue figures, so those are
// fetched again shortly after the events that change them.
import {
  READS_REPORTS, ApiError, api, currentUser, el, formatDuration, formatPercent, getJson,
  setStatus, topBar,
} from './common.js';
import { intervalChart } from './wallboard_chart.js';

// Waits after an event before fetching queue figures, so a burst of
// events costs one round of requests.
const QUEUE_REFRESH_MS = 500;
// Today's report is heavier: it is read again at most this often.
const REPORT_REFRESH_MS = 5000;
// Interval of a full refresh whatever the stream sent, in case an event
// was missed.
const FULL_REFRESH_MS = 60000;
const RECONNECT_MS = 5000;

// Kinds that end a caller's stay in a queue, after which the chart of
// calls per interval is drawn again.
const CALL_ENDINGS = new Set([
  'call_completed', 'call_abandoned', 'call_timed_out', 'call_exited', 'callback_requested',
  'callback_failed',
]);

// Kinds after which a queue's report figures (abandon rate, averages) move.
const OUTCOMES = new Set([
  'offer_answered', 'call_completed', 'call_abandoned', 'call_timed_out', 'call_exited',
  'call_transferred',
]);

const state = {
  user: null,
  queues: [],
  stats: new Map(),
  report: new Map(),
  reportAllowed: false,
  agents: new Map(),
  // When the queue figures were fetched, to tick the longest wait.
  fetchedAt: 0,
};

const tiles = document.getElementById('queues');
const chart = intervalChart(
  document.getElementById('interval-chart-figure'),
  (failure) => setStatus(failure.message, true),
);
const agentRows = document.querySelector('#agents tbody');
const live = document.getElementById('live');

function startOfToday() {
  const now = new Date();
  return new Date(now.getFullYear(), now.getMonth(), now.getDate());
}

async function fetchQueues() {
  const queues = await getJson('/api/queues');
  const stats = await Promise.all(queues.map((queue) => getJson(
    `/api/queues/${encodeURIComponent(queue.name)}/stats`,
  ).catch(() => null)));
  state.queues = queues;
  state.stats = new Map(queues.map((queue, index) => [queue.name, stats[index]]));
  state.fetchedAt = Date.now();
}

async function fetchReport() {
  if (!state.reportAllowed) {
    return;
  }
  const from = startOfToday().toISOString();
  // A minute ahead so calls that arrive while the page is open count.
  const to = new Date(Date.now() + 60000).toISOString();
  try {
    const report = await getJson(`/api/reports/queues?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`);
    state.report = new Map(report.queues.map((kpi) => [kpi.queue, kpi]));
  } catch (failure) {
    if (failure instanceof ApiError && failure.status === 403) {
      state.reportAllowed = false;
    }
  }
}

async function fetchAgents() {
  const agents = await getJson('/api/agents');
  state.agents = new Map(agents.map((agent) => [agent.id, {
    ...agent,
    since: agent.state_since ? new Date(agent.state_since) : null,
  }]));
}

function figure(label, value, name, alert = false) {
  return el('div', {},
    el('dt', {}, label),
    el('dd', { 'data-figure': name, class: alert ? 'alert' : null }, value));
}

function tile(queue) {
  const stats = state.stats.get(queue.name);
  const kpi = state.report.get(queue.name);
  const elapsed = queue.calls > 0 ? (Date.now() - state.fetchedAt) / 1000 : 0;
  const longest = queue.calls > 0 ? queue.longest_wait_seconds + elapsed : 0;
  const serviceLevel = stats ? stats.service_level_percent : null;
  const serviceLabel = stats ? `Service level (${stats.service_level_seconds} s)` : 'Service level';
  // Today's figures from the stored events where the role may read them,
  // otherwise the engine's figures since the start.
  const averageWait = kpi ? kpi.average_speed_of_answer_seconds
    : stats ? stats.average_answer_wait_seconds : null;
  const handle = kpi ? kpi.average_handle_seconds : queue.average_handle_seconds;
  const abandon = kpi ? kpi.abandon_percent : null;
  return el('section', { class: queue.removed ? 'tile removed' : 'tile', 'data-queue': queue.name },
    el('h3', {}, queue.name, queue.removed ? ' (removed)' : ''),
    el('dl', { class: 'figures' },
      figure('Waiting', String(queue.calls), 'waiting', queue.calls > 0 && queue.available_agents === 0),
      figure('Longest wait', formatDuration(longest), 'longest_wait', longest > 60),
      figure('Available agents', `${queue.available_agents} / ${queue.staffed_agents}`, 'available_agents'),
      figure(serviceLabel, formatPercent(serviceLevel), 'service_level'),
      figure('Abandoned today', formatPercent(abandon), 'abandon_rate'),
      figure(kpi ? 'Average wait today' : 'Average wait', formatDuration(averageWait), 'average_wait'),
      figure(kpi ? 'Handle time today' : 'Handle time', formatDuration(handle), 'average_handle'),
    ));
}

function agentRow(agent) {
  const inState = agent.since ? (Date.now() - agent.since.getTime()) / 1000 : null;
  return el('tr', { 'data-agent': agent.id },
    el('td', {}, agent.id),
    el('td', {}, el('span', { class: `state state-${agent.state}`, 'data-state': agent.state },
      agent.state.replace('_', ' '))),
    el('td', {}, agent.state === 'not_ready' ? agent.not_ready_reason ?? '' : ''),
    el('td', { class: 'number' }, formatDuration(inState)),
    el('td', { class: 'number' }, String(agent.calls_answered)),
    el('td', {}, agent.queues.join(', ')),
  );
}

function render() {
  tiles.replaceChildren(...state.queues.map(tile));
  const agents = [...state.agents.values()].sort((a, b) => a.id.localeCompare(b.id));
  agentRows.replaceChildren(...agents.map(agentRow));
}

// ---- Refreshing ----

function debounce(action, wait) {
  let timer = null;
  return () => {
    if (timer === null) {
      timer = setTimeout(async () => {
        timer = null;
        try {
          await action();
          render();
        } catch (failure) {
          setStatus(failure.message, true);
        }
      }, wait);
    }
  };
}

const refreshQueues = debounce(fetchQueues, QUEUE_REFRESH_MS);
const refreshReport = debounce(fetchReport, REPORT_REFRESH_MS);
const refreshAgents = debounce(fetchAgents, QUEUE_REFRESH_MS);

// The chart, like today's report figures, is for roles that read reports.
// Its failure is shown but leaves the tiles and agents to be drawn.
async function fetchChart() {
  if (!state.reportAllowed) {
    return;
  }
  try {
    await chart.refresh();
  } catch (failure) {
    setStatus(failure.message, true);
  }
}

async function refreshAll() {
  await Promise.all([fetchQueues(), fetchReport(), fetchAgents(), fetchChart()]);
  render();
}

// Applies one stored event to what the page shows.
function apply(event) {
  const agent = event.agent ? state.agents.get(event.agent) : null;
  if (event.kind === 'agent_state_changed' && agent) {
    agent.state = event.data.to;
    agent.since = new Date(event.at);
    if (event.data.to !== 'not_ready') {
      agent.not_ready_reason = null;
    }
  } else if (event.kind === 'agent_not_ready' && agent) {
    agent.not_ready_reason = event.data.reason;
  } else if (event.kind === 'member_added' || event.kind === 'member_removed'
             || (event.kind === 'agent_state_changed' && !agent)) {
    // Membership and agents unknown to the page come from the list.
    refreshAgents();
  }
  if (event.kind === 'call_completed' && agent) {
    refreshAgents();
  }
  if (event.queue || event.kind.startsWith('agent_')) {
    refreshQueues();
  }
  if (OUTCOMES.has(event.kind)) {
    refreshReport();
  }
  if (CALL_ENDINGS.has(event.kind) && state.reportAllowed) {
    chart.callEnded();
  }
  render();
}

function setLive(text, className) {
  live.textContent = text;
  live.className = `live-status ${className}`;
}

function connect() {
  const source = new EventSource('/api/events/stream');
  source.addEventListener('open', () => {
    setLive('live', 'live');
    setStatus('');
  });
  source.addEventListener('message', (message) => {
    try {
      apply(JSON.parse(message.data));
    } catch (failure) {
      setStatus(`Unreadable event: ${failure.message}`, true);
    }
  });
  // The server fell behind this page's reading and resends from its
  // database; the figures are fetched again to be sure.
  source.addEventListener('lagged', () => {
    refreshAll().catch((failure) => setStatus(failure.message, true));
  });
  source.addEventListener('error', async () => {
    setLive('reconnecting', 'down');
    if (source.readyState !== EventSource.CLOSED) {
      // The browser reconnects by itself with Last-Event-ID.
      return;
    }
    // A refused stream (the session ended, for one) is not retried by the
    // browser: check the session, then open a new stream and refetch,
    // since a new stream starts with new events only.
    source.close();
    try {
      await api('/api/me');
    } catch {
      return;
    }
    setTimeout(() => {
      refreshAll().catch(() => {});
      connect();
    }, RECONNECT_MS);
  });
}

async function main() {
  state.user = await currentUser();
  topBar(state.user, 'wallboard');
  state.reportAllowed = READS_REPORTS.includes(state.user.role);
  document.getElementById('interval-chart').hidden = !state.reportAllowed;
  // The stream first, so no change falls between the first fetch and it.
  connect();
  try {
    await refreshAll();
  } catch (failure) {
    setStatus(failure.message, true);
  }
  // Times in state and waits move every second.
  setInterval(render, 1000);
  setInterval(() => refreshAll().catch(() => {}), FULL_REFRESH_MS);
}

main();
