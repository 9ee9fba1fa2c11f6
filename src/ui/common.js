// common.js - helpers shared by exhibit's browser pages (ES module, no build step).
//
// Safety rule for every page: text that came from the server (case descriptions, notes, EXIF
// values, file names, ids) reaches the DOM only as text nodes - through el()/textContent -
// never as markup. Nothing here or in the pages assigns innerHTML.
//
// Sessions: the pages are signed in with an HttpOnly cookie the scripts cannot read. Any
// request that changes state must carry the session's CSRF token in X-CSRF-Token; getSession()
// fetches it once per page load.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// ---- DOM --------------------------------------------------------------------------------

// el('a', {class: 'x', href: '/ui/...', onclick: fn}, 'text', childNode, [more]) builds an
// element. Strings become text nodes; `text` sets textContent. Attributes are set with
// setAttribute, so a value is never parsed as markup.
export function el(tag, props, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') n.className = v;
    else if (k === 'text') n.textContent = String(v);
    else if (k.startsWith('on') && typeof v === 'function') n.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(n.dataset, v);
    else n.setAttribute(k, v === true ? '' : String(v));
  }
  append(n, children);
  return n;
}

function append(n, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(n, c);
    else n.append(c instanceof Node ? c : String(c));
  }
}

export function $(sel, root = document) {
  return root.querySelector(sel);
}

export function clear(n) {
  while (n.firstChild) n.removeChild(n.firstChild);
  return n;
}

// A message line under a form: kind is 'error', 'ok' or 'info'. Empty text hides it.
export function say(node, kind, text) {
  node.textContent = text || '';
  node.className = 'msg' + (text ? ' msg-' + kind : '');
  node.hidden = !text;
}

// ---- HTTP -------------------------------------------------------------------------------

let sessionPromise = null;

export function loginUrl() {
  // The server only honours plain /ui/... paths as `next` (no query), so pass just the path.
  return '/ui/login?next=' + encodeURIComponent(location.pathname);
}

// The signed-in session ({role, key_id, subject, csrf_token, expires_at}); without one the
// page goes to the sign-in form and the promise never settles.
export function getSession() {
  if (!sessionPromise) {
    sessionPromise = (async () => {
      let r;
      try {
        r = await fetch('/v1/session', {
          credentials: 'same-origin',
          headers: {Accept: 'application/json'},
          cache: 'no-store',
        });
      } catch (err) {
        sessionPromise = null;
        throw new ApiError(0, 'network', 'The server cannot be reached. Check the connection and reload the page.');
      }
      if (r.status === 401) {
        location.assign(loginUrl());
        return new Promise(() => {});
      }
      const body = await readJson(r);
      if (!r.ok) {
        sessionPromise = null;
        throw errorFrom(r.status, body);
      }
      return body;
    })();
  }
  return sessionPromise;
}

async function readJson(r) {
  const text = await r.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch (err) {
    return null;
  }
}

const STATUS_WORDS = {
  401: 'Your session has ended. Sign in again; what you typed on this page is kept.',
  403: 'Your key is not allowed to do this.',
  404: 'Not found.',
  413: 'That is too large for the server.',
  429: 'The server is busy. Wait a moment and try again.',
  503: 'The server is busy. Wait a moment and try again.',
};

function errorFrom(status, body) {
  const e = body && body.error;
  if (e && typeof e.message === 'string' && e.message) {
    let msg = e.message;
    if (status === 401) msg = STATUS_WORDS[401];
    return new ApiError(status, String(e.code || 'error'), msg);
  }
  return new ApiError(status, 'http_' + status, STATUS_WORDS[status] || `The server answered with an error (HTTP ${status}). Try again.`);
}

// api('GET', '/v1/cases/x') -> parsed JSON, or throws ApiError with a message for people.
// body: FormData (multipart) or a plain object (sent as JSON).
export async function api(method, path, body) {
  const headers = {Accept: 'application/json'};
  let payload;
  if (method !== 'GET' && method !== 'HEAD') {
    headers['X-CSRF-Token'] = (await getSession()).csrf_token || '';
  }
  if (body instanceof FormData) {
    payload = body;
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path, {method, headers, body: payload, credentials: 'same-origin', cache: 'no-store'});
  } catch (err) {
    throw new ApiError(0, 'network', 'The server cannot be reached. Check the connection and try again.');
  }
  const data = await readJson(r);
  if (!r.ok) throw errorFrom(r.status, data);
  return data;
}

