// The playground in a real browser: Debian's Chromium, headless, driven by playwright-core, against
// `target/release/colloquy serve` with the embedded models. A fake microphone plays WAV files made
// with `colloquy tts`. Builds nothing: run `scripts/test-browser`, which builds and fetches first.
//
// The page runs on @colloquy/client (clients/js), so these cases drive the library too. Cases: a
// spoken question gets a final transcript and an answer, with the latency waterfall (screenshots in
// target/playground.png and target/playground-phone.png); talking over a long answer marks it
// interrupted; a short-lived token is renewed (WHIP PATCH) and the call outlives it; a call whose
// connection the server drops joins again by itself and goes on; and readable messages when the
// microphone is refused, the token has expired, the playground is off and the server is unreachable.
//
// Environment: CHROMIUM (default /usr/bin/chromium), COLLOQUY_BIN (default target/release/colloquy),
// BROWSER_TEST_ONLY (a word of the names of the cases to run; default all).

import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = process.env.COLLOQUY_BIN || path.join(ROOT, 'target', 'release', 'colloquy');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TARGET = path.join(ROOT, 'target');
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'colloquy-browser-'));

// The models run on few cores: a turn can take several seconds.
const TURN_TIMEOUT_MS = 60_000;

const results = [];
const cleanups = [];

function log(message) {
  process.stderr.write(`  ${message}\n`);
}

// ---- the server ----

// Starts `colloquy serve` on free loopback ports and waits for its "listening" line (and, with
// media, for the models to be loaded, so that the first call's timing is the call's own).
async function startServer(name, { media = true, env = {} } = {}) {
  const dataDir = path.join(TMP, `${name}-data`);
  const childEnv = { ...process.env, RUST_LOG: 'info,sqlx=warn,str0m=warn,dimpl=warn', ...env };
  if (!('COLLOQUY_API_KEY' in env)) {
    delete childEnv.COLLOQUY_API_KEY;
    delete childEnv.COLLOQUY_API_SECRET;
  }
  const args = ['serve', '--http', '127.0.0.1:0', '--rtc-udp', '127.0.0.1:0', '--data-dir', dataDir];
  if (!media) args.push('--no-media');
  const child = spawn(BIN, args, { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const logFile = fs.createWriteStream(path.join(TARGET, `playground-${name}-server.log`));
  let stdout = '';
  let stderr = '';
  const server = { child, dataDir, exited: false };
  child.on('exit', () => {
    server.exited = true;
  });
  cleanups.push(() => stopServer(server));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} server: not ready within 120 s`)), 120_000);
    const check = () => {
      const listening = stdout.match(/colloquy listening on (http:\/\/\S+)/);
      const loaded = !media || /embedded models loaded/.test(stderr);
      if (/embedded models failed to load/.test(stderr)) {
        clearTimeout(timer);
        reject(new Error(`${name} server: the models failed to load; see target/playground-${name}-server.log`));
      }
      if (listening && loaded) {
        clearTimeout(timer);
        server.base = listening[1];
        resolve();
      }
    };
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      logFile.write(chunk);
      check();
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
      logFile.write(chunk);
      check();
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} server exited with ${code}; see target/playground-${name}-server.log`));
    });
  });
  return server;
}

