// inspect.js - the warehouse inspection station (/ui/inspect).
//
// Flow: find a case (case id or order id) -> read the buyer's claim and photos -> take or
// choose photos, each uploaded at once on its own request (so each has its own progress bar
// and its own verdict or error) -> grade + notes -> POST the inspection, linking the stored
// photos by evidence_id.
//
// Nothing typed is lost: grade, notes and which photos to attach are kept in memory and in
// sessionStorage per case (a reload or a sign-in round trip restores them); a refused photo
// keeps its File so it can be retried. Photos already stored on the case but not yet part of
// an inspection come back from the server after a reload.

import {
  $, api, ApiError, clear, el, eachLimit, evidenceUrl, findCases, flagList, flagWords, fmtExifTime,
  fmtTime, getSession, GRADES, loginUrl, matchKind, REASONS, renderHeader, say, camera, uploadPhoto,
  words,
} from './common.js';

const CASE_KEY = 'exhibit.inspect.case';
const DRAFT_PREFIX = 'exhibit.inspect.draft.';
const MAX_PARALLEL_UPLOADS = 2;

const state = {
  session: null,
  caseData: null,
  rows: [], // {key, file, name, size, status, progress, item, error, include, editor, preview}
  active: 0,
  seq: 0,
  submitting: false,
};

// ---- storage ----------------------------------------------------------------------------

function store(key, value) {
  try {
    if (value === null) sessionStorage.removeItem(key);
    else sessionStorage.setItem(key, value);
  } catch (err) {
    // Private mode or a full quota: the in-memory state still holds everything.
  }
}

function load(key) {
  try {
    return sessionStorage.getItem(key);
  } catch (err) {
    return null;
  }
}

function readDraft(caseId) {
  try {
    const d = JSON.parse(load(DRAFT_PREFIX + caseId) || 'null');
    return d && typeof d === 'object' ? d : null;
  } catch (err) {
    return null;
  }
}

function saveDraft() {
  const c = state.caseData;
  if (!c) return;
  const excluded = state.rows.filter((r) => r.item && !r.include).map((r) => r.item.evidence_id);
  // File names are not stored by the server; keep them so a reload still shows them.
  const names = {};
  for (const r of state.rows) if (r.item && r.realName) names[r.item.evidence_id] = r.name;
  const d = {grade: $('#grade').value, notes: $('#notes').value, excluded, names};
  store(DRAFT_PREFIX + c.case_id, JSON.stringify(d));
  $('#draft-state').textContent = d.notes || d.grade ? 'Draft kept on this device.' : '';
}

// ---- finding a case ---------------------------------------------------------------------

async function onFind(ev) {
  ev.preventDefault();
  const q = $('#find-q').value.trim();
  const msg = $('#find-msg');
  const list = $('#find-results');
  clear(list).hidden = true;
  if (!q) return;
  say(msg, 'info', 'Looking up…');
  $('#find-go').disabled = true;
  try {
    const found = await findCases(q);
    if (found.length === 0) {
      say(msg, 'error', `No case found for “${q}”. Check the id on the label.`);
    } else if (found.length === 1) {
      say(msg, 'info', '');
      await openCase(found[0].case_id);
    } else {
      say(msg, 'info', `${found.length} cases for this order — choose one:`);
      for (const c of found) {
        list.append(
          el('li', null,
            el('button', {type: 'button', class: 'result', onclick: () => openCase(c.case_id)},
              el('strong', null, c.order_id || c.case_id),
              ` · ${words(REASONS, c.reason)} · opened ${fmtTime(c.opened_at)} · ${c.status || ''}`)));
      }
      list.hidden = false;
    }
  } catch (err) {
    say(msg, 'error', err.message);
  } finally {
    $('#find-go').disabled = false;
  }
}

function busyRows() {
  return state.rows.filter((r) => r.status === 'queued' || r.status === 'uploading');
}

