// case.js - the mediator's review page: /ui/cases (open a case) and /ui/cases/{case_id}.
//
// Shows the case at a glance, a timeline (delivery, opening, window end, uploads, capture
// times, inspections, decision), buyer and warehouse evidence side by side with each photo's
// capture time, camera, flags in plain words and location, every match to another case as a
// pair of images with distance and link, a two-up compare view, and the decision form.
//
// Extra reads after the case loads, all best effort: GET /v1/evidence/{id} for the editor
// behind an `edited_software` flag, and GET /v1/evidence/{id}/similar for the source, upload
// time and thumbnail of each match (the item itself names earlier evidence in `matches` and
// later evidence in `matched_by`).

import {
  $, api, camera, caseUrl, clear, el, eachLimit, evidenceUrl, findCases, flagList, flagWords,
  fmtExifTime, fmtTime, getSession, GRADES, loginUrl, matchKind, OUTCOMES, REASONS, renderHeader, say,
  SOURCES, words,
} from './common.js';

const state = {
  session: null,
  c: null,
  extra: new Map(), // evidence_id -> {editor, similar: [...] | null}
  compare: {a: null, b: null},
};

function caseIdFromPath() {
  const m = /^\/ui\/cases\/([^/]+)\/?$/.exec(location.pathname);
  if (!m) return null;
  try {
    return decodeURIComponent(m[1]);
  } catch (err) {
    return null;
  }
}

// ---- open a case ------------------------------------------------------------------------

async function onOpen(ev) {
  ev.preventDefault();
  const q = $('#open-q').value.trim();
  const msg = $('#open-msg');
  const list = clear($('#open-results'));
  list.hidden = true;
  if (!q) return;
  say(msg, 'info', 'Looking up…');
  $('#open-go').disabled = true;
  try {
    const found = await findCases(q);
    if (!found.length) {
      say(msg, 'error', `No case found for “${q}”.`);
    } else if (found.length === 1) {
      location.assign(caseUrl(found[0].case_id));
    } else {
      say(msg, 'info', `${found.length} cases for this order:`);
      for (const c of found) {
        list.append(el('li', null, el('a', {href: caseUrl(c.case_id), class: 'result'},
          el('strong', null, c.order_id || c.case_id),
          ` · ${words(REASONS, c.reason)} · opened ${fmtTime(c.opened_at)} · ${c.status || ''}`)));
      }
      list.hidden = false;
    }
  } catch (err) {
    say(msg, 'error', err.message);
  } finally {
    $('#open-go').disabled = false;
  }
}

// ---- the case ---------------------------------------------------------------------------

async function loadCase(id) {
  let c;
  try {
    c = await api('GET', '/v1/cases/' + encodeURIComponent(id));
  } catch (err) {
    say($('#page-msg'), 'error', err.status === 404 ? `There is no case “${id}”.` : err.message);
    $('#open').hidden = false;
    return;
  }
  state.c = c;
  document.title = `${c.order_id || c.case_id} · Case review · exhibit`;
  renderGlance(c);
  renderEvidence(c);
  renderTimeline(c);
  renderDecision(c);
  $('#case').hidden = false;
  document.body.dataset.ready = '1';
  loadExtras(c);
}

function fact(dl, term, value, opts = {}) {
  const dd = el('dd', {id: opts.id, class: opts.cls}, value === null || value === undefined || value === '' ? '-' : String(value));
  dl.append(el('dt', null, term), dd);
}

function renderGlance(c) {
  $('#case-title').textContent = 'Order ' + (c.order_id || '-');
  const st = $('#case-status');
  st.textContent = c.status || '';
  st.className = 'badge badge-' + (c.status === 'decided' ? 'done' : 'open');
  const dl = clear($('#case-facts'));
  fact(dl, 'Reason', words(REASONS, c.reason), {id: 'fact-reason'});
  fact(dl, 'Return shipping paid by', c.return_shipping_paid_by, {id: 'fact-payer', cls: 'strong'});
  fact(dl, 'Category', c.category);
  fact(dl, 'Buyer', c.buyer_id);
  fact(dl, 'Seller', c.seller_id);
  fact(dl, 'Delivered', fmtTime(c.delivered_at));
  fact(dl, 'Opened', fmtTime(c.opened_at));
  fact(dl, 'Return window ends', fmtTime(c.return_window_ends_at));
  fact(dl, 'Case id', c.case_id, {cls: 'mono'});
  $('#case-desc').textContent = c.description || '(no description given)';
}

