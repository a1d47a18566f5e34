//! Identifiers and names. Each is a newtype whose constructor checks its rules, so a value that
//! exists is a valid one.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a name or identifier was refused. The message is written for the API caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidName(pub String);

/// The characters allowed in agent names, channel names and uids: ASCII letters, digits and
/// `_ - . : @`. This keeps them safe in URLs, logs, SQL and every vendor dialect.
fn check_name(kind: &str, value: &str, max_len: usize) -> Result<(), InvalidName> {
    if value.is_empty() {
        return Err(InvalidName(format!("{kind} must not be empty")));
    }
    if value.len() > max_len {
        return Err(InvalidName(format!("{kind} is {} characters long; the maximum is {max_len}", value.len())));
    }
    if let Some(bad) = value.chars().find(|c| !(c.is_ascii_alphanumeric() || "_-.:@".contains(*c))) {
        return Err(InvalidName(format!("{kind} contains {bad:?}; allowed are ASCII letters, digits and _ - . : @")));
    }
    Ok(())
}

macro_rules! checked_name {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The longest value accepted, in bytes.
            pub const MAX_LEN: usize = $max;

            /// Checks `value` against the rules of this kind of name.
            pub fn new(value: impl Into<String>) -> Result<Self, InvalidName> {
                let value = value.into();
                check_name($kind, &value, Self::MAX_LEN)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidName;
            fn try_from(value: String) -> Result<Self, InvalidName> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

checked_name!(
    /// The name a caller gives an agent. Unique among the running agents of one app.
    AgentName, "name", 64
);
checked_name!(
    /// A channel (a room): the agent and the people it talks to meet there.
    ChannelName, "channel", 64
);
checked_name!(
    /// A participant's id within a channel.
    Uid, "uid", 64
);
checked_name!(
    /// The tenant an agent belongs to. Each app sees only its own agents. The native API's
    /// credentials are the app [`AppId::native`]; vendor dialects use the ids of configured apps.
    AppId, "app id", 64
);

impl AppId {
    /// The app of the native `/v1` API credentials.
    pub fn native() -> Self {
        Self("native".to_owned())
    }
}

/// An agent's identifier, chosen by the server. Opaque to callers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AgentId(String);

impl AgentId {
    /// Wraps an id the server generated or read back from its records.
    pub fn from_string(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of one turn of a conversation. Every LLM delta, TTS chunk and playout frame carries the id
/// of the turn it belongs to, so that a cancelled turn's leftovers are recognised and dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TurnId(pub u64);

impl fmt::Display for TurnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "turn {}", self.0)
    }
}

/// A credential or key that must never reach a log line or a record. `Debug` prints `"<redacted>"`,
/// and it serializes (for records) as the string `"<redacted>"`: the real value lives only in memory,
/// with the live agent that uses it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// What a redacted secret looks like in records and API answers.
    pub const REDACTED: &'static str = "<redacted>";

    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it (an outgoing request).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(Self::REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_their_rules() {
        assert!(AgentName::new("support-bot_1.v2").is_ok());
        assert!(ChannelName::new("room:42@eu").is_ok());
        assert_eq!(AgentName::new("").unwrap_err().0, "name must not be empty");
        assert!(AgentName::new("a".repeat(65)).unwrap_err().0.contains("maximum is 64"));
        assert!(Uid::new("a b").unwrap_err().0.contains("' '"));
        assert!(ChannelName::new("é").is_err());
    }

    #[test]
    fn secrets_never_print_or_serialize() {
        let s = Secret::new("sk-live-123");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"<redacted>\"");
        assert_eq!(s.expose(), "sk-live-123");
    }
}
