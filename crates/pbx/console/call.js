// Call page: the CDR's fields, a timeline from the CDR's times and the
// call's stored queue events, its QA scorecards, and, for QA and
// supervisors, the recording with a two-channel waveform (caller left,
// agent right).
import {
  MAY_REPLAY, api, currentUser, el, formatDuration, formatTime, getJson, setStatus, topBar,
} from './common.js';
import { showScorecards } from './scorecard.js';

const id = decodeURIComponent(location.pathname.replace(/^\/console\/calls\//, ''));

const FIELDS = [
  ['id', 'Call id'],
  ['caller', 'Caller'],
  ['dialed', 'Dialed'],
  ['trunk', 'Trunk'],
  ['source_extension', 'From extension'],
  ['direction', 'Direction'],
  ['queue', 'Queue'],
  ['agent', 'Agent'],
  ['disposition', 'Disposition'],
  ['arrived_at', 'Arrived', formatTime],
  ['queued_at', 'Queued', formatTime],
  ['caller_answered_at', 'Caller answered', formatTime],
  ['answered_at', 'Agent answered', formatTime],
  ['ended_at', 'Ended', formatTime],
  ['wait_seconds', 'Wait', formatDuration],
  ['talk_seconds', 'Talk', formatDuration],
  ['hold_count', 'Holds'],
  ['hold_seconds', 'On hold', formatDuration],
  ['hangup_side', 'Hung up by'],
  ['survey', 'Survey'],
  ['csat_score', 'Survey score'],
  ['sip_status', 'SIP status'],
  ['voicemail_box', 'Voicemail box'],
  ['forwarded_to', 'Forwarded to'],
  ['recording_path', 'Recording'],
  ['recording_seconds', 'Recording length', formatDuration],
  ['interrupted', 'Interrupted by a stop', (value) => (value ? 'yes' : 'no')],
  ['caller_call_id', 'Caller SIP Call-ID'],
  ['agent_call_id', 'Agent SIP Call-ID'],
];

function showFields(call) {
  const list = document.getElementById('fields');
  const items = [];
  for (const [name, label, format] of FIELDS) {
    const value = call[name];
    if (value === null || value === undefined) {
      continue;
    }
    items.push(el('dt', {}, label), el('dd', { 'data-field': name }, format ? format(value) : value));
  }
  list.replaceChildren(...items);
}

// What each stored event kind means on the timeline.
function describe(event) {
  const agent = event.agent ? `agent ${event.agent}` : 'an agent';
  const data = event.data || {};
  switch (event.kind) {
    case 'call_enqueued': return `Entered queue ${event.queue} at position ${data.position}`;
    case 'step_reached': return `Queue step ${data.step} reached`;
    case 'offer_started': return `Offered to ${agent}`;
    case 'offer_answered': return `Answered by ${agent}`;
    case 'offer_rejected': return `${agent} ${data.busy ? 'was busy' : 'rejected the offer'}`;
    case 'offer_timed_out': return `${agent} did not answer in ${formatDuration(data.ring_seconds)}`;
    case 'offer_cancelled': return `Offer to ${agent} withdrawn`;
    case 'call_abandoned': return `Caller hung up after ${formatDuration(data.waited_seconds)}`;
    case 'call_timed_out': return `Reached the maximum wait of queue ${event.queue}`;
    case 'call_exited': {
      const to = data.destination ? ` to ${data.destination}` : '';
      const key = data.key ? ` (key ${data.key})` : '';
      return `Left queue ${event.queue}${to}: ${data.reason}${key}`;
    }
    case 'callback_requested': return `Callback requested to ${data.number}`;
    case 'call_completed': return `Call ended${data.ended_by ? ` by the ${data.ended_by}` : ''} after ${formatDuration(data.talk_seconds)} talk`;
    case 'call_transferred': return `Transferred to ${data.target}`;
    case 'wrap_up_code_set': return `Wrap-up code ${data.code}`;
    case 'call_held': return `Put on hold by the ${data.by}`;
    case 'call_resumed': return `Resumed by the ${data.by} after ${formatDuration(data.hold_seconds)} on hold`;
    case 'survey_offered': return 'Caller offered the post-call survey';
    case 'survey_answered': return `Survey answered with ${data.score}`;
    case 'survey_unanswered': return `Survey ended without an answer: ${data.outcome.replaceAll('_', ' ')}`;
    default: return event.kind.replaceAll('_', ' ');
  }
}

function showTimeline(call, events) {
  const entries = [];
  const add = (at, text) => {
    if (at) {
      entries.push({ at: new Date(at), text: text.charAt(0).toUpperCase() + text.slice(1) });
    }
  };
  add(call.arrived_at, `Arrived from ${call.caller}, dialed ${call.dialed}`);
  add(call.caller_answered_at, 'Caller answered by the PBX');
  for (const event of events) {
    add(event.at, describe(event));
  }
  const end = call.voicemail_box ? `Ended after a message to box ${call.voicemail_box}`
    : `Ended (${call.disposition.replace('_', ' ')})`;
  add(call.ended_at, end);
  // Equal times keep their order: the CDR's arrival first, its end last.
  entries.sort((a, b) => a.at - b.at);
  const start = new Date(call.arrived_at);
  const list = document.getElementById('timeline');
  list.replaceChildren(...entries.map((entry) => el('li', {},
    el('span', { class: 'offset' }, `+${formatDuration((entry.at - start) / 1000)}`),
    entry.text,
    el('span', { class: 'at' }, entry.at.toLocaleTimeString()),
  )));
}

// ---- Recording: WAV parsing, waveform, player ----

// Reads a PCM WAV (RIFF) header and returns the 16-bit samples of each
// channel. The recorder writes 16-bit PCM, stereo, 8 or 16 kHz.
function parseWav(buffer) {
  const view = new DataView(buffer);
  const text = (offset) => String.fromCharCode(
    view.getUint8(offset), view.getUint8(offset + 1), view.getUint8(offset + 2), view.getUint8(offset + 3),
  );
  if (buffer.byteLength < 12 || text(0) !== 'RIFF' || text(8) !== 'WAVE') {
    throw new Error('the recording is not a WAV file');
  }
  let format = null;
  let offset = 12;
  while (offset + 8 <= buffer.byteLength) {
    const name = text(offset);
    const size = view.getUint32(offset + 4, true);
    const body = offset + 8;
    if (name === 'fmt ') {
      format = {
        encoding: view.getUint16(body, true),
        channels: view.getUint16(body + 2, true),
        rate: view.getUint32(body + 4, true),
        bits: view.getUint16(body + 14, true),
      };
    } else if (name === 'data') {
      if (!format || format.encoding !== 1 || format.bits !== 16) {
        throw new Error('the recording is not 16-bit PCM');
      }
      // A file cut by a stop can claim more data than it has.
      const end = Math.min(buffer.byteLength, body + size);
      const frames = Math.floor((end - body) / (2 * format.channels));
      const channels = Array.from({ length: format.channels }, () => new Int16Array(frames));
      for (let frame = 0; frame < frames; frame += 1) {
        for (let channel = 0; channel < format.channels; channel += 1) {
          channels[channel][frame] = view.getInt16(body + (frame * format.channels + channel) * 2, true);
        }
      }
      return { rate: format.rate, channels, frames };
    }
    offset = body + size + (size % 2);
  }
  throw new Error('the recording has no audio data');
}

// Lowest and highest sample in each of `columns` slices of a channel.
function peaks(samples, columns) {
  const low = new Float32Array(columns);
  const high = new Float32Array(columns);
  const per = samples.length / columns;
  for (let column = 0; column < columns; column += 1) {
    const from = Math.floor(column * per);
    const to = Math.max(from + 1, Math.floor((column + 1) * per));
    let min = 0;
    let max = 0;
    for (let index = from; index < to && index < samples.length; index += 1) {
      const value = samples[index];
      if (value < min) min = value;
      if (value > max) max = value;
    }
    low[column] = min / 32768;
    high[column] = max / 32768;
  }
  return { low, high };
}

class Waveform {
  constructor(canvas, wav) {
    this.canvas = canvas;
    this.wav = wav;
    this.layout();
  }

  // Matches the canvas's pixels to its size on screen.
  layout() {
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(this.canvas.clientWidth * ratio));
    const height = Math.max(1, Math.round(this.canvas.clientHeight * ratio));
    this.canvas.width = width;
    this.canvas.height = height;
    this.lanes = this.wav.channels.map((samples) => peaks(samples, width));
  }

  draw(progress) {
    const context = this.canvas.getContext('2d');
    const { width, height } = this.canvas;
    const styles = getComputedStyle(document.documentElement);
    const colours = [styles.getPropertyValue('--caller').trim(), styles.getPropertyValue('--agent').trim()];
    const names = this.lanes.length === 2 ? ['caller', 'agent'] : this.lanes.map((_, index) => `channel ${index + 1}`);
    context.clearRect(0, 0, width, height);
    const laneHeight = height / this.lanes.length;
    const played = Math.round(progress * width);
    this.lanes.forEach((lane, index) => {
      const middle = laneHeight * index + laneHeight / 2;
      const scale = laneHeight / 2 - 2;
      for (let x = 0; x < width; x += 1) {
        context.fillStyle = colours[index % colours.length] || '#555';
        context.globalAlpha = x < played ? 1 : 0.45;
        const top = middle - lane.high[x] * scale;
        const bottom = middle - lane.low[x] * scale;
        context.fillRect(x, top, 1, Math.max(1, bottom - top));
      }
      context.globalAlpha = 1;
      context.fillStyle = '#5b6673';
      context.font = `${Math.round(12 * (window.devicePixelRatio || 1))}px system-ui, sans-serif`;
      context.fillText(names[index], 6, laneHeight * index + 16 * (window.devicePixelRatio || 1));
    });
    context.fillStyle = '#b3261e';
    context.fillRect(Math.min(played, width - 2), 0, 2, height);
  }
}

async function loadRecording() {
  const button = document.getElementById('load-recording');
  button.disabled = true;
  setStatus('Loading the recording…');
  let buffer;
  try {
    const response = await api(`/api/calls/${encodeURIComponent(id)}/recording`, {
      headers: { Accept: 'audio/wav' },
    });
    buffer = await response.arrayBuffer();
  } catch (failure) {
    setStatus(failure.message, true);
    button.disabled = false;
    return;
  }
  let wav;
  try {
    wav = parseWav(buffer);
  } catch (failure) {
    setStatus(failure.message, true);
    return;
  }
  setStatus('');
  button.hidden = true;
  const player = document.getElementById('player');
  player.hidden = false;
  startPlayer(buffer, wav);
}

function startPlayer(buffer, wav) {
  const audio = document.getElementById('audio');
  const play = document.getElementById('play');
  const seek = document.getElementById('seek');
  const position = document.getElementById('position');
  const speed = document.getElementById('speed');
  const canvas = document.getElementById('waveform');
  const waveform = new Waveform(canvas, wav);
  const length = wav.frames / wav.rate;
  audio.src = URL.createObjectURL(new Blob([buffer], { type: 'audio/wav' }));
  seek.max = String(length);

  const duration = () => (Number.isFinite(audio.duration) ? audio.duration : length);
  const refresh = () => {
    const total = duration();
    const now = audio.currentTime;
    position.textContent = `${formatDuration(now)} / ${formatDuration(total)}`;
    if (document.activeElement !== seek) {
      seek.value = String(now);
    }
    waveform.draw(total > 0 ? now / total : 0);
  };
  let frame = null;
  const animate = () => {
    refresh();
    frame = audio.paused ? null : requestAnimationFrame(animate);
  };

  play.addEventListener('click', () => {
    if (audio.paused) {
      audio.play();
    } else {
      audio.pause();
    }
  });
  audio.addEventListener('play', () => {
    play.textContent = 'Pause';
    if (frame === null) {
      frame = requestAnimationFrame(animate);
    }
  });
  audio.addEventListener('pause', () => {
    play.textContent = 'Play';
    refresh();
  });
  audio.addEventListener('ended', () => {
    play.textContent = 'Play';
    refresh();
  });
  audio.addEventListener('loadedmetadata', () => {
    seek.max = String(duration());
    refresh();
  });
  audio.addEventListener('seeked', refresh);
  seek.addEventListener('input', () => {
    audio.currentTime = Number(seek.value);
  });
  speed.addEventListener('change', () => {
    audio.playbackRate = Number(speed.value);
  });
  canvas.addEventListener('click', (event) => {
    const box = canvas.getBoundingClientRect();
    const share = Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
    audio.currentTime = share * duration();
  });
  window.addEventListener('resize', () => {
    waveform.layout();
    refresh();
  });
  refresh();
}

async function main() {
  const user = await currentUser();
  topBar(user, 'calls');
  let call;
  try {
    call = await getJson(`/api/calls/${encodeURIComponent(id)}`);
  } catch (failure) {
    setStatus(failure.message, true);
    return;
  }
  document.getElementById('title').textContent = `Call from ${call.caller}`;
  document.title = `Call from ${call.caller} · PBX console`;
  showFields(call);
  let events = [];
  try {
    events = await getJson(`/api/calls/${encodeURIComponent(id)}/events`);
  } catch (failure) {
    setStatus(`The queue events could not be read: ${failure.message}`, true);
  }
  showTimeline(call, events);
  if (call.recording_path && MAY_REPLAY.includes(user.role)) {
    document.getElementById('recording').hidden = false;
    document.getElementById('load-recording').addEventListener('click', loadRecording);
  }
  try {
    await showScorecards(id, user);
  } catch (failure) {
    setStatus(`The scorecards could not be read: ${failure.message}`, true);
  }
}

main();