async function stopServer(server) {
  if (server.exited) return;
  const exited = new Promise((resolve) => server.child.once('exit', resolve));
  server.child.kill('SIGTERM');
  const timer = setTimeout(() => server.child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

// The API credentials the server generated, from its data dir.
function credentials(server) {
  const text = fs.readFileSync(path.join(server.dataDir, 'credentials.toml'), 'utf8');
  const field = (name) => text.match(new RegExp(`^${name}\\s*=\\s*"([^"]*)"`, 'm'))[1];
  return `Basic ${Buffer.from(`${field('key')}:${field('secret')}`).toString('base64')}`;
}

async function api(server, method, route, body) {
  const response = await fetch(server.base + route, {
    method,
    headers: { Authorization: credentials(server), 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, json: await response.json() };
}

// ---- WAV files for the fake microphone ----

function readWav(file) {
  const buffer = fs.readFileSync(file);
  if (buffer.toString('ascii', 0, 4) !== 'RIFF' || buffer.toString('ascii', 8, 12) !== 'WAVE') {
    throw new Error(`${file} is not a WAV file`);
  }
  let offset = 12;
  let format = null;
  while (offset + 8 <= buffer.length) {
    const id = buffer.toString('ascii', offset, offset + 4);
    const size = buffer.readUInt32LE(offset + 4);
    const body = offset + 8;
    if (id === 'fmt ') {
      format = {
        encoding: buffer.readUInt16LE(body),
        channels: buffer.readUInt16LE(body + 2),
        rate: buffer.readUInt32LE(body + 4),
        bits: buffer.readUInt16LE(body + 14),
      };
    } else if (id === 'data') {
      if (!format || format.encoding !== 1 || format.bits !== 16 || format.channels !== 1) {
        throw new Error(`${file}: expected 16-bit PCM mono, found ${JSON.stringify(format)}`);
      }
      const samples = new Int16Array(Math.min(size, buffer.length - body) / 2);
      for (let i = 0; i < samples.length; i++) samples[i] = buffer.readInt16LE(body + 2 * i);
      return { rate: format.rate, samples };
    }
    offset = body + size + (size % 2);
  }
  throw new Error(`${file} has no data chunk`);
}

function writeWav(file, rate, samples) {
  const buffer = Buffer.alloc(44 + samples.length * 2);
  buffer.write('RIFF', 0, 'ascii');
  buffer.writeUInt32LE(36 + samples.length * 2, 4);
  buffer.write('WAVE', 8, 'ascii');
  buffer.write('fmt ', 12, 'ascii');
  buffer.writeUInt32LE(16, 16);
  buffer.writeUInt16LE(1, 20); // PCM
  buffer.writeUInt16LE(1, 22); // mono
  buffer.writeUInt32LE(rate, 24);
  buffer.writeUInt32LE(rate * 2, 28);
  buffer.writeUInt16LE(2, 32);
  buffer.writeUInt16LE(16, 34);
  buffer.write('data', 36, 'ascii');
  buffer.writeUInt32LE(samples.length * 2, 40);
  for (let i = 0; i < samples.length; i++) buffer.writeInt16LE(samples[i], 44 + 2 * i);
  fs.writeFileSync(file, buffer);
}

// Piper says `text`; answers its samples.
function say(text) {
  const file = path.join(TMP, `say-${Math.random().toString(16).slice(2)}.wav`);
  execFileSync(BIN, ['tts', text, '-o', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  return readWav(file);
}

// Speech and silences (numbers, in seconds) into one WAV. Chromium plays the file in a loop from
// the moment the page opens the microphone, so each file starts and ends with silence.
function compose(name, parts) {
  const spoken = parts.find((part) => typeof part !== 'number');
  const rate = spoken ? spoken.rate : 22_050;
  const chunks = [];
  for (const part of parts) {
    if (typeof part === 'number') {
      chunks.push(new Int16Array(Math.round(part * rate)));
    } else if (part.rate !== rate) {
      throw new Error('every spoken part must have the same rate');
    } else {
      chunks.push(part.samples);
    }
  }
  const samples = new Int16Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    samples.set(chunk, at);
    at += chunk.length;
  }
  const file = path.join(TMP, `${name}.wav`);
  writeWav(file, rate, samples);
  return file;
}

// ---- the browser ----

const BASE_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  // No WebRTC flags beyond these: the page must connect as it does in a person's browser.
];

async function launch({ wav, allowMicrophone = true }) {
  const args = [...BASE_FLAGS];
  if (allowMicrophone) args.push('--use-fake-ui-for-media-stream');
  else args.push('--deny-permission-prompts');
  if (wav) args.push(`--use-file-for-fake-audio-capture=${wav}`);
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args });
  cleanups.push(() => browser.close().catch(() => {}));
  return browser;
}

async function openPage(browser, base, viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });
  page.on('response', (response) => {
    if (response.status() >= 400) problems.push(`HTTP ${response.status()} for ${response.url()}`);
  });
  page.problems = problems;
  await page.goto(`${base}/`);
  return page;
}