async function openCase(caseId) {
  const same = state.caseData && state.caseData.case_id === caseId;
  if (!same && busyRows().length && !confirm('Photos are still uploading for the current case. Switch anyway?')) return;
  let c;
  try {
    c = await api('GET', '/v1/cases/' + encodeURIComponent(caseId));
  } catch (err) {
    if (err.status === 404) store(CASE_KEY, null);
    say($('#find-msg'), 'error', err.message);
    return;
  }
  say($('#find-msg'), 'info', '');
  clear($('#find-results')).hidden = true;
  state.caseData = c;
  if (!same) state.rows = rowsFromServer(c);
  else mergeServerRows(c);
  store(CASE_KEY, c.case_id);
  history.replaceState(null, '', '#case=' + encodeURIComponent(c.case_id));
  $('#done').hidden = true;
  $('#work').hidden = false;
  renderClaim(c);
  if (!same) restoreDraft(c.case_id);
  renderRows();
  loadEditors();
}

// Photos this station already stored on the case that no inspection links yet: after a reload
// they are still waiting to be attached.
function unlinkedOwn(c) {
  const linked = new Set();
  for (const i of c.inspections || []) for (const id of i.evidence_ids || []) linked.add(id);
  const own = new Set(['warehouse', state.session.role]);
  return (c.evidence || []).filter((e) => own.has(e.source) && !linked.has(e.evidence_id));
}

function rowsFromServer(c) {
  const d = readDraft(c.case_id) || {};
  const names = d.names && typeof d.names === 'object' ? d.names : {};
  return unlinkedOwn(c).map((item) => ({
    key: ++state.seq, file: null,
    name: typeof names[item.evidence_id] === 'string' ? names[item.evidence_id] : 'stored ' + fmtTime(item.created_at),
    realName: typeof names[item.evidence_id] === 'string', size: item.bytes,
    status: 'stored', progress: 1, item, include: true, error: null, editor: null, preview: null,
  }));
}

function mergeServerRows(c) {
  const have = new Set(state.rows.filter((r) => r.item).map((r) => r.item.evidence_id));
  for (const r of rowsFromServer(c)) if (!have.has(r.item.evidence_id)) state.rows.push(r);
}

function restoreDraft(caseId) {
  const d = readDraft(caseId) || {};
  $('#grade').value = GRADES[d.grade] ? d.grade : '';
  $('#notes').value = typeof d.notes === 'string' ? d.notes : '';
  const excluded = new Set(Array.isArray(d.excluded) ? d.excluded : []);
  for (const r of state.rows) if (r.item && excluded.has(r.item.evidence_id)) r.include = false;
  $('#draft-state').textContent = d.notes || d.grade ? 'Draft restored from this device.' : '';
}

// ---- the claim --------------------------------------------------------------------------

function fact(dl, term, value, id) {
  dl.append(el('dt', null, term), el('dd', {id}, value === null || value === undefined || value === '' ? '-' : String(value)));
}

function renderClaim(c) {
  const dl = clear($('#claim-facts'));
  fact(dl, 'Order', c.order_id, 'claim-order');
  fact(dl, 'Case', c.case_id, 'claim-case');
  fact(dl, 'Reason', words(REASONS, c.reason), 'claim-reason');
  fact(dl, 'Category', c.category);
  fact(dl, 'Delivered', fmtTime(c.delivered_at));
  fact(dl, 'Opened', fmtTime(c.opened_at));
  fact(dl, 'Return shipping paid by', c.return_shipping_paid_by);
  const st = $('#claim-status');
  st.textContent = c.status === 'decided' ? 'decided' : c.status || '';
  st.className = 'badge badge-' + (c.status === 'decided' ? 'done' : 'open');
  $('#claim-desc').textContent = c.description || '(no description given)';

  const buyer = (c.evidence || []).filter((e) => e.source === 'buyer');
  const box = clear($('#buyer-photos'));
  if (!buyer.length) box.append(el('p', {class: 'hint'}, 'The buyer has not sent photos.'));
  for (const e of buyer) {
    const when = fmtExifTime(e.exif && e.exif.datetime_original, e.exif && e.exif.offset_time_original);
    box.append(
      el('figure', {class: 'thumb'},
        el('button', {type: 'button', class: 'thumb-btn', 'aria-label': 'Show the buyer photo larger',
          onclick: () => view(e, 'Buyer photo')},
          el('img', {src: evidenceUrl(e.evidence_id, 'thumb'), alt: 'Buyer photo', loading: 'lazy'})),
        el('figcaption', null, when ? 'taken ' + when : 'uploaded ' + fmtTime(e.created_at))));
  }

  const past = clear($('#past-inspections'));
  const insp = c.inspections || [];
  if (insp.length) {
    past.append(el('h3', null, 'Earlier inspections of this return'));
    past.append(el('ul', {class: 'plain'}, insp.map((i) =>
      el('li', null, el('strong', null, words(GRADES, i.grade)), ` · ${fmtTime(i.created_at)}`,
        i.notes ? el('div', {class: 'quote small'}, i.notes) : null))));
  }
}

