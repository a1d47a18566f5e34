//! What every node counts together: request nonces, per-credential rate limits and per-agent
//! callback sequence numbers. Without a cluster, a node keeps the first in its records and the
//! others in its memory; with one, they are here, so a replay, a burst or a sequence does not
//! depend on which node a request or an event reaches.

use std::time::Duration;

use colloquy_model::AgentId;

use crate::{Cluster, ClusterError, PREFIX};

/// A token bucket per key: `tokens` refill at ARGV[1] per second up to ARGV[2]; answers 0 when a
/// token was taken, else the milliseconds until one will be there. Redis's clock, so every node
/// refills one bucket the same way.
const TAKE_TOKEN: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(bucket[1]) or capacity
local at = tonumber(bucket[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate / 1000)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity * 1000 / rate) + 1000)
return wait
";

/// The next sequence number of an agent: ARGV[1] (the event's time in µs) or one more than the
/// last, whichever is larger; ARGV[2] = '1' forgets the agent (its last event).
const NEXT_SEQUENCE: &str = r"
local previous = tonumber(redis.call('GET', KEYS[1]) or '0')
local next = math.max(tonumber(ARGV[1]), previous + 1)
if ARGV[2] == '1' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], string.format('%.0f', next), 'PX', 86400000)
end
return string.format('%.0f', next)
";

impl Cluster {
    /// Records `nonce` as used in `scope` for `keep` (`SET NX` with that expiry); answers `false`
    /// when it was used already and is still remembered.
    pub async fn use_nonce(&self, scope: &str, nonce: &str, keep: Duration) -> Result<bool, ClusterError> {
        let mut conn = self.conn().await?;
        let taken: Option<String> = redis::cmd("SET")
            .arg(format!("{PREFIX}nonce:{}:{scope}:{nonce}", scope.len()))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(keep.as_millis().max(1) as u64)
            .query_async(&mut *conn)
            .await?;
        Ok(taken.is_some())
    }

    /// Takes one request from `key`'s bucket (`per_second` sustained, `burst` at once), or answers
    /// how long until one is there.
    pub async fn take_request(
        &self,
        key: &str,
        per_second: u32,
        burst: u32,
    ) -> Result<Result<(), Duration>, ClusterError> {
        let mut conn = self.conn().await?;
        let wait_ms: i64 = redis::Script::new(TAKE_TOKEN)
            .key(format!("{PREFIX}rate:{key}"))
            .arg(per_second.max(1))
            .arg(burst.max(1))
            .invoke_async(&mut *conn)
            .await?;
        Ok(if wait_ms <= 0 { Ok(()) } else { Err(Duration::from_millis(wait_ms as u64)) })
    }

    /// The next callback sequence number of `agent` for an event at `at_ms` (its time in µs, or one
    /// more than the last); `ended` forgets the agent.
    pub async fn next_sequence(&self, agent: &AgentId, at_ms: i64, ended: bool) -> Result<i64, ClusterError> {
        let mut conn = self.conn().await?;
        let next: String = redis::Script::new(NEXT_SEQUENCE)
            .key(format!("{PREFIX}sequence:{agent}"))
            .arg(at_ms.saturating_mul(1000))
            .arg(if ended { "1" } else { "0" })
            .invoke_async(&mut *conn)
            .await?;
        next.parse().map_err(|_| ClusterError::Corrupt(format!("a sequence number {next:?}")))
    }
}
