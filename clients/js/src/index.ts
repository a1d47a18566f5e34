// @colloquy/client: talk to a colloquy agent from the browser.
//
//   const call = await join({ server: 'https://voice.example.com', token });
//   call.on('turns', (turns) => render(turns));
//   await call.leave();

import { Call, type JoinOptions } from './call.js';

export { Call, type CallEvents, type ConnectionState, type JoinOptions, openMicrophone } from './call.js';
export { type Backoff, DEFAULT_BACKOFF, backoffDelay } from './backoff.js';
export { Conversation, type AgentAnswer, type ToolActivity, type Turn, type UserSpeech } from './conversation.js';
export { ColloquyError, type ErrorCode, type ServerRefusal } from './errors.js';
export * from './protocol.js';
export { type Fetch, type WhipSession, whipEndpoint, whipLeave, whipOffer, whipRenew } from './whip.js';

/** Opens the microphone (or sends `options.track`), joins the call and resolves once connected. */
export async function join(options: JoinOptions): Promise<Call> {
  const call = new Call(options);
  await call.join();
  return call;
}