function view(item, title) {
  const d = $('#viewer');
  $('#viewer-title').textContent = title;
  $('#viewer-img').src = evidenceUrl(item.evidence_id, 'preview');
  $('#viewer-img').alt = title;
  if (!d.open) d.showModal();
}

// ---- uploads ----------------------------------------------------------------------------

function onFiles(ev) {
  const files = Array.from(ev.target.files || []);
  ev.target.value = ''; // the same photo can be chosen again later
  if (!state.caseData || !files.length) return;
  for (const f of files) {
    let preview = null;
    try {
      preview = URL.createObjectURL(f);
    } catch (err) {
      preview = null;
    }
    state.rows.push({
      key: ++state.seq, file: f, name: f.name || 'photo', realName: !!f.name, size: f.size, status: 'queued',
      progress: 0, item: null, include: true, error: null, editor: null, preview,
    });
  }
  renderRows();
  pump();
}

function pump() {
  while (state.active < MAX_PARALLEL_UPLOADS) {
    const row = state.rows.find((r) => r.status === 'queued');
    if (!row) break;
    upload(row);
  }
}

async function upload(row) {
  const caseId = state.caseData.case_id;
  state.active++;
  row.status = 'uploading';
  row.progress = 0;
  row.error = null;
  renderRow(row);
  try {
    const item = await uploadPhoto(caseId, row.file, {}, (p) => {
      row.progress = p;
      const bar = document.querySelector(`[data-key="${row.key}"] progress`);
      if (bar) bar.value = Math.round(p * 100);
    });
    row.item = item;
    row.status = 'stored';
    row.file = null; // the bytes are on the server now
    const twin = state.rows.find((r) => r !== row && r.item && r.item.evidence_id === item.evidence_id);
    if (twin) row.duplicateOf = twin.key;
    if ((item.flags || []).includes('edited_software')) fetchEditor(row);
  } catch (err) {
    row.status = 'failed';
    row.error = err instanceof ApiError ? err : new ApiError(0, 'error', String(err && err.message || err));
  } finally {
    state.active--;
    // The case may have been switched meanwhile; only draw rows that are still ours.
    if (state.caseData && state.caseData.case_id === caseId) {
      renderRow(row);
      saveDraft();
      updateSubmitHint();
    }
    pump();
  }
}

async function fetchEditor(row) {
  try {
    const full = await api('GET', '/v1/evidence/' + encodeURIComponent(row.item.evidence_id));
    row.editor = full && full.editor ? String(full.editor) : null;
    renderRow(row);
  } catch (err) {
    // The flag is still shown, in general words.
  }
}

function loadEditors() {
  const todo = state.rows.filter((r) => r.item && !r.editor && (r.item.flags || []).includes('edited_software'));
  eachLimit(todo, 2, fetchEditor);
}

function fmtSize(n) {
  if (!Number.isFinite(n)) return '';
  if (n >= 1048576) return (n / 1048576).toFixed(1) + ' MB';
  return Math.max(1, Math.round(n / 1024)) + ' KB';
}