function sideOf(e) {
  if (e.source === 'buyer') return 'buyer';
  if (e.source === 'warehouse') return 'warehouse';
  return 'other';
}

function photoTitle(e, idx) {
  return `${words(SOURCES, e.source)} photo ${idx}`;
}

// Numbers each source's photos in upload order: "Buyer photo 1", "Warehouse photo 2".
function numbering(c) {
  const count = {};
  const n = new Map();
  for (const e of c.evidence || []) {
    count[e.source] = (count[e.source] || 0) + 1;
    n.set(e.evidence_id, count[e.source]);
  }
  return n;
}

function renderEvidence(c) {
  const nums = numbering(c);
  const cols = {buyer: clear($('#photos-buyer')), warehouse: clear($('#photos-warehouse')), other: clear($('#photos-other'))};
  const counts = {buyer: 0, warehouse: 0, other: 0};
  for (const e of c.evidence || []) {
    const side = sideOf(e);
    counts[side]++;
    cols[side].append(photoCard(e, photoTitle(e, nums.get(e.evidence_id))));
  }
  $('#col-buyer-title').textContent = `Buyer (${counts.buyer})`;
  $('#col-warehouse-title').textContent = `Warehouse (${counts.warehouse})`;
  if (!counts.buyer) cols.buyer.append(el('p', {class: 'hint'}, 'The buyer has sent no photos.'));
  if (!counts.warehouse) cols.warehouse.append(el('p', {class: 'hint'}, 'The warehouse has not sent photos yet.'));
  $('#col-other').hidden = counts.other === 0;
}

function photoCard(e, title) {
  const exif = e.exif || {};
  const extra = state.extra.get(e.evidence_id) || {};
  const taken = fmtExifTime(exif.datetime_original, exif.offset_time_original);
  const meta = el('dl', {class: 'meta'});
  const row = (k, v, cls) => meta.append(el('dt', null, k), el('dd', {class: cls}, v));
  row('Taken', taken || 'no capture time recorded', taken ? 'taken' : 'taken missing');
  row('Uploaded', fmtTime(e.created_at));
  if (e.captured_at) row('Captured (app)', fmtTime(e.captured_at));
  row('Camera', camera(exif) || 'unknown', 'camera');
  if (exif.software) row('Software', String(exif.software), 'software');
  if (e.width && e.height) row('Size', `${e.width} × ${e.height}`);
  if (exif.gps && Number.isFinite(+exif.gps.lat) && Number.isFinite(+exif.gps.lon)) {
    row('Location', `${(+exif.gps.lat).toFixed(5)}, ${(+exif.gps.lon).toFixed(5)}`, 'location');
  }

  const card = el('article', {class: 'photo', id: 'ev-' + e.evidence_id, dataset: {evidenceId: e.evidence_id, source: e.source || ''}},
    el('h4', null, title),
    el('button', {type: 'button', class: 'photo-btn', 'aria-label': `Compare ${title}`, onclick: () => openCompare(e)},
      el('img', {src: evidenceUrl(e.evidence_id, 'thumb'), alt: title, loading: 'lazy'})),
    flagList(flagWords(e, state.c.delivered_at, extra)),
    meta,
    e.note ? el('blockquote', {class: 'quote small note'}, e.note) : null,
    matchesBlock(e, title),
    metadataDetails(e));
  return card;
}

// Matches from the item itself (both directions) plus what /similar reported, one entry per
// other photo.
function allMatches(e) {
  const extra = state.extra.get(e.evidence_id) || {};
  const byId = new Map();
  for (const m of [...(e.matches || []), ...(e.matched_by || [])]) byId.set(m.evidence_id, {...m});
  for (const m of extra.similar || []) byId.set(m.evidence_id, {...(byId.get(m.evidence_id) || {}), ...m});
  byId.delete(e.evidence_id);
  return Array.from(byId.values()).sort((x, y) => (+x.distance || 0) - (+y.distance || 0));
}

