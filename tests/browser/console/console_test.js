#!/usr/bin/env node
/* Browser test of the commanders' console (issue 10), end to end with the real stack.
 *
 * The stack comes from `deploy/local/ess up` (its own ESS_HOME, free ports, the build under
 * test: ESS_SKIP_BUILD=1), with ESS_ACK_TIMEOUT=5s so the time-to-take clock runs out within
 * the test. A commander is created with `essctl user add`; a team's LINE group is bound and a
 * citizen reports through line-emulator's control API, as people do in the LINE app. Debian's
 * headless Chromium (playwright-core, executablePath /usr/bin/chromium) then proves:
 *   - the login form signs the commander in;
 *   - a new case appears on the live board and as a map pin, without a reload (SSE);
 *   - its time-to-take clock turns red once ESS_ACK_TIMEOUT has passed;
 *   - a responder taking it in LINE updates the board (status and who took it);
 *   - the case drawer shows the masked phone; "reveal" with a reason shows the number;
 *   - `ess demo` plays its citizens and responder: their cases reach the open page, one is
 *     taken and one escalated; a screenshot of the board with the map goes to
 *     docs/console-board.png;
 *   - the CSV export downloads and parses, with the case, its status and nothing personal;
 *     the EIDO export names it;
 *   - the language toggle is remembered across a reload.
 *
 * Environment: ESS_SOURCE_DIR, ESS_BUILD_DIR (set by CTest). ESS_TEST_KEEP_HOME=1 keeps the
 * stack's directory (and logs) after the run. ESS_SCREENSHOT overrides the screenshot path. */
'use strict';

const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const SOURCE = process.env.ESS_SOURCE_DIR || path.resolve(__dirname, '../../..');
const BUILD = process.env.ESS_BUILD_DIR;
const ESS = path.join(SOURCE, 'deploy/local/ess');
const CHROMIUM = process.env.ESS_CHROMIUM || '/usr/bin/chromium';
const SCREENSHOT = process.env.ESS_SCREENSHOT || path.join(SOURCE, 'docs/console-board.png');
const ACK_TIMEOUT_S = 5;
const WAIT_MS = 30000;
const CHIANG_MAI = { lat: 18.8032, lon: 98.9514 }; // not where `ess demo` reports
const OFFICER_NAME = 'ร.ต.อ. ทดสอบ หน้าจอ';
const PHONE = '0812345678';

const started = Date.now();
let passed = 0;
function ok(what) {
  passed += 1;
  console.log(`ok ${passed} - ${what} (${((Date.now() - started) / 1000).toFixed(1)}s)`);
}

// ---- processes -----------------------------------------------------------------------------

function run(file, args, options = {}) {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, {
      env: options.env || process.env, timeout: options.timeout || 180000, maxBuffer: 16 << 20
    }, (error, stdout, stderr) => {
      if (error) {
        error.message += `\n--- stdout\n${stdout}\n--- stderr\n${stderr}`;
        reject(error);
      } else {
        resolve({ stdout, stderr });
      }
    });
    if (options.input !== undefined) child.stdin.end(options.input);
  });
}

// Ports below the kernel's ephemeral range (32768-60999), as deploy/local/lib.sh and
// testkit choose them: a port from that range can be taken by any outgoing connection before
// the stack's service binds it (seen in CI: the console could not listen).
const handedOut = new Set();
function portFree(port) {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

async function freePort() {
  for (let attempt = 0; attempt < 2000; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 12768);
    if (handedOut.has(port)) continue;
    if (await portFree(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no free TCP port in 20000-32767');
}

function readKv(file) {
  const values = {};
  if (!fs.existsSync(file)) return values;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const match = /^(ESS_[A-Z0-9_]+)=(.*)$/.exec(line);
    if (match) values[match[1]] = match[2];
  }
  return values;
}

function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

async function waitFor(what, probe, timeoutMs = WAIT_MS) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (last) return last;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
    }
    await sleep(100);
  }
}

// ---- the stack -----------------------------------------------------------------------------

const stack = { home: '', env: null, emulator: '', console: '' };

