// The in-channel protocol: one JSON object per data-channel message, each with an `object` naming
// its kind and the `turn_id` it belongs to (see crates/agent/src/protocol.rs). Every message
// becomes a typed event; a kind this version does not know, or a message it cannot read, becomes an
// `unknown` event carrying the message, never an exception.

/** What the agent is doing. */
export type AgentState = 'idle' | 'listening' | 'thinking' | 'speaking';

/** An answer's progress: `turn_status` 0, 1 and 2 on the wire. */
export type AnswerStatus = 'in_progress' | 'ended' | 'interrupted';

/** A turn's latency in milliseconds, from the end of the user's speech; `null` for a stage that did not run. */
export interface TurnMetrics {
  eou_delay: number | null;
  asr_ttlw: number | null;
  llm_ttft: number | null;
  llm_ttfs: number | null;
  tts_ttfb: number | null;
  engine_overhead: number | null;
  e2e: number | null;
  /** Every number the server sent, including ones this version does not name. */
  [stage: string]: number | null;
}

interface Common {
  /** The turn the message belongs to. */
  turnId: number;
  /** The sending agent's uid in the channel, when given. */
  agentUid: string | null;
  /** When the agent sent it, unix milliseconds, when given. */
  ts: number | null;
  /** The message as received. */
  raw: Record<string, unknown>;
}

/** What the person said: partial transcripts first, then one final. */
export interface UserTranscription extends Common {
  type: 'user.transcription';
  text: string;
  final: boolean;
}

/** What the agent says (the whole answer so far); when interrupted, the part the person heard. */
export interface AssistantTranscription extends Common {
  type: 'assistant.transcription';
  text: string;
  status: AnswerStatus;
}

/** The person interrupted the agent's answer in this turn. */
export interface Interrupt extends Common {
  type: 'message.interrupt';
}

export interface Metrics extends Common {
  type: 'message.metrics';
  metrics: TurnMetrics;
}

/** A stage of the agent failed in this turn (`asr`, `llm`, `tts`, or a module this version does not name). */
export interface AgentError extends Common {
  type: 'message.error';
  module: string;
  message: string;
}

export interface StateChange extends Common {
  type: 'agent.state';
  state: AgentState;
}

/** The agent asks the page to run one of its client tools; answer with `Call.sendToolResult()`. */
export interface ToolCall extends Common {
  type: 'tool.call';
  /** The call's id, to quote in the answer. */
  callId: string;
  name: string;
  /** The arguments the LLM wrote: JSON as it is, or the text when the LLM wrote something else. */
  arguments: unknown;
}

/** A tool call began (any tool: an HTTP tool, an MCP server's, or the page's own). Its arguments are not shown. */
export interface ToolStarted extends Common {
  type: 'tool.started';
  callId: string;
  name: string;
}

/**
 * How a tool call ended: `ok`, `error` (it failed or timed out; the LLM was told) or `cancelled`
 * (its turn ended first, a barge-in say). A later server may name more.
 */
export type ToolOutcome = 'ok' | 'error' | 'cancelled' | (string & {});

/** A tool call ended. Its result is not shown. */
export interface ToolFinished extends Common {
  type: 'tool.finished';
  callId: string;
  name: string;
  outcome: ToolOutcome;
  durationMs: number;
}

/** A message of a kind this version does not know, or one it could not read (`problem` says why). */
export interface UnknownMessage {
  type: 'unknown';
  /** Its `object`, when it has one. */
  object: string | null;
  turnId: number | null;
  problem: string | null;
  /** The parsed message, or the text when it is not JSON. */
  raw: unknown;
}

export type AgentEvent =
  | UserTranscription
  | AssistantTranscription
  | Interrupt
  | Metrics
  | AgentError
  | StateChange
  | ToolCall
  | ToolStarted
  | ToolFinished
  | UnknownMessage;

export type AgentEventType = AgentEvent['type'];

const STATES: readonly AgentState[] = ['idle', 'listening', 'thinking', 'speaking'];
const ANSWER_STATUS: readonly AnswerStatus[] = ['in_progress', 'ended', 'interrupted'];
const METRIC_NAMES = ['eou_delay', 'asr_ttlw', 'llm_ttft', 'llm_ttfs', 'tts_ttfb', 'engine_overhead', 'e2e'];

