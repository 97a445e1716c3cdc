// Reports page: rows per interval and per queue or agent from
// /api/reports/intervals, a table, two bar charts drawn as inline SVG, and
// a link to the same rows as CSV.
import {
  READS_REPORTS, currentUser, el, formatDuration, formatPercent, getJson, setStatus, topBar,
} from './common.js';

const SVG = 'http://www.w3.org/2000/svg';

const count = (value) => (value === null || value === undefined ? '—' : String(value));
const number = (value) => (value === null || value === undefined ? '—' : value.toFixed(2));

const QUEUE_COLUMNS = [
  ['start', 'Start', formatStart],
  ['queue', 'Queue'],
  ['offered', 'Offered', count],
  ['answered', 'Answered', count],
  ['abandoned', 'Abandoned', count],
  ['average_abandon_seconds', 'Avg abandon', formatDuration],
  ['average_speed_of_answer_seconds', 'ASA', formatDuration],
  ['average_handle_seconds', 'AHT', formatDuration],
  ['average_hold_seconds', 'Avg hold', formatDuration],
  ['service_level_20_percent', 'SL 20 s', formatPercent],
  ['service_level_30_percent', 'SL 30 s', formatPercent],
  ['first_contact_resolution_percent', 'FCR', formatPercent],
  ['csat_percent', 'CSAT', formatPercent],
];

const AGENT_COLUMNS = [
  ['start', 'Start', formatStart],
  ['agent', 'Agent'],
  ['offered', 'Offers', count],
  ['answered', 'Answered', count],
  ['average_speed_of_answer_seconds', 'ASA', formatDuration],
  ['average_handle_seconds', 'AHT', formatDuration],
  ['average_hold_seconds', 'Avg hold', formatDuration],
  ['first_contact_resolution_percent', 'FCR', formatPercent],
  ['csat_percent', 'CSAT', formatPercent],
  ['occupancy_percent', 'Occupancy', formatPercent],
  ['shifts', 'Shifts', count],
  ['calls_per_shift', 'Calls per shift', number],
];

// Times are shown on the clock of the report's time zone, with the offset,
// so that the repeated hour of an autumn clock change reads twice apart.
function formatStart(text) {
  return text.replace('T', ' ').replace(/:00Z$/, ' UTC').replace(/:00([+-]\d\d:\d\d)$/, ' $1');
}

// The API reads "2027-01-15T08:00" from a datetime-local input on the
// clock of the report's time zone.
function query() {
  const parameters = new URLSearchParams({
    from: document.getElementById('from').value,
    to: document.getElementById('to').value,
    interval: document.getElementById('interval').value,
    by: document.getElementById('by').value,
  });
  const zone = document.getElementById('tz').value.trim();
  if (zone) {
    parameters.set('tz', zone);
  }
  return parameters.toString();
}

// Offers the browser's list of IANA zones as suggestions.
function fillTimeZones() {
  const zones = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
  document.getElementById('time-zones').replaceChildren(...zones.map((zone) => el('option', { value: zone })));
}

function showTable(report, columns) {
  const table = document.getElementById('report');
  table.tHead.replaceChildren(el('tr', {}, ...columns.map(([, label]) => el('th', {}, label))));
  const rows = report.rows.map((row) => el('tr', {},
    ...columns.map(([name, , format]) => el('td', { 'data-column': name }, format ? format(row[name]) : row[name]))));
  table.tBodies[0].replaceChildren(...rows);
}

// Sums `fields` of the rows per interval start, in time order.
function perInterval(rows, fields, combine) {
  const sums = new Map();
  for (const row of rows) {
    const entry = sums.get(row.start) || fields.map(() => []);
    fields.forEach((field, index) => {
      if (row[field] !== null && row[field] !== undefined) {
        entry[index].push(row[field]);
      }
    });
    sums.set(row.start, entry);
  }
  return [...sums.entries()].sort(([a], [b]) => a.localeCompare(b))
    .map(([start, values]) => ({ start, values: values.map(combine) }));
}

const sum = (values) => values.reduce((total, value) => total + value, 0);
const average = (values) => (values.length === 0 ? null : sum(values) / values.length);

function svg(tag, attributes = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) {
    node.setAttribute(name, String(value));
  }
  return node;
}

