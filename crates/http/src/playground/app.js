// The colloquy playground: asks the server for a session (an agent in a fresh channel and an RTC
// token), then talks through @colloquy/client (clients/js, served as /playground/colloquy-client.js):
// the library joins, plays the agent, renews the token, joins again after a network change, and
// turns the data channel into the conversation this page draws. Plain JavaScript, no build step.
import { Call, openMicrophone } from '/playground/colloquy-client.js';

const $ = (id) => document.getElementById(id);
const ui = {
  settings: $('settings'),
  prompt: $('system-prompt'),
  voice: $('voice'),
  interruption: $('interruption'),
  keywordsRow: $('keywords-row'),
  keywords: $('keywords'),
  talk: $('talk'),
  mute: $('mute'),
  hangup: $('hangup'),
  level: $('level'),
  levelBar: $('level-bar'),
  status: $('status'),
  error: $('error'),
  state: $('agent-state'),
  stateText: $('agent-state-text'),
  transcript: $('transcript'),
  waterfall: $('waterfall'),
  audio: $('remote-audio'),
};

// One call at a time: { call, session, microphone, audioContext, meterTimer, ending }; null between calls.
let current = null;

/** A problem the page explains in its own words; `field` names the setting at fault. */
class Refusal extends Error {
  constructor(message, field) {
    super(message);
    this.field = field;
  }
}

// ---- small helpers ----

function setStatus(text) {
  ui.status.textContent = text;
}

function showError(title, detail) {
  ui.error.replaceChildren();
  const strong = document.createElement('strong');
  strong.textContent = title;
  ui.error.append(strong);
  if (detail) ui.error.append(' ' + detail);
  ui.error.hidden = false;
}

function clearError() {
  ui.error.hidden = true;
  ui.error.replaceChildren();
  for (const el of ui.settings.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
}

function setAgentState(state, text) {
  ui.state.dataset.state = state;
  ui.stateText.textContent = text || state;
}

function setInCall(inCall) {
  ui.talk.disabled = inCall;
  ui.mute.disabled = !inCall;
  ui.hangup.disabled = !inCall;
  for (const el of ui.settings.elements) el.disabled = inCall;
  if (!inCall) {
    ui.mute.setAttribute('aria-pressed', 'false');
    ui.mute.textContent = 'Mute';
  }
}

function unreachable() {
  return new Refusal(
    `Cannot reach the colloquy server at ${location.origin}. Is \`colloquy serve\` still running? ` +
      'Start it again, reload this page and press Talk.',
  );
}

// The library's errors in the page's words.
function explain(error) {
  switch (error && error.code) {
    case 'microphone_refused':
      return [
        'Microphone access was refused, so the agent cannot hear you.',
        "Allow the microphone for this page (the icon in the address bar, or the browser's site settings) and press Talk again.",
      ];
    case 'microphone_not_found':
      return ['No microphone was found.', 'Connect one and press Talk again.'];
    case 'microphone_unavailable':
    case 'insecure_context':
      return [error.message, ''];
    case 'token_expired':
    case 'token_refused':
      return [`The server refused the call's token: ${error.reason}.`, 'Press Talk to start a new call.'];
    case 'server_unreachable':
      return [unreachable().message, ''];
    case 'join_refused':
      return [`The server refused to join the call: ${error.reason}`, ''];
    case 'ice_failed':
      return [
        'The media connection failed.',
        `${error.message} ` +
          (/Firefox\//.test(navigator.userAgent)
            ? 'Firefox may refuse loopback addresses: start the server with --rtc-udp set to ' +
              "this machine's network address (not 127.0.0.1). "
            : '') +
          'Press Talk to try again.',
      ];
    default:
      return [`Something went wrong: ${(error && error.message) || error}`, ''];
  }
}

// ---- settings ----

function settings() {
  const body = {
    system_prompt: ui.prompt.value,
    voice: ui.voice.value,
    interruption_mode: ui.interruption.value,
  };
  if (body.interruption_mode === 'keywords') {
    body.keywords = ui.keywords.value.split(',').map((k) => k.trim()).filter((k) => k.length > 0);
  }
  return body;
}

const fieldControls = {
  system_prompt: ui.prompt,
  voice: ui.voice,
  interruption_mode: ui.interruption,
  keywords: ui.keywords,
};

function markField(field) {
  if (!field) return;
  const control = fieldControls[field.replace(/\[.*$/, '')];
  if (control) {
    control.setAttribute('aria-invalid', 'true');
    control.focus();
  }
}

ui.interruption.addEventListener('change', () => {
  ui.keywordsRow.hidden = ui.interruption.value !== 'keywords';
});

// ---- the playground's session (its own endpoints; the call itself is the library's) ----

async function refusal(response) {
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    // Not JSON: a proxy or an older server.
  }
  const error = body && body.error;
  const message = error && error.message ? error.message : `HTTP ${response.status} ${response.statusText}`;
  return { code: error && error.code, message, field: error && error.field };
}

async function startSession() {
  let response;
  try {
    response = await fetch('/playground/session', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(settings()),
    });
  } catch (_) {
    throw unreachable();
  }
  if (response.ok) return response.json();
  const r = await refusal(response);
  if (response.status === 404) {
    throw new Refusal(
      r.code === 'not_found'
        ? `${r.message.charAt(0).toUpperCase()}${r.message.slice(1)}.`
        : `The playground is not available on this server (${r.message}).`,
    );
  }
  if (r.field) throw new Refusal(`The setting was refused: ${r.message}`, r.field);
  throw new Refusal(`The server could not start an agent: ${r.message}`);
}

