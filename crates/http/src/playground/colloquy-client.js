// @colloquy/client 0.1.0: built from clients/js/src by `npm run build`; do not edit.

// src/backoff.ts
var DEFAULT_BACKOFF = { attempts: 6, initialMs: 250, maxMs: 8e3 };
function backoffDelay(backoff, n, random) {
  const base = Math.min(backoff.maxMs, backoff.initialMs * 2 ** n);
  return Math.round(base * (0.8 + 0.4 * random));
}

// src/conversation.ts
function stem(text2) {
  return text2.replace(/[\s.,;:!?…]+$/u, "");
}
var Conversation = class {
  /** Every turn so far, in turn order. Entries are replaced, not mutated, when they change. */
  turns = [];
  /** What the agent is doing now; `null` before its first state. */
  state = null;
  /** Applies one event; answers whether `turns` or `state` changed. */
  apply(event) {
    switch (event.type) {
      case "user.transcription":
        return this.update(event.turnId, (turn) => ({ ...turn, user: { text: event.text, final: event.final } }));
      case "assistant.transcription":
        return this.update(event.turnId, (turn) => ({ ...turn, agent: answer(turn.agent, event.text, event.status) }));
      case "message.interrupt":
        return this.update(
          event.turnId,
          (turn) => turn.agent ? { ...turn, agent: { ...turn.agent, status: "interrupted" } } : turn
        );
      case "message.metrics":
        return this.update(event.turnId, (turn) => ({ ...turn, metrics: event.metrics }));
      case "message.error":
        return this.update(event.turnId, (turn) => ({
          ...turn,
          errors: [...turn.errors, { module: event.module, message: event.message }]
        }));
      case "agent.state":
        if (this.state === event.state) return false;
        this.state = event.state;
        return true;
      case "tool.call":
      case "tool.started":
      case "tool.finished":
        return this.update(event.turnId, (turn) => ({ ...turn, tools: toolsAfter(turn.tools, event) }));
      case "unknown":
        return false;
    }
  }
  /** The turn with this id, if any. */
  turn(id) {
    return this.turns.find((t) => t.id === id);
  }
  update(id, change) {
    let index = this.turns.findIndex((t) => t.id === id);
    const inserted = index < 0;
    if (inserted) {
      const fresh = { id, user: null, agent: null, tools: [], errors: [], metrics: null };
      index = this.turns.findIndex((t) => t.id > id);
      if (index < 0) index = this.turns.length;
      this.turns = [...this.turns.slice(0, index), fresh, ...this.turns.slice(index)];
    }
    const before = this.turns[index];
    const after = change(before);
    if (after === before) return inserted;
    this.turns = [...this.turns.slice(0, index), after, ...this.turns.slice(index + 1)];
    return true;
  }
};
function answer(before, text2, status) {
  if (status !== "interrupted") return { text: text2, unheard: "", status };
  const written = before ? before.text : "";
  const heard = stem(text2);
  const unheard = written.startsWith(heard) ? written.slice(heard.length) : "";
  return { text: text2, unheard: unheard.trim() ? unheard : "", status };
}
function toolsAfter(tools, event) {
  const index = tools.findIndex((t) => t.callId === event.callId);
  const before = index >= 0 ? tools[index] : { callId: event.callId, name: event.name, status: "running", arguments: null, outcome: null, durationMs: null };
  let after;
  switch (event.type) {
    case "tool.call":
      after = { ...before, arguments: event.arguments, status: before.status === "finished" ? "finished" : "called" };
      break;
    case "tool.started":
      after = before;
      break;
    case "tool.finished":
      after = { ...before, status: "finished", outcome: event.outcome, durationMs: event.durationMs };
      break;
  }
  if (index < 0) return [...tools, after];
  return after === before ? tools : [...tools.slice(0, index), after, ...tools.slice(index + 1)];
}

