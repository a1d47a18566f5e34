// One person's call with an agent: the microphone (or a given track) goes up over WebRTC, the
// agent's voice comes down, and the data channel's messages become typed events and a conversation
// model. Joins over WHIP; when the network changes (ICE disconnected or failed, or the server drops
// the connection) it joins again with backoff, with the newest token.

import { type Backoff, DEFAULT_BACKOFF, backoffDelay } from './backoff.js';
import { Conversation, type Turn } from './conversation.js';
import { Emitter } from './emitter.js';
import { ColloquyError, microphoneError } from './errors.js';
import { type AgentEvent, type AgentState, parseMessage } from './protocol.js';
import { type Fetch, whipEndpoint, whipLeave, whipOffer, whipRenew } from './whip.js';

export interface JoinOptions {
  /** The RTC token for this person in the channel (`POST /v1/tokens`, or your server's own route). */
  token: string;
  /** The token's expiry, unix seconds: `tokenexpiring` fires before it, time to call `renewToken`. */
  expiresAt?: number;
  /** The colloquy server's base URL. Default: the page's origin. */
  server?: string;
  /** The channel, when the server should check that the token is for it. */
  channel?: string;
  /** The WHIP endpoint, when it is not `<server>/rtc/whip`. */
  whipUrl?: string;
  /** A track to send instead of opening the microphone (the app keeps owning it). */
  track?: MediaStreamTrack;
  /** Constraints for the microphone. Default: echo cancellation, noise suppression and gain control on. */
  microphone?: MediaTrackConstraints;
  /** Where the agent's voice plays. Default: an audio element of the call's own; `false`: only the `track` event. */
  audio?: HTMLAudioElement | false;
  /** Joining again after a lost connection; `false` ends the call instead. */
  reconnect?: Partial<Backoff> | false;
  /** How long the connection may stay `disconnected` before the call joins again, ms. Default 2000. */
  disconnectedGraceMs?: number;
  /** How long a join may take to connect, ms. Default 20000. */
  connectTimeoutMs?: number;
  /** How long before `expiresAt` `tokenexpiring` fires, ms. Default 60000 (at most half the lifetime left). */
  renewBeforeMs?: number;
  /** The fetch to use (tests). */
  fetch?: Fetch;
}

/** Where the call is. */
export type ConnectionState = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'closed';

type ByType = { [K in AgentEvent['type']]: Extract<AgentEvent, { type: K }> };

export interface CallEvents extends ByType {
  /** Every data-channel message, typed. */
  message: AgentEvent;
  /** The conversation changed: the new `turns`. */
  turns: readonly Turn[];
  /** The agent's state changed. */
  state: AgentState;
  connection: ConnectionState;
  /** The agent's audio arrived (again, after a reconnect). */
  track: { track: MediaStreamTrack; stream: MediaStream };
  /** The browser will not play sound before a user gesture: call `audio.play()` from one. */
  autoplayblocked: HTMLAudioElement;
  /** The connection was lost; the call joins again after `delayMs`. */
  reconnecting: { attempt: number; delayMs: number; cause: string };
  /** The token expires soon: call `renewToken` with a newer one. */
  tokenexpiring: { expiresAt: number };
  /** The call ended because of this error (after `join` resolved; `join` rejects with errors before). */
  error: ColloquyError;
  /** The call is over: `error` is `null` after `leave()`. */
  closed: { error: ColloquyError | null };
}

/** One attempt at a connection: a peer connection, its data channel and its WHIP resource. */
interface Link {
  pc: RTCPeerConnection;
  channel: RTCDataChannel;
  resource: string | null;
  /** Connected once: from then on, losing it means joining again. */
  established: boolean;
  retired: boolean;
  /** Aborted when the link is retired: a join in flight stops waiting. */
  abort: AbortController;
}

function asColloquyError(e: unknown): ColloquyError {
  if (e instanceof ColloquyError) return e;
  return new ColloquyError('ice_failed', `The connection failed: ${e instanceof Error ? e.message : String(e)}`, null, {
    cause: e,
  });
}

const left = () => new ColloquyError('left', 'The call was left before it was joined.');

