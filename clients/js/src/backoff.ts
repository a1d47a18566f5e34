// How long to wait before each attempt to join again after the connection was lost.

export interface Backoff {
  /** Attempts before giving up (the call ends with `ice_failed` or the server's refusal). Default 6. */
  attempts: number;
  /** The first wait, ms. Default 250. */
  initialMs: number;
  /** The longest wait, ms. Default 8000. */
  maxMs: number;
}

export const DEFAULT_BACKOFF: Backoff = { attempts: 6, initialMs: 250, maxMs: 8000 };

/** The wait before attempt `n` (0-based): doubling from `initialMs` up to `maxMs`, with ±20% jitter from `random` (0..1). */
export function backoffDelay(backoff: Backoff, n: number, random: number): number {
  const base = Math.min(backoff.maxMs, backoff.initialMs * 2 ** n);
  return Math.round(base * (0.8 + 0.4 * random));
}
