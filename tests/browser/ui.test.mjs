#!/usr/bin/env node
// ui.test.mjs - end-to-end tests of exhibit's browser pages in Debian's Chromium.
//
// Starts the real server (EXHIBIT_BIN, default build/asan/exhibit) on a fresh data directory
// and 127.0.0.1:0, makes keys with the CLI, sets up cases and buyer photos through the JSON
// API, then drives /usr/bin/chromium with playwright-core (no browser download) through the
// warehouse station and the mediator review like a person would.
//
// Expected values come from the contract (API.md, the UI brief), from
// tests/data/photos/expected.tsv (exiftool's answers) or from the test's own inputs - never
// from the page under test.
//
// Output: one "ok NAME" / "not ok NAME: why" line per test, then
// "browser: N passed, N failed"; exit 1 on any failure. Screenshots go to tests/artifacts/
// (and on failure tests/artifacts/browser-fail-*.png); with --update-screenshots also to
// tests/browser/screenshots/{inspect,case}.png for the README.
//
// Run: (cd tests/browser && npm ci) && node tests/browser/ui.test.mjs

import {spawn, execFileSync} from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import {chromium} from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..');
const BIN = path.resolve(REPO, process.env.EXHIBIT_BIN || 'build/asan/exhibit');
const TESTDATA = path.resolve(REPO, process.env.EXHIBIT_TESTDATA || 'tests/data');
const PHOTOS = path.join(TESTDATA, 'photos');
const ARTIFACTS = path.join(REPO, 'tests', 'artifacts');
const SHOTS = path.join(HERE, 'screenshots');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const UPDATE_SHOTS = process.argv.includes('--update-screenshots');
const SUITE_LIMIT_MS = 170_000; // the whole suite; a hang must not outlive CI's patience
const STEP_TIMEOUT_MS = 20_000;

// The flags that work on this machine's closed network. The fresh profile comes from
// chromium.launch() itself: it always passes a new temporary --user-data-dir (and refuses one
// in args, pointing to launchPersistentContext), which keeps browser.newContext() available
// for one isolated session per role.
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const DAY = 86_400_000;
const SANITIZER = /ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:/;

// ---- tiny runner --------------------------------------------------------------------------

let passed = 0;
let failed = 0;
const pageErrors = [];
let currentPages = [];

class Failure extends Error {}

function check(cond, msg) {
  if (!cond) throw new Failure(msg);
}

function eq(got, want, what) {
  check(got === want, `${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

async function test(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (err) {
    failed++;
    const why = err instanceof Failure ? err.message : (err && err.stack) || String(err);
    console.log(`not ok ${name}: ${why.split('\n').slice(0, 6).join('\n    ')}`);
    for (const [i, p] of currentPages.entries()) {
      try {
        if (!p.isClosed()) await p.screenshot({path: path.join(ARTIFACTS, `browser-fail-${slug(name)}-${i}.png`), fullPage: true});
      } catch (e) {
        // the page may be gone; the message above is what matters
      }
    }
  }
}

function slug(s) {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60);
}

// ---- reference data -----------------------------------------------------------------------

// exiftool's answers for the test photos, by file name.
function readExpected() {
  const lines = fs.readFileSync(path.join(PHOTOS, 'expected.tsv'), 'utf8').split('\n').filter(Boolean);
  const cols = lines[0].split('\t');
  const out = {};
  for (const l of lines.slice(1)) {
    const v = l.split('\t');
    const row = {};
    cols.forEach((c, i) => (row[c] = v[i] || ''));
    out[row.file] = row;
  }
  return out;
}

// "2011:01:13 14:33:39" as ms since the epoch, read as UTC (no zone is recorded).
function exifMs(s) {
  const m = /^(\d{4}):(\d{2}):(\d{2}) (\d{2}):(\d{2}):(\d{2})$/.exec(s);
  if (!m) throw new Error('bad EXIF time ' + s);
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
}

const iso = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

// ---- the server ---------------------------------------------------------------------------

class Server {
  constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exhibit-ui-'));
    this.logPath = path.join(ARTIFACTS, 'browser_server.log');
    this.keys = {};
  }

  key(name, role, subject) {
    const args = ['key', 'create', '--data', this.dir, '--role', role];
    if (subject) args.push('--subject', subject);
    const out = execFileSync(BIN, args, {encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000});
    const k = out.split('\n')[0].trim();
    check(k.length > 0, `key create --role ${role} printed no key`);
    this.keys[name] = k;
    return k;
  }

  start() {
    fs.mkdirSync(ARTIFACTS, {recursive: true});
    const log = fs.openSync(this.logPath, 'w');
    this.proc = spawn(BIN, ['serve', '--data', this.dir, '--listen', '127.0.0.1:0'], {stdio: ['ignore', 'pipe', log]});
    this.exited = new Promise((resolve) => this.proc.on('exit', (code, signal) => resolve({code, signal})));
    return new Promise((resolve, reject) => {
      let buf = '';
      const timer = setTimeout(() => reject(new Error('server did not print "listening on" within 60 s')), 60_000);
      this.proc.stdout.on('data', (d) => {
        buf += d.toString();
        const m = /listening on (http:\/\/[0-9.]+:\d+)/.exec(buf);
        if (m && !this.base) {
          this.base = m[1];
          clearTimeout(timer);
          resolve(this.base);
        }
      });
      this.exited.then(({code, signal}) => {
        clearTimeout(timer);
        if (!this.base) reject(new Error(`server exited (${code ?? signal}) before listening; see ${this.logPath}`));
      });
    });
  }

  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return this.exited;
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 30_000);
    const r = await this.exited;
    clearTimeout(t);
    return r;
  }

  // JSON API with a Bearer key (or a raw Cookie header).
  async api(method, p, {key, json, form, cookie, headers = {}} = {}) {
    const h = {...headers, Accept: 'application/json'};
    if (key) h.Authorization = 'Bearer ' + key;
    if (cookie) h.Cookie = cookie;
    let body;
    if (json !== undefined) {
      h['Content-Type'] = 'application/json';
      body = JSON.stringify(json);
    } else if (form) {
      body = form;
    }
    const r = await fetch(this.base + p, {method, headers: h, body, redirect: 'manual'});
    const text = await r.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (e) {
      data = null;
    }
    return {status: r.status, data, text, headers: r.headers};
  }

  async upload(caseId, key, file, bytes) {
    const fd = new FormData();
    fd.append('file', new Blob([bytes || fs.readFileSync(path.join(PHOTOS, file))]), file);
    const r = await this.api('POST', `/v1/cases/${caseId}/evidence`, {key, form: fd});
    check(r.status === 201 || r.status === 200, `upload ${file}: HTTP ${r.status} ${r.text.slice(0, 200)}`);
    return r.data.items[0];
  }

  async openCase(body) {
    const r = await this.api('POST', '/v1/cases', {key: this.keys.platform, json: body});
    check(r.status === 201, `open case: HTTP ${r.status} ${r.text.slice(0, 200)}`);
    return r.data;
  }
}

// ---- browser helpers ----------------------------------------------------------------------

async function newPage(browser, viewport) {
  const context = await browser.newContext({viewport, deviceScaleFactor: 1, locale: 'en-GB'});
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  page.on('pageerror', (err) => pageErrors.push(`${page.url()}: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && /Content Security Policy|Refused to/.test(msg.text())) pageErrors.push(`${page.url()}: ${msg.text()}`);
  });
  return {context, page};
}

