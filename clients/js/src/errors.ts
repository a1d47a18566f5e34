// What can go wrong, as one error class with a closed set of codes an app can switch on.

/** Why a call could not start, or why it ended. */
export type ErrorCode =
  /** The person or the browser refused the microphone. */
  | 'microphone_refused'
  /** No microphone is connected. */
  | 'microphone_not_found'
  /** The microphone exists but could not be opened (another application holds it). */
  | 'microphone_unavailable'
  /** The page is not a secure context, so the browser gives it no microphone. */
  | 'insecure_context'
  /** The server refused the RTC token because it has expired (`reason` is the server's message). */
  | 'token_expired'
  /** The server refused the RTC token (`reason` is the server's message). */
  | 'token_refused'
  /** No answer from the server: it is down, or the network is. */
  | 'server_unreachable'
  /** The server answered the join with another error (channel full, uid taken, bad offer…). */
  | 'join_refused'
  /** The media connection could not be made, or made again after a network change. */
  | 'ice_failed'
  /** An operation that needs a live call was asked for without one. */
  | 'not_connected'
  /** `leave()` was called while joining. */
  | 'left';

/** The error envelope's fields, when the server sent one. */
export interface ServerRefusal {
  status: number;
  code: string | null;
  message: string;
  field: string | null;
}

export class ColloquyError extends Error {
  override readonly name = 'ColloquyError';
  readonly code: ErrorCode;
  /** The server's own words, when it refused something. */
  readonly reason: string | null;
  /** The server's answer, when there was one. */
  readonly refusal: ServerRefusal | null;

  constructor(code: ErrorCode, message: string, refusal: ServerRefusal | null = null, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.refusal = refusal;
    this.reason = refusal ? refusal.message : null;
  }
}

/** The error for a `getUserMedia` rejection. */
export function microphoneError(e: unknown): ColloquyError {
  const name = e instanceof Error || (typeof e === 'object' && e !== null) ? (e as { name?: string }).name : undefined;
  const detail = e instanceof Error ? e.message : String(e);
  switch (name) {
    case 'NotAllowedError':
    case 'SecurityError':
    case 'PermissionDeniedError':
      return new ColloquyError('microphone_refused', 'Microphone access was refused, so the agent cannot hear you.', null, {
        cause: e,
      });
    case 'NotFoundError':
    case 'OverconstrainedError':
      return new ColloquyError('microphone_not_found', 'No microphone was found.', null, { cause: e });
    default:
      return new ColloquyError(
        'microphone_unavailable',
        `The microphone is busy or failed to start (another application may hold it): ${detail}`,
        null,
        { cause: e },
      );
  }
}

/** Reads the server's error envelope (`{"error": {code, message, field}}`) or makes a stand-in. */
export async function readRefusal(response: Response): Promise<ServerRefusal> {
  let body: unknown = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON: a proxy, or an older server.
  }
  const error = typeof body === 'object' && body !== null ? (body as { error?: unknown }).error : undefined;
  const field = (name: string): string | null => {
    const value = typeof error === 'object' && error !== null ? (error as Record<string, unknown>)[name] : undefined;
    return typeof value === 'string' ? value : null;
  };
  return {
    status: response.status,
    code: field('code'),
    message: field('message') ?? `HTTP ${response.status} ${response.statusText}`.trim(),
    field: field('field'),
  };
}

/** The error for a refused WHIP request: 401 is about the token, anything else about the join. */
export function whipRefusal(refusal: ServerRefusal): ColloquyError {
  if (refusal.status === 401) {
    const expired = /expired/i.test(refusal.message);
    return new ColloquyError(
      expired ? 'token_expired' : 'token_refused',
      `The server refused the call's token: ${refusal.message}`,
      refusal,
    );
  }
  return new ColloquyError('join_refused', `The server refused to join the call: ${refusal.message}`, refusal);
}
