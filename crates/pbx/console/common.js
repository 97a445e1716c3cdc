// Shared by every console page: API calls, the top bar, formatting.
// Pages build their DOM with el(), which sets text only, so nothing from
// the API is ever parsed as HTML.

export class ApiError extends Error {
  // `problem` is the RFC 9457 body, whose `errors` member (when present)
  // lists invalid fields with a JSON Pointer each.
  constructor(status, detail, problem = {}) {
    super(detail);
    this.status = status;
    this.problem = problem;
  }
}

// Sends a request to the API with the session cookie. A 401 sends the
// browser to the login page; another error becomes an ApiError with the
// problem's detail.
export async function api(path, options = {}) {
  const headers = { Accept: 'application/json' };
  if (options.body !== undefined) {
    headers['Content-Type'] = 'application/json';
  }
  const response = await fetch(path, {
    credentials: 'same-origin',
    ...options,
    headers: { ...headers, ...(options.headers || {}) },
  });
  if (response.status === 401 && !options.allowUnauthorized) {
    toLogin();
    throw new ApiError(401, 'not logged in');
  }
  if (!response.ok) {
    const problem = await problemBody(response);
    throw new ApiError(response.status, problem.detail || problem.title || response.statusText
      || `HTTP ${response.status}`, problem);
  }
  return response;
}

export async function getJson(path) {
  const response = await api(path);
  return response.json();
}

async function problemBody(response) {
  try {
    return await response.json();
  } catch {
    return {};
  }
}

export function toLogin() {
  const next = location.pathname + location.search;
  location.replace(`/console/login?next=${encodeURIComponent(next)}`);
}

// Only a console path may follow a login, so a crafted link cannot send
// the user to another site.
export function safeNext(value) {
  if (typeof value === 'string' && /^\/console\/[A-Za-z0-9/_%.-]*(\?[^#]*)?$/.test(value)
      && !value.startsWith('/console/login')) {
    return value;
  }
  return '/console/calls';
}

// The logged-in user. Without a session the browser is already on its way
// to the login page, so the page's script waits for that instead of
// failing.
export async function currentUser() {
  try {
    return await getJson('/api/me');
  } catch (failure) {
    if (failure.status === 401) {
      return new Promise(() => {});
    }
    throw failure;
  }
}

export const SEES_EVERY_CALL = ['administrator', 'supervisor', 'qa'];
export const MAY_REPLAY = ['supervisor', 'qa'];
export const READS_REPORTS = ['administrator', 'supervisor', 'qa'];
export const READS_ADMINISTRATION = ['administrator', 'supervisor'];

// Fills the top bar: page links, who is logged in, and log out.
export function topBar(user, current) {
  const bar = document.getElementById('top-bar');
  const link = (href, label, name) => {
    const anchor = el('a', { href }, label);
    if (name === current) {
      anchor.setAttribute('aria-current', 'page');
    }
    return anchor;
  };
  const logout = el('button', { type: 'button', id: 'logout' }, 'Log out');
  logout.addEventListener('click', async () => {
    try {
      await api('/api/session', { method: 'DELETE', allowUnauthorized: true });
    } finally {
      location.replace('/console/login');
    }
  });
  const links = [
    link('/console/calls', 'Calls', 'calls'),
    link('/console/wallboard', 'Wallboard', 'wallboard'),
  ];
  if (READS_REPORTS.includes(user.role)) {
    links.push(link('/console/reports', 'Reports', 'reports'));
  }
  if (READS_ADMINISTRATION.includes(user.role)) {
    links.push(link('/console/admin', 'Administration', 'admin'));
  }
  bar.replaceChildren(
    el('span', { class: 'brand' }, 'PBX console'),
    ...links,
    el('span', { class: 'user', id: 'user' }, `${user.username} (${user.role})`),
    logout,
  );
}

// Creates an element with attributes and children (nodes or text).
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null && value !== false) {
      node.setAttribute(name, value === true ? '' : String(value));
    }
  }
  for (const child of children) {
    if (child === undefined || child === null) {
      continue;
    }
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// 75.4 -> "1:15", 3725 -> "1:02:05".
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) {
    return '—';
  }
  const whole = Math.max(0, Math.round(seconds));
  const hours = Math.floor(whole / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  const rest = String(whole % 60).padStart(2, '0');
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, '0')}:${rest}` : `${minutes}:${rest}`;
}

export function formatPercent(value) {
  return value === null || value === undefined ? '—' : `${value.toFixed(1)} %`;
}

// An RFC 3339 time in the browser's local time zone.
export function formatTime(text) {
  if (!text) {
    return '—';
  }
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? text : date.toLocaleString();
}

export function setStatus(text, isError = false) {
  const status = document.getElementById('status');
  if (status) {
    status.textContent = text;
    status.classList.toggle('error', isError);
  }
}
