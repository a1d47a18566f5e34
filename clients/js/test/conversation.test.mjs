// The conversation model an app renders: turns in order, each with the person's words, the agent's
// answer (and what of it was heard when interrupted), tools, errors and latency.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Conversation, parseMessage } from '../dist/colloquy-client.js';

function feed(conversation, ...messages) {
  return messages.map((m) => conversation.apply(parseMessage(JSON.stringify({ agent_uid: 'a', ts: 1, ...m }))));
}

test('a greeting, then a question answered', () => {
  const c = new Conversation();
  feed(
    c,
    { object: 'agent.state', turn_id: 1, state: 'speaking' },
    { object: 'assistant.transcription', turn_id: 1, text: 'Hi!', turn_status: 0 },
    { object: 'assistant.transcription', turn_id: 1, text: 'Hi! Ask me anything.', turn_status: 1 },
    { object: 'user.transcription', turn_id: 2, text: 'What is the', final: false },
    { object: 'user.transcription', turn_id: 2, text: 'What is the capital of France?', final: true },
    { object: 'assistant.transcription', turn_id: 2, text: 'Paris.', turn_status: 1 },
    { object: 'message.metrics', turn_id: 2, metrics: { eou_delay: 640, e2e: 1200 } },
  );
  assert.equal(c.state, 'speaking');
  assert.deepEqual(
    c.turns.map((t) => [t.id, t.user, t.agent && t.agent.text, t.agent && t.agent.status]),
    [
      [1, null, 'Hi! Ask me anything.', 'ended'],
      [2, { text: 'What is the capital of France?', final: true }, 'Paris.', 'ended'],
    ],
  );
  assert.equal(c.turn(2).metrics.e2e, 1200);
  assert.equal(c.turn(2).metrics.asr_ttlw, null);
});

test('an interrupted answer keeps what was heard and strikes the rest', () => {
  const c = new Conversation();
  feed(
    c,
    { object: 'assistant.transcription', turn_id: 3, text: 'Once upon a time, a dragon lived in a cave.', turn_status: 0 },
    { object: 'message.interrupt', turn_id: 3 },
    { object: 'assistant.transcription', turn_id: 3, text: 'Once upon a time,', turn_status: 2 },
    { object: 'user.transcription', turn_id: 4, text: 'Stop, wait.', final: true },
  );
  const answer = c.turn(3).agent;
  assert.equal(answer.status, 'interrupted');
  assert.equal(answer.text, 'Once upon a time,');
  assert.equal(answer.unheard, ', a dragon lived in a cave.');
  assert.equal(c.turn(4).user.text, 'Stop, wait.');

  // An interrupt alone (no heard text yet) marks the answer without losing its words.
  const d = new Conversation();
  feed(d, { object: 'assistant.transcription', turn_id: 1, text: 'Well', turn_status: 0 }, { object: 'message.interrupt', turn_id: 1 });
  assert.deepEqual(d.turn(1).agent, { text: 'Well', unheard: '', status: 'interrupted' });
});

test('turns stay in order whatever order their messages come in, and are replaced, not changed', () => {
  const c = new Conversation();
  feed(c, { object: 'user.transcription', turn_id: 5, text: 'b', final: true });
  const before = c.turns;
  const first = c.turns[0];
  feed(c, { object: 'user.transcription', turn_id: 3, text: 'a', final: true }, { object: 'agent.state', turn_id: 9, state: 'idle' });
  assert.deepEqual(c.turns.map((t) => t.id), [3, 5]);
  assert.notEqual(c.turns, before);
  assert.equal(c.turns[1], first, 'an untouched turn is the same object');
  assert.deepEqual(before.map((t) => t.id), [5]);
});

test('what changes is reported, what does not is not', () => {
  const c = new Conversation();
  const changed = feed(
    c,
    { object: 'agent.state', turn_id: 1, state: 'listening' },
    { object: 'agent.state', turn_id: 1, state: 'listening' },
    { object: 'agent.weather', turn_id: 1 },
    { object: 'message.interrupt', turn_id: 2 },
    { object: 'message.interrupt', turn_id: 2 },
  );
  // The first interrupt makes turn 2 known; a second one changes nothing there is no answer to mark.
  assert.deepEqual(changed, [true, false, false, true, false]);
});

test('tool calls follow their turn: running, called (a client tool), finished', () => {
  const c = new Conversation();
  // The order the server sends them in: tool.started, then tool.call for a client tool.
  feed(
    c,
    { object: 'tool.started', turn_id: 6, call_id: 'c1', name: 'show_map' },
    { object: 'tool.started', turn_id: 6, call_id: 'c2', name: 'lookup_order' },
    { object: 'tool.call', turn_id: 6, call_id: 'c1', name: 'show_map', arguments: { city: 'Paris' } },
  );
  assert.deepEqual(
    c.turn(6).tools.map((t) => [t.callId, t.status]),
    [
      ['c1', 'called'],
      ['c2', 'running'],
    ],
  );
  feed(
    c,
    { object: 'tool.finished', turn_id: 6, call_id: 'c2', name: 'lookup_order', outcome: 'cancelled', duration_ms: 5000 },
    { object: 'tool.finished', turn_id: 6, call_id: 'c1', name: 'show_map', outcome: 'ok', duration_ms: 40 },
    { object: 'tool.started', turn_id: 6, call_id: 'c1', name: 'show_map' },
    { object: 'message.error', turn_id: 6, module: 'tts', message: 'the voice is gone' },
  );
  const turn = c.turn(6);
  assert.deepEqual(
    turn.tools.map((t) => [t.callId, t.name, t.status, t.outcome, t.durationMs]),
    [
      ['c1', 'show_map', 'finished', 'ok', 40],
      ['c2', 'lookup_order', 'finished', 'cancelled', 5000],
    ],
  );
  assert.deepEqual(turn.tools[0].arguments, { city: 'Paris' });
  assert.deepEqual(turn.errors, [{ module: 'tts', message: 'the voice is gone' }]);
});