function endSession(session) {
  if (!session) return Promise.resolve();
  return fetch(`/playground/session/${encodeURIComponent(session.session)}`, {
    method: 'DELETE',
    keepalive: true,
  }).catch(() => {});
}

// Before the token expires: a fresh one from the playground, handed to the call (WHIP PATCH).
async function renewToken(state) {
  try {
    const response = await fetch(`/playground/session/${encodeURIComponent(state.session.session)}/token`, {
      method: 'POST',
    });
    if (!response.ok) throw new Error((await refusal(response)).message);
    const fresh = await response.json();
    await state.call.renewToken(fresh.token, fresh.expires_at);
    setStatus('Connected (the call token was renewed).');
  } catch (e) {
    note(`The call's token could not be renewed: ${(e && e.message) || e}`);
  }
}

// ---- the microphone's level ----

// Made while the click is being handled: browsers let audio start only from a user's gesture.
function audioContext() {
  const AudioContextClass = window.AudioContext || window.webkitAudioContext;
  return AudioContextClass ? new AudioContextClass() : null;
}

function startMeter(state, track) {
  const context = state.audioContext;
  if (!context || !track) return;
  const analyser = context.createAnalyser();
  analyser.fftSize = 1024;
  context.createMediaStreamSource(new MediaStream([track])).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  state.meterTimer = setInterval(() => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const s of samples) sum += s * s;
    const rms = Math.sqrt(sum / samples.length);
    // -60 dBFS .. 0 dBFS onto 0..100.
    const db = rms > 0 ? 20 * Math.log10(rms) : -100;
    const level = Math.max(0, Math.min(100, Math.round(((db + 60) / 60) * 100)));
    ui.levelBar.style.width = `${level}%`;
    ui.level.setAttribute('aria-valuenow', String(level));
  }, 60);
  if (context.state === 'suspended') context.resume().catch(() => {});
}

// ---- the call ----

function listen(state) {
  const { call } = state;
  call.on('turns', (turns) => drawTranscript(turns));
  call.on('turns', (turns) => drawWaterfall(turns));
  call.on('state', (agentState) => setAgentState(agentState));
  call.on('message.error', (e) => note(`The agent's ${e.module} failed: ${e.message}`));
  call.on('autoplayblocked', (audio) => {
    setStatus("The browser is holding the agent's voice back: click anywhere on the page to hear it.");
    document.addEventListener('click', () => audio.play().catch(() => {}), { once: true });
  });
  call.on('tokenexpiring', () => renewToken(state));
  call.on('reconnecting', ({ attempt, cause }) => {
    setStatus(`The connection was lost (${cause}); joining again (attempt ${attempt})…`);
    setAgentState('connecting', 'reconnecting');
  });
  call.on('connection', (connection) => {
    if (connection === 'connected' && state.joined) {
      setStatus('Reconnected. Go on speaking.');
      setAgentState(call.agentState || 'idle', call.agentState || 'joined');
    }
  });
  call.on('error', (error) => {
    if (current !== state) return;
    const [title, detail] = explain(error);
    endCall(state, true).then(() => showError(title, detail));
  });
}