// src/emitter.ts
var Emitter = class {
  listeners = /* @__PURE__ */ new Map();
  on(type, listener) {
    let set = this.listeners.get(type);
    if (!set) {
      set = /* @__PURE__ */ new Set();
      this.listeners.set(type, set);
    }
    set.add(listener);
    return () => this.off(type, listener);
  }
  off(type, listener) {
    this.listeners.get(type)?.delete(listener);
  }
  emit(type, value) {
    for (const listener of [...this.listeners.get(type) ?? []]) {
      try {
        listener(value);
      } catch (e) {
        setTimeout(() => {
          throw e;
        });
      }
    }
  }
};

// src/errors.ts
var ColloquyError = class extends Error {
  name = "ColloquyError";
  code;
  /** The server's own words, when it refused something. */
  reason;
  /** The server's answer, when there was one. */
  refusal;
  constructor(code, message, refusal = null, options) {
    super(message, options);
    this.code = code;
    this.refusal = refusal;
    this.reason = refusal ? refusal.message : null;
  }
};
function microphoneError(e) {
  const name = e instanceof Error || typeof e === "object" && e !== null ? e.name : void 0;
  const detail = e instanceof Error ? e.message : String(e);
  switch (name) {
    case "NotAllowedError":
    case "SecurityError":
    case "PermissionDeniedError":
      return new ColloquyError("microphone_refused", "Microphone access was refused, so the agent cannot hear you.", null, {
        cause: e
      });
    case "NotFoundError":
    case "OverconstrainedError":
      return new ColloquyError("microphone_not_found", "No microphone was found.", null, { cause: e });
    default:
      return new ColloquyError(
        "microphone_unavailable",
        `The microphone is busy or failed to start (another application may hold it): ${detail}`,
        null,
        { cause: e }
      );
  }
}
async function readRefusal(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
  }
  const error = typeof body === "object" && body !== null ? body.error : void 0;
  const field = (name) => {
    const value = typeof error === "object" && error !== null ? error[name] : void 0;
    return typeof value === "string" ? value : null;
  };
  return {
    status: response.status,
    code: field("code"),
    message: field("message") ?? `HTTP ${response.status} ${response.statusText}`.trim(),
    field: field("field")
  };
}
function whipRefusal(refusal) {
  if (refusal.status === 401) {
    const expired = /expired/i.test(refusal.message);
    return new ColloquyError(
      expired ? "token_expired" : "token_refused",
      `The server refused the call's token: ${refusal.message}`,
      refusal
    );
  }
  return new ColloquyError("join_refused", `The server refused to join the call: ${refusal.message}`, refusal);
}

