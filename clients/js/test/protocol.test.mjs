// The data channel's messages as the agent sends them (crates/agent/src/protocol.rs) become typed
// events; anything else becomes an `unknown` event, never an exception.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { parseMessage } from '../dist/colloquy-client.js';

const msg = (fields) => JSON.stringify({ agent_uid: 'agent-1', ts: 1700000000000, ...fields });

test('transcripts, partial and final, and answers with their status', () => {
  const partial = parseMessage(msg({ object: 'user.transcription', turn_id: 2, text: 'what is', final: false }));
  assert.equal(partial.type, 'user.transcription');
  assert.deepEqual([partial.turnId, partial.text, partial.final, partial.agentUid, partial.ts], [2, 'what is', false, 'agent-1', 1700000000000]);
  assert.equal(parseMessage(msg({ object: 'user.transcription', turn_id: 2, text: 'what is it', final: true })).final, true);

  const statuses = [0, 1, 2].map(
    (s) => parseMessage(msg({ object: 'assistant.transcription', turn_id: 3, text: 'Hi.', turn_status: s })).status,
  );
  assert.deepEqual(statuses, ['in_progress', 'ended', 'interrupted']);
});

test('state, interrupt, metrics and errors', () => {
  const state = parseMessage(msg({ object: 'agent.state', turn_id: 1, state: 'thinking' }));
  assert.deepEqual([state.type, state.state], ['agent.state', 'thinking']);
  assert.equal(parseMessage(msg({ object: 'message.interrupt', turn_id: 4 })).type, 'message.interrupt');

  const metrics = parseMessage(
    msg({ object: 'message.metrics', turn_id: 5, metrics: { eou_delay: 640, asr_ttlw: 780, llm_ttft: null, e2e: 1300, tool: 12 } }),
  );
  assert.equal(metrics.type, 'message.metrics');
  assert.equal(metrics.metrics.eou_delay, 640);
  assert.equal(metrics.metrics.llm_ttft, null);
  assert.equal(metrics.metrics.tts_ttfb, null, 'a stage the server left out is null');
  assert.equal(metrics.metrics.tool, 12, 'a stage this version does not name is kept');

  const error = parseMessage(msg({ object: 'message.error', turn_id: 6, module: 'llm', message: 'timed out' }));
  assert.deepEqual([error.type, error.module, error.message], ['message.error', 'llm', 'timed out']);
});

test('tool calls, their start and their end, as crates/agent/src/protocol.rs writes them', () => {
  // The server's messages, field for field (see the tests of crates/agent/src/protocol.rs).
  const started = parseMessage(
    msg({ object: 'tool.started', turn_id: 3, call_id: 'call_1', name: 'show_map', agent_uid: 'a', ts: 7 }),
  );
  assert.deepEqual([started.type, started.turnId, started.callId, started.name], ['tool.started', 3, 'call_1', 'show_map']);
  const call = parseMessage(
    msg({ object: 'tool.call', turn_id: 3, call_id: 'call_1', name: 'show_map', arguments: { city: 'Oslo' }, agent_uid: 'a', ts: 7 }),
  );
  assert.equal(call.type, 'tool.call');
  assert.deepEqual([call.callId, call.name, call.arguments, call.agentUid, call.ts], ['call_1', 'show_map', { city: 'Oslo' }, 'a', 7]);
  // Arguments the LLM wrote that are not JSON come as the text they are.
  const text = parseMessage(msg({ object: 'tool.call', turn_id: 3, call_id: 'call_2', name: 'x', arguments: '{"city":' }));
  assert.deepEqual([text.callId, text.arguments], ['call_2', '{"city":']);

  const finished = parseMessage(
    msg({ object: 'tool.finished', turn_id: 4, call_id: 'call_1', name: 'get_weather', duration_ms: 120, outcome: 'error', agent_uid: 'a', ts: 7 }),
  );
  assert.deepEqual(
    [finished.type, finished.callId, finished.name, finished.outcome, finished.durationMs],
    ['tool.finished', 'call_1', 'get_weather', 'error', 120],
  );
});

test('a kind this version does not know is an unknown event with the message', () => {
  const event = parseMessage(msg({ object: 'agent.mood', turn_id: 8, mood: 'cheerful' }));
  assert.equal(event.type, 'unknown');
  assert.equal(event.object, 'agent.mood');
  assert.equal(event.turnId, 8);
  assert.equal(event.problem, null);
  assert.equal(event.raw.mood, 'cheerful');
});

test('unreadable messages are unknown events that say why', () => {
  const cases = [
    ['not json', 'not JSON'],
    ['[1,2]', 'not a JSON object'],
    ['"text"', 'not a JSON object'],
    [JSON.stringify({ turn_id: 1 }), 'no object field'],
    [msg({ object: 'user.transcription', turn_id: 1, text: 'hi' }), 'user.transcription: final is not a boolean'],
    [msg({ object: 'user.transcription', text: 'hi', final: true }), 'user.transcription: turn_id is not a number'],
    [msg({ object: 'assistant.transcription', turn_id: 1, text: 'hi', turn_status: 7 }), 'assistant.transcription: turn_status is not 0, 1 or 2'],
    [msg({ object: 'agent.state', turn_id: 1, state: 'dancing' }), 'agent.state: state "dancing" is not known'],
    [msg({ object: 'tool.call', turn_id: 1, name: 'x' }), 'tool.call: call_id is not a string'],
    [msg({ object: 'tool.finished', turn_id: 1, call_id: 'c', name: 'x', outcome: 'ok' }), 'tool.finished: duration_ms is not a number'],
  ];
  for (const [text, problem] of cases) {
    const event = parseMessage(text);
    assert.equal(event.type, 'unknown', text);
    assert.equal(event.problem, problem, text);
  }
  assert.equal(parseMessage(new ArrayBuffer(4)).problem, 'not a text message');
});