/** A message that is missing a field it needs. */
class Unreadable extends Error {}

function text(raw: Record<string, unknown>, name: string): string {
  const value = raw[name];
  if (typeof value !== 'string') throw new Unreadable(`${name} is not a string`);
  return value;
}

function optionalText(raw: Record<string, unknown>, name: string): string | null {
  const value = raw[name];
  return typeof value === 'string' ? value : typeof value === 'number' ? String(value) : null;
}

function finite(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

function turnOf(raw: Record<string, unknown>): number {
  const turn = finite(raw.turn_id);
  if (turn === null) throw new Unreadable('turn_id is not a number');
  return turn;
}

function metricsOf(value: unknown): TurnMetrics {
  const metrics: Record<string, number | null> = {};
  for (const name of METRIC_NAMES) metrics[name] = null;
  if (typeof value === 'object' && value !== null) {
    for (const [name, v] of Object.entries(value)) metrics[name] = finite(v);
  }
  return metrics as TurnMetrics;
}

function number(raw: Record<string, unknown>, name: string): number {
  const value = finite(raw[name]);
  if (value === null) throw new Unreadable(`${name} is not a number`);
  return value;
}

function known(object: string, raw: Record<string, unknown>): AgentEvent | null {
  const common = (): Common => ({
    turnId: turnOf(raw),
    agentUid: optionalText(raw, 'agent_uid'),
    ts: finite(raw.ts),
    raw,
  });
  switch (object) {
    case 'user.transcription':
      if (typeof raw.final !== 'boolean') throw new Unreadable('final is not a boolean');
      return { type: object, ...common(), text: text(raw, 'text'), final: raw.final };
    case 'assistant.transcription': {
      const status = ANSWER_STATUS[finite(raw.turn_status) ?? -1];
      if (status === undefined) throw new Unreadable('turn_status is not 0, 1 or 2');
      return { type: object, ...common(), text: text(raw, 'text'), status };
    }
    case 'message.interrupt':
      return { type: object, ...common() };
    case 'message.metrics':
      return { type: object, ...common(), metrics: metricsOf(raw.metrics) };
    case 'message.error':
      return { type: object, ...common(), module: optionalText(raw, 'module') ?? 'engine', message: text(raw, 'message') };
    case 'agent.state': {
      const state = raw.state;
      if (!STATES.includes(state as AgentState)) throw new Unreadable(`state ${JSON.stringify(state)} is not known`);
      return { type: object, ...common(), state: state as AgentState };
    }
    case 'tool.call':
      return {
        type: object,
        ...common(),
        callId: text(raw, 'call_id'),
        name: text(raw, 'name'),
        arguments: raw.arguments ?? null,
      };
    case 'tool.started':
      return { type: object, ...common(), callId: text(raw, 'call_id'), name: text(raw, 'name') };
    case 'tool.finished':
      return {
        type: object,
        ...common(),
        callId: text(raw, 'call_id'),
        name: text(raw, 'name'),
        outcome: text(raw, 'outcome'),
        durationMs: number(raw, 'duration_ms'),
      };
    default:
      return null;
  }
}

/** Reads one data-channel message. Never throws. */
export function parseMessage(data: unknown): AgentEvent {
  if (typeof data !== 'string') {
    return { type: 'unknown', object: null, turnId: null, problem: 'not a text message', raw: data };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(data);
  } catch {
    return { type: 'unknown', object: null, turnId: null, problem: 'not JSON', raw: data };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { type: 'unknown', object: null, turnId: null, problem: 'not a JSON object', raw };
  }
  const message = raw as Record<string, unknown>;
  const object = typeof message.object === 'string' ? message.object : null;
  const turnId = finite(message.turn_id);
  if (object === null) return { type: 'unknown', object, turnId, problem: 'no object field', raw };
  try {
    return known(object, message) ?? { type: 'unknown', object, turnId, problem: null, raw };
  } catch (e) {
    if (!(e instanceof Unreadable)) throw e;
    return { type: 'unknown', object, turnId, problem: `${object}: ${e.message}`, raw };
  }
}