async function signIn(page, base, key, next) {
  await page.goto(base + '/ui/login' + (next ? '?next=' + encodeURIComponent(next) : ''));
  await page.fill('#key', key);
  await Promise.all([
    page.waitForURL((u) => !u.pathname.startsWith('/ui/login') || u.searchParams.has('error')),
    page.click('#login-form button[type="submit"]'),
  ]);
}

async function sessionCookie(context) {
  return (await context.cookies()).find((c) => c.name === 'exhibit_session');
}

async function imagesLoaded(locator) {
  return locator.evaluateAll((imgs) => imgs.map((i) => i.complete && i.naturalWidth > 0));
}

async function waitImagesLoaded(page, selector, what) {
  await page.waitForFunction((sel) => {
    const imgs = Array.from(document.querySelectorAll(sel));
    return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);
  }, selector, {timeout: STEP_TIMEOUT_MS}).catch(() => {
    throw new Failure(`${what}: images ${selector} did not load`);
  });
}

function shot(name) {
  const p = path.join(ARTIFACTS, name);
  return {path: p, copy: () => UPDATE_SHOTS && (fs.mkdirSync(SHOTS, {recursive: true}), fs.copyFileSync(p, path.join(SHOTS, name)))};
}

// ---- the suite ----------------------------------------------------------------------------

