// Login page: POST /api/session sets the session cookie, then the page
// named by ?next= (a console page only) or the calls page opens.
import { api, safeNext } from './common.js';

const form = document.getElementById('login-form');
const error = document.getElementById('login-error');
const button = document.getElementById('login-button');
const next = safeNext(new URLSearchParams(location.search).get('next'));

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  error.hidden = true;
  button.disabled = true;
  const body = JSON.stringify({
    username: form.username.value,
    password: form.password.value,
  });
  try {
    await api('/api/session', { method: 'POST', body, allowUnauthorized: true });
    location.replace(next);
  } catch (failure) {
    error.textContent = failure.status === 401
      ? 'Wrong username or password.'
      : failure.message;
    error.hidden = false;
    form.password.select();
  } finally {
    button.disabled = false;
  }
});

// Someone already logged in goes straight on.
api('/api/me', { allowUnauthorized: true }).then(() => location.replace(next), () => {});