// A bar chart of one or two series per interval, scaled to `maximum` (or
// the largest value).
function barChart(title, points, labels, maximum) {
  const width = 480;
  const height = 180;
  const bottom = 20;
  const top = Math.max(maximum || 0, ...points.flatMap((point) => point.values.filter((v) => v !== null)), 1);
  const chart = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': title });
  chart.append(svg('line', { x1: 0, y1: height - bottom, x2: width, y2: height - bottom }));

  const slot = width / Math.max(points.length, 1);
  const series = labels.length;
  points.forEach((point, index) => {
    point.values.forEach((value, which) => {
      if (value === null) {
        return;
      }
      const barHeight = ((height - bottom - 12) * value) / top;
      const bar = svg('rect', {
        class: which === 0 ? 'bar' : 'bar second',
        x: index * slot + 2 + (which * (slot - 4)) / series,
        y: height - bottom - barHeight,
        width: Math.max((slot - 4) / series - 1, 1),
        height: barHeight,
      });
      const tip = svg('title');
      tip.textContent = `${formatStart(point.start)} ${labels[which]}: ${Math.round(value * 10) / 10}`;
      bar.append(tip);
      chart.append(bar);
    });
  });

  if (points.length > 0) {
    const first = svg('text', { x: 2, y: height - 6 });
    first.textContent = formatStart(points[0].start);
    const scale = svg('text', { x: 2, y: 10 });
    scale.textContent = `max ${Math.round(top * 10) / 10}`;
    chart.append(first, scale);
  }

  const legend = labels.map((label, which) => el('span', { class: which === 0 ? 'legend' : 'legend second' }, label));
  return el('figure', { class: 'chart' }, el('h3', {}, title), chart, el('figcaption', { class: 'note' }, legend.map((node) => node.textContent).join(' · ')));
}

function showCharts(report) {
  const charts = document.getElementById('charts');
  const volume = perInterval(report.rows, ['offered', 'answered'], sum);
  const second = report.by === 'queue'
    ? barChart('Service level within 20 s (mean of queues), %',
      perInterval(report.rows, ['service_level_20_percent'], average), ['service level 20 s'], 100)
    : barChart('Occupancy (mean of agents), %',
      perInterval(report.rows, ['occupancy_percent'], average), ['occupancy'], 100);
  charts.replaceChildren(
    barChart(report.by === 'queue' ? 'Offered and answered calls' : 'Offers and answered calls', volume, ['offered', 'answered']),
    second,
  );
}

async function show(event) {
  if (event) {
    event.preventDefault();
  }
  const parameters = query();
  document.getElementById('csv').href = `/api/reports/intervals?${parameters}&format=csv`;
  setStatus('Loading…');
  let report;
  try {
    report = await getJson(`/api/reports/intervals?${parameters}`);
  } catch (failure) {
    setStatus(failure.message, true);
    return;
  }
  showTable(report, report.by === 'queue' ? QUEUE_COLUMNS : AGENT_COLUMNS);
  showCharts(report);
  const rows = report.rows.length === 1 ? '1 row' : `${report.rows.length} rows`;
  document.getElementById('tz').placeholder = report.time_zone;
  setStatus(`${rows} from ${report.from} to ${report.to} (${report.time_zone}); first-contact window ${report.first_contact_window_hours} h.`);
  document.getElementById('unavailable').textContent = report.unavailable
    .map((item) => `Not reported: ${item.figure}, because ${item.reason}.`).join(' ');
}

// Today by the browser's calendar, from midnight to the next midnight,
// which the API reads on the report's clock.
function defaultRange() {
  const date = (at) => `${at.getFullYear()}-${String(at.getMonth() + 1).padStart(2, '0')}-${String(at.getDate()).padStart(2, '0')}`;
  const now = new Date();
  const today = date(now);
  const tomorrow = date(new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1));
  document.getElementById('from').value = `${today}T00:00`;
  document.getElementById('to').value = `${tomorrow}T00:00`;
}

async function main() {
  const user = await currentUser();
  topBar(user, 'reports');
  if (!READS_REPORTS.includes(user.role)) {
    setStatus(`Role ${user.role} may not read reports.`, true);
    return;
  }
  const parameters = new URLSearchParams(location.search);
  defaultRange();
  for (const name of ['from', 'to']) {
    const value = parameters.get(name);
    if (value) {
      document.getElementById(name).value = value.replace(/(:00)?Z$/, '').slice(0, 16);
    }
  }
  fillTimeZones();
  for (const name of ['interval', 'by', 'tz']) {
    if (parameters.get(name)) {
      document.getElementById(name).value = parameters.get(name);
    }
  }
  document.getElementById('report-form').addEventListener('submit', show);
  await show();
}

main();
