//! The apps this server serves, from the config file's `[[apps]]`. An app is a tenant: it sees only
//! its own agents, whichever dialect it calls through. Each dialect names the app's credentials its
//! own way:
//!
//! | dialect | app `id` | app `key` | app `secret` |
//! |---|---|---|---|
//! | native `/v1` | – | Basic user | Basic password |
//! | Agora | `{appid}` in the path | Basic customer id | Basic customer secret |
//! | ZEGO | `AppId` | – (may be left out) | `ServerSecret` (signs requests) |
//! | Alibaba OpenAPI | – | `AccessKeyId` | `AccessKeySecret` (signs requests) |
//! | Alibaba app server | – | Basic user | Basic password |
//! | Alibaba ARTC token | `appid` | – | the ARTC app key the token is hashed with |

use colloquy_model::{AgentProfile, AppId, Secret};

/// One `[[apps]]` entry.
#[derive(Clone, Debug)]
pub struct App {
    pub id: AppId,
    /// `None` for an app whose dialect has no key (ZEGO's): Basic auth and Alibaba's
    /// `AccessKeyId` then find nothing.
    pub key: Option<String>,
    pub secret: Secret,
    /// Where the webhooks of the agents this app starts through a vendor dialect go, in that
    /// dialect's form. Native agents name their own `callbacks`.
    pub webhook: Option<AppWebhook>,
    /// Which Alibaba ARTC `rtc_auth_token`s open this app's channels.
    pub artc_tokens: ArtcTokens,
    /// The agents configured ahead of their calls (`[[apps.agents]]`), which the dialects start by
    /// id. Empty: any id is taken, and the agent runs with the dialect's defaults.
    pub agents: Vec<ConfiguredAgent>,
    /// Whether a speech vendor this node does not implement is replaced by the embedded model
    /// (with a warning on the agent) instead of refused.
    pub substitute_unsupported_vendors: bool,
    /// Speech vendors' API keys by vendor name (`deepgram`), for requests that send none.
    pub vendor_keys: std::collections::BTreeMap<String, Secret>,
}

impl App {
    /// What the app's requests are rate-limited by: its key, else its id.
    pub fn rate_key(&self) -> &str {
        self.key.as_deref().unwrap_or(self.id.as_str())
    }

    /// The callbacks of an agent this app starts through a vendor dialect: the configured
    /// agent's own webhook when it has one, else the app's.
    pub fn callbacks(&self, agent: Option<&ConfiguredAgent>) -> Option<colloquy_model::Callbacks> {
        agent
            .and_then(|agent| agent.webhook.as_ref())
            .or(self.webhook.as_ref())
            .map(|hook| colloquy_model::Callbacks { url: hook.url.clone(), secret: hook.secret.clone() })
    }

    /// The configured agent with this id: `Ok(None)` when the app configures none (any id is
    /// taken), [`UnknownAgent`] when it configures others.
    pub fn configured_agent(&self, id: &str) -> Result<Option<&ConfiguredAgent>, UnknownAgent> {
        if self.agents.is_empty() {
            return Ok(None);
        }
        self.agents.iter().find(|agent| agent.id == id).map(Some).ok_or(UnknownAgent)
    }
}

/// One `[[apps.agents]]` entry: an agent as a vendor's console keeps it.
#[derive(Clone, Debug)]
pub struct ConfiguredAgent {
    /// The id the dialects name it by (Alibaba's `AIAgentId`, ZEGO's `AgentId`).
    pub id: String,
    pub profile: AgentProfile,
    /// Where this agent's webhooks go instead of the app's.
    pub webhook: Option<AppWebhook>,
}

impl ConfiguredAgent {
    /// The longest id.
    pub const MAX_ID_CHARS: usize = 128;
}

/// An app that configures agents was asked for one it does not have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownAgent;

/// `[[apps]] artc_tokens`: which ARTC tokens the channel server takes for an app.
///
/// Alibaba's scheme hashes `appid + appkey + channelid + userid + timestamp` with no separators,
/// so the holder of one token can move characters between the channel and the user (`room`/`user1`
/// also signs `roo`/`muser1`); the timestamp cannot grow past now plus the longest expiry
/// (7 days) either way. `IssuedOnly` closes the boundary hole for apps that mint no tokens of their
/// own: it takes only tokens this server issued, whose `nonce` carries a MAC over the separated
/// fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ArtcTokens {
    /// Any token made with the app's key, as Alibaba's own app servers mint them (the default).
    #[default]
    Signed,
    /// Only tokens this server issued.
    IssuedOnly,
}

/// An app's webhook receiver.
#[derive(Clone, Debug)]
pub struct AppWebhook {
    /// An `http://` or `https://` URL.
    pub url: String,
    /// Signs deliveries: Agora's NCS secret, ZEGO's callback secret, Alibaba's callback token.
    pub secret: Option<Secret>,
}

/// Every configured app.
#[derive(Clone, Debug, Default)]
pub struct Apps(Vec<App>);

impl Apps {
    pub fn new(apps: Vec<App>) -> Apps {
        Apps(apps)
    }

    pub fn all(&self) -> &[App] {
        &self.0
    }

    /// The app with this id (Agora's `appid`, ZEGO's `AppId`, the ARTC token's `appid`).
    pub fn by_id(&self, id: &str) -> Option<&App> {
        self.0.iter().find(|app| app.id.as_str() == id)
    }

    /// The app with this key (Alibaba's `AccessKeyId`).
    pub fn by_key(&self, key: &str) -> Option<&App> {
        self.0.iter().find(|app| app.key.as_deref() == Some(key))
    }
}
