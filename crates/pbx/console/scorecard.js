// Scorecard section of the call page: the call's saved scorecards, and for
// QA, supervisors and administrators a form that saves a new one. A saved
// scorecard never changes, so an edit saves another one, prefilled from
// the reviewer's latest.
import { api, el, formatTime, getJson } from './common.js';

export const SCORERS = ['administrator', 'supervisor', 'qa'];

function showSaved(scorecards) {
  const list = document.getElementById('scorecards');
  if (scorecards.length === 0) {
    list.replaceChildren(el('p', { class: 'note' }, 'No scorecard yet.'));
    return;
  }
  const items = scorecards.slice().reverse().map((card) => el('article', { class: 'scorecard', 'data-scorecard': card.id },
    el('h3', {}, `${card.total_percent.toFixed(2)} % by ${card.reviewer}`, el('span', { class: 'note' }, ` · ${formatTime(card.at)}`)),
    el('table', { class: 'grid' },
      el('tbody', {}, ...card.scores.map((score) => el('tr', {},
        el('td', {}, score.label),
        el('td', { class: 'number' }, `${score.score} / ${score.max_score}`),
        el('td', { class: 'number' }, `weight ${score.weight}`),
        el('td', {}, score.comment))))),
    card.comments ? el('p', { class: 'comments' }, card.comments) : null));
  list.replaceChildren(...items);
}

function buildForm(criteria, latest) {
  const form = document.getElementById('scorecard-form');
  const rows = criteria.criteria.map((criterion) => {
    const previous = latest ? latest.scores.find((score) => score.criterion === criterion.id) : null;
    const options = [];
    for (let value = 0; value <= criteria.max_score; value += 1) {
      const selected = previous ? previous.score === value : value === criteria.max_score;
      options.push(el('option', { value, selected }, String(value)));
    }
    return el('tr', {},
      el('td', {}, el('label', { for: `score-${criterion.id}` }, criterion.label)),
      el('td', { class: 'number' }, `weight ${criterion.weight}`),
      el('td', {}, el('select', { id: `score-${criterion.id}`, 'data-criterion': criterion.id }, ...options)),
      el('td', {}, el('input', {
        type: 'text', id: `comment-${criterion.id}`, 'aria-label': `Comment on ${criterion.label}`,
        maxlength: 1000, value: previous ? previous.comment : '',
      })));
  });
  const comments = el('textarea', { id: 'scorecard-comments', rows: 3, maxlength: 4000 });
  comments.value = latest ? latest.comments : '';
  form.replaceChildren(
    el('table', { class: 'grid' }, el('tbody', {}, ...rows)),
    el('label', { for: 'scorecard-comments' }, 'Comments'),
    comments,
    el('p', {}, el('button', { type: 'submit', id: 'save-scorecard' }, 'Save scorecard'),
      el('span', { id: 'scorecard-status', class: 'status', role: 'status' })),
  );
  form.hidden = false;
}

function submission(criteria) {
  return {
    scores: criteria.criteria.map((criterion) => ({
      criterion: criterion.id,
      score: Number(document.getElementById(`score-${criterion.id}`).value),
      comment: document.getElementById(`comment-${criterion.id}`).value,
    })),
    comments: document.getElementById('scorecard-comments').value,
  };
}

// Shows the scorecards of call `id` and, when `user` may score, the form.
export async function showScorecards(id, user) {
  const path = `/api/calls/${encodeURIComponent(id)}/scorecards`;
  const section = document.getElementById('scorecard-section');
  section.hidden = false;
  let saved = await getJson(path);
  showSaved(saved);

  if (!SCORERS.includes(user.role)) {
    return;
  }
  const criteria = await getJson('/api/scorecards/criteria');
  if (criteria.criteria.length === 0) {
    document.getElementById('scorecard-note').textContent = 'No scorecard criteria are configured.';
    return;
  }
  const own = saved.filter((card) => card.reviewer_id === user.id);
  buildForm(criteria, own[own.length - 1]);

  const form = document.getElementById('scorecard-form');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const status = document.getElementById('scorecard-status');
    status.classList.remove('error');
    status.textContent = 'Saving…';
    try {
      const response = await api(path, { method: 'POST', body: JSON.stringify(submission(criteria)) });
      const card = await response.json();
      saved = [...saved, card];
      showSaved(saved);
      status.textContent = `Saved: ${card.total_percent.toFixed(2)} %`;
    } catch (failure) {
      status.classList.add('error');
      status.textContent = failure.message;
    }
  });
}