// A box [x0, y0, x1, y1] in fractions of the picture, or null when it is not one.
function regionBox(box) {
  if (!Array.isArray(box) || box.length !== 4) return null;
  const [x0, y0, x1, y1] = box.map((v) => Math.min(1, Math.max(0, Number(v) || 0)));
  return x1 > x0 && y1 > y0 ? [x0, y0, x1, y1] : null;
}

// A thumbnail with the part it shares with the other photo outlined (set through the CSSOM:
// the page's policy allows no inline style attributes).
function outlined(src, alt, box) {
  const wrap = el('span', {class: 'outlined'}, el('img', {src, alt}));
  const b = regionBox(box);
  if (b) {
    const r = el('span', {class: 'overlap', 'aria-hidden': 'true'});
    r.style.left = `${b[0] * 100}%`;
    r.style.top = `${b[1] * 100}%`;
    r.style.width = `${(b[2] - b[0]) * 100}%`;
    r.style.height = `${(b[3] - b[1]) * 100}%`;
    wrap.append(r);
  }
  return wrap;
}

// The outline in words, for readers who cannot see it.
function overlapText(region) {
  const a = regionBox(region && region.this), b = regionBox(region && region.other);
  if (!a || !b) return '';
  const pct = (x) => Math.round((x[2] - x[0]) * (x[3] - x[1]) * 100);
  return ` · shared part outlined: ${pct(a)}% of this photo, ${pct(b)}% of the other` +
    (region.mirrored ? ' (mirrored)' : '');
}

function matchesBlock(e, title) {
  const ms = allMatches(e);
  if (!ms.length) return null;
  const box = el('div', {class: 'matches'}, el('h5', null, `Same image elsewhere (${ms.length})`));
  for (const m of ms) {
    const other = m.case_id !== state.c.case_id;
    const otherTitle = other ? `photo in case ${m.case_id}` : 'photo in this case';
    const desc = {id: m.evidence_id, title: (m.source ? words(SOURCES, m.source) + ' ' : '') + otherTitle,
      lines: [m.created_at ? 'uploaded ' + fmtTime(m.created_at) : '', `${matchKind(m)}, distance ${m.distance}`]};
    box.append(el('div', {class: 'match', dataset: {matchCase: m.case_id || '', matchEvidence: m.evidence_id}},
      el('div', {class: 'pair'},
        outlined(evidenceUrl(e.evidence_id, 'thumb'), title, m.region && m.region.this),
        outlined(evidenceUrl(m.evidence_id, 'thumb'), otherTitle, m.region && m.region.other)),
      el('div', {class: 'match-text'},
        el('strong', null, matchKind(m)), ` · distance ${m.distance}`,
        overlapText(m.region),
        m.source ? ` · ${words(SOURCES, m.source)}` : '',
        el('br'),
        other ? el('a', {href: caseUrl(m.case_id), class: 'case-link'}, `Open case ${m.case_id}`) : 'in this case',
        ' ',
        el('button', {type: 'button', class: 'linkish', onclick: () => showCompare(descOf(e, title), desc)}, 'Compare'))));
  }
  return box;
}

function metadataDetails(e) {
  const d = el('details', {class: 'all-meta'}, el('summary', null, 'All recorded metadata'));
  let loaded = false;
  d.addEventListener('toggle', async () => {
    if (!d.open || loaded) return;
    loaded = true;
    const body = el('div', {class: 'hint'}, 'Loading…');
    d.append(body);
    try {
      const full = await api('GET', '/v1/evidence/' + encodeURIComponent(e.evidence_id));
      body.replaceWith(metaTable(full));
    } catch (err) {
      body.textContent = err.message;
      loaded = false;
    }
  });
  return d;
}

