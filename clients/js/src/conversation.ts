// The conversation as an app renders it: one entry per turn, in turn order, each with what the
// person said, what the agent answered (and, when interrupted, which part was heard), the turn's
// tool calls, errors and latency. Fed with the events of `parseMessage`; no DOM, no clock.

import type { AgentEvent, AgentState, AnswerStatus, ToolOutcome, TurnMetrics } from './protocol.js';

export interface UserSpeech {
  text: string;
  /** False while the transcript is partial. */
  final: boolean;
}

export interface AgentAnswer {
  /** What the agent said: the whole answer while it speaks; when interrupted, the part the person heard. */
  text: string;
  /** When interrupted: the rest of what the agent had written, which nobody heard ('' when unknown). */
  unheard: string;
  status: AnswerStatus;
}

export interface ToolActivity {
  callId: string;
  name: string;
  /**
   * `running`: the tool started; `called`: it is one of the page's client tools and the agent waits
   * for the page's `tool.result`; `finished`: it ended (see `outcome`).
   */
  status: 'running' | 'called' | 'finished';
  /** A client tool's arguments (the server shows no other tool's). */
  arguments: unknown;
  /** `ok`, `error` or `cancelled` once finished. */
  outcome: ToolOutcome | null;
  durationMs: number | null;
}

export interface Turn {
  id: number;
  /** What the person said in this turn; `null` for a turn the agent began (its greeting). */
  user: UserSpeech | null;
  agent: AgentAnswer | null;
  tools: ToolActivity[];
  errors: { module: string; message: string }[];
  metrics: TurnMetrics | null;
}

/** Strips the punctuation a cut-off answer ends with, so the heard part can be found in the whole. */
function stem(text: string): string {
  return text.replace(/[\s.,;:!?…]+$/u, '');
}

export class Conversation {
  /** Every turn so far, in turn order. Entries are replaced, not mutated, when they change. */
  turns: Turn[] = [];
  /** What the agent is doing now; `null` before its first state. */
  state: AgentState | null = null;

  /** Applies one event; answers whether `turns` or `state` changed. */
  apply(event: AgentEvent): boolean {
    switch (event.type) {
      case 'user.transcription':
        return this.update(event.turnId, (turn) => ({ ...turn, user: { text: event.text, final: event.final } }));
      case 'assistant.transcription':
        return this.update(event.turnId, (turn) => ({ ...turn, agent: answer(turn.agent, event.text, event.status) }));
      case 'message.interrupt':
        return this.update(event.turnId, (turn) =>
          turn.agent ? { ...turn, agent: { ...turn.agent, status: 'interrupted' } } : turn,
        );
      case 'message.metrics':
        return this.update(event.turnId, (turn) => ({ ...turn, metrics: event.metrics }));
      case 'message.error':
        return this.update(event.turnId, (turn) => ({
          ...turn,
          errors: [...turn.errors, { module: event.module, message: event.message }],
        }));
      case 'agent.state':
        if (this.state === event.state) return false;
        this.state = event.state;
        return true;
      case 'tool.call':
      case 'tool.started':
      case 'tool.finished':
        return this.update(event.turnId, (turn) => ({ ...turn, tools: toolsAfter(turn.tools, event) }));
      case 'unknown':
        return false;
    }
  }

  /** The turn with this id, if any. */
  turn(id: number): Turn | undefined {
    return this.turns.find((t) => t.id === id);
  }

  private update(id: number, change: (turn: Turn) => Turn): boolean {
    let index = this.turns.findIndex((t) => t.id === id);
    const inserted = index < 0;
    if (inserted) {
      const fresh: Turn = { id, user: null, agent: null, tools: [], errors: [], metrics: null };
      index = this.turns.findIndex((t) => t.id > id);
      if (index < 0) index = this.turns.length;
      this.turns = [...this.turns.slice(0, index), fresh, ...this.turns.slice(index)];
    }
    const before = this.turns[index]!;
    const after = change(before);
    if (after === before) return inserted;
    this.turns = [...this.turns.slice(0, index), after, ...this.turns.slice(index + 1)];
    return true;
  }
}

function answer(before: AgentAnswer | null, text: string, status: AnswerStatus): AgentAnswer {
  if (status !== 'interrupted') return { text, unheard: '', status };
  // `text` is what was heard; what was written beyond it was never heard.
  const written = before ? before.text : '';
  const heard = stem(text);
  const unheard = written.startsWith(heard) ? written.slice(heard.length) : '';
  return { text, unheard: unheard.trim() ? unheard : '', status };
}

function toolsAfter(
  tools: ToolActivity[],
  event: Extract<AgentEvent, { type: 'tool.call' | 'tool.started' | 'tool.finished' }>,
): ToolActivity[] {
  // The server sends tool.started, then (for a client tool) tool.call, then tool.finished, all
  // naming the call's id; a late or repeated message never moves a call back.
  const index = tools.findIndex((t) => t.callId === event.callId);
  const before: ToolActivity =
    index >= 0
      ? tools[index]!
      : { callId: event.callId, name: event.name, status: 'running', arguments: null, outcome: null, durationMs: null };
  let after: ToolActivity;
  switch (event.type) {
    case 'tool.call':
      after = { ...before, arguments: event.arguments, status: before.status === 'finished' ? 'finished' : 'called' };
      break;
    case 'tool.started':
      after = before;
      break;
    case 'tool.finished':
      after = { ...before, status: 'finished', outcome: event.outcome, durationMs: event.durationMs };
      break;
  }
  if (index < 0) return [...tools, after];
  return after === before ? tools : [...tools.slice(0, index), after, ...tools.slice(index + 1)];
}