// Uploads one photo to a case with XMLHttpRequest (fetch cannot report upload progress).
// onProgress(fraction 0..1). Resolves with the stored item (the server's verdict).
export function uploadPhoto(caseId, file, fields, onProgress) {
  return getSession().then(
    (s) =>
      new Promise((resolve, reject) => {
        const fd = new FormData();
        fd.append('file', file, file.name || 'photo.jpg');
        for (const [k, v] of Object.entries(fields || {})) if (v) fd.append(k, v);
        const xhr = new XMLHttpRequest();
        xhr.open('POST', '/v1/cases/' + encodeURIComponent(caseId) + '/evidence');
        xhr.setRequestHeader('Accept', 'application/json');
        xhr.setRequestHeader('X-CSRF-Token', s.csrf_token || '');
        xhr.upload.onprogress = (ev) => {
          if (ev.lengthComputable && ev.total > 0) onProgress(ev.loaded / ev.total);
        };
        xhr.onload = () => {
          let body = null;
          try {
            body = JSON.parse(xhr.responseText);
          } catch (err) {
            body = null;
          }
          if (xhr.status >= 200 && xhr.status < 300 && body && Array.isArray(body.items) && body.items[0]) {
            onProgress(1);
            resolve(body.items[0]);
          } else {
            reject(errorFrom(xhr.status, body));
          }
        };
        xhr.onerror = () => reject(new ApiError(0, 'network', 'The upload was interrupted: the server cannot be reached. Check the connection and retry.'));
        xhr.ontimeout = xhr.onerror;
        xhr.send(fd);
      }),
  );
}

// Cases are looked up by case id first, then by order id. Returns a list of case summaries.
export async function findCases(query) {
  const q = query.trim();
  if (!q) return [];
  if (/^[A-Za-z0-9_-]{1,128}$/.test(q)) {
    try {
      return [await api('GET', '/v1/cases/' + encodeURIComponent(q))];
    } catch (err) {
      if (err.status !== 404 && err.status !== 400) throw err;
    }
  }
  const r = await api('GET', '/v1/cases?order_id=' + encodeURIComponent(q));
  return (r && Array.isArray(r.cases)) ? r.cases : [];
}

// Image URLs are built from the evidence id rather than taken from the response, so a URL
// field can never point anywhere but our own derivative endpoints.
export function evidenceUrl(id, kind) {
  return '/v1/evidence/' + encodeURIComponent(id) + '/' + kind;
}

export function caseUrl(id) {
  return '/ui/cases/' + encodeURIComponent(id);
}

// ---- words ------------------------------------------------------------------------------

export const REASONS = {
  damaged: 'Arrived damaged',
  not_as_described: 'Not as described',
  wrong_item: 'Wrong item sent',
  missing_parts: 'Parts missing',
  changed_mind: 'Changed mind',
};

export const GRADES = {
  as_new: 'As new — unopened or like new',
  opened: 'Opened — complete, no wear',
  used: 'Used — signs of use',
  damaged: 'Damaged',
  wrong_item: 'Wrong item returned',
  missing_parts: 'Parts missing',
  not_received: 'Nothing received / empty parcel',
};

export const OUTCOMES = {
  refund_full: 'Refund in full',
  refund_partial: 'Partial refund',
  reject: 'Reject the claim',
  return_to_buyer: 'Send the item back to the buyer',
};

export const SOURCES = {
  buyer: 'Buyer',
  warehouse: 'Warehouse',
  mediator: 'Mediator',
  admin: 'Administrator',
};

export function words(map, code) {
  if (code === null || code === undefined || code === '') return '-';
  return map[code] || String(code).replace(/_/g, ' ');
}

// "2026-11-20T10:00:00Z" -> "2026-11-20 10:00 UTC". Times are shown in UTC so a mediator and
// a warehouse in different places read the same clock.
export function fmtTime(iso) {
  const t = Date.parse(iso || '');
  if (Number.isNaN(t)) return iso ? String(iso) : '-';
  return new Date(t).toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
}

// EXIF DateTimeOriginal is the camera's local clock with no zone unless OffsetTimeOriginal
// is recorded. Returns ms since the epoch (treating a zoneless time as UTC) or null.
export function exifTime(dt, offset) {
  const m = /^(\d{4})[-:](\d{2})[-:](\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?/.exec(dt || '');
  if (!m) return null;
  let t = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0));
  const o = /^([+-])(\d{2}):?(\d{2})$/.exec(offset || '');
  if (o) t -= (o[1] === '-' ? -1 : 1) * (+o[2] * 60 + +o[3]) * 60000;
  return Number.isNaN(t) ? null : t;
}

export function fmtExifTime(dt, offset) {
  const m = /^(\d{4})[-:](\d{2})[-:](\d{2})[T ](\d{2}):(\d{2})/.exec(dt || '');
  if (!m) return null;
  const base = `${m[1]}-${m[2]}-${m[3]} ${m[4]}:${m[5]}`;
  return offset ? `${base} (UTC${offset})` : `${base} (camera clock)`;
}

function plural(n, one) {
  return `${n} ${one}${n === 1 ? '' : 's'}`;
}