function renderRows() {
  const ul = clear($('#uploads'));
  for (const r of state.rows) ul.append(rowNode(r));
  updateSubmitHint();
}

function renderRow(row) {
  const old = document.querySelector(`#uploads [data-key="${row.key}"]`);
  if (old) old.replaceWith(rowNode(row));
}

function rowNode(r) {
  const img = r.item
    ? el('img', {src: evidenceUrl(r.item.evidence_id, 'thumb'), alt: 'Stored photo'})
    : r.preview
      ? el('img', {src: r.preview, alt: 'Photo being sent'})
      : el('div', {class: 'no-thumb'}, 'photo');
  const body = el('div', {class: 'upload-body'},
    el('div', {class: 'upload-name'}, el('span', {class: 'name'}, r.name), ' ', el('span', {class: 'hint'}, fmtSize(r.size))));
  const li = el('li', {class: 'upload', dataset: {key: String(r.key), state: r.status}}, el('div', {class: 'upload-thumb'}, img), body);

  if (r.status === 'queued' || r.status === 'uploading') {
    body.append(
      el('progress', {max: '100', value: String(Math.round(r.progress * 100)), 'aria-label': 'Upload progress'}),
      el('div', {class: 'hint'}, r.status === 'queued' ? 'waiting to send…' : 'sending…'));
  } else if (r.status === 'failed') {
    const retry = el('button', {type: 'button', class: 'retry', onclick: () => {
      r.status = 'queued';
      renderRow(r);
      pump();
    }}, 'Retry');
    const remove = el('button', {type: 'button', class: 'linkish remove', onclick: () => removeRow(r)}, 'Remove');
    if (!r.file) retry.disabled = true;
    body.append(el('p', {class: 'msg msg-error upload-error', role: 'alert'}, 'Not stored: ' + r.error.message),
      el('div', {class: 'actions'}, retry, remove));
  } else if (r.status === 'stored') {
    body.append(verdict(r));
    const box = el('input', {type: 'checkbox', class: 'include', checked: r.include && !r.duplicateOf, disabled: !!r.duplicateOf});
    box.addEventListener('change', () => {
      r.include = box.checked;
      saveDraft();
      updateSubmitHint();
    });
    body.append(el('label', {class: 'check'}, box, ' Attach to this inspection'));
  }
  return li;
}

function verdict(r) {
  const it = r.item;
  const out = el('div', {class: 'verdict'});
  const cam = camera(it.exif);
  const when = fmtExifTime(it.exif && it.exif.datetime_original, it.exif && it.exif.offset_time_original);
  out.append(el('div', {class: 'stored-line'}, el('span', {class: 'ok-mark'}, 'Stored'),
    ` · ${it.width || '?'}×${it.height || '?'}`, cam ? ` · ${cam}` : '', when ? ` · taken ${when}` : ''));
  if (r.duplicateOf) out.append(el('p', {class: 'hint'}, 'Same file as a photo above: stored once.'));
  out.append(flagList(flagWords(it, state.caseData.delivered_at, {editor: r.editor})));
  const matches = it.matches || [];
  if (matches.length) {
    out.append(el('ul', {class: 'match-lines'}, matches.map((m) =>
      el('li', null, `Matches a photo in case ${m.case_id} (${matchKind(m)}, distance ${m.distance})`))));
  }
  return out;
}

function removeRow(r) {
  if (r.preview) URL.revokeObjectURL(r.preview);
  state.rows = state.rows.filter((x) => x !== r);
  renderRows();
}

// ---- the inspection ---------------------------------------------------------------------

function attachIds() {
  const ids = [];
  for (const r of state.rows) {
    if (r.status === 'stored' && r.include && !r.duplicateOf && !ids.includes(r.item.evidence_id)) ids.push(r.item.evidence_id);
  }
  return ids;
}

function updateSubmitHint() {
  const n = attachIds().length;
  const pending = busyRows().length;
  const btn = $('#submit-inspection');
  btn.textContent = 'Record inspection' + (n ? ` with ${n} photo${n === 1 ? '' : 's'}` : '');
  btn.classList.toggle('waiting', pending > 0);
}

