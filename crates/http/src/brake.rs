//! The brute-force brake: repeated authentication failures from one client address are slowed,
//! then refused with 429 and `Retry-After`, without locking the right credential out elsewhere.
//!
//! Failures count per (address, credential named) and per address across credentials (to stop a
//! spray of keys). Past [`BrakeConfig::free_failures`] in a [`BrakeConfig::window`], every further
//! failure closes the pair for twice as long as the last, from one second up to
//! [`BrakeConfig::max_block`]; while closed, every request of the pair is refused before its
//! credentials are checked, so a guess costs the guesser the wait whether it is right or wrong. A
//! success clears the pair. The same credential from another address is counted apart, and a
//! request with no known address (in-process tests) is counted by the credential alone.
//!
//! The state is bounded: at most [`BrakeConfig::max_entries`] pairs are kept; past that, the
//! entries not closed now are forgotten first.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use tokio::time::Instant;

use crate::error::{ApiError, ErrorCode};

/// The client's address, when the listener knows it (`ConnectInfo`); never fails to extract.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Peer(pub Option<IpAddr>);

impl Peer {
    pub fn of(parts: &Parts) -> Peer {
        Peer(parts.extensions.get::<axum::extract::ConnectInfo<SocketAddr>>().map(|info| info.0.ip()))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Peer, Self::Rejection> {
        Ok(Peer::of(parts))
    }
}

/// How hard the brake holds.
#[derive(Clone, Copy, Debug)]
pub struct BrakeConfig {
    /// Failures a pair may make in a window before it is closed.
    pub free_failures: u32,
    /// Failures an address may make across every credential in a window.
    pub free_failures_per_address: u32,
    /// How long failures are remembered.
    pub window: Duration,
    /// The longest a pair is closed.
    pub max_block: Duration,
    /// Pairs remembered at most.
    pub max_entries: usize,
}

impl BrakeConfig {
    pub const DEFAULT: BrakeConfig = BrakeConfig {
        free_failures: 5,
        free_failures_per_address: 50,
        window: Duration::from_secs(600),
        max_block: Duration::from_secs(300),
        max_entries: 10_000,
    };

    /// Never closes: for tests that make many failed attempts on purpose.
    pub const OFF: BrakeConfig =
        BrakeConfig { free_failures: u32::MAX, free_failures_per_address: u32::MAX, ..BrakeConfig::DEFAULT };
}

#[derive(Debug)]
struct Entry {
    failures: u32,
    first_failure: Instant,
    closed_until: Option<Instant>,
}

impl Entry {
    fn new(now: Instant) -> Entry {
        Entry { failures: 0, first_failure: now, closed_until: None }
    }
}

/// What the brake counts: an address with one credential, or an address with any.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Subject {
    Pair(Option<IpAddr>, String),
    Address(IpAddr),
}

#[derive(Debug)]
pub struct AuthBrake {
    config: BrakeConfig,
    entries: Mutex<HashMap<Subject, Entry>>,
}

impl AuthBrake {
    pub fn new(config: BrakeConfig) -> AuthBrake {
        AuthBrake { config, entries: Mutex::new(HashMap::new()) }
    }

    fn subjects(peer: Peer, credential: &str) -> [Option<Subject>; 2] {
        [Some(Subject::Pair(peer.0, credential.to_owned())), peer.0.map(Subject::Address)]
    }