export class Call extends Emitter<CallEvents> {
  /** The conversation so far; `turns` is its list. */
  readonly conversation = new Conversation();
  private connectionState: ConnectionState = 'idle';
  private token: string;
  private expiresAt: number | null;
  private readonly endpoint: string;
  private readonly http: Fetch;
  private readonly backoff: Backoff | null;
  private readonly audio: HTMLAudioElement | null;
  private link: Link | null = null;
  private track: MediaStreamTrack | null = null;
  private stream: MediaStream | null = null;
  private ownsTrack = false;
  private graceTimer: ReturnType<typeof setTimeout> | undefined;
  private renewTimer: ReturnType<typeof setTimeout> | undefined;
  private wake: (() => void) | null = null;
  private readonly online = () => this.onOnline();

  constructor(private readonly options: JoinOptions) {
    super();
    this.token = options.token;
    this.expiresAt = options.expiresAt ?? null;
    const page = (globalThis as { location?: Location }).location?.href;
    const server = options.server ?? (page ? new URL(page).origin : undefined);
    if (options.whipUrl === undefined && server === undefined) {
      throw new TypeError('join: give `server` (the colloquy server URL) outside a page');
    }
    this.endpoint =
      options.whipUrl !== undefined ? new URL(options.whipUrl, page).href : whipEndpoint(server!, options.channel, page);
    this.http = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.backoff = options.reconnect === false ? null : { ...DEFAULT_BACKOFF, ...options.reconnect };
    this.audio = options.audio === false ? null : (options.audio ?? new Audio());
    if (this.audio) this.audio.autoplay = true;
  }

  /** The turns so far, in order, ready to render. */
  get turns(): readonly Turn[] {
    return this.conversation.turns;
  }

  /** What the agent is doing, `null` before it says. */
  get agentState(): AgentState | null {
    return this.conversation.state;
  }

  get connection(): ConnectionState {
    return this.connectionState;
  }

  /** The track the call sends (the microphone's, or the one given). */
  get localTrack(): MediaStreamTrack | null {
    return this.track;
  }

  get muted(): boolean {
    return this.track !== null && !this.track.enabled;
  }

  /** Opens the microphone (unless a track was given) and joins; resolves once the media is connected. */
  async join(): Promise<void> {
    if (this.connectionState !== 'idle') throw new ColloquyError('not_connected', 'join() was already called');
    this.setConnection('connecting');
    try {
      await this.openTrack();
      if (this.isClosed()) throw left();
      await this.connect();
    } catch (e) {
      const error = asColloquyError(e);
      await this.finish(error, false);
      throw error;
    }
    globalThis.addEventListener?.('online', this.online);
    this.setConnection('connected');
    this.scheduleRenewal();
  }

  /** Leaves the channel and releases the microphone the call opened. */
  async leave(): Promise<void> {
    await this.finish(null, false);
  }

  /** Mutes (or unmutes) what the call sends: the agent hears silence. */
  mute(muted = true): void {
    if (!this.track) throw new ColloquyError('not_connected', 'there is no track to mute before join()');
    this.track.enabled = !muted;
  }

  unmute(): void {
    this.mute(false);
  }