async function stackUp() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ess-browser-'));
  fs.chmodSync(tmp, 0o755); // PostgreSQL runs as its own user and must pass through
  stack.tmp = tmp;
  stack.home = path.join(tmp, 'home');
  const env = {};
  // A developer's shell may carry another stack's addresses and secrets.
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('ESS_') || key === 'ESS_SOURCE_DIR' || key.startsWith('ESS_TEST_')) env[key] = value;
  }
  Object.assign(env, {
    ESS_HOME: stack.home,
    ESS_SKIP_BUILD: '1',
    ESS_BUILD_DIR: BUILD,
    ESS_UP_TIMEOUT: '90',
    ESS_STOP_TIMEOUT: '20',
    ESS_ACK_TIMEOUT: `${ACK_TIMEOUT_S}s`,
    ESS_NATS_URL: `nats://127.0.0.1:${await freePort()}`,
    ESS_NATS_MONITOR_PORT: String(await freePort()),
    ESS_PG_DSN: `postgresql://ess@127.0.0.1:${await freePort()}/ess`
  });
  for (const name of ['INGRESS', 'CONSOLE', 'CONVERSATION', 'GEOROUTER', 'NOTIFIER', 'AUDIT', 'EMULATOR']) {
    env[`ESS_${name}_LISTEN`] = `127.0.0.1:${await freePort()}`;
  }
  stack.env = env;
  stack.emulator = `http://${env.ESS_EMULATOR_LISTEN}/_emulator`;
  stack.console = `http://${env.ESS_CONSOLE_LISTEN}`;
  await run(ESS, ['up'], { env, timeout: 150000 });
  // essctl gets what the services get: the owner's DSN and the stack's secrets.
  stack.essctlEnv = { ...env, ...readKv(path.join(stack.home, 'stack.env')), ...readKv(path.join(stack.home, 'secrets.env')) };
}

async function stackDown() {
  if (!stack.env) return;
  try {
    await run(ESS, ['down'], { env: stack.env, timeout: 120000 });
  } catch (error) {
    console.error(`ess down: ${error.message}`);
  }
  if (process.env.ESS_TEST_KEEP_HOME === '1') console.error(`stack directory kept: ${stack.tmp}`);
  else fs.rmSync(stack.tmp, { recursive: true, force: true });
}

function dumpLogs() {
  const dir = path.join(stack.home, 'log');
  if (!stack.home || !fs.existsSync(dir)) return;
  for (const file of fs.readdirSync(dir)) {
    const lines = fs.readFileSync(path.join(dir, file), 'utf8').trimEnd().split('\n');
    console.error(`--- ${file}\n${lines.slice(-25).join('\n')}`);
  }
}

function essctl(args, input) {
  return run(path.join(BUILD, 'bin/essctl'), args, { env: stack.essctlEnv, input });
}

// ---- LINE, through the emulator ------------------------------------------------------------

async function emu(method, route, body, want) {
  const response = await fetch(stack.emulator + route, {
    method,
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  });
  const text = await response.text();
  if (want !== undefined && response.status !== want) {
    throw new Error(`${method} ${route}: ${response.status} (want ${want}): ${text}`);
  }
  return text ? JSON.parse(text) : null;
}

async function botMessages(chat) {
  const answer = await emu('GET', `/conversations/${chat}?after=0&limit=100000`, undefined, 200);
  return answer.entries.filter((entry) => entry.direction === 'out')
    .map((entry) => ({ seq: entry.seq, json: JSON.stringify(entry.message) }));
}

async function waitBot(chat, needle, count = 1) {
  return waitFor(`${count} bot message(s) with "${needle}" in ${chat.slice(0, 10)}…`, async () => {
    const found = (await botMessages(chat)).filter((m) => needle === null || m.json.includes(needle));
    return found.length >= count ? found[found.length - 1] : null;
  });
}

async function user(displayName) {
  return (await emu('POST', '/users', { displayName, language: 'th' }, 201)).userId;
}

/* A team's LINE group for a province: the bot joins, an officer types the invite code. */
async function bindGroup(officer, name, province) {
  const group = (await emu('POST', '/groups', { groupName: name, members: [officer] }, 201)).groupId;
  await emu('POST', `/groups/${group}/join`, {}, 202);
  await waitBot(group, '/ess bind');
  const { stdout } = await essctl(['team', 'invite', '--json', '--province', province]);
  const code = JSON.parse(stdout).code;
  await emu('POST', `/users/${officer}/text`, { text: `/ess bind ${code}`, groupId: group }, 202);
  await waitBot(group, 'ผูกกลุ่มนี้กับ');
  return group;
}