async function onSubmit(ev) {
  ev.preventDefault();
  if (state.submitting || !state.caseData) return;
  const msg = $('#inspect-msg');
  const grade = $('#grade').value;
  if (!grade) {
    say(msg, 'error', 'Choose a grade first.');
    $('#grade').focus();
    return;
  }
  const pending = busyRows().length;
  if (pending) {
    say(msg, 'error', `Wait until ${pending} photo${pending === 1 ? ' has' : 's have'} finished sending.`);
    return;
  }
  const failed = state.rows.filter((r) => r.status === 'failed').length;
  if (failed) {
    say(msg, 'error', `${failed} photo${failed === 1 ? ' was' : 's were'} not stored. Retry or remove ${failed === 1 ? 'it' : 'them'} first.`);
    return;
  }
  const ids = attachIds();
  const fd = new FormData();
  fd.append('grade', grade);
  fd.append('notes', $('#notes').value);
  for (const id of ids) fd.append('evidence_id', id);
  state.submitting = true;
  $('#submit-inspection').disabled = true;
  say(msg, 'info', 'Recording…');
  try {
    const res = await api('POST', '/v1/cases/' + encodeURIComponent(state.caseData.case_id) + '/inspections', fd);
    const insp = (res && res.inspection) || {};
    const c = state.caseData;
    store(DRAFT_PREFIX + c.case_id, null);
    store(CASE_KEY, null);
    say(msg, 'info', '');
    const done = $('#done');
    $('#done-text').textContent =
      `Order ${c.order_id || c.case_id}: ${words(GRADES, insp.grade || grade)}, ${ids.length} photo${ids.length === 1 ? '' : 's'} attached` +
      (insp.created_at ? `, at ${fmtTime(insp.created_at)}.` : '.');
    for (const r of state.rows) if (r.preview) URL.revokeObjectURL(r.preview);
    state.rows = [];
    state.caseData = null;
    $('#work').hidden = true;
    done.hidden = false;
    $('#next-case').focus();
  } catch (err) {
    if (err.status === 401) {
      saveDraft();
      say(msg, 'error', err.message);
      msg.append(' ', el('a', {href: loginUrl()}, 'Sign in again'));
    } else {
      say(msg, 'error', 'Not recorded: ' + err.message);
    }
  } finally {
    state.submitting = false;
    $('#submit-inspection').disabled = false;
  }
}

function nextCase() {
  $('#done').hidden = true;
  $('#grade').value = '';
  $('#notes').value = '';
  $('#draft-state').textContent = '';
  $('#find-q').value = '';
  history.replaceState(null, '', location.pathname);
  $('#find-q').focus();
}

// ---- start ------------------------------------------------------------------------------

async function main() {
  for (const [code, label] of Object.entries(GRADES)) $('#grade').append(el('option', {value: code}, label));
  $('#find-form').addEventListener('submit', onFind);
  $('#photo-input').addEventListener('change', onFiles);
  $('#inspect-form').addEventListener('submit', onSubmit);
  $('#grade').addEventListener('change', saveDraft);
  $('#notes').addEventListener('input', saveDraft);
  $('#next-case').addEventListener('click', nextCase);
  window.addEventListener('beforeunload', (ev) => {
    if (busyRows().length) {
      ev.preventDefault();
      ev.returnValue = '';
    }
  });
  try {
    state.session = await getSession();
  } catch (err) {
    say($('#page-msg'), 'error', err.message);
    return;
  }
  renderHeader(state.session);
  document.body.dataset.ready = '1';
  const fromHash = location.hash.startsWith('#case=') ? decodeURIComponent(location.hash.slice(6)) : '';
  const remembered = fromHash || load(CASE_KEY);
  if (remembered) {
    $('#find-q').value = remembered;
    await openCase(remembered);
  } else {
    $('#find-q').focus();
  }
}

main();
