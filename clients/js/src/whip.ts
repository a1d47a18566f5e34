// WHIP signalling (RFC 9725) over fetch: the offer is POSTed with the token as a bearer, the answer
// and the resource URL come back; PATCH renews the token (colloquy's extension), DELETE leaves.
// No cookies are sent: the token is the authorization.

import { ColloquyError, readRefusal, whipRefusal } from './errors.js';

export type Fetch = typeof fetch;

export interface WhipSession {
  /** The SDP answer. */
  answer: string;
  /** The resource to PATCH and DELETE (absolute), or `null` when the server gave none. */
  resource: string | null;
  /** Where the offer was answered: the endpoint, or where a redirect led. */
  endpoint: string;
}

function unreachable(url: string, e: unknown): ColloquyError {
  return new ColloquyError('server_unreachable', `Cannot reach the colloquy server at ${new URL(url).origin}.`, null, {
    cause: e,
  });
}

async function send(http: Fetch, url: string, init: RequestInit): Promise<Response> {
  try {
    return await http(url, { ...init, credentials: 'omit', cache: 'no-store' });
  } catch (e) {
    throw unreachable(url, e);
  }
}

/**
 * Posts the offer. A clustered server answers `307 Temporary Redirect` to the node that owns the
 * channel (RFC 9725 §4.5); fetch follows it with the same method and body, but drops the
 * `Authorization` header when the redirect crosses origins, so a 401 after a redirect is asked
 * again, once, at the URL the redirect led to.
 */
export async function whipOffer(
  http: Fetch,
  endpoint: string,
  token: string,
  offer: string,
  signal?: AbortSignal,
): Promise<WhipSession> {
  const post = (url: string) =>
    send(http, url, {
      method: 'POST',
      signal: signal ?? null,
      redirect: 'follow',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/sdp' },
      body: offer,
    });
  let response = await post(endpoint);
  if (response.status === 401 && response.redirected && response.url && response.url !== endpoint) {
    await response.body?.cancel();
    response = await post(response.url);
  }
  if (response.status !== 201) throw whipRefusal(await readRefusal(response));
  const answered = response.url || endpoint;
  const location = response.headers.get('Location');
  return {
    answer: await response.text(),
    resource: location ? new URL(location, answered).href : null,
    endpoint: answered,
  };
}

/** Sends a newer token for the same channel and uid. */
export async function whipRenew(http: Fetch, resource: string, token: string): Promise<void> {
  const response = await send(http, resource, { method: 'PATCH', headers: { Authorization: `Bearer ${token}` } });
  if (response.ok) return;
  throw whipRefusal(await readRefusal(response));
}

/** Leaves the channel. Best effort: a resource the server already forgot is gone either way. */
export async function whipLeave(http: Fetch, resource: string): Promise<void> {
  try {
    await http(resource, { method: 'DELETE', credentials: 'omit', keepalive: true });
  } catch {
    // The server is unreachable: it drops us when the media stops.
  }
}

/** The WHIP endpoint for a server's base URL and an optional channel. */
export function whipEndpoint(server: string, channel?: string, base?: string): string {
  const url = new URL('rtc/whip', new URL(server.endsWith('/') ? server : `${server}/`, base));
  if (channel !== undefined) url.searchParams.set('channel', channel);
  return url.href;
}