async function talk() {
  if (current) return;
  clearError();
  const state = { ending: false, joined: false, audioContext: audioContext(), call: null, session: null, microphone: null };
  current = state;
  setInCall(true);
  setAgentState('connecting', 'connecting');
  try {
    // The microphone first: no agent starts for a person who refuses it.
    setStatus('Asking for the microphone…');
    state.microphone = await openMicrophone();
    if (current !== state) {
      for (const t of state.microphone.getTracks()) t.stop();
      return;
    }
    const track = state.microphone.getAudioTracks()[0];
    startMeter(state, track);
    setStatus('Starting the agent (the first call waits until the models are loaded)…');
    state.session = await startSession();
    if (current !== state) {
      endSession(state.session);
      return;
    }
    state.call = new Call({
      whipUrl: state.session.whip_url,
      token: state.session.token,
      expiresAt: state.session.expires_at,
      track,
      audio: ui.audio,
    });
    listen(state);
    setStatus(`Joining channel ${state.session.channel}…`);
    await state.call.join();
    state.joined = true;
    setStatus('Connected. Speak when you are ready; the agent greets you first.');
    if (ui.state.dataset.state === 'connecting') setAgentState(state.call.agentState || 'idle', state.call.agentState || 'joined');
  } catch (e) {
    const hungUp = state.ending;
    await endCall(state, true);
    if (hungUp) return;
    if (e instanceof Refusal) {
      showError(e.message);
      markField(e.field);
    } else {
      const [title, detail] = explain(e);
      showError(title, detail);
    }
  }
}

// Ends the call: the library leaves the channel and releases the microphone; the agent leaves.
async function endCall(state, quiet) {
  if (state.ending) return;
  state.ending = true;
  if (current === state) current = null;
  clearInterval(state.meterTimer);
  if (state.microphone) for (const track of state.microphone.getTracks()) track.stop();
  if (state.audioContext) state.audioContext.close().catch(() => {});
  ui.levelBar.style.width = '0';
  ui.level.setAttribute('aria-valuenow', '0');
  setInCall(false);
  setAgentState('offline', 'not in a call');
  if (state.call) await state.call.leave();
  await endSession(state.session);
  setStatus(quiet ? 'Press Talk to start a call.' : 'Call ended. Press Talk to start another.');
}

ui.talk.addEventListener('click', talk);
ui.hangup.addEventListener('click', () => {
  if (current) endCall(current, false);
});
ui.mute.addEventListener('click', () => {
  if (!current || !current.call || !current.call.localTrack) return;
  const muted = !current.call.muted;
  current.call.mute(muted);
  ui.mute.setAttribute('aria-pressed', String(muted));
  ui.mute.textContent = muted ? 'Unmute' : 'Mute';
  setStatus(muted ? 'Muted: the agent hears nothing.' : 'Unmuted.');
});
window.addEventListener('pagehide', () => {
  if (current) endCall(current, true);
});

// ---- the transcript, drawn from the library's turns ----

function line(role, turn, text) {
  const li = document.createElement('li');
  li.className = role;
  li.dataset.turn = String(turn.id);
  const who = document.createElement('span');
  who.className = 'who';
  who.textContent = role === 'user' ? 'You' : 'Agent';
  const body = document.createElement('span');
  body.className = 'text';
  body.textContent = text;
  li.append(who, body);
  return li;
}

function drawTranscript(turns) {
  const items = [];
  for (const turn of turns) {
    if (turn.user) {
      const li = line('user', turn, turn.user.text);
      li.classList.add(turn.user.final ? 'final' : 'partial');
      li.dataset.status = turn.user.final ? 'final' : 'partial';
      items.push(li);
    }
    if (turn.agent) {
      const li = line('agent', turn, turn.agent.text);
      const status = turn.agent.status;
      li.dataset.status = status === 'in_progress' ? 'speaking' : status;
      if (status === 'interrupted') {
        if (turn.agent.unheard) {
          // What the user heard stays; the rest of what was written is struck through.
          const del = document.createElement('del');
          del.className = 'unheard';
          del.title = 'Not heard: the agent was interrupted here';
          del.textContent = turn.agent.unheard;
          li.querySelector('.text').after(del);
        }
        const badge = document.createElement('span');
        badge.className = 'badge';
        badge.textContent = 'interrupted';
        li.append(badge);
      }
      items.push(li);
    }
    for (const tool of turn.tools) items.push(toolLine(turn, tool));
  }
  // Notes (errors, renewals) stay after the turns.
  const notes = [...ui.transcript.querySelectorAll('li.note')];
  if (items.length === 0 && notes.length === 0) return;
  ui.transcript.replaceChildren(...items, ...notes);
  ui.transcript.scrollTop = ui.transcript.scrollHeight;
}

