// Administration page: agents, skills and queues from /api/admin/*, as
// tables for administrators and supervisors, and forms for administrators.
// The forms give hints (required fields, number ranges), but the server
// validates every change as it validates the configuration file, and its
// errors are shown next to the field they point at.
import {
  api, currentUser, el, getJson, READS_ADMINISTRATION, setStatus, topBar,
} from './common.js';

// Queue keys that the queue form edits itself; any other key of a queue
// goes through the JSON field.
const QUEUE_FORM_KEYS = ['name', 'strategy', 'ring_timeout_secs', 'max_wait_secs', 'wrap_up_secs',
  'retry_delay_secs', 'max_length', 'overflow', 'music_on_hold', 'announce_every_secs', 'agents', 'steps'];
const NUMBER_KEYS = ['ring_timeout_secs', 'max_wait_secs', 'wrap_up_secs', 'retry_delay_secs',
  'max_length', 'announce_every_secs'];

const state = { agents: [], skills: [], queues: [], editing: {}, administrator: false };

function sourceLabel(source) {
  return source === 'administration' ? 'Administration' : 'File';
}

function skillText(skills) {
  return (skills || []).join(', ');
}

function stepText(step) {
  if (step.keep) {
    return `${step.after_secs} s: keep ${step.keep.length ? step.keep.join(', ') : 'no skill'}`;
  }
  if (step.any_agent) {
    return `${step.after_secs} s: any agent`;
  }
  return `${step.after_secs} s: to ${step.overflow}`;
}

function rowButtons(kind, key) {
  if (!state.administrator) {
    return el('td', {});
  }
  const edit = el('button', { type: 'button', class: 'secondary', 'data-edit': kind, 'data-key': key }, 'Edit');
  const remove = el('button', { type: 'button', class: 'secondary', 'data-delete': kind, 'data-key': key }, 'Delete');
  edit.addEventListener('click', () => openForm(kind, key));
  remove.addEventListener('click', () => removeDefinition(kind, key));
  return el('td', { class: 'row-buttons' }, edit, remove);
}

function showTables() {
  document.getElementById('agents').tBodies[0].replaceChildren(...state.agents.map((agent) => el('tr', { 'data-agent': agent.id },
    el('td', {}, agent.id), el('td', {}, agent.name || ''), el('td', {}, skillText(agent.skills)),
    el('td', {}, (agent.queues || []).join(', ')),
    el('td', { class: 'number' }, agent.wrap_up_secs ?? 'queue'), el('td', {}, sourceLabel(agent.source)),
    rowButtons('agent', agent.id))));
  document.getElementById('skills').tBodies[0].replaceChildren(...state.skills.map((skill) => el('tr', { 'data-skill': skill.name },
    el('td', {}, skill.name), el('td', {}, skill.description || ''), el('td', {}, sourceLabel(skill.source)),
    rowButtons('skill', skill.name))));
  document.getElementById('queues').tBodies[0].replaceChildren(...state.queues.map((queue) => el('tr', { 'data-queue': queue.name },
    el('td', {}, queue.name), el('td', {}, queue.strategy || 'longest-idle'),
    el('td', {}, (queue.agents || []).join(', ')),
    el('td', { class: 'number' }, `${queue.ring_timeout_secs ?? 15} / ${queue.max_wait_secs ?? 120} / ${queue.wrap_up_secs ?? 0}`),
    el('td', {}, (queue.steps || []).map(stepText).join('; ')),
    el('td', {}, queue.overflow || ''), el('td', {}, sourceLabel(queue.source)),
    rowButtons('queue', queue.name))));
  document.getElementById('skill-names').replaceChildren(...state.skills.map((skill) => el('option', { value: skill.name })));
}

async function load() {
  [state.agents, state.skills, state.queues] = await Promise.all([
    getJson('/api/admin/agents'), getJson('/api/admin/skills'), getJson('/api/admin/queues'),
  ]);
  showTables();
}

// Form helpers -------------------------------------------------------------

function form(kind) {
  return document.getElementById(`${kind}-form`);
}