function metaTable(full) {
  const t = el('table', {class: 'kv'});
  const add = (k, v) => t.append(el('tr', null, el('th', null, k), el('td', null, v)));
  add('SHA-256', full.sha256 || '-');
  add('Type', `${full.media_type || '-'}, ${full.bytes || '?'} bytes`);
  if (full.editor) add('Editor', String(full.editor));
  const all = full.exif_all && typeof full.exif_all === 'object' ? full.exif_all : {};
  for (const [ifd, tags] of Object.entries(all)) {
    if (!tags || typeof tags !== 'object') continue;
    for (const [k, v] of Object.entries(tags)) add(`${ifd} ${k}`, typeof v === 'object' ? JSON.stringify(v) : String(v));
  }
  return t;
}

// ---- timeline ---------------------------------------------------------------------------

function renderTimeline(c) {
  const nums = numbering(c);
  const ev = [];
  const push = (iso, kind, title, detail, cls) => ev.push({t: Date.parse(iso || ''), iso, kind, title, detail, cls});
  push(c.delivered_at, 'delivered', 'Delivered to the buyer');
  push(c.opened_at, 'opened', `Case opened: ${words(REASONS, c.reason)}`, `Return shipping paid by ${c.return_shipping_paid_by || '-'}`);
  const windowEnd = Date.parse(c.return_window_ends_at || '');
  push(c.return_window_ends_at, 'window', 'Return window ends', Number.isNaN(windowEnd) ? null : windowEnd < Date.now() ? 'passed' : 'still open', 'minor');
  for (const e of c.evidence || []) {
    const title = photoTitle(e, nums.get(e.evidence_id));
    const warn = (e.flags || []).filter((f) => f !== 'gps_present').length;
    push(e.created_at, 'upload', `${title} uploaded`, warn ? `${warn} warning${warn === 1 ? '' : 's'}` : null);
  }
  for (const i of c.inspections || []) {
    const n = (i.evidence_ids || []).length;
    push(i.created_at, 'inspection', `Warehouse inspection: ${words(GRADES, i.grade)}`,
      [i.notes, n ? `${n} photo${n === 1 ? '' : 's'} attached` : null].filter(Boolean).join(' — '));
  }
  if (c.decision) {
    const d = c.decision;
    push(d.decided_at, 'decision', `Decision: ${words(OUTCOMES, d.outcome)}${amountText(d.amount)}`,
      [d.rationale, d.decided_by ? 'by ' + d.decided_by : null].filter(Boolean).join(' — '));
  }
  // Known times first in order; anything without a usable time goes last.
  ev.sort((a, b) => (Number.isNaN(a.t) ? Infinity : a.t) - (Number.isNaN(b.t) ? Infinity : b.t));
  const ol = clear($('#timeline'));
  for (const x of ev) {
    ol.append(el('li', {class: `tl tl-${x.kind} ${x.cls || ''}`, dataset: {kind: x.kind}},
      el('time', {datetime: x.iso || null}, fmtTime(x.iso)),
      el('div', {class: 'tl-title'}, x.title),
      x.detail ? el('div', {class: 'tl-detail'}, x.detail) : null));
  }
}

function amountText(a) {
  if (a === null || a === undefined || a === '') return '';
  const n = Number(a);
  return Number.isFinite(n) ? ` (${n.toFixed(2)})` : '';
}

// ---- decision ---------------------------------------------------------------------------

// The decision form is kept in sessionStorage per case, so a reload or a sign-in round trip
// after a session ended does not lose a half-written rationale.
const DRAFT_PREFIX = 'exhibit.case.draft.';

function saveDecisionDraft() {
  if (!state.c) return;
  const d = {outcome: $('#outcome').value, amount: $('#amount').value, rationale: $('#rationale').value};
  try {
    if (d.outcome || d.amount || d.rationale) sessionStorage.setItem(DRAFT_PREFIX + state.c.case_id, JSON.stringify(d));
    else sessionStorage.removeItem(DRAFT_PREFIX + state.c.case_id);
  } catch (err) {
    // storage unavailable: the form still holds the text
  }
}