const TOOL_STATUS = {
  running: 'running',
  called: 'asked this page (a client tool); no answer yet',
  finished: 'done',
};
const TOOL_OUTCOME = { ok: 'ok', error: 'failed', cancelled: 'cancelled' };

// One tool call of a turn: its name, where it is, its outcome and time, and a client tool's arguments.
function toolLine(turn, tool) {
  const li = document.createElement('li');
  li.className = 'tool';
  li.dataset.turn = String(turn.id);
  li.dataset.callId = tool.callId;
  li.dataset.status = tool.status;
  if (tool.outcome) li.dataset.outcome = tool.outcome;
  const who = document.createElement('span');
  who.className = 'who';
  who.textContent = 'Tool';
  const body = document.createElement('span');
  body.className = 'text';
  const status =
    tool.status === 'finished'
      ? `${TOOL_OUTCOME[tool.outcome] || tool.outcome}${tool.durationMs !== null ? `, ${tool.durationMs} ms` : ''}`
      : TOOL_STATUS[tool.status];
  body.textContent = `${tool.name}: ${status}`;
  li.append(who, body);
  if (tool.arguments !== null && tool.arguments !== undefined) {
    const args = document.createElement('code');
    args.className = 'arguments';
    args.textContent = typeof tool.arguments === 'string' ? tool.arguments : JSON.stringify(tool.arguments);
    li.append(args);
  }
  return li;
}

function note(text) {
  const empty = ui.transcript.querySelector('.empty');
  if (empty) empty.remove();
  const li = document.createElement('li');
  li.className = 'note';
  li.textContent = text;
  ui.transcript.append(li);
  ui.transcript.scrollTop = ui.transcript.scrollHeight;
}

// ---- the latency waterfall ----

// Each stage as [start, length] in ms from the end of the user's speech. The LLM starts once the
// turn has ended and the final transcript is in; TTS once the LLM's first sentence is out.
function stages(m) {
  const eou = m.eou_delay;
  const asr = m.asr_ttlw;
  const ttft = m.llm_ttft;
  const ttfs = m.llm_ttfs;
  const llmStart = Math.max(eou || 0, asr || 0);
  const ttsStart = llmStart + (ttfs !== null ? ttfs : ttft || 0);
  return [
    { key: 'eou', name: 'End of utterance', start: 0, ms: eou },
    { key: 'asr', name: 'ASR final', start: 0, ms: asr },
    { key: 'llm', name: 'LLM first token', start: llmStart, ms: ttft },
    { key: 'tts', name: 'TTS first audio', start: ttsStart, ms: m.tts_ttfb },
    { key: 'e2e', name: 'End to end', start: 0, ms: m.e2e },
  ];
}

function drawWaterfall(turns) {
  const measured = turns.filter((t) => t.metrics);
  if (measured.length === 0) return;
  let scale = 1;
  for (const t of measured) for (const s of stages(t.metrics)) if (s.ms !== null) scale = Math.max(scale, s.start + s.ms);
  ui.waterfall.replaceChildren();
  for (const { id, metrics: m } of measured) {
    const figure = document.createElement('figure');
    figure.className = 'turn-metrics';
    figure.dataset.turn = String(id);
    const caption = document.createElement('figcaption');
    const byAgent = m.eou_delay === null && m.asr_ttlw === null;
    caption.textContent =
      `Turn ${id}` + (m.e2e !== null ? ` · ${m.e2e} ms end to end` : '') + (byAgent ? ' · started by the agent' : '');
    figure.append(caption);
    for (const s of stages(m)) {
      const row = document.createElement('div');
      row.className = `stage ${s.key}`;
      const name = document.createElement('span');
      name.className = 'name';
      name.textContent = s.name;
      const track = document.createElement('span');
      track.className = 'track';
      track.setAttribute('aria-hidden', 'true');
      const value = document.createElement('span');
      value.className = 'value';
      if (s.ms !== null) {
        const bar = document.createElement('span');
        bar.className = 'bar';
        bar.style.left = `${(s.start / scale) * 100}%`;
        bar.style.width = `${(s.ms / scale) * 100}%`;
        track.append(bar);
        value.textContent = `${s.ms} ms`;
      } else {
        value.textContent = '–';
        value.title = 'This stage did not run in this turn';
      }
      row.append(name, track, value);
      figure.append(row);
    }
    ui.waterfall.append(figure);
  }
}
