// The colloquy playground: asks the server for a session (an agent in a fresh channel and an RTC
// token), joins the channel over WebRTC (WHIP), plays the agent, and shows what it says on the data
// channel: transcripts, its state and each turn's latency. Plain JavaScript, no build step.
'use strict';

(() => {
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

  // One call at a time; `call` is null between calls.
  let call = null;
  // Every turn's metrics so far, by turn id, for the waterfall.
  const turns = new Map();

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

  // The error envelope of the API, or a readable stand-in.
  async function refusal(response) {
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      // Not JSON: a proxy or an older server.
    }
    const error = body && body.error;
    const message = error && error.message ? error.message : `HTTP ${response.status} ${response.statusText}`;
    return { status: response.status, code: error && error.code, message, field: error && error.field };
  }

  function unreachable() {
    return new Refusal(
      `Cannot reach the colloquy server at ${location.origin}. Is \`colloquy serve\` still running? ` +
        'Start it again, reload this page and press Talk.',
    );
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

  // ---- the microphone and its level ----

  async function openMicrophone() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Refusal(
        'This browser gives no microphone to this page: open it over https, or at http://127.0.0.1 or ' +
          'http://localhost (browsers allow the microphone only in secure contexts).',
      );
    }
    try {
      return await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    } catch (e) {
      const name = e && e.name;
      if (name === 'NotAllowedError' || name === 'SecurityError' || name === 'PermissionDeniedError') {
        throw new Refusal(
          'Microphone access was refused, so the agent cannot hear you. Allow the microphone for this page ' +
            "(the icon in the address bar, or the browser's site settings) and press Talk again.",
        );
      }
      if (name === 'NotFoundError' || name === 'OverconstrainedError') {
        throw new Refusal('No microphone was found. Connect one and press Talk again.');
      }
      if (name === 'NotReadableError' || name === 'AbortError') {
        throw new Refusal('The microphone is busy or failed to start (another application may hold it).');
      }
      throw new Refusal(`The microphone could not be opened: ${(e && e.message) || e}`);
    }
  }

  // Made while the click is being handled: browsers let audio start only from a user's gesture.
  function audioContext() {
    const AudioContextClass = window.AudioContext || window.webkitAudioContext;
    return AudioContextClass ? new AudioContextClass() : null;
  }

  function startMeter(state, stream) {
    const context = state.audioContext;
    if (!context) return;
    const analyser = context.createAnalyser();
    analyser.fftSize = 1024;
    context.createMediaStreamSource(stream).connect(analyser);
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

  function waitForIceGathering(pc) {
    return new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      const timer = setTimeout(resolve, 1000);
      pc.addEventListener('icegatheringstatechange', () => {
        if (pc.iceGatheringState === 'complete') {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  }

  async function join(state, session) {
    const pc = new RTCPeerConnection();
    state.pc = pc;
    pc.addTransceiver(state.track, { direction: 'sendrecv', streams: [state.stream] });
    const channel = pc.createDataChannel('colloquy');
    state.channel = channel;
    channel.addEventListener('message', (event) => onMessage(event.data));
    channel.addEventListener('close', () => {
      if (call === state && !state.ending) {
        endCall(state, false).then(() =>
          showError(
            'The call was ended by the server.',
            'The agent left, the connection timed out, or the call reached its time limit ' +
              '(its token expired). Press Talk to start a new call.',
          ),
        );
      }
    });
    pc.addEventListener('track', (event) => {
      ui.audio.srcObject = event.streams[0] || new MediaStream([event.track]);
      ui.audio.play().catch(() => {
        // The browser wants a gesture before playing sound: the next click anywhere plays it.
        setStatus("The browser is holding the agent's voice back: click anywhere on the page to hear it.");
        document.addEventListener('click', () => ui.audio.play().catch(() => {}), { once: true });
      });
    });
    pc.addEventListener('connectionstatechange', () => onConnectionState(state));

    await pc.setLocalDescription(await pc.createOffer());
    await waitForIceGathering(pc);
    if (call !== state) return;
    let response;
    try {
      // No credentials: the token is the authorization, and a refusal must not make the browser
      // ask for a password (it would for a 401 with `WWW-Authenticate: Basic`).
      response = await fetch(session.whip_url, {
        method: 'POST',
        credentials: 'omit',
        headers: { Authorization: `Bearer ${session.token}`, 'Content-Type': 'application/sdp' },
        body: pc.localDescription.sdp,
      });
    } catch (_) {
      throw unreachable();
    }
    if (response.status !== 201) {
      const r = await refusal(response);
      if (response.status === 401) {
        throw new Refusal(`The server refused the call's token: ${r.message}. Press Talk to start a new call.`);
      }
      throw new Refusal(`The server refused to join the call: ${r.message}`);
    }
    const location = response.headers.get('Location');
    if (location) state.whipResource = new URL(location, window.location.href).href;
    const answer = await response.text();
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  }

  function onConnectionState(state) {
    if (call !== state) return;
    const pcState = state.pc.connectionState;
    if (pcState === 'connected') {
      clearTimeout(state.lostTimer);
      setStatus('Connected. Speak when you are ready; the agent greets you first.');
      if (ui.state.dataset.state === 'connecting') setAgentState('idle', 'joined');
    } else if (pcState === 'failed') {
      endCall(state, true).then(() =>
        showError(
          'The media connection failed.',
          'The browser could not reach the server over UDP (a firewall, or the server went away). ' +
            (/Firefox\//.test(navigator.userAgent)
              ? 'Firefox may refuse loopback addresses: start the server with --rtc-udp set to ' +
                "this machine's network address (not 127.0.0.1). "
              : '') +
            'Press Talk to try again.',
        ),
      );
    } else if (pcState === 'disconnected') {
      setStatus('The connection is interrupted; waiting for it to come back…');
      clearTimeout(state.lostTimer);
      state.lostTimer = setTimeout(() => {
        if (call === state && state.pc.connectionState !== 'connected') {
          endCall(state, true).then(() =>
            showError('The connection to the server was lost.', 'Press Talk to start a new call.'),
          );
        }
      }, 5000);
    }
  }

  async function talk() {
    if (call) return;
    clearError();
    const state = { ending: false, audioContext: audioContext() };
    call = state;
    setInCall(true);
    setAgentState('connecting', 'connecting');
    try {
      setStatus('Asking for the microphone…');
      state.stream = await openMicrophone();
      state.track = state.stream.getAudioTracks()[0];
      startMeter(state, state.stream);
      if (call !== state) return;
      setStatus('Starting the agent (the first call waits until the models are loaded)…');
      state.session = await startSession();
      if (call !== state) {
        endSession(state.session);
        return;
      }
      setStatus(`Joining channel ${state.session.channel}…`);
      await join(state, state.session);
    } catch (e) {
      const known = e instanceof Refusal;
      const hungUp = state.ending;
      await endCall(state, true);
      if (hungUp) return;
      showError(known ? e.message : `Something went wrong: ${(e && e.message) || e}`);
      if (known) markField(e.field);
    }
  }

  function endSession(session) {
    if (!session) return Promise.resolve();
    return fetch(`/playground/session/${encodeURIComponent(session.session)}`, {
      method: 'DELETE',
      keepalive: true,
    }).catch(() => {});
  }

  // Ends the call: leaves the channel, makes the agent leave, releases the microphone.
  async function endCall(state, quiet) {
    if (state.ending) return;
    state.ending = true;
    if (call === state) call = null;
    clearTimeout(state.lostTimer);
    clearInterval(state.meterTimer);
    if (state.stream) for (const track of state.stream.getTracks()) track.stop();
    if (state.audioContext) state.audioContext.close().catch(() => {});
    ui.audio.srcObject = null;
    ui.levelBar.style.width = '0';
    ui.level.setAttribute('aria-valuenow', '0');
    setInCall(false);
    setAgentState('offline', 'not in a call');
    // Leave the channel before closing the connection, which would make the server drop us first.
    if (state.whipResource) {
      await fetch(state.whipResource, { method: 'DELETE', keepalive: true, credentials: 'omit' }).catch(() => {});
    }
    if (state.pc) state.pc.close();
    await endSession(state.session);
    if (!quiet) setStatus('Call ended. Press Talk to start another.');
    else setStatus('Press Talk to start a call.');
  }

  ui.talk.addEventListener('click', talk);
  ui.hangup.addEventListener('click', () => {
    if (call) endCall(call, false);
  });
  ui.mute.addEventListener('click', () => {
    if (!call || !call.track) return;
    call.track.enabled = !call.track.enabled;
    const muted = !call.track.enabled;
    ui.mute.setAttribute('aria-pressed', String(muted));
    ui.mute.textContent = muted ? 'Unmute' : 'Mute';
    setStatus(muted ? 'Muted: the agent hears nothing.' : 'Unmuted.');
  });
  window.addEventListener('pagehide', () => {
    if (call) endCall(call, true);
  });

  // ---- what the agent says on the data channel ----

  function onMessage(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch (_) {
      return;
    }
    switch (message.object) {
      case 'user.transcription':
        return showUser(message);
      case 'assistant.transcription':
        return showAgent(message);
      case 'agent.state':
        return setAgentState(message.state);
      case 'message.metrics':
        turns.set(message.turn_id, message.metrics || {});
        return drawWaterfall();
      case 'message.error':
        return note(`The agent's ${message.module || 'engine'} failed: ${message.message}`);
      case 'message.interrupt':
        return markInterrupted(message.turn_id);
      default:
    }
  }

  function entry(role, turnId) {
    const key = `${role}-${turnId}`;
    let li = ui.transcript.querySelector(`li[data-key="${key}"]`);
    if (!li) {
      const empty = ui.transcript.querySelector('.empty');
      if (empty) empty.remove();
      li = document.createElement('li');
      li.dataset.key = key;
      li.dataset.turn = String(turnId);
      li.className = role;
      const who = document.createElement('span');
      who.className = 'who';
      who.textContent = role === 'user' ? 'You' : 'Agent';
      const text = document.createElement('span');
      text.className = 'text';
      li.append(who, text);
      ui.transcript.append(li);
    }
    return li;
  }

  function scrollDown() {
    ui.transcript.scrollTop = ui.transcript.scrollHeight;
  }

  function showUser(message) {
    const li = entry('user', message.turn_id);
    li.querySelector('.text').textContent = message.text;
    li.classList.toggle('partial', !message.final);
    li.classList.toggle('final', Boolean(message.final));
    li.dataset.status = message.final ? 'final' : 'partial';
    scrollDown();
  }

  function showAgent(message) {
    const li = entry('agent', message.turn_id);
    const text = li.querySelector('.text');
    if (message.turn_status === 2) {
      // What the user heard stays; the rest of what was written is struck through.
      const full = li.dataset.full || '';
      const heard = message.text || '';
      text.textContent = heard;
      const rest = full.startsWith(heard.replace(/[.,]$/, '')) ? full.slice(heard.replace(/[.,]$/, '').length) : '';
      markInterrupted(message.turn_id, rest);
    } else {
      li.dataset.full = message.text;
      text.textContent = message.text;
      li.dataset.status = message.turn_status === 1 ? 'ended' : 'speaking';
    }
    scrollDown();
  }

  function markInterrupted(turnId, unheard) {
    const li = ui.transcript.querySelector(`li[data-key="agent-${turnId}"]`);
    if (!li) return;
    li.dataset.status = 'interrupted';
    if (unheard !== undefined && unheard.trim()) {
      let del = li.querySelector('.unheard');
      if (!del) {
        del = document.createElement('del');
        del.className = 'unheard';
        del.title = 'Not heard: the agent was interrupted here';
        li.querySelector('.text').after(del);
      }
      del.textContent = unheard;
    }
    if (!li.querySelector('.badge')) {
      const badge = document.createElement('span');
      badge.className = 'badge';
      badge.textContent = 'interrupted';
      li.append(badge);
    }
  }

  function note(text) {
    const empty = ui.transcript.querySelector('.empty');
    if (empty) empty.remove();
    const li = document.createElement('li');
    li.className = 'note';
    li.textContent = text;
    ui.transcript.append(li);
    scrollDown();
  }

  // ---- the latency waterfall ----

  // Each stage as [start, length] in ms from the end of the user's speech. The LLM starts once the
  // turn has ended and the final transcript is in; TTS once the LLM's first sentence is out.
  function stages(m) {
    const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
    const eou = num(m.eou_delay);
    const asr = num(m.asr_ttlw);
    const ttft = num(m.llm_ttft);
    const ttfs = num(m.llm_ttfs);
    const tts = num(m.tts_ttfb);
    const e2e = num(m.e2e);
    const llmStart = Math.max(eou || 0, asr || 0);
    const ttsStart = llmStart + (ttfs !== null ? ttfs : ttft || 0);
    return [
      { key: 'eou', name: 'End of utterance', start: 0, ms: eou },
      { key: 'asr', name: 'ASR final', start: 0, ms: asr },
      { key: 'llm', name: 'LLM first token', start: llmStart, ms: ttft },
      { key: 'tts', name: 'TTS first audio', start: ttsStart, ms: tts },
      { key: 'e2e', name: 'End to end', start: 0, ms: e2e },
    ];
  }

  function drawWaterfall() {
    const all = [...turns.entries()].sort((a, b) => a[0] - b[0]);
    let scale = 1;
    for (const [, m] of all) for (const s of stages(m)) if (s.ms !== null) scale = Math.max(scale, s.start + s.ms);
    ui.waterfall.replaceChildren();
    for (const [turnId, m] of all) {
      const figure = document.createElement('figure');
      figure.className = 'turn-metrics';
      figure.dataset.turn = String(turnId);
      const caption = document.createElement('figcaption');
      const byAgent = typeof m.eou_delay !== 'number' && typeof m.asr_ttlw !== 'number';
      caption.textContent =
        `Turn ${turnId}` +
        (typeof m.e2e === 'number' ? ` · ${m.e2e} ms end to end` : '') +
        (byAgent ? ' · started by the agent' : '');
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
})();
