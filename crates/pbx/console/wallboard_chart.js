// Wallboard chart: calls offered, answered and abandoned per 15-minute
// interval of today, summed over the queues, from the interval report the
// reports page uses. Drawn as inline SVG through the DOM, so the page's
// Content-Security-Policy needs no inline script or style.
import { el, getJson } from './common.js';

const SVG = 'http://www.w3.org/2000/svg';
const INTERVAL_MS = 15 * 60000;
// Fetches after a call ends are at least this far apart, because the
// report reads the whole day's events.
const MIN_FETCH_GAP_MS = 5000;
// Wait after the first ending of a burst, so the burst costs one fetch.
const SETTLE_MS = 500;

const SERIES = [
  { field: 'offered', label: 'offered', className: 'bar' },
  { field: 'answered', label: 'answered', className: 'bar second' },
  { field: 'abandoned', label: 'abandoned', className: 'bar third' },
];

const WIDTH = 960;
const HEIGHT = 200;
// Room below the bars for the hour labels, and above them for the scale.
const BOTTOM = 20;
const TOP = 14;

function svg(tag, attributes = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) {
    node.setAttribute(name, String(value));
  }
  return node;
}

function twoDigits(value) {
  return String(value).padStart(2, '0');
}

function clock(at) {
  return `${twoDigits(at.getHours())}:${twoDigits(at.getMinutes())}`;
}

// Today on the browser's clock, from midnight to the next midnight. A day
// with a clock change has 92 or 100 intervals, not 96.
function today() {
  const now = new Date();
  const start = new Date(now.getFullYear(), now.getMonth(), now.getDate());
  const end = new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1);
  return { start, end, slots: Math.round((end - start) / INTERVAL_MS) };
}

// Sums the figures of every queue's row per interval, indexed by the
// interval's position in the day. Rows start on the server's report clock,
// whose 15-minute boundaries are the browser's too, unless one of the two
// zones is offset by a fraction of a quarter hour.
function sumPerSlot(rows, day) {
  const slots = new Map();
  for (const row of rows) {
    const index = Math.floor((new Date(row.start) - day.start) / INTERVAL_MS);
    if (!(index >= 0 && index < day.slots)) {
      continue;
    }
    const sums = slots.get(index) || SERIES.map(() => 0);
    SERIES.forEach((series, seriesIndex) => {
      sums[seriesIndex] += row[series.field] || 0;
    });
    slots.set(index, sums);
  }
  return slots;
}

function bar(series, index, seriesIndex, value, top, day) {
  const slot = WIDTH / day.slots;
  const barWidth = Math.max((slot - 2) / SERIES.length, 1);
  const barHeight = ((HEIGHT - BOTTOM - TOP) * value) / top;
  const node = svg('rect', {
    class: series.className,
    'data-series': series.field,
    x: index * slot + 1 + seriesIndex * barWidth,
    y: HEIGHT - BOTTOM - barHeight,
    width: barWidth,
    height: barHeight,
  });
  const tip = svg('title');
  const start = new Date(day.start.getTime() + index * INTERVAL_MS);
  tip.textContent = `${clock(start)} ${series.label}: ${value}`;
  node.append(tip);
  return node;
}

// Labels every third hour along the bottom.
function hourLabels(day) {
  const labels = [];
  for (let index = 0; index < day.slots; index += 12) {
    const at = new Date(day.start.getTime() + index * INTERVAL_MS);
    const label = svg('text', { x: (index * WIDTH) / day.slots + 1, y: HEIGHT - 6 });
    label.textContent = clock(at);
    labels.push(label);
  }
  return labels;
}

function draw(slots, day) {
  const values = [...slots.values()].flat();
  const top = Math.max(...values, 1);
  const chart = svg('svg', {
    width: WIDTH,
    height: HEIGHT,
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: 'img',
    'aria-label': 'Calls offered, answered and abandoned per 15 minutes today',
  });
  chart.append(svg('line', { x1: 0, y1: HEIGHT - BOTTOM, x2: WIDTH, y2: HEIGHT - BOTTOM }));
  for (const [index, sums] of slots) {
    SERIES.forEach((series, seriesIndex) => {
      if (sums[seriesIndex] > 0) {
        chart.append(bar(series, index, seriesIndex, sums[seriesIndex], top, day));
      }
    });
  }
  const scale = svg('text', { x: 2, y: 10 });
  scale.textContent = `max ${top}`;
  chart.append(scale, ...hourLabels(day));
  return chart;
}

function caption(slots) {
  const totals = SERIES.map((_, seriesIndex) => [...slots.values()]
    .reduce((total, sums) => total + sums[seriesIndex], 0));
  const parts = SERIES.map((series, seriesIndex) => el('span',
    { class: `legend legend-${series.field}`, 'data-total': series.field }, `${totals[seriesIndex]} ${series.label}`));
  return el('figcaption', { class: 'note' }, 'Today: ', parts[0], ', ', parts[1], ', ', parts[2]);
}

// Draws the chart into `container` and returns `refresh` (fetch and draw
// now) and `callEnded` (fetch again soon, throttled). `onError` gets the
// failure of a fetch.
export function intervalChart(container, onError) {
  let timer = null;
  let lastFetch = 0;

  async function refresh() {
    const day = today();
    const query = new URLSearchParams({
      from: day.start.toISOString(),
      to: day.end.toISOString(),
      interval: '15',
      by: 'queue',
    });
    lastFetch = Date.now();
    const report = await getJson(`/api/reports/intervals?${query}`);
    const slots = sumPerSlot(report.rows, day);
    container.replaceChildren(draw(slots, day), caption(slots));
  }

  function callEnded() {
    if (timer !== null) {
      return;
    }
    const wait = Math.max(SETTLE_MS, lastFetch + MIN_FETCH_GAP_MS - Date.now());
    timer = setTimeout(() => {
      timer = null;
      refresh().catch(onError);
    }, wait);
  }

  return { refresh, callEnded };
}