// src/protocol.ts
var STATES = ["idle", "listening", "thinking", "speaking"];
var ANSWER_STATUS = ["in_progress", "ended", "interrupted"];
var METRIC_NAMES = ["eou_delay", "asr_ttlw", "llm_ttft", "llm_ttfs", "tts_ttfb", "engine_overhead", "e2e"];
var Unreadable = class extends Error {
};
function text(raw, name) {
  const value = raw[name];
  if (typeof value !== "string") throw new Unreadable(`${name} is not a string`);
  return value;
}
function optionalText(raw, name) {
  const value = raw[name];
  return typeof value === "string" ? value : typeof value === "number" ? String(value) : null;
}
function finite(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}
function turnOf(raw) {
  const turn = finite(raw.turn_id);
  if (turn === null) throw new Unreadable("turn_id is not a number");
  return turn;
}
function metricsOf(value) {
  const metrics = {};
  for (const name of METRIC_NAMES) metrics[name] = null;
  if (typeof value === "object" && value !== null) {
    for (const [name, v] of Object.entries(value)) metrics[name] = finite(v);
  }
  return metrics;
}
function number(raw, name) {
  const value = finite(raw[name]);
  if (value === null) throw new Unreadable(`${name} is not a number`);
  return value;
}
function known(object, raw) {
  const common = () => ({
    turnId: turnOf(raw),
    agentUid: optionalText(raw, "agent_uid"),
    ts: finite(raw.ts),
    raw
  });
  switch (object) {
    case "user.transcription":
      if (typeof raw.final !== "boolean") throw new Unreadable("final is not a boolean");
      return { type: object, ...common(), text: text(raw, "text"), final: raw.final };
    case "assistant.transcription": {
      const status = ANSWER_STATUS[finite(raw.turn_status) ?? -1];
      if (status === void 0) throw new Unreadable("turn_status is not 0, 1 or 2");
      return { type: object, ...common(), text: text(raw, "text"), status };
    }
    case "message.interrupt":
      return { type: object, ...common() };
    case "message.metrics":
      return { type: object, ...common(), metrics: metricsOf(raw.metrics) };
    case "message.error":
      return { type: object, ...common(), module: optionalText(raw, "module") ?? "engine", message: text(raw, "message") };
    case "agent.state": {
      const state = raw.state;
      if (!STATES.includes(state)) throw new Unreadable(`state ${JSON.stringify(state)} is not known`);
      return { type: object, ...common(), state };
    }
    case "tool.call":
      return {
        type: object,
        ...common(),
        callId: text(raw, "call_id"),
        name: text(raw, "name"),
        arguments: raw.arguments ?? null
      };
    case "tool.started":
      return { type: object, ...common(), callId: text(raw, "call_id"), name: text(raw, "name") };
    case "tool.finished":
      return {
        type: object,
        ...common(),
        callId: text(raw, "call_id"),
        name: text(raw, "name"),
        outcome: text(raw, "outcome"),
        durationMs: number(raw, "duration_ms")
      };
    default:
      return null;
  }
}
function parseMessage(data) {
  if (typeof data !== "string") {
    return { type: "unknown", object: null, turnId: null, problem: "not a text message", raw: data };
  }
  let raw;
  try {
    raw = JSON.parse(data);
  } catch {
    return { type: "unknown", object: null, turnId: null, problem: "not JSON", raw: data };
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    return { type: "unknown", object: null, turnId: null, problem: "not a JSON object", raw };
  }
  const message = raw;
  const object = typeof message.object === "string" ? message.object : null;
  const turnId = finite(message.turn_id);
  if (object === null) return { type: "unknown", object, turnId, problem: "no object field", raw };
  try {
    return known(object, message) ?? { type: "unknown", object, turnId, problem: null, raw };
  } catch (e) {
    if (!(e instanceof Unreadable)) throw e;
    return { type: "unknown", object, turnId, problem: `${object}: ${e.message}`, raw };
  }
}

// src/whip.ts
function unreachable(url, e) {
  return new ColloquyError("server_unreachable", `Cannot reach the colloquy server at ${new URL(url).origin}.`, null, {
    cause: e
  });
}
async function send(http, url, init) {
  try {
    return await http(url, { ...init, credentials: "omit", cache: "no-store" });
  } catch (e) {
    throw unreachable(url, e);
  }
}
async function whipOffer(http, endpoint, token, offer, signal) {
  const post = (url) => send(http, url, {
    method: "POST",
    signal: signal ?? null,
    redirect: "follow",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/sdp" },
    body: offer
  });
  let response = await post(endpoint);
  if (response.status === 401 && response.redirected && response.url && response.url !== endpoint) {
    await response.body?.cancel();
    response = await post(response.url);
  }
  if (response.status !== 201) throw whipRefusal(await readRefusal(response));
  const answered = response.url || endpoint;
  const location = response.headers.get("Location");
  return {
    answer: await response.text(),
    resource: location ? new URL(location, answered).href : null,
    endpoint: answered
  };
}
async function whipRenew(http, resource, token) {
  const response = await send(http, resource, { method: "PATCH", headers: { Authorization: `Bearer ${token}` } });
  if (response.ok) return;
  throw whipRefusal(await readRefusal(response));
}
async function whipLeave(http, resource) {
  try {
    await http(resource, { method: "DELETE", credentials: "omit", keepalive: true });
  } catch {
  }
}
function whipEndpoint(server, channel, base) {
  const url = new URL("rtc/whip", new URL(server.endsWith("/") ? server : `${server}/`, base));
  if (channel !== void 0) url.searchParams.set("channel", channel);
  return url.href;
}