// How long before delivery a photo was taken, in whole days (or hours under a day).
export function beforeDelivery(takenMs, deliveredIso) {
  const d = Date.parse(deliveredIso || '');
  if (takenMs === null || Number.isNaN(d) || d <= takenMs) return 'taken before delivery';
  const diff = d - takenMs;
  const days = Math.floor(diff / 86400000);
  if (days >= 730) return `taken ${plural(days, 'day')} (over ${Math.floor(days / 365.25)} years) before delivery`;
  if (days >= 60) return `taken ${plural(days, 'day')} (about ${Math.round(days / 30.44)} months) before delivery`;
  if (days >= 1) return `taken ${plural(days, 'day')} before delivery`;
  const hours = Math.floor(diff / 3600000);
  if (hours >= 1) return `taken ${plural(hours, 'hour')} before delivery`;
  return 'taken less than an hour before delivery';
}

export function editorName(editor) {
  const s = String(editor || '').trim();
  return s.replace(/^Adobe\s+(?=Photoshop)/i, '');
}

export function camera(exif) {
  if (!exif) return null;
  const make = (exif.make || '').trim();
  let model = (exif.model || '').trim();
  // "Canon" + "Canon EOS 7D" reads better as "Canon EOS 7D".
  if (make && model.toLowerCase().startsWith(make.toLowerCase())) return model;
  return [make, model].filter(Boolean).join(' ') || null;
}

// The item's flags in plain words: [{code, text, level}] where level is 'bad', 'warn' or
// 'info'. extra.editor comes from GET /v1/evidence/{id} (the full item) when available.
export function flagWords(item, deliveredAt, extra) {
  const out = [];
  const exif = item.exif || {};
  for (const f of item.flags || []) {
    switch (f) {
      case 'reused_exact':
        out.push({code: f, level: 'bad', text: 'the same file is evidence in another case'});
        break;
      case 'reused_near':
        out.push({code: f, level: 'bad', text: 'looks like a photo in another case (edited copy)'});
        break;
      case 'taken_before_delivery':
        out.push({code: f, level: 'bad', text: beforeDelivery(exifTime(exif.datetime_original, exif.offset_time_original), deliveredAt)});
        break;
      case 'edited_software': {
        const ed = editorName((extra && extra.editor) || '');
        out.push({code: f, level: 'warn', text: ed ? `edited with ${ed}` : 'edited with photo software'});
        break;
      }
      case 'no_camera_metadata':
        out.push({code: f, level: 'warn', text: 'no camera metadata — possibly a screenshot or download'});
        break;
      case 'gps_present':
        out.push({code: f, level: 'info', text: 'location recorded'});
        break;
      default:
        out.push({code: String(f), level: 'info', text: String(f).replace(/_/g, ' ')});
    }
  }
  return out;
}

export function flagList(flags) {
  if (!flags.length) return el('p', {class: 'flags flags-none'}, 'no warnings');
  return el(
    'ul',
    {class: 'flags'},
    flags.map((f) => el('li', {class: 'flag flag-' + f.level, dataset: {flag: f.code}}, f.text)),
  );
}

export function matchKind(m) {
  if (m.kind === 'exact') return 'exact copy';
  if (m.kind === 'near') return 'near copy';
  return String(m.kind || 'match').replace(/_/g, ' ');
}

// ---- page chrome ------------------------------------------------------------------------

// Fills the page header: who is signed in, links to the pages this role may open, sign out.
export function renderHeader(session) {
  const nav = $('#nav');
  if (!nav) return;
  clear(nav);
  const role = session.role;
  const here = location.pathname;
  const links = [];
  if (role === 'warehouse' || role === 'admin') links.push(['/ui/inspect', 'Inspection station']);
  if (role === 'mediator' || role === 'admin') links.push(['/ui/cases', 'Cases']);
  for (const [href, label] of links) {
    const current = here === href || (href === '/ui/cases' && here.startsWith('/ui/cases/'));
    nav.append(el('a', {href, class: current ? 'current' : null, 'aria-current': current ? 'page' : null}, label));
  }
  const who = words(SOURCES, role) + (session.subject ? ' ' + session.subject : '') + ' · key ' + session.key_id;
  const out = el('button', {type: 'button', class: 'linkish', id: 'sign-out'}, 'Sign out');
  out.addEventListener('click', () => signOut(out));
  nav.append(el('span', {class: 'who', id: 'who'}, who), out);
}

async function signOut(btn) {
  btn.disabled = true;
  try {
    await api('POST', '/ui/logout');
  } catch (err) {
    // A session that already ended is signed out too; anything else is shown.
    if (err.status !== 401 && err.status !== 0) {
      btn.disabled = false;
      alert('Signing out failed: ' + err.message);
      return;
    }
  }
  location.assign('/ui/login?signed_out=1');
}

// Runs async work on items, at most `limit` at a time.
export async function eachLimit(items, limit, fn) {
  let i = 0;
  const workers = Array.from({length: Math.min(limit, items.length)}, async () => {
    while (i < items.length) {
      const k = i++;
      await fn(items[k], k);
    }
  });
  await Promise.all(workers);
}