async function transcriptText(page) {
  return page.$$eval('#transcript li', (items) =>
    items.map((li) => `[${li.className} ${li.dataset.status || ''} turn ${li.dataset.turn || ''}] ${li.textContent}`),
  );
}

// Waits until the page shows a final user transcript matching `words` and an ended answer after it.
async function waitForAnswer(page, words) {
  return page.waitForFunction(
    (words) => {
      const finals = [...document.querySelectorAll('#transcript li.user.final')].filter((li) => {
        const text = li.querySelector('.text').textContent.toLowerCase();
        return words.every((w) => text.includes(w));
      });
      if (finals.length === 0) return false;
      const turn = Number(finals[0].dataset.turn);
      const answer = [...document.querySelectorAll('#transcript li.agent[data-status="ended"]')].find(
        (li) => Number(li.dataset.turn) >= turn && li.querySelector('.text').textContent.trim().length > 0,
      );
      if (!answer) return false;
      return { user: finals[0].querySelector('.text').textContent, agent: answer.querySelector('.text').textContent, turn };
    },
    words,
    { timeout: TURN_TIMEOUT_MS, polling: 250 },
  );
}

// ---- the cases ----

async function aSpokenQuestionGetsAnAnswerWithItsLatency(server) {
  const question = say('What is the capital of France?');
  const wav = compose('question', [5, question, 14]);
  const browser = await launch({ wav });
  const page = await openPage(browser, server.base);
  const clicked = Date.now();
  await page.getByRole('button', { name: 'Talk' }).click();
  await page.waitForSelector('#agent-state:not([data-state="offline"]):not([data-state="connecting"])', {
    timeout: 30_000,
  });
  // The meter moves while the question plays.
  const level = await page
    .waitForFunction(() => Number(document.getElementById('level').getAttribute('aria-valuenow')) > 20, null, {
      timeout: 20_000,
      polling: 50,
    })
    .then(() => true, () => false);
  let answer;
  try {
    answer = await (await waitForAnswer(page, ['capital', 'france'])).jsonValue();
  } catch (e) {
    throw new Error(`no answered question: ${e.message}\n${(await transcriptText(page)).join('\n')}`);
  }
  log(`you: ${answer.user}`);
  log(`agent: ${answer.agent} (${((Date.now() - clicked) / 1000).toFixed(1)} s after Talk)`);
  if (!level) throw new Error('the microphone level meter never moved');

  // The waterfall of the question's turn shows a number for every stage.
  const handle = await page.waitForFunction(
    (turn) => {
      for (const figure of document.querySelectorAll('#waterfall figure.turn-metrics')) {
        if (Number(figure.dataset.turn) < turn) continue;
        const values = Object.fromEntries(
          [...figure.querySelectorAll('.stage')].map((row) => [row.classList[1], row.querySelector('.value').textContent]),
        );
        if (['eou', 'asr', 'llm', 'tts', 'e2e'].every((k) => /^\d+ ms$/.test(values[k] || ''))) return values;
      }
      return false;
    },
    answer.turn,
    { timeout: 15_000, polling: 250 },
  );
  const values = await handle.jsonValue();
  log(`waterfall: ${Object.entries(values).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  const bars = await page.$$eval('#waterfall .bar', (bars) => bars.filter((b) => b.getBoundingClientRect().width > 0).length);
  if (bars < 5) throw new Error(`the waterfall draws ${bars} bars`);
  const state = await page.textContent('#agent-state-text');
  if (!['listening', 'thinking', 'speaking', 'idle'].includes(state.trim())) {
    throw new Error(`the agent state reads ${JSON.stringify(state)}`);
  }
  await page.screenshot({ path: path.join(TARGET, 'playground.png'), fullPage: true });

  // At phone width nothing is wider than the screen.
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 0) throw new Error(`at 390 px the page is ${overflow} px too wide`);
  await page.screenshot({ path: path.join(TARGET, 'playground-phone.png'), fullPage: true });

  // Hanging up makes the agent leave.
  const agents = await api(server, 'GET', '/v1/agents?status=RUNNING');
  const agentId = agents.json.agents.find((a) => a.name.startsWith('playground-'))?.agent_id;
  if (!agentId) throw new Error(`no running playground agent: ${JSON.stringify(agents.json)}`);
  await page.getByRole('button', { name: 'Hang up' }).click();
  await page.waitForFunction(() => /Call ended/.test(document.getElementById('status').textContent), null, {
    timeout: 10_000,
  });
  const after = await api(server, 'GET', `/v1/agents/${agentId}`);
  if (after.json.status !== 'STOPPED' || after.json.reason?.code !== 'left') {
    throw new Error(`after hang-up the agent is ${JSON.stringify(after.json.status)} (${JSON.stringify(after.json.reason)})`);
  }
  if (page.problems.length) throw new Error(`the page logged errors:\n${page.problems.join('\n')}`);
  await browser.close();
}

async function talkingOverALongAnswerMarksItInterrupted(server) {
  const ask = say('Please tell me a long story about a dragon and a brave knight.');
  const stop = say('Stop, stop. Wait a moment please.');
  const wav = compose('barge-in', [5, ask, 6, stop, 16]);
  const browser = await launch({ wav });
  const page = await openPage(browser, server.base);
  await page
    .getByLabel('System prompt')
    .fill('You are a storyteller. Always answer with a long story of at least ten sentences.');
  await page.getByRole('button', { name: 'Talk' }).click();
  let cut;
  try {
    cut = await (
      await page.waitForFunction(
        () => {
          const li = document.querySelector('#transcript li.agent[data-status="interrupted"]');
          if (!li || !li.querySelector('.badge')) return false;
          return { heard: li.querySelector('.text').textContent, unheard: li.querySelector('.unheard')?.textContent || '' };
        },
        null,
        { timeout: TURN_TIMEOUT_MS, polling: 250 },
      )
    ).jsonValue();
  } catch (e) {
    throw new Error(`no interrupted answer: ${e.message}\n${(await transcriptText(page)).join('\n')}`);
  }
  // What was said over the answer is the user's next turn.
  try {
    await page.waitForFunction(
      () =>
        [...document.querySelectorAll('#transcript li.user.final')].some((li) =>
          /stop|wait|moment/i.test(li.textContent),
        ),
      null,
      { timeout: 30_000, polling: 250 },
    );
  } catch (e) {
    throw new Error(`the words said over the answer were not transcribed: ${e.message}\n${(await transcriptText(page)).join('\n')}`);
  }
  log(`heard: ${cut.heard}`);
  log(`not heard (struck through): ${cut.unheard.slice(0, 80)}${cut.unheard.length > 80 ? '…' : ''}`);
  await page.screenshot({ path: path.join(TARGET, 'playground-barge-in.png'), fullPage: true });
  await page.getByRole('button', { name: 'Hang up' }).click();
  await page.waitForFunction(() => /Call ended/.test(document.getElementById('status').textContent), null, {
    timeout: 10_000,
  });
  if (page.problems.length) throw new Error(`the page logged errors:\n${page.problems.join('\n')}`);
  await browser.close();
}

// The WHIP requests a page makes: its joins (with their resources) and its renewals.
function watchWhip(page) {
  const whip = { joins: [], renewals: [] };
  page.on('response', (response) => {
    const request = response.request();
    if (!/\/rtc\/whip/.test(response.url())) return;
    if (request.method() === 'POST' && response.status() === 201) {
      whip.joins.push(new URL(response.headers().location, response.url()).href);
    } else if (request.method() === 'PATCH') {
      whip.renewals.push(response.status());
    }
  });
  return whip;
}

async function aShortLivedTokenIsRenewedAndTheCallOutlivesIt(server) {
  const browser = await launch({ wav: compose('quiet', [3]) });
  const page = await openPage(browser, server.base);
  const whip = watchWhip(page);
  // The session's token is swapped for one that lasts 12 s: the library asks for a new one halfway.
  const lifetime = 12;
  let session = null;
  await page.route('**/playground/session', async (route) => {
    const response = await route.fetch();
    session = await response.json();
    const minted = await api(server, 'POST', '/v1/tokens', { channel: session.channel, uid: session.uid, expire_s: lifetime });
    await route.fulfill({ status: response.status(), json: { ...session, token: minted.json.token, expires_at: minted.json.expires_at } });
  });
  await page.getByRole('button', { name: 'Talk' }).click();
  await page.waitForFunction(() => /Connected/.test(document.getElementById('status').textContent), null, {
    timeout: 30_000,
  });
  const joined = Date.now();
  // Well past the first token's expiry, the person is still in the channel, on the first join.
  await page.waitForTimeout((lifetime + 6) * 1000 - (Date.now() - joined));
  const channel = await api(server, 'GET', `/v1/channels/${session.channel}`);
  const you = channel.json.participants?.find((p) => p.uid === 'you');
  log(`after ${lifetime + 6} s: renewals ${JSON.stringify(whip.renewals)}, joins ${whip.joins.length}, you ${JSON.stringify(you)}`);
  if (!whip.renewals.includes(204)) throw new Error(`no renewal was accepted: ${JSON.stringify(whip.renewals)}`);
  if (!you || !you.connected) throw new Error(`the person is not in the channel: ${JSON.stringify(channel.json)}`);
  if (whip.joins.length !== 1) throw new Error(`the call joined ${whip.joins.length} times`);
  if (await page.getByRole('alert').isVisible()) throw new Error(`the page shows ${await page.getByRole('alert').textContent()}`);
  await page.getByRole('button', { name: 'Hang up' }).click();
  await page.waitForFunction(() => /Call ended/.test(document.getElementById('status').textContent), null, {
    timeout: 10_000,
  });
  if (page.problems.length) throw new Error(`the page logged errors:\n${page.problems.join('\n')}`);
  await browser.close();
}

async function aDroppedConnectionJoinsAgainAndTheCallGoesOn(server) {
  const question = say('What is the capital of France?');
  const wav = compose('again', [4, question, 12]);
  const browser = await launch({ wav });
  const page = await openPage(browser, server.base);
  const whip = watchWhip(page);
  await page.getByRole('button', { name: 'Talk' }).click();
  let before;
  try {
    before = await (await waitForAnswer(page, ['capital', 'france'])).jsonValue();
  } catch (e) {
    throw new Error(`no answer before the drop: ${e.message}\n${(await transcriptText(page)).join('\n')}`);
  }
  // The server drops the person, as when a network change strands the connection: the browser's
  // connection goes quiet and the library must notice and join again by itself.
  const dropped = await fetch(whip.joins[0], { method: 'DELETE' });
  if (dropped.status !== 200) throw new Error(`dropping the person answered ${dropped.status}`);
  const droppedAt = Date.now();
  try {
    await page.waitForFunction(() => /Reconnected/.test(document.getElementById('status').textContent), null, {
      timeout: 60_000,
      polling: 100,
    });
  } catch (e) {
    throw new Error(`the call did not join again: ${e.message}; the status reads ${JSON.stringify(await page.textContent('#status'))}`);
  }
  log(`joined again ${((Date.now() - droppedAt) / 1000).toFixed(1)} s after the drop (${whip.joins.length} joins)`);
  if (whip.joins.length !== 2 || whip.joins[1] === whip.joins[0]) throw new Error(`joins: ${JSON.stringify(whip.joins)}`);
  // The question, asked again by the looping microphone, is heard and answered on the new connection.
  let after;
  try {
    after = await (
      await page.waitForFunction(
        (turn) => {
          const user = [...document.querySelectorAll('#transcript li.user.final')].find(
            (li) => Number(li.dataset.turn) > turn && /capital/i.test(li.textContent),
          );
          if (!user) return false;
          const answer = [...document.querySelectorAll('#transcript li.agent[data-status="ended"]')].find(
            (li) => Number(li.dataset.turn) >= Number(user.dataset.turn),
          );
          return answer ? { turn: Number(user.dataset.turn), agent: answer.querySelector('.text').textContent } : false;
        },
        before.turn,
        { timeout: TURN_TIMEOUT_MS, polling: 250 },
      )
    ).jsonValue();
  } catch (e) {
    throw new Error(`no answer after joining again: ${e.message}\n${(await transcriptText(page)).join('\n')}`);
  }
  log(`turn ${after.turn} after the drop: ${after.agent}`);
  await page.getByRole('button', { name: 'Hang up' }).click();
  await page.waitForFunction(() => /Call ended/.test(document.getElementById('status').textContent), null, {
    timeout: 10_000,
  });
  // The library leaves the dropped resource when it joins again: the server had forgotten it (404,
  // which the browser's console reports once too).
  const expected = [`HTTP 404 for ${whip.joins[0]}`, 'console: Failed to load resource: the server responded with a status of 404 (Not Found)'];
  const problems = page.problems.filter((p) => {
    const i = expected.indexOf(p);
    if (i >= 0) expected.splice(i, 1);
    return i < 0;
  });
  if (problems.length) throw new Error(`the page logged errors:\n${problems.join('\n')}`);
  await browser.close();
}

async function aRefusedMicrophoneSaysSo(server) {
  const browser = await launch({ allowMicrophone: false });
  const page = await openPage(browser, server.base);
  await page.getByRole('button', { name: 'Talk' }).click();
  const alert = page.getByRole('alert');
  await alert.waitFor({ state: 'visible', timeout: 10_000 });
  const text = await alert.textContent();
  log(`message: ${text}`);
  if (!/Microphone access was refused/.test(text)) throw new Error(`the message reads ${JSON.stringify(text)}`);
  if (!(await page.getByRole('button', { name: 'Talk' }).isEnabled())) throw new Error('Talk stays disabled');
  await browser.close();
}

async function anExpiredTokenSaysSo(server) {
  const browser = await launch({ wav: compose('silence', [2]) });
  const page = await openPage(browser, server.base);
  // The session's token is swapped for one of the same channel and uid that expired a second ago.
  let routeError = null;
  let agentId = null;
  await page.route('**/playground/session', async (route) => {
    try {
      const response = await route.fetch();
      const session = await response.json();
      agentId = session.agent_id;
      const minted = await api(server, 'POST', '/v1/tokens', { channel: session.channel, uid: session.uid, expire_s: 1 });
      await new Promise((resolve) => setTimeout(resolve, 2100));
      await route.fulfill({ status: response.status(), json: { ...session, token: minted.json.token } });
    } catch (e) {
      routeError = e;
      await route.abort().catch(() => {});
    }
  });
  await page.getByRole('button', { name: 'Talk' }).click();
  const alert = page.getByRole('alert');
  try {
    await alert.waitFor({ state: 'visible', timeout: 30_000 });
  } catch (e) {
    throw new Error(`${e.message}; the status reads ${JSON.stringify(await page.textContent('#status'))}; ${routeError}`);
  }
  if (routeError) throw routeError;
  const text = await alert.textContent();
  log(`message: ${text}`);
  if (!/refused the call's token: .*expired/i.test(text)) throw new Error(`the message reads ${JSON.stringify(text)}`);
  // The page ended the session it could not join.
  const agent = await api(server, 'GET', `/v1/agents/${agentId}`);
  if (agent.json.status !== 'STOPPED') throw new Error(`the session's agent is ${JSON.stringify(agent.json)}`);
  await browser.close();
}

async function aDisabledPlaygroundAndAGoneServerSaySo() {
  // Credentials from the environment: the playground is off unless the config turns it on.
  const server = await startServer('disabled', {
    media: false,
    env: { COLLOQUY_API_KEY: 'ck_browser_test', COLLOQUY_API_SECRET: 'browser-test-secret' },
  });
  const browser = await launch({ wav: compose('silence', [2]) });
  const page = await openPage(browser, server.base);
  await page.getByRole('button', { name: 'Talk' }).click();
  const alert = page.getByRole('alert');
  await alert.waitFor({ state: 'visible', timeout: 10_000 });
  let text = await alert.textContent();
  log(`message: ${text}`);
  if (!/playground is off/.test(text)) throw new Error(`the message reads ${JSON.stringify(text)}`);

  await stopServer(server);
  await page.getByRole('button', { name: 'Talk' }).click();
  await page.waitForFunction(() => /Cannot reach/.test(document.getElementById('error').textContent), null, {
    timeout: 10_000,
  });
  text = await alert.textContent();
  log(`message: ${text}`);
  await browser.close();
}

// ---- the run ----

async function run(name, body) {
  // BROWSER_TEST_ONLY=word runs only the cases whose name has that word (while working on one).
  if (process.env.BROWSER_TEST_ONLY && !name.includes(process.env.BROWSER_TEST_ONLY)) return;
  const started = Date.now();
  process.stderr.write(`browser test: ${name}\n`);
  try {
    await body();
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    console.log(`PASS ${name} (${seconds} s)`);
    results.push(true);
  } catch (e) {
    console.log(`FAIL ${name}: ${e.stack || e}`);
    results.push(false);
  }
}

async function main() {
  for (const [what, file] of [
    ['the colloquy binary', BIN],
    ['Chromium', CHROMIUM],
  ]) {
    if (!fs.existsSync(file)) {
      console.log(`FAIL setup: ${what} is not at ${file} (scripts/test-browser builds and installs it)`);
      process.exit(1);
    }
  }
  fs.mkdirSync(TARGET, { recursive: true });
  const started = Date.now();
  let server;
  try {
    server = await startServer('media');
  } catch (e) {
    console.log(`FAIL setup: ${e.message}`);
    process.exit(1);
  }
  log(`server at ${server.base}, models loaded in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  await run('a spoken question gets a transcript, an answer and a latency waterfall', () =>
    aSpokenQuestionGetsAnAnswerWithItsLatency(server),
  );
  await run('talking over a long answer marks it interrupted', () => talkingOverALongAnswerMarksItInterrupted(server));
  await run('a short-lived token is renewed and the call outlives it', () =>
    aShortLivedTokenIsRenewedAndTheCallOutlivesIt(server),
  );
  await run('a dropped connection joins again and the call goes on', () =>
    aDroppedConnectionJoinsAgainAndTheCallGoesOn(server),
  );
  await run('a refused microphone gets a readable message', () => aRefusedMicrophoneSaysSo(server));
  await run('an expired token gets a readable message', () => anExpiredTokenSaysSo(server));
  await run('a disabled playground and an unreachable server get readable messages', () =>
    aDisabledPlaygroundAndAGoneServerSaySo(),
  );
  for (const cleanup of cleanups.reverse()) await cleanup();
  fs.rmSync(TMP, { recursive: true, force: true });
  const failed = results.filter((ok) => !ok).length;
  console.log(`browser tests: ${results.length - failed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch(async (e) => {
  console.log(`FAIL: ${e.stack || e}`);
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  process.exit(1);
});