// src/call.ts
function asColloquyError(e) {
  if (e instanceof ColloquyError) return e;
  return new ColloquyError("ice_failed", `The connection failed: ${e instanceof Error ? e.message : String(e)}`, null, {
    cause: e
  });
}
var left = () => new ColloquyError("left", "The call was left before it was joined.");
var Call = class extends Emitter {
  constructor(options) {
    super();
    this.options = options;
    this.token = options.token;
    this.expiresAt = options.expiresAt ?? null;
    const page = globalThis.location?.href;
    const server = options.server ?? (page ? new URL(page).origin : void 0);
    if (options.whipUrl === void 0 && server === void 0) {
      throw new TypeError("join: give `server` (the colloquy server URL) outside a page");
    }
    this.endpoint = options.whipUrl !== void 0 ? new URL(options.whipUrl, page).href : whipEndpoint(server, options.channel, page);
    this.http = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.backoff = options.reconnect === false ? null : { ...DEFAULT_BACKOFF, ...options.reconnect };
    this.audio = options.audio === false ? null : options.audio ?? new Audio();
    if (this.audio) this.audio.autoplay = true;
  }
  options;
  /** The conversation so far; `turns` is its list. */
  conversation = new Conversation();
  connectionState = "idle";
  token;
  expiresAt;
  endpoint;
  http;
  backoff;
  audio;
  link = null;
  track = null;
  stream = null;
  ownsTrack = false;
  graceTimer;
  renewTimer;
  wake = null;
  online = () => this.onOnline();
  /** The turns so far, in order, ready to render. */
  get turns() {
    return this.conversation.turns;
  }
  /** What the agent is doing, `null` before it says. */
  get agentState() {
    return this.conversation.state;
  }
  get connection() {
    return this.connectionState;
  }
  /** The track the call sends (the microphone's, or the one given). */
  get localTrack() {
    return this.track;
  }
  get muted() {
    return this.track !== null && !this.track.enabled;
  }
  /** Opens the microphone (unless a track was given) and joins; resolves once the media is connected. */
  async join() {
    if (this.connectionState !== "idle") throw new ColloquyError("not_connected", "join() was already called");
    this.setConnection("connecting");
    try {
      await this.openTrack();
      if (this.isClosed()) throw left();
      await this.connect();
    } catch (e) {
      const error = asColloquyError(e);
      await this.finish(error, false);
      throw error;
    }
    globalThis.addEventListener?.("online", this.online);
    this.setConnection("connected");
    this.scheduleRenewal();
  }
  /** Leaves the channel and releases the microphone the call opened. */
  async leave() {
    await this.finish(null, false);
  }
  /** Mutes (or unmutes) what the call sends: the agent hears silence. */
  mute(muted = true) {
    if (!this.track) throw new ColloquyError("not_connected", "there is no track to mute before join()");
    this.track.enabled = !muted;
  }
  unmute() {
    this.mute(false);
  }
  /** Sends one of the app's own messages to the agents in the channel (an object is sent as JSON). */
  send(message) {
    const channel = this.link?.channel;
    if (!channel || channel.readyState !== "open" || this.connectionState !== "connected") {
      throw new ColloquyError("not_connected", `cannot send while the call is ${this.connectionState}`);
    }
    channel.send(typeof message === "string" ? message : JSON.stringify(message));
  }
  /**
   * Answers a client tool's `tool.call` (see `ToolCall`): `result` (any JSON value) goes back to
   * the agent's LLM as the tool's result.
   */
  sendToolResult(callId, result) {
    this.send({ object: "tool.result", call_id: callId, result });
  }
  /** Answers a client tool's `tool.call` with a failure: the LLM is told `error`. */
  sendToolError(callId, error) {
    this.send({ object: "tool.result", call_id: callId, error });
  }
  /**
   * Renews the call's token (WHIP PATCH): a newer token for the same channel and uid keeps the
   * call going past the old one's expiry, and later reconnects use it.
   */
  async renewToken(token, expiresAt) {
    const resource = this.link?.resource;
    if (resource && this.connectionState === "connected") await whipRenew(this.http, resource, token);
    this.token = token;
    this.expiresAt = expiresAt ?? null;
    this.scheduleRenewal();
  }
  // ---- joining ----
  async openTrack() {
    if (this.options.track) {
      this.track = this.options.track;
      this.stream = new MediaStream([this.track]);
      return;
    }
    const stream = await openMicrophone(this.options.microphone);
    this.stream = stream;
    this.track = stream.getAudioTracks()[0] ?? null;
    this.ownsTrack = true;
    if (this.isClosed()) this.releaseTrack();
  }
  /** One attempt: a fresh peer connection, joined over WHIP and connected. */
  async connect() {
    const pc = new RTCPeerConnection();
    const channel = pc.createDataChannel("colloquy");
    const link = {
      pc,
      channel,
      resource: null,
      established: false,
      retired: false,
      abort: new AbortController()
    };
    this.link = link;
    pc.addTransceiver(this.track, { direction: "sendrecv", streams: [this.stream] });
    channel.addEventListener("message", (event) => {
      if (this.link === link) this.onData(event.data);
    });
    channel.addEventListener("close", () => {
      if (this.link === link && link.established && !link.retired) this.lost(link, "the server closed the connection");
    });
    pc.addEventListener("track", (event) => {
      if (this.link === link) this.onTrack(event);
    });
    pc.addEventListener("connectionstatechange", () => this.onConnectionState(link));
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc, 1e3);
    if (link.retired) throw left();
    let session;
    try {
      session = await whipOffer(this.http, this.endpoint, this.token, pc.localDescription.sdp, link.abort.signal);
    } catch (e) {
      if (link.retired) throw left();
      throw e;
    }
    link.resource = session.resource;
    if (link.retired) {
      if (session.resource) await whipLeave(this.http, session.resource);
      throw left();
    }
    await pc.setRemoteDescription({ type: "answer", sdp: session.answer });
    await connected(pc, this.options.connectTimeoutMs ?? 2e4, link.abort.signal);
    if (link.retired) throw left();
    link.established = true;
  }
  // ---- losing the connection and joining again ----
  onConnectionState(link) {
    if (this.link !== link || !link.established || link.retired) return;
    switch (link.pc.connectionState) {
      case "connected":
        clearTimeout(this.graceTimer);
        break;
      case "disconnected":
        clearTimeout(this.graceTimer);
        this.graceTimer = setTimeout(() => {
          if (this.link === link && link.pc.connectionState !== "connected") this.lost(link, "ICE disconnected");
        }, this.options.disconnectedGraceMs ?? 2e3);
        break;
      case "failed":
        this.lost(link, "ICE failed");
        break;
      default:
    }
  }
  onOnline() {
    if (this.wake) this.wake();
    else if (this.link && this.link.established && this.link.pc.connectionState === "disconnected") {
      this.lost(this.link, "the network changed");
    }
  }
  lost(link, cause) {
    if (this.link !== link || this.connectionState !== "connected") return;
    clearTimeout(this.graceTimer);
    void this.retire(link);
    if (!this.backoff) {
      void this.finish(new ColloquyError("ice_failed", `The connection to the server was lost (${cause}).`), true);
      return;
    }
    void this.reconnect(this.backoff, cause);
  }
  async reconnect(backoff, cause) {
    this.setConnection("reconnecting");
    let last = null;
    for (let attempt = 0; attempt < backoff.attempts; attempt++) {
      const delayMs = backoffDelay(backoff, attempt, Math.random());
      this.emit("reconnecting", { attempt: attempt + 1, delayMs, cause });
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, delayMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
      if (this.isClosed()) return;
      try {
        await this.connect();
      } catch (e) {
        if (this.isClosed()) return;
        last = asColloquyError(e);
        if (this.link) await this.retire(this.link);
        if (last.code === "token_expired" || last.code === "token_refused") break;
        continue;
      }
      if (this.isClosed()) return;
      this.setConnection("connected");
      return;
    }
    const error = last && (last.code === "token_expired" || last.code === "token_refused") ? last : new ColloquyError(
      "ice_failed",
      `The connection to the server was lost (${cause}) and could not be made again` + (last ? `: ${last.message}` : "."),
      last?.refusal ?? null,
      { cause: last }
    );
    await this.finish(error, true);
  }
  /** Leaves the channel of one link, then closes it. */
  async retire(link) {
    if (link.retired) return;
    link.retired = true;
    link.abort.abort();
    if (link.resource) await whipLeave(this.http, link.resource);
    link.pc.close();
  }
  // ---- what arrives ----
  onData(data) {
    const event = parseMessage(data);
    this.emit("message", event);
    this.emit(event.type, event);
    const stateBefore = this.conversation.state;
    const turnsBefore = this.conversation.turns;
    if (!this.conversation.apply(event)) return;
    if (this.conversation.turns !== turnsBefore) this.emit("turns", this.conversation.turns);
    if (this.conversation.state !== stateBefore && this.conversation.state) this.emit("state", this.conversation.state);
  }
  onTrack(event) {
    const stream = event.streams[0] ?? new MediaStream([event.track]);
    this.emit("track", { track: event.track, stream });
    const audio = this.audio;
    if (!audio) return;
    audio.srcObject = stream;
    audio.play().catch(() => this.emit("autoplayblocked", audio));
  }
  // ---- the token and the end ----
  scheduleRenewal() {
    clearTimeout(this.renewTimer);
    const expiresAt = this.expiresAt;
    if (expiresAt === null || this.isClosed()) return;
    const left2 = expiresAt * 1e3 - Date.now();
    const before = Math.min(this.options.renewBeforeMs ?? 6e4, left2 / 2);
    this.renewTimer = setTimeout(() => this.emit("tokenexpiring", { expiresAt }), Math.max(0, left2 - before));
  }
  setConnection(state) {
    if (this.connectionState === state) return;
    this.connectionState = state;
    this.emit("connection", state);
  }
  isClosed() {
    return this.connectionState === "closed";
  }
  releaseTrack() {
    if (this.ownsTrack) for (const track of this.stream?.getTracks() ?? []) track.stop();
  }
  async finish(error, announce) {
    if (this.isClosed()) return;
    const wasJoining = this.connectionState === "connecting";
    this.setConnection("closed");
    clearTimeout(this.graceTimer);
    clearTimeout(this.renewTimer);
    this.wake?.();
    globalThis.removeEventListener?.("online", this.online);
    this.releaseTrack();
    if (this.audio) this.audio.srcObject = null;
    const link = this.link;
    if (link) await this.retire(link);
    if (error && announce) this.emit("error", error);
    this.emit("closed", { error: wasJoining && !error ? left() : error });
  }
};
async function openMicrophone(constraints) {
  const devices = globalThis.navigator?.mediaDevices;
  if (!devices?.getUserMedia) {
    throw new ColloquyError(
      "insecure_context",
      "This browser gives no microphone to this page: open it over https, or at http://127.0.0.1 or http://localhost."
    );
  }
  try {
    return await devices.getUserMedia({
      audio: constraints ?? { echoCancellation: true, noiseSuppression: true, autoGainControl: true }
    });
  } catch (e) {
    throw microphoneError(e);
  }
}
function gathered(pc, ms) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    const timer = setTimeout(resolve, ms);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}
function connected(pc, ms, signal) {
  return new Promise((resolve, reject) => {
    const aborted = () => done(left());
    const done = (error) => {
      clearTimeout(timer);
      pc.removeEventListener("connectionstatechange", check);
      signal.removeEventListener("abort", aborted);
      if (error) reject(error);
      else resolve();
    };
    const check = () => {
      const state = pc.connectionState;
      if (state === "connected") done(null);
      else if (state === "failed" || state === "closed") {
        done(
          new ColloquyError(
            "ice_failed",
            state === "closed" ? "The connection was closed before it connected." : "The media connection failed: the browser could not reach the server over UDP (a firewall, or the server went away)."
          )
        );
      }
    };
    const timer = setTimeout(
      () => done(new ColloquyError("ice_failed", `The media connection did not connect within ${ms / 1e3} s.`)),
      ms
    );
    pc.addEventListener("connectionstatechange", check);
    signal.addEventListener("abort", aborted);
    if (signal.aborted) aborted();
    else check();
  });
}

// src/index.ts
async function join(options) {
  const call = new Call(options);
  await call.join();
  return call;
}
export {
  Call,
  ColloquyError,
  Conversation,
  DEFAULT_BACKOFF,
  backoffDelay,
  join,
  openMicrophone,
  parseMessage,
  whipEndpoint,
  whipLeave,
  whipOffer,
  whipRenew
};