async function main() {
  const watchdog = setTimeout(() => {
    console.log('not ok suite: did not finish within the time limit');
    console.log(`browser: ${passed} passed, ${failed + 1} failed`);
    process.exit(1);
  }, SUITE_LIMIT_MS);
  watchdog.unref();

  const EXP = readExpected();

  // The pages' pure helpers, checked in Node against hand-computed times (no server needed).
  await test('plain-word helpers: capture time zones and days before delivery', async () => {
    const W = await import(new URL('../../src/ui/common.js', import.meta.url));
    eq(W.exifTime('2011-01-13T14:33:39', null), Date.UTC(2011, 0, 13, 14, 33, 39), 'zoneless time read as UTC');
    eq(W.exifTime('2011:01:13 14:33:39', '+02:00'), Date.UTC(2011, 0, 13, 12, 33, 39), 'time with offset +02:00');
    eq(W.exifTime('2011-01-13T14:33:39', '-05:30'), Date.UTC(2011, 0, 13, 20, 3, 39), 'time with offset -05:30');
    eq(W.exifTime('    :  :     :  :  ', null), null, 'blank EXIF time');
    const d = '2011-01-15T17:33:39Z';
    eq(W.beforeDelivery(Date.UTC(2011, 0, 13, 14, 33, 39), d), 'taken 2 days before delivery', '2 days 3 hours');
    eq(W.beforeDelivery(Date.UTC(2011, 0, 14, 17, 33, 39), d), 'taken 1 day before delivery', 'exactly 1 day');
    eq(W.beforeDelivery(Date.UTC(2011, 0, 15, 12, 0, 0), d), 'taken 5 hours before delivery', '5.5 hours');
    eq(W.beforeDelivery(null, d), 'taken before delivery', 'unknown capture time');
    eq(W.editorName('Adobe Photoshop'), 'Photoshop', 'editor name');
    eq(W.camera({make: 'Canon', model: 'Canon EOS 7D'}), 'Canon EOS 7D', 'make repeated in model');
    eq(W.camera({make: 'Apple', model: 'iPhone 4'}), 'Apple iPhone 4', 'make + model');
  });
  const S = new Server();
  let browser;
  const T = {}; // ids shared between tests

  await test('server starts and serves the sign-in page', async () => {
    check(fs.existsSync(BIN), `no server binary at ${BIN} (build it: make build/asan/exhibit)`);
    check(fs.existsSync(CHROMIUM), `no Chromium at ${CHROMIUM} (apt-get install -y chromium)`);
    for (const [n, role, sub] of [['admin', 'admin'], ['platform', 'platform'], ['warehouse', 'warehouse'],
      ['mediator', 'mediator'], ['buyer', 'buyer', 'b-ui-alice'], ['buyer2', 'buyer', 'b-ui-bob']]) S.key(n, role, sub);
    await S.start();
    const r = await fetch(S.base + '/ui/login');
    eq(r.status, 200, 'GET /ui/login status');
    check(/text\/html/.test(r.headers.get('content-type') || ''), 'login page is not text/html');
    browser = await chromium.launch({executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true});
  });
  if (!browser) return finish(S, browser);

  // Case A: the dispute under review. Delivered 2 days 3 hours after the iPhone 4 photo was
  // taken (exiftool's DateTimeOriginal), so the page must say "taken 2 days before delivery".
  const IPHONE = 'drewnoakes_Apple iPhone 4.jpg';
  const REUSED = 'drewnoakes_Canon EOS D60.jpg'; // Software "Adobe Photoshop 7.0"
  const WH1 = 'drewnoakes_Nokia Lumia 800.jpg'; // taken 2012, after delivery; GPS
  const WH2 = 'drewnoakes_Android Depth Map.jpg'; // no camera metadata at all
  const TIFF = 'drewnoakes_Epson PerfectionV800.tiff'; // not an accepted type
  const takenIphone = exifMs(EXP[IPHONE].datetime_original);
  const deliveredA = takenIphone + 2 * DAY + 3 * 3600_000;
  const run = Date.now().toString(36);

  await test('set up cases and buyer photos through the API (reused photo on another case first)', async () => {
    T.B = await S.openCase({order_id: `UI-${run}-B`, buyer_id: 'b-ui-bob', seller_id: 's-1', reason: 'not_as_described',
      category: 'electronics', delivered_at: iso(deliveredA - 40 * DAY), opened_at: iso(deliveredA - 39 * DAY),
      description: 'earlier dispute by another buyer'});
    T.reusedInB = await S.upload(T.B.case_id, S.keys.buyer2, REUSED);
    T.A = await S.openCase({order_id: `UI-${run}-A`, buyer_id: 'b-ui-alice', seller_id: 's-1', reason: 'damaged',
      category: 'electronics', delivered_at: iso(deliveredA), opened_at: iso(deliveredA + DAY),
      description: 'Screen cracked on arrival; box was dented.'});
    T.iphone = await S.upload(T.A.case_id, S.keys.buyer, IPHONE);
    T.reusedInA = await S.upload(T.A.case_id, S.keys.buyer, REUSED);
    // Buyers never learn of another case; staff keys see the reuse.
    check(!(T.reusedInA.flags || []).includes('reused_exact') && !(T.reusedInA.matches || []).length, 'the buyer is told of another case');
    const staff = await S.api('GET', '/v1/evidence/' + T.reusedInA.evidence_id, {key: S.keys.mediator});
    check((staff.data.flags || []).includes('reused_exact'), 'the reused photo is not flagged reused_exact by the API');
  });

  // ---- sign-in rules ----
  await test('buyer and platform keys cannot sign in; a wrong key is told so', async () => {
    const {context, page} = await newPage(browser, {width: 1024, height: 800});
    currentPages = [page];
    for (const [key, code] of [[S.keys.buyer, 'role_not_allowed'], [S.keys.platform, 'role_not_allowed'], ['exk_not-a-real-key', 'bad_key']]) {
      await signIn(page, S.base, key, '/ui/inspect');
      const u = new URL(page.url());
      eq(u.pathname, '/ui/login', 'page after a refused sign-in');
      eq(u.searchParams.get('error'), code, 'error code in the URL');
      const msg = page.locator('#login-msg');
      check(await msg.isVisible(), 'no message shown for ' + code);
      const text = await msg.textContent();
      check(code === 'bad_key' ? /not recognised/.test(text) : /cannot sign in/.test(text), `message for ${code}: ${text}`);
      check(!(await sessionCookie(context)), 'a session cookie was set for a refused key');
      eq(await page.inputValue('#next'), '/ui/inspect', 'the return path kept for the next try');
    }
    // And a page needs a session: without one it goes to the sign-in form with `next`.
    await page.goto(S.base + '/ui/cases/' + T.A.case_id);
    const u = new URL(page.url());
    eq(u.pathname, '/ui/login', 'no-session redirect');
    eq(u.searchParams.get('next'), '/ui/cases/' + T.A.case_id, 'next after the redirect');
    await context.close();
  });

  // ---- warehouse station ----
  const wh = await newPage(browser, {width: 768, height: 1024});
  currentPages = [wh.page];

  await test('warehouse signs in at the station with an HttpOnly SameSite=Strict cookie', async () => {
    await signIn(wh.page, S.base, S.keys.warehouse);
    eq(new URL(wh.page.url()).pathname, '/ui/inspect', 'warehouse lands on');
    const c = await sessionCookie(wh.context);
    check(c, 'no exhibit_session cookie');
    check(c.httpOnly, 'cookie is not HttpOnly');
    eq(c.sameSite, 'Strict', 'cookie SameSite');
    const left = c.expires * 1000 - Date.now();
    check(c.expires > 0 && left > 7 * 3600_000 && left <= 8 * 3600_000 + 60_000, `cookie expiry ${left} ms from now, want about 8 hours`);
    check(!(await wh.page.evaluate(() => document.cookie.includes('exhibit_session'))), 'the cookie is readable from script');
    await wh.page.waitForSelector('#who');
    check(/Warehouse/.test(await wh.page.textContent('#who')), 'header does not say who is signed in');
  });

  await test('station finds the case by order id and shows the buyer claim and photos', async () => {
    const p = wh.page;
    await p.fill('#find-q', T.A.order_id);
    await p.click('#find-go');
    await p.waitForSelector('#work:not([hidden])');
    eq(await p.textContent('#claim-order'), T.A.order_id, 'order shown');
    eq(await p.textContent('#claim-reason'), 'Arrived damaged', 'reason in words');
    eq(await p.textContent('#claim-desc'), 'Screen cracked on arrival; box was dented.', 'description');
    eq(await p.locator('#buyer-photos img').count(), 2, 'buyer thumbnails');
    await waitImagesLoaded(p, '#buyer-photos img', 'buyer thumbnails');
    // and by case id, too
    await p.fill('#find-q', T.A.case_id);
    await p.click('#find-go');
    await p.waitForFunction((id) => document.querySelector('#claim-case')?.textContent === id, T.A.case_id);
  });

  await test('station uploads two photos with progress; a dropped upload is retried; verdicts shown', async () => {
    const p = wh.page;
    await p.selectOption('#grade', 'damaged');
    const notes = 'Outer box crushed on one corner.\nScreen cracked top left; serial matches the order.';
    await p.fill('#notes', notes);
    // The first upload request is cut off at the network level: that photo must show an
    // error with a Retry button, keep its file, and store on retry.
    let dropped = 0;
    await p.route('**/v1/cases/*/evidence', (route) => {
      if (dropped === 0) {
        dropped++;
        return route.abort('connectionreset');
      }
      return route.continue();
    });
    await p.setInputFiles('#photo-input', [path.join(PHOTOS, WH1), path.join(PHOTOS, WH2)]);
    const failedRow = p.locator('#uploads .upload[data-state="failed"]');
    await failedRow.waitFor();
    check(/interrupted|cannot be reached/.test(await failedRow.locator('.upload-error').textContent()), 'no network error message');
    await p.locator('#uploads .upload[data-state="stored"]').first().waitFor();
    await failedRow.locator('button.retry').click();
    await p.waitForFunction(() => document.querySelectorAll('#uploads .upload[data-state="stored"]').length === 2, null, {timeout: 60_000});
    await p.unroute('**/v1/cases/*/evidence');
    eq(await p.inputValue('#notes'), notes, 'notes after the failed upload');
    eq(await p.inputValue('#grade'), 'damaged', 'grade after the failed upload');

    const row = (name) => p.locator('#uploads .upload', {hasText: name});
    // WH2 has no EXIF at all (exiftool: no make, model or date).
    check(EXP[WH2].make === '' && EXP[WH2].datetime_original === '', 'reference data changed for ' + WH2);
    await row(WH2).locator('[data-flag="no_camera_metadata"]').waitFor();
    eq(await row(WH2).locator('[data-flag="no_camera_metadata"]').textContent(), 'no camera metadata — possibly a screenshot or download', 'flag wording');
    // WH1 was taken after delivery and has GPS: location recorded, never shown to a warehouse.
    check(exifMs(EXP[WH1].datetime_original) > deliveredA && EXP[WH1].gps_lat !== '', 'reference data changed for ' + WH1);
    await row(WH1).locator('[data-flag="gps_present"]').waitFor();
    eq(await row(WH1).locator('[data-flag="gps_present"]').textContent(), 'location recorded', 'gps flag wording');
    eq(await row(WH1).locator('[data-flag="taken_before_delivery"]').count(), 0, 'a photo taken after delivery flagged as before');
    const lat = Number(EXP[WH1].gps_lat).toFixed(3);
    check(!(await p.textContent('main')).includes(lat), 'the station shows a GPS coordinate to a warehouse session');
    await waitImagesLoaded(p, '#uploads .upload[data-state="stored"] img', 'stored photo thumbnails');
    const c = await S.api('GET', '/v1/cases/' + T.A.case_id, {key: S.keys.mediator});
    const stored = c.data.evidence.filter((e) => e.source === 'warehouse');
    eq(stored.length, 2, 'warehouse evidence on the case after the uploads');
    T.whIds = stored.map((e) => e.evidence_id).sort();
  });

  await test('a refused photo shows the server message and can be retried or removed', async () => {
    const p = wh.page;
    // What the server says about this file, asked directly (the page must show exactly that).
    const fd = new FormData();
    fd.append('file', new Blob([fs.readFileSync(path.join(PHOTOS, TIFF))]), TIFF);
    const direct = await S.api('POST', `/v1/cases/${T.A.case_id}/evidence`, {key: S.keys.warehouse, form: fd});
    eq(direct.status, 415, 'TIFF upload status');
    await p.setInputFiles('#photo-input', path.join(PHOTOS, TIFF));
    const row = p.locator('#uploads .upload[data-state="failed"]', {hasText: TIFF});
    await row.waitFor();
    const text = await row.locator('.upload-error').textContent();
    check(text.includes(direct.data.error.message), `page says ${JSON.stringify(text)}, server said ${JSON.stringify(direct.data.error.message)}`);
    check(await row.locator('button.retry').isEnabled(), 'no usable Retry button');
    // Submitting now is held back, with the reason, and nothing typed is lost.
    await p.click('#submit-inspection');
    check(/not stored/.test(await p.textContent('#inspect-msg')), 'submit with a refused photo was not held back');
    await row.locator('button.remove').click();
    eq(await p.locator('#uploads .upload[data-state="failed"]').count(), 0, 'refused photo still listed after Remove');
  });

  await test('a reload keeps the case, the notes, the grade and the stored photos', async () => {
    const p = wh.page;
    const notes = await p.inputValue('#notes');
    await p.reload();
    await p.waitForSelector('#work:not([hidden])');
    eq(await p.textContent('#claim-case'), T.A.case_id, 'case after reload');
    eq(await p.inputValue('#notes'), notes, 'notes after reload');
    eq(await p.inputValue('#grade'), 'damaged', 'grade after reload');
    eq(await p.locator('#uploads .upload[data-state="stored"]').count(), 2, 'stored photos listed after reload');
    for (const f of [WH1, WH2]) eq(await p.locator('#uploads .upload .name', {hasText: f}).count(), 1, `file name ${f} after reload`);
    check((await p.textContent('#submit-inspection')).includes('2 photos'), 'submit button does not count 2 photos');
  });

  await test('station at 768 px has no sideways scrolling; screenshot', async () => {
    const p = wh.page;
    const w = await p.evaluate(() => document.documentElement.scrollWidth);
    check(w <= 768, `page is ${w} px wide at a 768 px viewport`);
    const box = await p.locator('#submit-inspection').boundingBox();
    check(box && box.x >= 0 && box.x + box.width <= 768 && box.height >= 40, 'submit button off screen or too small to tap');
    const s = shot('inspect.png');
    await p.screenshot({path: s.path, fullPage: true});
    s.copy();
  });

  await test('station records grade + notes with both photos linked', async () => {
    const p = wh.page;
    await p.click('#submit-inspection');
    await p.waitForSelector('#done:not([hidden])');
    check(/2 photos attached/.test(await p.textContent('#done-text')), 'confirmation does not mention 2 photos');
    const c = await S.api('GET', '/v1/cases/' + T.A.case_id, {key: S.keys.mediator});
    eq(c.data.inspections.length, 1, 'inspections on the case');
    const i = c.data.inspections[0];
    eq(i.grade, 'damaged', 'stored grade');
    // Browsers send form text with CRLF line breaks (HTML's multipart encoding).
    eq(String(i.notes).replace(/\r\n/g, '\n'), 'Outer box crushed on one corner.\nScreen cracked top left; serial matches the order.', 'stored notes');
    eq(JSON.stringify([...(i.evidence_ids || [])].sort()), JSON.stringify(T.whIds), 'photos linked to the inspection');
    // The draft is gone once recorded.
    eq(await p.evaluate(() => Object.keys(sessionStorage).filter((k) => k.startsWith('exhibit.inspect')).length), 0, 'drafts left in sessionStorage');
  });

  await test('a warehouse session gets 403 on the mediator page', async () => {
    const r = await wh.page.goto(S.base + '/ui/cases/' + T.A.case_id);
    eq(r.status(), 403, 'status of /ui/cases/{id} for a warehouse session');
    const r2 = await wh.page.goto(S.base + '/ui/cases');
    eq(r2.status(), 403, 'status of /ui/cases for a warehouse session');
  });

  await test('CSRF: a cookie without the X-CSRF-Token header cannot change anything', async () => {
    const p = wh.page;
    await p.goto(S.base + '/ui/inspect');
    await p.waitForSelector('body[data-ready]');
    // Same-origin script without the header.
    const st = await p.evaluate(async (id) => {
      const fd = new FormData();
      fd.append('grade', 'used');
      fd.append('notes', 'forged');
      const r = await fetch(`/v1/cases/${id}/inspections`, {method: 'POST', body: fd, credentials: 'same-origin'});
      return {status: r.status, body: await r.text()};
    }, T.A.case_id);
    eq(st.status, 403, 'POST with the cookie but no CSRF header');
    check(st.body.includes('csrf_failed'), 'error code is not csrf_failed: ' + st.body.slice(0, 200));
    // The browser context's own request API sends the cookie too, also refused.
    const r = await wh.context.request.post(S.base + '/ui/logout', {maxRedirects: 0});
    eq(r.status(), 403, 'POST /ui/logout without the CSRF header');
    // A form on another site posting to us: the cookie must not ride along (SameSite) and
    // there is no token, so nothing is stored.
    await p.route('http://evil.example/**', (route) => route.fulfill({contentType: 'text/html', body:
      `<form method="post" action="${S.base}/v1/cases/${T.A.case_id}/inspections" enctype="multipart/form-data">` +
      '<input name="grade" value="as_new"><input name="notes" value="forged"></form>' +
      '<script>document.forms[0].submit()</script>'}));
    await p.goto('http://evil.example/');
    await p.waitForURL((u) => u.href.startsWith(S.base), {timeout: 10_000}).catch(() => {});
    await p.unroute('http://evil.example/**');
    const c = await S.api('GET', '/v1/cases/' + T.A.case_id, {key: S.keys.mediator});
    eq(c.data.inspections.length, 1, 'inspections after forged requests');
    const me = await p.evaluate(async () => (await fetch('/v1/session')).status);
    eq(me, 200, 'the session survived the forged logout');
  });

  await test('sign-out ends the session on the server, not only in the browser', async () => {
    const p = wh.page;
    await p.goto(S.base + '/ui/inspect');
    await p.waitForSelector('#sign-out');
    const before = await sessionCookie(wh.context);
    check(before, 'no session cookie before sign-out');
    await Promise.all([p.waitForURL((u) => u.pathname === '/ui/login'), p.click('#sign-out')]);
    check(/signed out/.test(await p.textContent('#login-msg')), 'no signed-out message');
    check(!(await sessionCookie(wh.context)), 'cookie still set after sign-out');
    const replay = await S.api('GET', '/v1/session', {cookie: `exhibit_session=${before.value}`});
    eq(replay.status, 401, 'the old cookie replayed after sign-out');
    const r = await p.goto(S.base + '/ui/inspect');
    eq(new URL(p.url()).pathname, '/ui/login', 'page after sign-out');
    check(r.ok(), 'sign-in page did not load');
  });
  await wh.context.close();

  // ---- mediator review ----
  const md = await newPage(browser, {width: 1366, height: 900});
  currentPages = [md.page];
  const card = (id) => md.page.locator(`article.photo[data-evidence-id="${id}"]`);

  await test('mediator signs in to the case and sees buyer and warehouse photos side by side', async () => {
    const p = md.page;
    await signIn(p, S.base, S.keys.mediator, '/ui/cases/' + T.A.case_id);
    eq(new URL(p.url()).pathname, '/ui/cases/' + T.A.case_id, 'mediator lands on');
    await p.waitForSelector('#case:not([hidden])');
    eq(await p.textContent('#case-title'), 'Order ' + T.A.order_id, 'title');
    eq(await p.textContent('#fact-reason'), 'Arrived damaged', 'reason');
    eq(await p.textContent('#fact-payer'), 'seller', 'who pays return shipping (damaged: seller)');
    eq(await p.locator('#photos-buyer article.photo').count(), 2, 'buyer photos');
    eq(await p.locator('#photos-warehouse article.photo').count(), 2, 'warehouse photos');
    const b = await p.locator('#col-buyer').boundingBox();
    const w = await p.locator('#col-warehouse').boundingBox();
    check(b && w && Math.abs(b.y - w.y) < 2 && b.x + b.width <= w.x, 'buyer and warehouse columns are not side by side');
    await waitImagesLoaded(p, '#evidence article.photo .photo-btn img', 'evidence thumbnails');
  });

  await test('each photo shows capture time, camera, flags in plain words and location', async () => {
    const p = md.page;
    await p.waitForSelector('body[data-extras]');
    const ip = card(T.iphone.evidence_id);
    const e = EXP[IPHONE];
    const [d, t] = e.datetime_original.split(' ');
    check((await ip.locator('.meta .taken').textContent()).startsWith(`${d.replace(/:/g, '-')} ${t.slice(0, 5)}`), 'capture time');
    eq(await ip.locator('.meta .camera').textContent(), `${e.make} ${e.model}`, 'camera');
    eq(await ip.locator('[data-flag="taken_before_delivery"]').textContent(), 'taken 2 days before delivery', 'before-delivery wording');
    eq(await ip.locator('[data-flag="gps_present"]').textContent(), 'location recorded', 'gps wording');
    const [lat, lon] = (await ip.locator('.meta .location').textContent()).split(',').map(Number);
    check(Math.abs(lat - Number(e.gps_lat)) < 1e-4 && Math.abs(lon - Number(e.gps_lon)) < 1e-4, `location ${lat},${lon} vs exiftool ${e.gps_lat},${e.gps_lon}`);
    const re = card(T.reusedInA.evidence_id);
    check(/Photoshop/.test(EXP[REUSED].software), 'reference data changed for ' + REUSED);
    eq(await re.locator('[data-flag="edited_software"]').textContent(), 'edited with Photoshop', 'editor wording');
    const days = Math.floor((deliveredA - exifMs(EXP[REUSED].datetime_original)) / DAY);
    const txt = await re.locator('[data-flag="taken_before_delivery"]').textContent();
    check(txt.startsWith(`taken ${days} days`) && txt.endsWith('before delivery'), `before-delivery wording (reused): ${txt}`);
    eq(await re.locator('[data-flag="reused_exact"]').count(), 1, 'reused flag');
  });

  await test('a reused photo shows both images, the distance and a link to the other case', async () => {
    const p = md.page;
    const m = card(T.reusedInA.evidence_id).locator(`.match[data-match-case="${T.B.case_id}"]`);
    eq(await m.count(), 1, 'match to the other case');
    eq(await m.getAttribute('data-match-evidence'), T.reusedInB.evidence_id, 'matched evidence');
    check(/exact copy · distance 0/.test(await m.locator('.match-text').textContent()), 'kind and distance not shown');
    const imgs = m.locator('.pair img');
    eq(await imgs.count(), 2, 'images in the pair');
    await p.waitForFunction((sel) => Array.from(document.querySelectorAll(sel)).every((i) => i.complete && i.naturalWidth > 0),
      `article.photo[data-evidence-id="${T.reusedInA.evidence_id}"] .match .pair img`);
    const [a, b] = [await imgs.nth(0).boundingBox(), await imgs.nth(1).boundingBox()];
    check(Math.abs(a.y - b.y) < 2 && a.x + a.width <= b.x, 'the pair is not next to each other');
    eq(await m.locator('a.case-link').getAttribute('href'), '/ui/cases/' + T.B.case_id, 'link to the other case');
    // The earlier case sees the later reuse as well (`matched_by`, and /similar).
    await p.goto(S.base + '/ui/cases/' + T.B.case_id);
    await p.waitForSelector('body[data-extras]');
    eq(await card(T.reusedInB.evidence_id).locator(`.match[data-match-case="${T.A.case_id}"]`).count(), 1, 'match seen from the earlier case');
    await p.goto(S.base + '/ui/cases/' + T.A.case_id);
    await p.waitForSelector('body[data-extras]');
  });

  await test('a cropped copy outlines the part the two photos share', async () => {
    const p = md.page;
    const crop = path.join(os.tmpdir(), `exhibit-ui-crop-${run}.jpg`);
    // The middle of a 1800x1200 photo: 900x700 from (700, 300).
    execFileSync('vips', ['crop', path.join(PHOTOS, 'recurser_Landscape_1.jpg'), crop, '700', '300', '900', '700']);
    const D = await S.openCase({order_id: `UI-${run}-D`, buyer_id: 'b-ui-bob', seller_id: 's-2', reason: 'damaged',
      category: 'home', delivered_at: iso(deliveredA - 20 * DAY), opened_at: iso(deliveredA - 19 * DAY)});
    await S.upload(D.case_id, S.keys.buyer2, 'recurser_Landscape_1.jpg');
    const E = await S.openCase({order_id: `UI-${run}-E`, buyer_id: 'b-ui-alice', seller_id: 's-2', reason: 'damaged',
      category: 'home', delivered_at: iso(deliveredA), opened_at: iso(deliveredA + DAY)});
    const copy = await S.upload(E.case_id, S.keys.buyer, 'crop.jpg', fs.readFileSync(crop));
    fs.rmSync(crop, {force: true});
    await p.goto(S.base + '/ui/cases/' + E.case_id);
    await p.waitForSelector('body[data-extras]');
    const m = card(copy.evidence_id).locator(`.match[data-match-case="${D.case_id}"]`);
    eq(await m.count(), 1, 'near match to the other case');
    eq(await m.locator('.overlap').count(), 2, 'outlines on both thumbnails');
    await waitImagesLoaded(p, `article.photo[data-evidence-id="${copy.evidence_id}"] .match img`, 'match thumbnails');
    const whole = await m.locator('.outlined').nth(1).locator('img').boundingBox();
    const part = await m.locator('.overlap').nth(1).boundingBox();
    // On the original the outline is about the middle half (0.39-0.89 across, 0.25-0.83 down).
    check(part.x > whole.x + whole.width * 0.3 && part.x + part.width < whole.x + whole.width * 0.95 &&
      part.y > whole.y + whole.height * 0.15 && part.y + part.height < whole.y + whole.height * 0.92,
      `outline ${JSON.stringify(part)} is not the cropped part of ${JSON.stringify(whole)}`);
    check(/shared part outlined: \d+% of this photo, \d+% of the other/.test(await m.locator('.match-text').textContent()),
      'the outline is not described in words');
    await p.goto(S.base + '/ui/cases/' + T.A.case_id);
    await p.waitForSelector('body[data-extras]');
  });

  await test('clicking a photo opens two previews side by side', async () => {
    const p = md.page;
    await card(T.iphone.evidence_id).locator('.photo-btn').click();
    await p.waitForSelector('#compare[open]');
    await waitImagesLoaded(p, '#compare .pane img', 'compare previews');
    const [a, b] = [await p.locator('#compare-a').boundingBox(), await p.locator('#compare-b').boundingBox()];
    check(a.width > 400 && b.width > 400 && a.x + a.width <= b.x + 1, 'previews are not side by side at a usable size');
    check((await p.getAttribute('#compare-a', 'src')).endsWith(`/v1/evidence/${T.iphone.evidence_id}/preview`), 'left is not the clicked photo');
    const right = await p.getAttribute('#compare-b', 'src');
    check(T.whIds.some((id) => right.endsWith(`/v1/evidence/${id}/preview`)), 'right is not a warehouse photo');
    // The preview is the large derivative, not the thumbnail.
    const nat = await p.evaluate(() => Math.max(document.querySelector('#compare-a').naturalWidth, document.querySelector('#compare-a').naturalHeight));
    check(nat > 256, `preview long side ${nat} px: the thumbnail, not the preview`);
    // Pick another right-hand photo from the strip, then close.
    await p.locator('#compare-strip .strip-btn').nth(1).click();
    check((await p.getAttribute('#compare-b', 'src')).endsWith(`/v1/evidence/${T.reusedInA.evidence_id}/preview`), 'strip did not change the right side');
    await p.screenshot({path: path.join(ARTIFACTS, 'compare.png')});
    await p.click('#compare-close');
    check(!(await p.locator('#compare[open]').count()), 'compare view did not close');
  });

  await test('the decision is recorded and shows on the timeline', async () => {
    const p = md.page;
    await p.selectOption('#outcome', 'refund_partial');
    await p.fill('#amount', '12.5');
    const why = 'Damage in the warehouse photos matches the claim; one buyer photo was reused from another case.';
    await p.fill('#rationale', why);
    // A reload (or a sign-in round trip) keeps the half-written decision.
    await p.reload();
    await p.waitForSelector('#decision-form:not([hidden])');
    eq(await p.inputValue('#outcome'), 'refund_partial', 'outcome after reload');
    eq(await p.inputValue('#amount'), '12.5', 'amount after reload');
    eq(await p.inputValue('#rationale'), why, 'rationale after reload');
    await p.click('#decide');
    await p.waitForSelector('#timeline li[data-kind="decision"]');
    const dec = p.locator('#timeline li[data-kind="decision"]');
    check((await dec.textContent()).includes('Partial refund (12.50)'), 'outcome and amount not on the timeline');
    check((await dec.textContent()).includes(why), 'rationale not on the timeline');
    eq(await p.textContent('#case-status'), 'decided', 'status badge');
    check(await p.locator('#decision-form').isHidden(), 'decision form still offered');
    const kinds = await p.locator('#timeline li').evaluateAll((ls) => ls.map((l) => l.dataset.kind));
    for (const k of ['delivered', 'opened', 'window', 'upload', 'inspection', 'decision']) check(kinds.includes(k), `timeline has no ${k} entry`);
    eq(kinds.filter((k) => k === 'upload').length, 4, 'upload entries');
    check(kinds.indexOf('delivered') < kinds.indexOf('opened') && kinds.indexOf('inspection') < kinds.indexOf('decision'), 'timeline out of order: ' + kinds.join(','));
    const c = await S.api('GET', '/v1/cases/' + T.A.case_id, {key: S.keys.mediator});
    eq(c.data.status, 'decided', 'case status in the API');
    eq(c.data.decision && c.data.decision.outcome, 'refund_partial', 'decision in the API');
    eq(Number(c.data.decision.amount), 12.5, 'amount in the API');
    const s = shot('case.png');
    await p.screenshot({path: s.path, fullPage: true});
    s.copy();
    // On a 768 px tablet the two sides still stand next to each other, without sideways scrolling.
    await p.setViewportSize({width: 768, height: 1024});
    const w = await p.evaluate(() => document.documentElement.scrollWidth);
    check(w <= 768, `review page is ${w} px wide at 768 px`);
    const [b, h] = [await p.locator('#col-buyer').boundingBox(), await p.locator('#col-warehouse').boundingBox()];
    check(Math.abs(b.y - h.y) < 2 && b.x + b.width <= h.x, 'sides not next to each other at 768 px');
    await p.screenshot({path: path.join(ARTIFACTS, 'case-768.png'), fullPage: true});
    await p.setViewportSize({width: 1366, height: 900});
  });

  await test('the cases page opens a case by order id', async () => {
    const p = md.page;
    await p.goto(S.base + '/ui/cases');
    await p.fill('#open-q', T.B.order_id);
    await Promise.all([p.waitForURL((u) => u.pathname === '/ui/cases/' + T.B.case_id), p.click('#open-go')]);
    await p.waitForSelector('#case:not([hidden])');
    const r = await p.goto(S.base + '/ui/inspect');
    eq(r.status(), 403, 'a mediator session on the station');
  });

  await test('case text and EXIF Software containing <script> render as text', async () => {
    const p = md.page;
    const payload = '<script>window.__xss=1</script>';
    const desc = `Broken ${payload}<img src=x onerror="window.__xss=2"> & "quoted"`;
    const X = await S.openCase({order_id: `UI-${run}-X`, buyer_id: 'b-ui-alice', seller_id: 's-1', reason: 'wrong_item',
      category: 'toys', delivered_at: iso(Date.now() - 2 * DAY), description: desc});
    // A real photo whose EXIF Software tag is the payload, made with exiftool at test time.
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'exhibit-xss-'));
    const crafted = path.join(tmp, 'crafted.jpg');
    fs.copyFileSync(path.join(PHOTOS, 'drewnoakes_HTC Desire.jpg'), crafted);
    execFileSync('exiftool', ['-q', '-overwrite_original', `-Software=${payload}`, crafted]);
    check(execFileSync('exiftool', ['-s3', '-Software', crafted], {encoding: 'utf8'}).trim() === payload, 'exiftool did not write the tag');
    const item = await S.upload(X.case_id, S.keys.buyer, 'crafted.jpg', fs.readFileSync(crafted));
    fs.rmSync(tmp, {recursive: true, force: true});
    eq(item.exif && item.exif.software, payload, 'Software as stored by the server');
    await p.goto(S.base + '/ui/cases/' + X.case_id);
    await p.waitForSelector('body[data-extras]');
    eq(await p.textContent('#case-desc'), desc, 'description text');
    eq(await p.locator('#case-desc *').count(), 0, 'elements created from the description');
    const sw = card(item.evidence_id).locator('.meta .software');
    eq(await sw.textContent(), payload, 'Software text');
    check(await sw.isVisible(), 'Software text not visible');
    eq(await sw.locator('*').count(), 0, 'elements created from the Software tag');
    // "All recorded metadata" shows it again, also as text.
    await card(item.evidence_id).locator('details.all-meta summary').click();
    await card(item.evidence_id).locator('table.kv').waitFor();
    check((await card(item.evidence_id).locator('table.kv').textContent()).includes(payload), 'payload not in the metadata table');
    eq(await card(item.evidence_id).locator('table.kv script, table.kv img').count(), 0, 'elements created in the metadata table');
    eq(await p.evaluate(() => typeof window.__xss), 'undefined', 'window.__xss on the review page');
    // The warehouse station shows the same description as text.
    const w = await newPage(browser, {width: 768, height: 1024});
    currentPages = [p, w.page];
    await signIn(w.page, S.base, S.keys.warehouse);
    await w.page.fill('#find-q', X.case_id);
    await w.page.click('#find-go');
    await w.page.waitForSelector('#work:not([hidden])');
    eq(await w.page.textContent('#claim-desc'), desc, 'description at the station');
    eq(await w.page.locator('#claim-desc *').count(), 0, 'elements created at the station');
    eq(await w.page.evaluate(() => typeof window.__xss), 'undefined', 'window.__xss at the station');
    await w.context.close();
    currentPages = [p];
  });

  await test('no script errors or CSP violations on any page', async () => {
    check(pageErrors.length === 0, pageErrors.slice(0, 5).join('\n'));
  });
  await md.context.close();

  return finish(S, browser);
}

async function finish(S, browser) {
  currentPages = [];
  if (browser) await browser.close().catch(() => {});
  if (S.proc) {
    await test('server stops cleanly and its log has no sanitizer report', async () => {
      const {code, signal} = await S.stop();
      check(code === 0, `server exit ${code ?? signal}`);
      const log = fs.readFileSync(S.logPath, 'utf8');
      const m = SANITIZER.exec(log);
      check(!m, `sanitizer report in ${S.logPath}: ${m && log.slice(m.index, m.index + 300)}`);
    });
  }
  if (S.dir && !failed) fs.rmSync(S.dir, {recursive: true, force: true});
  else if (S.dir) console.log(`# data directory kept: ${S.dir}`);
  console.log(`browser: ${passed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}

main().catch((err) => {
  console.log('not ok suite: ' + ((err && err.stack) || err));
  console.log(`browser: ${passed} passed, ${failed + 1} failed`);
  process.exitCode = 1;
});