function restoreDecisionDraft(caseId) {
  let d = null;
  try {
    d = JSON.parse(sessionStorage.getItem(DRAFT_PREFIX + caseId) || 'null');
  } catch (err) {
    d = null;
  }
  if (!d || typeof d !== 'object') return;
  if (OUTCOMES[d.outcome] && !$('#outcome').value) $('#outcome').value = d.outcome;
  if (typeof d.amount === 'string' && !$('#amount').value) $('#amount').value = d.amount;
  if (typeof d.rationale === 'string' && !$('#rationale').value) $('#rationale').value = d.rationale;
}

function dropDecisionDraft(caseId) {
  try {
    sessionStorage.removeItem(DRAFT_PREFIX + caseId);
  } catch (err) {
    // nothing to drop
  }
}

function renderDecision(c) {
  const view = clear($('#decision-view'));
  const form = $('#decision-form');
  if (c.decision) {
    const d = c.decision;
    view.append(
      el('p', {class: 'decision-outcome'}, el('strong', null, words(OUTCOMES, d.outcome)), amountText(d.amount)),
      d.rationale ? el('blockquote', {class: 'quote'}, d.rationale) : null,
      el('p', {class: 'hint'}, `Decided ${fmtTime(d.decided_at)}${d.decided_by ? ' by ' + d.decided_by : ''}.`));
    view.hidden = false;
    form.hidden = true;
  } else {
    view.hidden = true;
    form.hidden = false;
    restoreDecisionDraft(c.case_id);
    syncAmount();
  }
}

function syncAmount() {
  const o = $('#outcome').value;
  const amount = $('#amount');
  const refund = o === 'refund_full' || o === 'refund_partial' || o === '';
  amount.disabled = !refund;
  amount.required = o === 'refund_partial';
}

async function onDecide(ev) {
  ev.preventDefault();
  const msg = $('#decision-msg');
  const outcome = $('#outcome').value;
  const rationale = $('#rationale').value.trim();
  const amountRaw = $('#amount').value.trim();
  if (!outcome) return say(msg, 'error', 'Choose an outcome.');
  if (!rationale) return say(msg, 'error', 'Write the rationale: the buyer, the seller and any later review will read it.');
  const body = {outcome, rationale};
  if (amountRaw && !$('#amount').disabled) {
    const n = Number(amountRaw);
    if (!Number.isFinite(n) || n < 0) return say(msg, 'error', 'The amount must be a number of at least 0.');
    body.amount = n;
  } else if (outcome === 'refund_partial') {
    return say(msg, 'error', 'A partial refund needs an amount.');
  }
  $('#decide').disabled = true;
  say(msg, 'info', 'Recording…');
  try {
    await api('POST', '/v1/cases/' + encodeURIComponent(state.c.case_id) + '/decision', body);
    say(msg, 'info', '');
    $('#rationale').value = '';
    dropDecisionDraft(state.c.case_id);
    await loadCase(state.c.case_id);
  } catch (err) {
    say(msg, 'error', 'Not recorded: ' + err.message);
    if (err.status === 401) msg.append(' ', el('a', {href: loginUrl()}, 'Sign in again'));
    if (err.status === 409) await loadCase(state.c.case_id);
  } finally {
    $('#decide').disabled = false;
  }
}

// ---- compare ----------------------------------------------------------------------------

function descOf(e, title) {
  const exif = e.exif || {};
  const taken = fmtExifTime(exif.datetime_original, exif.offset_time_original);
  return {id: e.evidence_id, title, lines: [taken ? 'taken ' + taken : 'no capture time', camera(exif) || '']};
}

function caseDescs() {
  const nums = numbering(state.c);
  return (state.c.evidence || []).map((e) => descOf(e, photoTitle(e, nums.get(e.evidence_id))));
}

// Clicking a photo puts it on the left and, on the right, the first photo from the other side
// (buyer vs warehouse) - the comparison a mediator most often wants; the strip changes it.
function openCompare(e) {
  const all = caseDescs();
  const a = all.find((d) => d.id === e.evidence_id);
  const wantOther = e.source === 'buyer' ? (x) => x.source !== 'buyer' : (x) => x.source === 'buyer';
  const otherItem = (state.c.evidence || []).find((x) => x.evidence_id !== e.evidence_id && wantOther(x)) ||
    (state.c.evidence || []).find((x) => x.evidence_id !== e.evidence_id);
  const b = otherItem ? all.find((d) => d.id === otherItem.evidence_id) : null;
  showCompare(a, b);
}