  /** Sends one of the app's own messages to the agents in the channel (an object is sent as JSON). */
  send(message: unknown): void {
    const channel = this.link?.channel;
    if (!channel || channel.readyState !== 'open' || this.connectionState !== 'connected') {
      throw new ColloquyError('not_connected', `cannot send while the call is ${this.connectionState}`);
    }
    channel.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /**
   * Answers a client tool's `tool.call` (see `ToolCall`): `result` (any JSON value) goes back to
   * the agent's LLM as the tool's result.
   */
  sendToolResult(callId: string, result: unknown): void {
    this.send({ object: 'tool.result', call_id: callId, result });
  }

  /** Answers a client tool's `tool.call` with a failure: the LLM is told `error`. */
  sendToolError(callId: string, error: string): void {
    this.send({ object: 'tool.result', call_id: callId, error });
  }

  /**
   * Renews the call's token (WHIP PATCH): a newer token for the same channel and uid keeps the
   * call going past the old one's expiry, and later reconnects use it.
   */
  async renewToken(token: string, expiresAt?: number): Promise<void> {
    const resource = this.link?.resource;
    if (resource && this.connectionState === 'connected') await whipRenew(this.http, resource, token);
    this.token = token;
    this.expiresAt = expiresAt ?? null;
    this.scheduleRenewal();
  }

  // ---- joining ----

  private async openTrack(): Promise<void> {
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
  private async connect(): Promise<void> {
    const pc = new RTCPeerConnection();
    const channel = pc.createDataChannel('colloquy');
    const link: Link = {
      pc,
      channel,
      resource: null,
      established: false,
      retired: false,
      abort: new AbortController(),
    };
    this.link = link;
    pc.addTransceiver(this.track!, { direction: 'sendrecv', streams: [this.stream!] });
    channel.addEventListener('message', (event) => {
      if (this.link === link) this.onData(event.data);
    });
    channel.addEventListener('close', () => {
      if (this.link === link && link.established && !link.retired) this.lost(link, 'the server closed the connection');
    });
    pc.addEventListener('track', (event) => {
      if (this.link === link) this.onTrack(event);
    });
    pc.addEventListener('connectionstatechange', () => this.onConnectionState(link));

    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc, 1000);
    if (link.retired) throw left();
    let session;
    try {
      session = await whipOffer(this.http, this.endpoint, this.token, pc.localDescription!.sdp, link.abort.signal);
    } catch (e) {
      if (link.retired) throw left();
      throw e;
    }
    link.resource = session.resource;
    if (link.retired) {
      if (session.resource) await whipLeave(this.http, session.resource);
      throw left();
    }
    await pc.setRemoteDescription({ type: 'answer', sdp: session.answer });
    await connected(pc, this.options.connectTimeoutMs ?? 20_000, link.abort.signal);
    if (link.retired) throw left();
    link.established = true;
  }

  // ---- losing the connection and joining again ----

  private onConnectionState(link: Link): void {
    if (this.link !== link || !link.established || link.retired) return;
    switch (link.pc.connectionState) {
      case 'connected':
        clearTimeout(this.graceTimer);
        break;
      case 'disconnected':
        clearTimeout(this.graceTimer);
        this.graceTimer = setTimeout(() => {
          if (this.link === link && link.pc.connectionState !== 'connected') this.lost(link, 'ICE disconnected');
        }, this.options.disconnectedGraceMs ?? 2000);
        break;
      case 'failed':
        this.lost(link, 'ICE failed');
        break;
      default:
    }
  }

  private onOnline(): void {
    // The network is back (or changed): wake a waiting reconnect, or drop a link that went quiet.
    if (this.wake) this.wake();
    else if (this.link && this.link.established && this.link.pc.connectionState === 'disconnected') {
      this.lost(this.link, 'the network changed');
    }
  }

  private lost(link: Link, cause: string): void {
    if (this.link !== link || this.connectionState !== 'connected') return;
    clearTimeout(this.graceTimer);
    void this.retire(link);
    if (!this.backoff) {
      void this.finish(new ColloquyError('ice_failed', `The connection to the server was lost (${cause}).`), true);
      return;
    }
    void this.reconnect(this.backoff, cause);
  }

  private async reconnect(backoff: Backoff, cause: string): Promise<void> {
    this.setConnection('reconnecting');
    let last: ColloquyError | null = null;
    for (let attempt = 0; attempt < backoff.attempts; attempt++) {
      const delayMs = backoffDelay(backoff, attempt, Math.random());
      this.emit('reconnecting', { attempt: attempt + 1, delayMs, cause });
      await new Promise<void>((resolve) => {
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
        // A refused token will not be accepted on the next try either.
        if (last.code === 'token_expired' || last.code === 'token_refused') break;
        continue;
      }
      if (this.isClosed()) return;
      this.setConnection('connected');
      return;
    }
    const error =
      last && (last.code === 'token_expired' || last.code === 'token_refused')
        ? last
        : new ColloquyError(
            'ice_failed',
            `The connection to the server was lost (${cause}) and could not be made again` +
              (last ? `: ${last.message}` : '.'),
            last?.refusal ?? null,
            { cause: last },
          );
    await this.finish(error, true);
  }

  /** Leaves the channel of one link, then closes it. */
  private async retire(link: Link): Promise<void> {
    if (link.retired) return;
    link.retired = true;
    link.abort.abort();
    // DELETE first: closing first would make the server see us vanish, and answer the DELETE 404.
    if (link.resource) await whipLeave(this.http, link.resource);
    link.pc.close();
  }

  // ---- what arrives ----

  private onData(data: unknown): void {
    const event = parseMessage(data);
    this.emit('message', event);
    (this.emit as (type: AgentEvent['type'], value: AgentEvent) => void)(event.type, event);
    const stateBefore = this.conversation.state;
    const turnsBefore = this.conversation.turns;
    if (!this.conversation.apply(event)) return;
    if (this.conversation.turns !== turnsBefore) this.emit('turns', this.conversation.turns);
    if (this.conversation.state !== stateBefore && this.conversation.state) this.emit('state', this.conversation.state);
  }

  private onTrack(event: RTCTrackEvent): void {
    const stream = event.streams[0] ?? new MediaStream([event.track]);
    this.emit('track', { track: event.track, stream });
    const audio = this.audio;
    if (!audio) return;
    audio.srcObject = stream;
    audio.play().catch(() => this.emit('autoplayblocked', audio));
  }

  // ---- the token and the end ----

  private scheduleRenewal(): void {
    clearTimeout(this.renewTimer);
    const expiresAt = this.expiresAt;
    if (expiresAt === null || this.isClosed()) return;
    const left = expiresAt * 1000 - Date.now();
    const before = Math.min(this.options.renewBeforeMs ?? 60_000, left / 2);
    this.renewTimer = setTimeout(() => this.emit('tokenexpiring', { expiresAt }), Math.max(0, left - before));
  }

  private setConnection(state: ConnectionState): void {
    if (this.connectionState === state) return;
    this.connectionState = state;
    this.emit('connection', state);
  }

  private isClosed(): boolean {
    return this.connectionState === 'closed';
  }

  private releaseTrack(): void {
    if (this.ownsTrack) for (const track of this.stream?.getTracks() ?? []) track.stop();
  }

  private async finish(error: ColloquyError | null, announce: boolean): Promise<void> {
    if (this.isClosed()) return;
    const wasJoining = this.connectionState === 'connecting';
    this.setConnection('closed');
    clearTimeout(this.graceTimer);
    clearTimeout(this.renewTimer);
    this.wake?.();
    globalThis.removeEventListener?.('online', this.online);
    this.releaseTrack();
    if (this.audio) this.audio.srcObject = null;
    const link = this.link;
    if (link) await this.retire(link);
    if (error && announce) this.emit('error', error);
    this.emit('closed', { error: wasJoining && !error ? left() : error });
  }
}

/**
 * Opens the microphone, with the library's errors: `insecure_context`, `microphone_refused`,
 * `microphone_not_found` or `microphone_unavailable`. For apps that ask before they fetch a token;
 * give its track to `join` (the app then stops it).
 */
export async function openMicrophone(constraints?: MediaTrackConstraints): Promise<MediaStream> {
  const devices = (globalThis.navigator as Navigator | undefined)?.mediaDevices;
  if (!devices?.getUserMedia) {
    throw new ColloquyError(
      'insecure_context',
      'This browser gives no microphone to this page: open it over https, or at http://127.0.0.1 or http://localhost.',
    );
  }
  try {
    return await devices.getUserMedia({
      audio: constraints ?? { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
  } catch (e) {
    throw microphoneError(e);
  }
}

/** Waits for ICE gathering to complete, at most `ms` (the server needs no candidate of ours: it is ICE-lite). */
function gathered(pc: RTCPeerConnection, ms: number): Promise<void> {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    const timer = setTimeout(resolve, ms);
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

/** Resolves when the peer connection connects; rejects with `ice_failed` when it fails or takes too long. */
function connected(pc: RTCPeerConnection, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const aborted = () => done(left());
    const done = (error: ColloquyError | null) => {
      clearTimeout(timer);
      pc.removeEventListener('connectionstatechange', check);
      signal.removeEventListener('abort', aborted);
      if (error) reject(error);
      else resolve();
    };
    const check = () => {
      const state = pc.connectionState;
      if (state === 'connected') done(null);
      else if (state === 'failed' || state === 'closed') {
        done(
          new ColloquyError(
            'ice_failed',
            state === 'closed'
              ? 'The connection was closed before it connected.'
              : 'The media connection failed: the browser could not reach the server over UDP (a firewall, or the server went away).',
          ),
        );
      }
    };
    const timer = setTimeout(
      () => done(new ColloquyError('ice_failed', `The media connection did not connect within ${ms / 1000} s.`)),
      ms,
    );
    pc.addEventListener('connectionstatechange', check);
    signal.addEventListener('abort', aborted);
    if (signal.aborted) aborted();
    else check();
  });
}