/* A citizen's report by taps: follow, a category, the location, the phone. */
async function report(citizen, categoryIndex, place, phone) {
  const before = (await botMessages(citizen)).length;
  await emu('POST', `/users/${citizen}/follow`, {}, 202);
  await waitBot(citizen, null, before + 2);
  await emu('POST', `/users/${citizen}/tap`, { index: categoryIndex }, 202);
  await waitBot(citizen, null, before + 3);
  await emu('POST', `/users/${citizen}/tap`, { index: 1, latitude: place.lat, longitude: place.lon }, 202);
  await waitBot(citizen, null, before + 4);
  await emu('POST', `/users/${citizen}/text`, { text: phone }, 202);
  const message = await waitBot(citizen, 'ESS-');
  const match = /ESS-\d{4}-\d{6}/.exec(message.json);
  assert.ok(match, `no case number in ${message.json}`);
  return match[0];
}

// ---- CSV -----------------------------------------------------------------------------------

function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(field); field = ''; }
    else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field); rows.push(row); row = []; field = '';
    } else field += c;
  }
  if (field !== '' || row.length > 0) { row.push(field); rows.push(row); }
  return rows;
}

// ---- the test ------------------------------------------------------------------------------

async function main() {
  assert.ok(BUILD, 'ESS_BUILD_DIR names the build under test');
  for (const binary of ['ess-console', 'essctl', 'line-emulator']) {
    assert.ok(fs.existsSync(path.join(BUILD, 'bin', binary)), `${binary} is not built in ${BUILD}/bin`);
  }
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: run deploy/install-deps (package chromium)`);
  const { chromium } = require('playwright-core');

  await stackUp();
  ok(`ess up: the stack runs (console ${stack.console})`);

  const password = `pw-${Math.random().toString(36).slice(2)}-${Date.now()}`;
  await essctl(['user', 'add', '--name', 'chief', '--role', 'commander', '--area', 'all', '--password-stdin'],
    `${password}\n`);
  const officer = await user(OFFICER_NAME);
  const citizen = await user('citizen browser');
  const group = await bindGroup(officer, 'ทีมสหวิชาชีพ เชียงใหม่', 'TH50');
  ok('a commander (essctl user add) and a bound TH50 group');

  const browser = await chromium.launch({ executablePath: CHROMIUM });
  let page;
  try {
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, acceptDownloads: true });
    page = await context.newPage();
    const pageErrors = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error' && !/401|Unauthorized/.test(message.text())) pageErrors.push(message.text());
    });

    // Log in.
    await page.goto(`${stack.console}/`);
    await page.waitForSelector('#login-form', { state: 'visible' });
    assert.equal(await page.getAttribute('html', 'lang'), 'th', 'Thai by default');
    await page.fill('#login-name', 'chief');
    await page.fill('#login-password', 'not the password');
    await page.click('#login-submit');
    await page.waitForSelector('#login-error', { state: 'visible', timeout: 15000 });
    await page.fill('#login-password', password);
    await page.click('#login-submit');
    await page.waitForSelector('body[data-live="open"][data-loaded="1"]', { timeout: 15000 });
    await page.waitForSelector('#live-map svg path.province');
    assert.equal(await page.locator('#live-map svg path.province').count() >= 77, true, '77 provinces drawn');
    ok('login (a wrong password refused first); the live board and the map are there');

    // Marks this document: a reload or a navigation would lose it.
    await page.evaluate(() => { window.essSameDocument = 'yes'; });
    const caseNumber = await report(citizen, 1, CHIANG_MAI, PHONE);
    const row = page.locator(`#board-body tr[data-case="${caseNumber}"]`);
    await row.waitFor({ timeout: 10000 });
    await page.locator(`#live-map circle.pin[data-case="${caseNumber}"]`).waitFor({ timeout: 5000 });
    assert.equal(await page.evaluate(() => window.essSameDocument), 'yes', 'no reload');
    assert.equal(await row.locator('.category [data-category]').getAttribute('data-category'), 'threat');
    assert.match(await row.locator('td.area').innerText(), /เชียงใหม่/);
    ok(`${caseNumber} appeared on the board and as a map pin without a reload`);

    // The time-to-take clock: not late at first, red after ESS_ACK_TIMEOUT.
    const clock = row.locator('.clock');
    await page.waitForFunction((number) => {
      const el = document.querySelector(`#board-body tr[data-case="${number}"] .clock`);
      // In one look: a case event (the escalation at the same timeout) may redraw the row,
      // and a detached element has no computed style.
      return el && el.getAttribute('data-late') === '1' && el.classList.contains('late') &&
        getComputedStyle(el).backgroundColor === 'rgb(198, 40, 40)';
    }, caseNumber, { timeout: (ACK_TIMEOUT_S + 10) * 1000 });
    ok(`its clock turned red past ${ACK_TIMEOUT_S}s (${await clock.innerText()})`);

    // A responder takes it from the card in the group.
    const card = await waitBot(group, caseNumber);
    const cards = (await botMessages(group)).filter((m) => m.json.includes(caseNumber) && m.json.includes('a=take'));
    assert.ok(cards.length > 0, 'the group got a card with a take button');
    await emu('POST', `/users/${officer}/tap`, { seq: cards[0].seq || card.seq, action: 1, groupId: group }, 202);
    await page.waitForFunction(([number, name]) => {
      const tr = document.querySelector(`#board-body tr[data-case="${number}"]`);
      return tr && tr.querySelector('.status [data-status]').getAttribute('data-status') === 'acknowledged' &&
        tr.querySelector('.taken-by').textContent.includes(name);
    }, [caseNumber, OFFICER_NAME], { timeout: 15000 });
    await page.locator(`#live-map circle.pin[data-case="${caseNumber}"][data-status="acknowledged"]`).waitFor({ timeout: 5000 });
    assert.equal(await page.evaluate(() => window.essSameDocument), 'yes', 'no reload');
    ok(`taken in LINE: the board shows "acknowledged" by ${OFFICER_NAME}, the pin turned blue`);

    // The drawer: the timeline, the masked phone, reveal with a reason.
    await row.click();
    await page.locator('#case-drawer .timeline li[data-kind="acknowledged"]').waitFor({ timeout: 10000 });
    const masked = await page.locator('#case-drawer .phone').innerText();
    assert.ok(!masked.includes(PHONE) && masked.endsWith(PHONE.slice(-3)), `masked phone: ${masked}`);
    await page.click('#reveal-phone');
    await page.fill('#reveal-reason', 'browser test: calling the reporter back');
    await page.click('#case-drawer .reveal-form button[type="submit"]');
    await page.locator('#case-drawer .phone[data-revealed="1"]').waitFor({ timeout: 10000 });
    assert.equal(await page.locator('#case-drawer .phone').innerText(), PHONE);
    await page.click('#case-close');
    ok('the case drawer: timeline, phone masked, revealed with a reason');

    // `ess demo`: three citizens, a responder; the open page follows.
    const demo = await run(ESS, ['demo'], { env: stack.env, timeout: 120000 });
    const demoOut = demo.stdout + demo.stderr;
    assert.ok(demoOut.includes(stack.console), `demo prints the console URL:\n${demoOut}`);
    const demoPassword = /password:\s*(\S+)/.exec(demoOut);
    assert.ok(/login:\s*demo\b/.test(demoOut) && demoPassword, `demo prints its login:\n${demoOut}`);
    const demoCases = [...new Set(demoOut.match(/ESS-\d{4}-\d{6}/g) || [])];
    assert.equal(demoCases.length, 3, `three demo cases:\n${demoOut}`);
    await page.waitForFunction((numbers) => numbers.every((n) => document.querySelector(`#board-body tr[data-case="${n}"]`)),
      demoCases, { timeout: 15000 });
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('#board-body tr[data-case]')];
      const taken = rows.filter((tr) => tr.querySelector('[data-status]').getAttribute('data-status') === 'acknowledged');
      const escalated = rows.filter((tr) => Number(tr.querySelector('.level').getAttribute('data-level')) > 0);
      return taken.length >= 2 && escalated.length >= 1;
    }, null, { timeout: (ACK_TIMEOUT_S + 20) * 1000 });
    const provinces = await page.$$eval('#board-body tr[data-case]', (rows) => rows.map((tr) => tr.querySelector('td.area').childNodes[0].textContent));
    assert.ok(new Set(provinces).size >= 3, `three provinces on the board: ${provinces}`);
    assert.equal(await page.evaluate(() => window.essSameDocument), 'yes', 'no reload');
    ok(`ess demo: ${demoCases.join(', ')} on the open board; one taken, one escalated`);

    // The screenshot for docs/: the live board with the map.
    await page.waitForTimeout(400); // the pins' zoom-independent size settles after layout
    fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT });
    ok(`screenshot ${path.relative(SOURCE, SCREENSHOT)}`);

    // The CSV export downloads and parses; the EIDO export names the case.
    await page.click('.nav-item[data-view="exports"]');
    await page.locator('#export-csv[href]').waitFor();
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-csv')]);
    assert.match(download.suggestedFilename(), /^ess-.*\.csv$/);
    const csv = fs.readFileSync(await download.path(), 'utf8');
    const rows = parseCsv(csv).filter((r) => r.length > 1);
    const header = rows[0];
    for (const column of ['case_number', 'category', 'status', 'province_code', 'reported_at', 'acknowledged_at', 'escalation_level']) {
      assert.ok(header.includes(column), `CSV column ${column} in ${header}`);
    }
    const record = rows.slice(1).map((r) => Object.fromEntries(header.map((name, i) => [name, r[i]])))
      .find((r) => r.case_number === caseNumber);
    assert.ok(record, `${caseNumber} in the CSV:\n${csv}`);
    assert.equal(record.status, 'acknowledged');
    assert.equal(record.category, 'threat');
    assert.equal(record.province_code, 'TH50');
    assert.ok(record.acknowledged_at, 'acknowledged_at in the CSV');
    assert.ok(!csv.includes(PHONE) && !csv.includes(citizen) && !csv.includes(OFFICER_NAME), 'the CSV is anonymous');
    const eido = await page.evaluate(async (number) => {
      const link = document.getElementById('export-eido').getAttribute('href');
      const response = await fetch(`${link}&case=${encodeURIComponent(number)}`);
      return { status: response.status, body: await response.text() };
    }, caseNumber);
    assert.equal(eido.status, 200, eido.body);
    const incidents = JSON.parse(eido.body);
    assert.ok(Array.isArray(incidents) && incidents.some((item) => JSON.stringify(item).includes(caseNumber)), eido.body);
    assert.ok(!eido.body.includes(PHONE), 'no phone in EIDO');
    ok(`CSV export downloaded (${rows.length - 1} cases) with ${caseNumber} acknowledged; EIDO names it`);

    // English, remembered across a reload.
    await page.click('#lang-toggle');
    assert.equal(await page.getAttribute('html', 'lang'), 'en');
    await page.reload();
    await page.waitForSelector('body[data-loaded="1"]', { timeout: 15000 });
    assert.equal(await page.getAttribute('html', 'lang'), 'en');
    assert.equal((await page.locator('.nav-item[data-view="live"]').innerText()).trim(), 'Live');
    ok('the language toggle (English) is remembered across a reload');

    // A phone screen (commanders in the field): one card per case, nothing wider than it.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.click('.nav-item[data-view="live"]');
    await page.locator(`#board-body tr[data-case="${caseNumber}"]`).waitFor({ state: 'visible', timeout: 10000 });
    const layout = await page.evaluate(() => ({
      overflow: document.documentElement.scrollWidth - window.innerWidth,
      header: getComputedStyle(document.querySelector('.board thead')).display,
    }));
    assert.equal(layout.header, 'none', 'no table header on a phone: the board is one card per case');
    assert.ok(layout.overflow <= 0, `nothing wider than the phone's screen (${layout.overflow}px over)`);
    ok('on a 390 px phone screen the board is one card per case and fits the screen');

    assert.deepEqual(pageErrors, [], 'no script error in the page');
  } catch (error) {
    if (page) {
      const failure = path.join(os.tmpdir(), `ess-browser-failure-${process.pid}.png`);
      await page.screenshot({ path: failure, fullPage: true }).catch(() => {});
      console.error(`screenshot of the failure: ${failure}`);
    }
    throw error;
  } finally {
    await browser.close();
  }
}

let stopping = false;
async function finish(code) {
  if (stopping) return;
  stopping = true;
  if (code !== 0) dumpLogs();
  await stackDown();
  console.log(`${passed} passed, ${code === 0 ? 0 : 1} failed in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  process.exit(code);
}
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => { finish(1); });

main().then(() => finish(0), (error) => {
  console.error(`FAIL: ${error.stack || error.message}`);
  finish(1);
});