function fillPane(pane, img, d) {
  const cap = clear(pane.querySelector('figcaption'));
  if (!d) {
    img.removeAttribute('src');
    img.alt = '';
    cap.append(el('span', {class: 'hint'}, 'Choose a photo below.'));
    return;
  }
  img.src = evidenceUrl(d.id, 'preview');
  img.alt = d.title;
  cap.append(el('strong', null, d.title), ...d.lines.filter(Boolean).map((l) => el('span', null, ' · ' + l)));
}

function showCompare(a, b) {
  state.compare = {a, b};
  drawCompare();
  const dlg = $('#compare');
  if (!dlg.open) dlg.showModal();
}

function drawCompare() {
  const {a, b} = state.compare;
  fillPane($('#pane-a'), $('#compare-a'), a);
  fillPane($('#pane-b'), $('#compare-b'), b);
  const strip = clear($('#compare-strip'));
  for (const d of caseDescs()) {
    strip.append(el('button', {type: 'button', class: 'strip-btn' + (b && b.id === d.id ? ' chosen' : ''), 'aria-pressed': b && b.id === d.id ? 'true' : 'false',
      title: d.title, onclick: () => {
        state.compare.b = d;
        drawCompare();
      }}, el('img', {src: evidenceUrl(d.id, 'thumb'), alt: d.title})));
  }
}

// ---- extra reads ------------------------------------------------------------------------

async function loadExtras(c) {
  const items = c.evidence || [];
  await eachLimit(items, 3, async (e) => {
    const x = state.extra.get(e.evidence_id) || {};
    const jobs = [];
    if ((e.flags || []).includes('edited_software') && !x.editor) {
      jobs.push(api('GET', '/v1/evidence/' + encodeURIComponent(e.evidence_id))
        .then((full) => { x.editor = full && full.editor ? String(full.editor) : ''; })
        .catch(() => {}));
    }
    jobs.push(api('GET', `/v1/evidence/${encodeURIComponent(e.evidence_id)}/similar?limit=20`)
      .then((s) => { x.similar = s && Array.isArray(s.matches) ? s.matches : []; })
      .catch(() => {}));
    await Promise.all(jobs);
    state.extra.set(e.evidence_id, x);
    if (state.c !== c) return;
    const old = document.getElementById('ev-' + e.evidence_id);
    if (old && !old.querySelector('details[open]')) {
      const nums = numbering(c);
      old.replaceWith(photoCard(e, photoTitle(e, nums.get(e.evidence_id))));
    }
  });
  if (state.c === c) document.body.dataset.extras = '1';
}

// ---- start ------------------------------------------------------------------------------

async function main() {
  for (const [code, label] of Object.entries(OUTCOMES)) $('#outcome').append(el('option', {value: code}, label));
  $('#outcome').addEventListener('change', () => {
    syncAmount();
    saveDecisionDraft();
  });
  $('#amount').addEventListener('input', saveDecisionDraft);
  $('#rationale').addEventListener('input', saveDecisionDraft);
  $('#decision-form').addEventListener('submit', onDecide);
  $('#open-form').addEventListener('submit', onOpen);
  $('#compare-close').addEventListener('click', () => $('#compare').close());
  $('#compare-swap').addEventListener('click', () => {
    const {a, b} = state.compare;
    state.compare = {a: b, b: a};
    drawCompare();
  });
  // A click on the dimmed backdrop closes the compare view too.
  $('#compare').addEventListener('click', (ev) => {
    if (ev.target === ev.currentTarget) ev.currentTarget.close();
  });
  try {
    state.session = await getSession();
  } catch (err) {
    say($('#page-msg'), 'error', err.message);
    return;
  }
  renderHeader(state.session);
  const id = caseIdFromPath();
  if (id) {
    await loadCase(id);
  } else {
    $('#open').hidden = false;
    document.body.dataset.ready = '1';
    $('#open-q').focus();
  }
}

main();