    /// Refuses, with 429 and `Retry-After`, a request from `peer` naming `credential` while either
    /// is closed. Call before checking the credential.
    pub fn check(&self, peer: Peer, credential: &str) -> Result<(), ApiError> {
        let now = Instant::now();
        let entries = self.entries.lock().expect("the brake's lock is never held across a panic");
        for subject in Self::subjects(peer, credential).into_iter().flatten() {
            if let Some(until) = entries.get(&subject).and_then(|e| e.closed_until).filter(|until| *until > now) {
                let wait = until - now;
                let mut error = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::RateLimited,
                    format!(
                        "too many failed authentications from this address; retry in {} s",
                        wait.as_secs_f64().ceil().max(1.0)
                    ),
                );
                error.retry_after_secs = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
                return Err(error);
            }
        }
        Ok(())
    }

    /// Counts a failed authentication of `credential` from `peer`.
    pub fn failed(&self, peer: Peer, credential: &str) {
        let now = Instant::now();
        let config = self.config;
        let mut entries = self.entries.lock().expect("the brake's lock is never held across a panic");
        if entries.len() >= config.max_entries {
            entries.retain(|_, e| e.closed_until.is_some_and(|until| until > now));
            if entries.len() >= config.max_entries {
                entries.clear();
            }
        }
        for subject in Self::subjects(peer, credential).into_iter().flatten() {
            let free = match subject {
                Subject::Pair(..) => config.free_failures,
                Subject::Address(_) => config.free_failures_per_address,
            };
            let entry = entries.entry(subject).or_insert_with(|| Entry::new(now));
            if now.saturating_duration_since(entry.first_failure) > config.window
                && entry.closed_until.is_none_or(|until| until <= now)
            {
                *entry = Entry::new(now);
            }
            entry.failures += 1;
            if entry.failures > free {
                let doublings = (entry.failures - free - 1).min(20);
                let block = Duration::from_secs(1u64 << doublings).min(config.max_block);
                entry.closed_until = Some(now + block);
            }
        }
    }

    /// Clears the pair after a success.
    pub fn succeeded(&self, peer: Peer, credential: &str) {
        let mut entries = self.entries.lock().expect("the brake's lock is never held across a panic");
        entries.remove(&Subject::Pair(peer.0, credential.to_owned()));
    }

    /// How many subjects are remembered (for the bound's test).
    pub fn remembered(&self) -> usize {
        self.entries.lock().expect("the brake's lock is never held across a panic").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(last: u8) -> Peer {
        Peer(Some(IpAddr::from([10, 0, 0, last])))
    }

    #[tokio::test(start_paused = true)]
    async fn failures_close_the_pair_for_longer_and_longer_but_not_the_credential_elsewhere() {
        let brake = AuthBrake::new(BrakeConfig::DEFAULT);
        for _ in 0..5 {
            brake.check(peer(1), "k").unwrap();
            brake.failed(peer(1), "k");
        }
        brake.check(peer(1), "k").unwrap();
        brake.failed(peer(1), "k");
        // The sixth failure closes the pair for 1 s; the right credential from elsewhere works.
        assert_eq!(brake.check(peer(1), "k").unwrap_err().retry_after_secs, Some(1));
        brake.check(peer(2), "k").unwrap();
        brake.check(peer(1), "other-key").unwrap();
        tokio::time::advance(Duration::from_millis(1001)).await;
        brake.check(peer(1), "k").unwrap();
        brake.failed(peer(1), "k");
        assert_eq!(brake.check(peer(1), "k").unwrap_err().retry_after_secs, Some(2));
        // A success clears the pair.
        tokio::time::advance(Duration::from_secs(3)).await;
        brake.succeeded(peer(1), "k");
        brake.failed(peer(1), "k");
        brake.check(peer(1), "k").unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_address_spraying_keys_is_closed_too() {
        let brake = AuthBrake::new(BrakeConfig::DEFAULT);
        for i in 0..51 {
            brake.failed(peer(1), &format!("key-{i}"));
        }
        assert!(brake.check(peer(1), "a-new-key").is_err());
        brake.check(peer(2), "a-new-key").unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn the_state_is_bounded() {
        let brake = AuthBrake::new(BrakeConfig { max_entries: 100, ..BrakeConfig::DEFAULT });
        for i in 0..10_000u32 {
            brake.failed(Peer(Some(IpAddr::from(i.to_be_bytes()))), "k");
        }
        assert!(brake.remembered() <= 100, "{}", brake.remembered());
    }
}