function clearErrors(target) {
  for (const node of target.querySelectorAll('[data-error]')) {
    node.textContent = '';
  }
  for (const node of target.querySelectorAll('[aria-invalid]')) {
    node.removeAttribute('aria-invalid');
  }
}

// Shows each error of a problem next to the field its JSON Pointer names,
// or at the foot of the form when it names none (a conflict with another
// definition).
function showErrors(target, failure, unknownField) {
  const errors = (failure.problem && failure.problem.errors) || [];
  if (errors.length === 0) {
    target.querySelector('[data-error=""]').textContent = failure.message;
    return;
  }
  for (const error of errors) {
    const path = (error.pointer || '').replace(/^#\/?/, '').split('/').filter(Boolean);
    let field = path[0] || '';
    if (field && !target.querySelector(`[data-error="${CSS.escape(field)}"]`)) {
      field = unknownField;
    }
    const slot = target.querySelector(`[data-error="${CSS.escape(field)}"]`);
    // "#/steps/1/keep/0" reads as "#2 keep #1", counting from one as forms do.
    const where = path.slice(1).map((part) => (/^\d+$/.test(part) ? `#${Number(part) + 1}` : part)).join(' ');
    const text = where ? `${where}: ${error.detail}` : error.detail;
    slot.textContent = slot.textContent ? `${slot.textContent} ${text}` : text;
    const input = target.querySelector(`[data-field="${CSS.escape(field)}"]`);
    if (input) {
      input.setAttribute('aria-invalid', 'true');
    }
  }
}

function numberOrNull(value) {
  return value === '' ? null : Number(value);
}

function openForm(kind, key) {
  for (const other of ['agent', 'skill', 'queue']) {
    form(other).hidden = other !== kind;
  }
  const target = form(kind);
  target.reset();
  clearErrors(target);
  state.editing[kind] = key || null;
  const noun = kind[0].toUpperCase() + kind.slice(1);
  document.getElementById(`${kind}-form-title`).textContent = key ? `${noun} ${key}` : `New ${kind}`;
  const keyInput = target.elements[kind === 'agent' ? 'id' : 'name'];
  keyInput.readOnly = Boolean(key);
  ({ agent: fillAgent, skill: fillSkill, queue: fillQueue })[kind](key);
  target.scrollIntoView({ block: 'nearest' });
  keyInput.focus();
}

// Agents -------------------------------------------------------------------

function skillRow(skill = '', level = 0) {
  const name = el('input', { 'data-skill-name': '', list: 'skill-names', value: skill, 'aria-label': 'Skill', placeholder: 'language=ru' });
  const number = el('input', { type: 'number', min: 0, max: 255, value: level, 'data-skill-level': '', 'aria-label': 'Level' });
  const remove = el('button', { type: 'button', class: 'secondary' }, 'Remove');
  const row = el('div', { class: 'skill-row' }, name, number, remove);
  remove.addEventListener('click', () => row.remove());
  return row;
}

function fillAgent(id) {
  const agent = state.agents.find((item) => item.id === id) || { skills: [], queues: [] };
  const target = form('agent');
  target.elements.id.value = agent.id || '';
  target.elements.name.value = agent.name || '';
  target.elements.wrap_up_secs.value = agent.wrap_up_secs ?? '';
  target.elements.password.required = !id;
  document.getElementById('agent-skills').replaceChildren(...(agent.skills || []).map((text) => {
    const at = text.lastIndexOf(':');
    return at < 0 ? skillRow(text, 0) : skillRow(text.slice(0, at), Number(text.slice(at + 1)));
  }));
  document.getElementById('agent-queues').replaceChildren(...state.queues.map((queue) => el('label', { class: 'choice' },
    el('input', { type: 'checkbox', value: queue.name, checked: (agent.queues || []).includes(queue.name), 'data-queue-choice': '' }),
    ` ${queue.name}`)));
}

function agentBody() {
  const target = form('agent');
  const body = { id: target.elements.id.value.trim() };
  if (target.elements.name.value.trim()) {
    body.name = target.elements.name.value.trim();
  }
  if (target.elements.password.value) {
    body.password = target.elements.password.value;
  }
  if (target.elements.wrap_up_secs.value !== '') {
    body.wrap_up_secs = Number(target.elements.wrap_up_secs.value);
  }
  body.skills = [...document.querySelectorAll('#agent-skills .skill-row')]
    .map((row) => [row.querySelector('[data-skill-name]').value.trim(), row.querySelector('[data-skill-level]').value])
    .filter(([name]) => name)
    .map(([name, level]) => `${name}:${level === '' ? 0 : level}`);
  body.queues = [...document.querySelectorAll('#agent-queues [data-queue-choice]')]
    .filter((box) => box.checked).map((box) => box.value);
  return body;
}

// Skills -------------------------------------------------------------------

function fillSkill(name) {
  const skill = state.skills.find((item) => item.name === name) || {};
  const target = form('skill');
  target.elements.name.value = skill.name || '';
  target.elements.description.value = skill.description || '';
}

function skillBody() {
  const target = form('skill');
  return { name: target.elements.name.value.trim(), description: target.elements.description.value.trim() };
}

// Queues -------------------------------------------------------------------

function stepRow(step = { after_secs: 30, keep: [] }) {
  const rule = step.any_agent ? 'any_agent' : (step.overflow ? 'overflow' : 'keep');
  const value = step.overflow || (step.keep || []).join(', ');
  const after = el('input', { type: 'number', min: 0, value: step.after_secs, 'data-step-after': '', 'aria-label': 'After seconds' });
  const select = el('select', { 'data-step-rule': '', 'aria-label': 'Rule' },
    el('option', { value: 'keep', selected: rule === 'keep' }, 'Keep categories'),
    el('option', { value: 'any_agent', selected: rule === 'any_agent' }, 'Any agent'),
    el('option', { value: 'overflow', selected: rule === 'overflow' }, 'Overflow to'));
  const text = el('input', { value, 'data-step-value': '', 'aria-label': 'Categories or destination', placeholder: 'language, service>=3' });
  const remove = el('button', { type: 'button', class: 'secondary' }, 'Remove');
  const row = el('tr', {}, el('td', {}, after), el('td', {}, select), el('td', {}, text), el('td', {}, remove));
  remove.addEventListener('click', () => row.remove());
  return row;
}

function fillQueue(name) {
  const queue = state.queues.find((item) => item.name === name) || {};
  const target = form('queue');
  for (const key of QUEUE_FORM_KEYS) {
    const input = target.elements[key];
    if (input && key !== 'agents' && key !== 'steps') {
      input.value = queue[key] ?? (key === 'strategy' ? 'longest-idle' : '');
    }
  }
  document.getElementById('queue-agents').replaceChildren(...state.agents.map((agent) => el('label', { class: 'choice' },
    el('input', { type: 'checkbox', value: agent.id, checked: (queue.agents || []).includes(agent.id), 'data-agent-choice': '' }),
    ` ${agent.id}`)));
  document.getElementById('queue-steps').replaceChildren(...(queue.steps || []).map(stepRow));
  const extra = Object.fromEntries(Object.entries(queue)
    .filter(([key]) => !QUEUE_FORM_KEYS.includes(key) && key !== 'source'));
  target.elements.extra.value = Object.keys(extra).length ? JSON.stringify(extra) : '';
}

// Returns the queue body, or throws a message about the JSON field.
function queueBody() {
  const target = form('queue');
  let body = {};
  const extra = target.elements.extra.value.trim();
  if (extra) {
    try {
      body = JSON.parse(extra);
    } catch (failure) {
      throw new Error(`not valid JSON: ${failure.message}`);
    }
    if (typeof body !== 'object' || Array.isArray(body) || body === null) {
      throw new Error('write a JSON object such as {"service_level_secs": 30}');
    }
  }
  body.name = target.elements.name.value.trim();
  body.strategy = target.elements.strategy.value;
  for (const key of NUMBER_KEYS) {
    body[key] = numberOrNull(target.elements[key].value);
  }
  for (const key of ['overflow', 'music_on_hold']) {
    body[key] = target.elements[key].value.trim() || null;
  }
  body.agents = [...document.querySelectorAll('#queue-agents [data-agent-choice]')]
    .filter((box) => box.checked).map((box) => box.value);
  body.steps = [...document.querySelectorAll('#queue-steps tr')].map((row) => {
    const step = { after_secs: numberOrNull(row.querySelector('[data-step-after]').value) };
    const rule = row.querySelector('[data-step-rule]').value;
    const value = row.querySelector('[data-step-value]').value.trim();
    if (rule === 'any_agent') {
      step.any_agent = true;
    } else if (rule === 'overflow') {
      step.overflow = value;
    } else {
      step.keep = value ? value.split(',').map((item) => item.trim()).filter(Boolean) : [];
    }
    return step;
  });
  return body;
}

// Saving -------------------------------------------------------------------

const TABLES = { agent: 'agents', skill: 'skills', queue: 'queues' };

async function save(kind, event) {
  event.preventDefault();
  const target = form(kind);
  clearErrors(target);
  if (!target.checkValidity()) {
    // The browser's hints; the server checks the same and more.
    for (const input of target.querySelectorAll(':invalid')) {
      const slot = target.querySelector(`[data-error="${CSS.escape(input.dataset.field || '')}"]`);
      if (slot) {
        slot.textContent = input.validationMessage;
      }
    }
    return;
  }

  let body;
  try {
    body = ({ agent: agentBody, skill: skillBody, queue: queueBody })[kind]();
  } catch (failure) {
    target.querySelector('[data-error="extra"]').textContent = failure.message;
    return;
  }

  const key = state.editing[kind];
  const path = key ? `/api/admin/${TABLES[kind]}/${encodeURIComponent(key)}` : `/api/admin/${TABLES[kind]}`;
  try {
    await api(path, { method: key ? 'PUT' : 'POST', body: JSON.stringify(body) });
  } catch (failure) {
    showErrors(target, failure, kind === 'queue' ? 'extra' : '');
    setStatus(`The ${kind} was not saved.`, true);
    return;
  }

  target.hidden = true;
  await load();
  const saved = body.id || body.name;
  setStatus(`${kind[0].toUpperCase()}${kind.slice(1)} ${saved} saved and in force.`);
}

async function removeDefinition(kind, key) {
  // eslint-disable-next-line no-alert
  if (!window.confirm(`Delete ${kind} ${key}?`)) {
    return;
  }
  try {
    await api(`/api/admin/${TABLES[kind]}/${encodeURIComponent(key)}`, { method: 'DELETE' });
  } catch (failure) {
    const errors = (failure.problem && failure.problem.errors) || [];
    const reasons = errors.map((error) => error.detail).join(' ');
    setStatus(`${failure.message}${reasons && !failure.message.includes(reasons) ? ` ${reasons}` : ''}`, true);
    return;
  }
  await load();
  setStatus(`${kind[0].toUpperCase()}${kind.slice(1)} ${key} deleted.`);
}

async function main() {
  const user = await currentUser();
  topBar(user, 'admin');
  if (!READS_ADMINISTRATION.includes(user.role)) {
    setStatus(`Role ${user.role} may not view the administration.`, true);
    return;
  }
  state.administrator = user.role === 'administrator';
  document.getElementById('read-only').hidden = state.administrator;
  for (const section of ['agents', 'skills', 'queues']) {
    document.getElementById(`${section}-section`).hidden = false;
  }
  if (state.administrator) {
    for (const kind of ['agent', 'skill', 'queue']) {
      const button = document.getElementById(`new-${kind}`);
      button.hidden = false;
      button.addEventListener('click', () => openForm(kind, null));
      form(kind).addEventListener('submit', (event) => save(kind, event));
      form(kind).querySelector(`[data-cancel="${kind}"]`).addEventListener('click', () => {
        form(kind).hidden = true;
      });
    }
    document.getElementById('add-skill-row').addEventListener('click', () => {
      document.getElementById('agent-skills').append(skillRow());
    });
    document.getElementById('add-step').addEventListener('click', () => {
      document.getElementById('queue-steps').append(stepRow());
    });
  }
  try {
    await load();
  } catch (failure) {
    setStatus(failure.message, true);
  }
}

main();
