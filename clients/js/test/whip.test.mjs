// WHIP signalling against real HTTP servers on loopback: the answer and its resource, a 307 to
// another node (RFC 9725) followed with the token, renewal, and the errors an app can tell apart.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, test } from 'node:test';

import { ColloquyError, backoffDelay, DEFAULT_BACKOFF, whipEndpoint, whipOffer, whipRenew } from '../dist/colloquy-client.js';

const servers = [];
after(() => Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve)))));

// A WHIP endpoint like colloquy's: bearer `good` is accepted, `old` is expired.
async function serve(handler) {
  const seen = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, auth: req.headers.authorization ?? null, type: req.headers['content-type'] ?? null, body });
      handler(req, res, body);
    });
  });
  servers.push(server);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { base: `http://127.0.0.1:${server.address().port}`, seen };
}

function refuse(res, status, code, message) {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ error: { code, message } }));
}

function whip(req, res, body) {
  const token = (req.headers.authorization || '').replace(/^Bearer /, '');
  if (!req.headers.authorization) return refuse(res, 401, 'unauthorized', 'WHIP needs Authorization: Bearer <RTC token>');
  if (token === 'old') return refuse(res, 401, 'unauthorized', 'the token expired at 1700000000');
  if (token !== 'good' && token !== 'newer') return refuse(res, 401, 'unauthorized', 'the token signature does not match');
  if (req.method === 'POST') {
    if (req.url.includes('channel=full')) return refuse(res, 503, 'channel_full', 'channel full has its maximum of 16 participants');
    res.writeHead(201, { 'Content-Type': 'application/sdp', Location: '/rtc/whip/abc123' });
    return res.end(`answer to ${body}`);
  }
  if (req.method === 'PATCH') {
    if (req.url !== '/rtc/whip/abc123') return refuse(res, 404, 'not_found', 'WHIP resource not found');
    res.writeHead(204);
    return res.end();
  }
  refuse(res, 405, 'method_not_allowed', 'no');
}

test('the offer is answered with an absolute resource URL', async () => {
  const node = await serve(whip);
  const session = await whipOffer(fetch, whipEndpoint(node.base, 'play-1'), 'good', 'v=0 offer');
  assert.equal(session.answer, 'answer to v=0 offer');
  assert.equal(session.resource, `${node.base}/rtc/whip/abc123`);
  assert.deepEqual(node.seen[0], {
    method: 'POST',
    url: '/rtc/whip?channel=play-1',
    auth: 'Bearer good',
    type: 'application/sdp',
    body: 'v=0 offer',
  });
});

test('a 307 to the node that owns the channel is followed with the token', async () => {
  const owner = await serve(whip);
  const front = await serve((req, res) => {
    res.writeHead(307, { Location: `${owner.base}/rtc/whip?channel=play-2` });
    res.end();
  });
  const session = await whipOffer(fetch, whipEndpoint(front.base, 'play-2'), 'good', 'v=0 offer');
  assert.equal(session.answer, 'answer to v=0 offer');
  assert.equal(session.resource, `${owner.base}/rtc/whip/abc123`, 'the resource is on the owner');
  assert.equal(session.endpoint, `${owner.base}/rtc/whip?channel=play-2`);
  const answered = owner.seen.filter((r) => r.auth === 'Bearer good');
  assert.equal(answered.length, 1, JSON.stringify(owner.seen));
  assert.equal(answered[0].body, 'v=0 offer', 'the offer itself went to the owner');
  // The renewal goes to the owner as well.
  await whipRenew(fetch, session.resource, 'newer');
  assert.deepEqual(owner.seen.at(-1).method, 'PATCH');
});

test('an expired or refused token, a refused join and a server that is down are told apart', async () => {
  const node = await serve(whip);
  const refused = async (token, channel) => {
    try {
      await whipOffer(fetch, whipEndpoint(node.base, channel), token, 'v=0');
    } catch (e) {
      assert.ok(e instanceof ColloquyError);
      return e;
    }
    assert.fail('the offer was accepted');
  };
  const expired = await refused('old', 'a');
  assert.deepEqual([expired.code, expired.reason, expired.refusal.status], ['token_expired', 'the token expired at 1700000000', 401]);
  assert.match(expired.message, /refused the call's token: the token expired/);
  const forged = await refused('forged', 'a');
  assert.deepEqual([forged.code, forged.reason], ['token_refused', 'the token signature does not match']);
  const full = await refused('good', 'full');
  assert.deepEqual([full.code, full.refusal.code, full.refusal.status], ['join_refused', 'channel_full', 503]);

  const gone = await serve(whip);
  await new Promise((resolve) => servers.pop().close(resolve));
  await assert.rejects(whipOffer(fetch, whipEndpoint(gone.base), 'good', 'v=0'), (e) => e.code === 'server_unreachable');
});

test('renewal: accepted, refused with the reason, or the resource is gone', async () => {
  const node = await serve(whip);
  await whipRenew(fetch, `${node.base}/rtc/whip/abc123`, 'newer');
  assert.equal(node.seen.at(-1).auth, 'Bearer newer');
  await assert.rejects(whipRenew(fetch, `${node.base}/rtc/whip/abc123`, 'old'), (e) => e.code === 'token_expired');
  await assert.rejects(
    whipRenew(fetch, `${node.base}/rtc/whip/zzz`, 'good'),
    (e) => e.code === 'join_refused' && e.refusal.status === 404,
  );
});

test('the endpoint is the server URL with /rtc/whip, with or without a path', () => {
  assert.equal(whipEndpoint('https://voice.example.com'), 'https://voice.example.com/rtc/whip');
  assert.equal(whipEndpoint('https://example.com/colloquy/', 'a b'), 'https://example.com/colloquy/rtc/whip?channel=a+b');
  assert.equal(whipEndpoint('/', undefined, 'http://127.0.0.1:8080/page'), 'http://127.0.0.1:8080/rtc/whip');
});

test('reconnect waits double each time, up to the cap, with bounded jitter', () => {
  const waits = [0, 1, 2, 3, 4, 5, 6].map((n) => backoffDelay(DEFAULT_BACKOFF, n, 0.5));
  assert.deepEqual(waits, [250, 500, 1000, 2000, 4000, 8000, 8000]);
  assert.equal(backoffDelay(DEFAULT_BACKOFF, 0, 0), 200);
  assert.equal(backoffDelay(DEFAULT_BACKOFF, 0, 1), 300);
});
