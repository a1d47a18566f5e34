//! The server's configuration: a TOML file (`--config`), overridden by command-line flags. Every
//! setting has a documented default; unknown keys are an error, never silently ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use colloquy_http::brake::BrakeConfig;
use colloquy_rtc::server::RtcConfig;
use serde::Deserialize;

/// The configuration file, section by section. Every field is optional in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub rtc: RtcSection,
    #[serde(default)]
    pub brake: BrakeSection,
    #[serde(default)]
    pub playground: PlaygroundSection,
    #[serde(default)]
    pub store: StoreSection,
    /// The tenants of the vendor dialects (Agora, ZEGO, Alibaba); see `AppSection`.
    #[serde(default)]
    pub apps: Vec<AppSection>,
}

/// One `[[apps]]` entry: a tenant with its own credentials, seeing only its own agents. Agora's
/// `appid` and ZEGO's `AppId` are its `id`; Agora's customer id and Alibaba's AccessKeyId are its
/// `key`; the customer secret, ZEGO's ServerSecret and Alibaba's AccessKeySecret are its `secret`.
/// The key and secret also work as HTTP Basic credentials on the native `/v1` API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSection {
    pub id: String,
    /// Absent for an app only ZEGO calls (ZEGO signs with the secret alone).
    #[serde(default)]
    pub key: Option<String>,
    pub secret: String,
    /// Where the webhooks of agents started through a vendor dialect go, in that dialect's form.
    pub webhook_url: Option<String>,
    /// Signs the webhooks (Agora's NCS secret, ZEGO's callback secret, Alibaba's callback token).
    pub webhook_secret: Option<String>,
    /// `"signed"` (default): any Alibaba ARTC token made with the app's secret opens its channels.
    /// `"issued_only"`: only the tokens this server issued (closes the vendor scheme's
    /// channel/user boundary hole; see `docs/security.md`).
    pub artc_tokens: Option<String>,
    /// The agents configured ahead of their calls, started by id (Alibaba's `AIAgentId`, ZEGO's
    /// `AgentId` when it was not registered through the API). Each is a table with `id`, an
    /// optional `webhook_url` and `webhook_secret` (instead of the app's), and the native API's
    /// agent fields: `prompt`, `llm`, `asr`, `tts`, `greeting`, `turn_detection`,
    /// `interruption`, `idle_timeout`, `max_history`, `failure_message`, `silence_prompt`
    /// (see the README's Configuration). When an app configures agents, an unknown id is refused.
    #[serde(default)]
    pub agents: Vec<toml::Table>,
    /// When a dialect names a speech vendor this server does not implement: `false` (default)
    /// refuses the start, naming the vendors it has; `true` runs the embedded model instead and
    /// puts a warning on the agent.
    #[serde(default)]
    pub substitute_unsupported_vendors: bool,
    /// Speech vendors' API keys by vendor name (`deepgram = "…"`): a request naming the vendor
    /// without a key gets this one. Kept in memory only, as every key.
    #[serde(default)]
    pub vendor_keys: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaygroundSection {
    /// `true`, `false` or `"auto"` (default): whether `POST /playground/session` starts agents
    /// without credentials. `auto` turns it on only with the credentials the server generated.
    pub enabled: Option<PlaygroundSwitch>,
}

/// `[playground] enabled`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PlaygroundSwitch {
    /// On when the server runs with the credentials it generated (a single dev machine), off when
    /// they come from the environment.
    #[default]
    Auto,
    On,
    Off,
}

impl PlaygroundSwitch {
    /// Whether the playground is on, given where the credentials came from.
    pub fn enabled(self, generated_credentials: bool) -> bool {
        match self {
            PlaygroundSwitch::Auto => generated_credentials,
            PlaygroundSwitch::On => true,
            PlaygroundSwitch::Off => false,
        }
    }
}

impl<'de> Deserialize<'de> for PlaygroundSwitch {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Bool(true) => Ok(PlaygroundSwitch::On),
            Raw::Bool(false) => Ok(PlaygroundSwitch::Off),
            Raw::Text(text) if text == "auto" => Ok(PlaygroundSwitch::Auto),
            Raw::Text(text) => {
                Err(serde::de::Error::custom(format!("expected true, false or \"auto\", found {text:?}")))
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtcSection {
    /// The IP address put in ICE host candidates. Default: the `rtc_udp` address.
    pub public_ip: Option<std::net::IpAddr>,
    /// The most participants (people and agents) in one channel. Default 16.
    pub max_participants_per_channel: Option<usize>,
    /// The most channels on this node. Default 1000.
    pub max_channels: Option<usize>,
    /// How long a participant may take from its offer to a working connection. Default 15000.
    pub connect_timeout_ms: Option<u64>,
    /// People at most between their offer and a working connection; a join beyond it is answered
    /// 503 with `Retry-After` at once. Default 1024.
    pub max_connecting: Option<usize>,
    /// How long a connected peer may send nothing before it counts as gone. Default 10000.
    pub inactivity_timeout_ms: Option<u64>,
    /// The longest a join may wait for the channel server's task; one that waited longer is
    /// answered 503 `node_busy` with `Retry-After` (the task is that far behind). Default 1000.
    pub max_join_wait_ms: Option<u64>,
    /// The most source addresses one person's session may use over its life; signed STUN
    /// requests from further addresses are dropped and counted. Default 32.
    pub max_peer_addresses: Option<usize>,
}

/// `[brake]`: the brute-force brake on failed authentications (every dialect's credentials).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrakeSection {
    /// Failures one client address may make with one credential within `window_ms` before the
    /// pair is closed (1 s, doubling with each further failure up to `max_block_ms`). Default 5.
    pub free_failures: Option<u32>,
    /// Failures one client address may make across every credential within `window_ms` before
    /// the address is closed. Default 50.
    pub free_failures_per_address: Option<u32>,
    /// How long failures are remembered. Default 600000.
    pub window_ms: Option<u64>,
    /// The longest a pair or address is closed. Default 300000.
    pub max_block_ms: Option<u64>,
    /// Pairs and addresses remembered at most; past it, those not closed now are forgotten.
    /// Default 10000.
    pub max_entries: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// The HTTP API's address. Default `127.0.0.1:7880`.
    pub http: Option<SocketAddr>,
    /// The UDP address of the WebRTC channel server. Default `127.0.0.1:7881`.
    pub rtc_udp: Option<SocketAddr>,
    /// Where records and generated credentials live. Default `~/.local/share/colloquy`.
    pub data_dir: Option<PathBuf>,
    /// How long a client may take to send a request's headers, counted from when the connection
    /// waits for one (so also how long an idle keep-alive connection stays open). Default 10000.
    pub header_timeout_ms: Option<u64>,
    /// How long a client may take to send a request's body. Default 10000.
    pub body_timeout_ms: Option<u64>,
    /// Open HTTP connections at most; more wait in the kernel's backlog. Default 1024.
    pub max_connections: Option<usize>,
    /// How long a shutdown waits for HTTP requests in flight before closing them. Default 10000.
    pub drain_timeout_ms: Option<u64>,
}

/// Where the records live.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// A PostgreSQL database, `postgres://user:password@host:port/database`, which several nodes
    /// may share. Default: none, the records are the SQLite file `colloquy.db` in the data dir.
    pub url: Option<String>,
}

/// Where the records live, resolved.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// The SQLite file `colloquy.db` in the data dir (the embedded default).
    SqliteInDataDir,
    /// A PostgreSQL URL (it may hold a password: it is never printed).
    Postgres(String),
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::SqliteInDataDir => f.write_str("SqliteInDataDir"),
            Database::Postgres(_) => f.write_str("Postgres(<url>)"),
        }
    }
}

impl Database {
    /// `--database` or `[store] url`: only PostgreSQL URLs (without one, the SQLite file).
    fn parse(url: String, field: &str) -> anyhow::Result<Database> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Database::Postgres(url))
        } else {
            bail!(
                "{field} must be a PostgreSQL URL (postgres://user:password@host:port/database); \
                 leave it out to keep the records in the SQLite file in the data dir"
            )
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// The most agents live at once on this node. Default 100.
    pub max_agents: Option<u32>,
    /// Sustained API requests per second per credential; 0 turns the limit off. Default 100.
    pub requests_per_second: Option<u32>,
    /// Requests that may arrive at once above the sustained rate. Default 200.
    pub burst: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// `text` (default) or `json`.
    pub format: Option<LogFormat>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The configuration in force, every value resolved.
#[derive(Debug)]
pub struct Config {
    pub http: SocketAddr,
    /// The channel server's settings, its UDP address included.
    pub rtc: RtcConfig,
    pub data_dir: PathBuf,
    pub database: Database,
    pub max_agents: u32,
    pub requests_per_second: u32,
    pub burst: u32,
    pub log_format: LogFormat,
    pub playground: PlaygroundSwitch,
    pub apps: Vec<colloquy_http::apps::App>,
    pub http_limits: colloquy_http::listener::HttpLimits,
    pub brake: BrakeConfig,
}

impl Config {
    pub const DEFAULT_HTTP: &'static str = "127.0.0.1:7880";
    pub const DEFAULT_RTC_UDP: &'static str = "127.0.0.1:7881";
    pub const DEFAULT_MAX_AGENTS: u32 = 100;
    pub const DEFAULT_REQUESTS_PER_SECOND: u32 = 100;
    pub const DEFAULT_BURST: u32 = 200;
}

/// The command-line flags that override the file.
#[derive(Debug, Default)]
pub struct Overrides {
    pub http: Option<SocketAddr>,
    pub rtc_udp: Option<SocketAddr>,
    pub rtc_public_ip: Option<std::net::IpAddr>,
    pub data_dir: Option<PathBuf>,
    /// `--database`: a PostgreSQL URL.
    pub database: Option<String>,
    pub log_format: Option<LogFormat>,
}

pub fn read_file(path: &Path) -> anyhow::Result<ConfigFile> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("in the config file {}", path.display()))
}

pub fn resolve(file: ConfigFile, overrides: Overrides) -> anyhow::Result<Config> {
    let ms = |value: Option<u64>, default: Duration| value.map_or(default, Duration::from_millis);
    let config = Config {
        http: overrides.http.or(file.server.http).unwrap_or_else(|| Config::DEFAULT_HTTP.parse().expect("valid")),
        rtc: {
            let udp = overrides
                .rtc_udp
                .or(file.server.rtc_udp)
                .unwrap_or_else(|| Config::DEFAULT_RTC_UDP.parse().expect("valid"));
            let (rtc, default) = (&file.rtc, RtcConfig::with_defaults(udp));
            RtcConfig {
                udp,
                public_ip: overrides.rtc_public_ip.or(rtc.public_ip),
                max_participants_per_channel: rtc
                    .max_participants_per_channel
                    .unwrap_or(default.max_participants_per_channel),
                max_channels: rtc.max_channels.unwrap_or(default.max_channels),
                connect_timeout: ms(rtc.connect_timeout_ms, default.connect_timeout),
                max_connecting: rtc.max_connecting.unwrap_or(default.max_connecting),
                max_join_wait: ms(rtc.max_join_wait_ms, default.max_join_wait),
                inactivity_timeout: ms(rtc.inactivity_timeout_ms, default.inactivity_timeout),
                max_peer_addresses: rtc.max_peer_addresses.unwrap_or(default.max_peer_addresses),
            }
        },
        data_dir: match overrides.data_dir.or(file.server.data_dir) {
            Some(dir) => dir,
            None => default_data_dir()?,
        },
        database: match (overrides.database, file.store.url) {
            (Some(url), _) => Database::parse(url, "--database")?,
            (None, Some(url)) => Database::parse(url, "store.url")?,
            (None, None) => Database::SqliteInDataDir,
        },
        max_agents: file.limits.max_agents.unwrap_or(Config::DEFAULT_MAX_AGENTS),
        requests_per_second: file.limits.requests_per_second.unwrap_or(Config::DEFAULT_REQUESTS_PER_SECOND),
        burst: file.limits.burst.unwrap_or(Config::DEFAULT_BURST),
        log_format: overrides.log_format.or(file.log.format).unwrap_or_default(),
        playground: file.playground.enabled.unwrap_or_default(),
        apps: resolve_apps(file.apps)?,
        http_limits: {
            use colloquy_http::listener::HttpLimits;
            HttpLimits {
                header_timeout: ms(file.server.header_timeout_ms, HttpLimits::DEFAULT.header_timeout),
                body_timeout: ms(file.server.body_timeout_ms, HttpLimits::DEFAULT.body_timeout),
                max_connections: file.server.max_connections.unwrap_or(HttpLimits::DEFAULT.max_connections),
                drain_timeout: ms(file.server.drain_timeout_ms, HttpLimits::DEFAULT.drain_timeout),
            }
        },
        brake: {
            let (brake, default) = (&file.brake, BrakeConfig::DEFAULT);
            BrakeConfig {
                free_failures: brake.free_failures.unwrap_or(default.free_failures),
                free_failures_per_address: brake.free_failures_per_address.unwrap_or(default.free_failures_per_address),
                window: ms(brake.window_ms, default.window),
                max_block: ms(brake.max_block_ms, default.max_block),
                max_entries: brake.max_entries.unwrap_or(default.max_entries),
            }
        },
    };
    let rtc = &config.rtc;
    if rtc.max_participants_per_channel < 2 {
        bail!("rtc.max_participants_per_channel must be at least 2");
    }
    for (name, value) in [
        ("rtc.max_channels", rtc.max_channels),
        ("rtc.max_connecting", rtc.max_connecting),
        ("rtc.max_peer_addresses", rtc.max_peer_addresses),
        ("brake.free_failures", config.brake.free_failures as usize),
        ("brake.free_failures_per_address", config.brake.free_failures_per_address as usize),
        ("brake.max_entries", config.brake.max_entries),
    ] {
        if value == 0 {
            bail!("{name} must be at least 1");
        }
    }
    if config.brake.max_block < std::time::Duration::from_secs(1) {
        bail!("brake.max_block_ms must be at least 1000 (a closed pair is closed for 1 s first)");
    }
    if config.max_agents == 0 {
        bail!("limits.max_agents must be at least 1");
    }
    let limits = &config.http_limits;
    for (name, value) in [
        ("server.header_timeout_ms", limits.header_timeout),
        ("server.body_timeout_ms", limits.body_timeout),
        ("server.drain_timeout_ms", limits.drain_timeout),
        ("rtc.connect_timeout_ms", config.rtc.connect_timeout),
        ("rtc.inactivity_timeout_ms", config.rtc.inactivity_timeout),
        ("rtc.max_join_wait_ms", config.rtc.max_join_wait),
        ("brake.window_ms", config.brake.window),
    ] {
        if value.is_zero() {
            bail!("{name} must be at least 1");
        }
    }
    if limits.max_connections == 0 {
        bail!("server.max_connections must be at least 1");
    }
    if config.requests_per_second > 0 && config.burst == 0 {
        bail!("limits.burst must be at least 1 when limits.requests_per_second is set");
    }
    Ok(config)
}

/// Checks the `[[apps]]` entries: valid, unique ids and keys, a secret, an http(s) webhook URL.
fn resolve_apps(sections: Vec<AppSection>) -> anyhow::Result<Vec<colloquy_http::apps::App>> {
    use colloquy_http::apps::{App, ArtcTokens};
    use colloquy_model::{AppId, Secret};
    let mut apps: Vec<App> = Vec::new();
    for (index, section) in sections.into_iter().enumerate() {
        let at = format!("apps[{index}]");
        let id = AppId::new(section.id).map_err(|e| anyhow::anyhow!("{at}.id: {e}"))?;
        if id == AppId::native() {
            bail!("{at}.id: \"native\" is the native API's own app");
        }
        if section.key.as_deref().is_some_and(|key| key.trim().is_empty()) {
            bail!("{at}.key must not be empty (leave it out for an app only ZEGO calls)");
        }
        if section.secret.len() < 8 {
            bail!("{at}.secret must be at least 8 characters long");
        }
        if apps.iter().any(|app| app.id == id) {
            bail!("{at}.id: another app has the id {id}");
        }
        if section.key.is_some() && apps.iter().any(|app| app.key == section.key) {
            bail!("{at}.key: another app has this key");
        }
        let webhook = webhook(&at, section.webhook_url, section.webhook_secret)?;
        let artc_tokens = match section.artc_tokens.as_deref() {
            None | Some("signed") => ArtcTokens::Signed,
            Some("issued_only") => ArtcTokens::IssuedOnly,
            Some(other) => bail!("{at}.artc_tokens is {other:?}; it must be \"signed\" or \"issued_only\""),
        };
        let mut vendor_keys = std::collections::BTreeMap::new();
        for (vendor, key) in section.vendor_keys {
            use colloquy_model::SpeechKind::{Asr, Tts};
            use colloquy_providers::vendors;
            let known = [Asr, Tts].into_iter().any(|kind| vendors::names(kind).contains(&vendor.as_str()));
            if !known {
                let mut all = vendors::names(Asr);
                all.extend(vendors::names(Tts));
                bail!("{at}.vendor_keys.{vendor}: no such speech vendor; there are {}", all.join(", "));
            }
            if key.trim().is_empty() {
                bail!("{at}.vendor_keys.{vendor} must not be empty");
            }
            vendor_keys.insert(vendor, Secret::new(key));
        }
        let scope = colloquy_http::vendors::VendorScope {
            vendors: &colloquy_providers::vendors::Registry,
            substitute_unsupported: false,
            keys: Some(&vendor_keys),
        };
        let agents = section
            .agents
            .into_iter()
            .enumerate()
            .map(|(i, table)| configured_agent(&format!("{at}.agents[{i}]"), table, scope))
            .collect::<anyhow::Result<Vec<_>>>()?;
        for (i, agent) in agents.iter().enumerate() {
            if agents[..i].iter().any(|other| other.id == agent.id) {
                bail!("{at}.agents[{i}].id: another agent of this app has the id {:?}", agent.id);
            }
        }
        apps.push(App {
            id,
            key: section.key,
            secret: Secret::new(section.secret),
            webhook,
            artc_tokens,
            agents,
            substitute_unsupported_vendors: section.substitute_unsupported_vendors,
            vendor_keys,
        });
    }
    Ok(apps)
}

/// A webhook receiver: an http(s) URL with a host, and a secret only with a URL.
fn webhook(
    at: &str,
    url: Option<String>,
    secret: Option<String>,
) -> anyhow::Result<Option<colloquy_http::apps::AppWebhook>> {
    let Some(url) = url else {
        if secret.is_some() {
            bail!("{at}.webhook_secret is set without webhook_url");
        }
        return Ok(None);
    };
    let parsed: axum::http::Uri = url.parse().map_err(|_| anyhow::anyhow!("{at}.webhook_url is not a URL"))?;
    if !matches!(parsed.scheme_str(), Some("http" | "https")) || parsed.host().is_none() {
        bail!("{at}.webhook_url must be an http:// or https:// URL with a host");
    }
    Ok(Some(colloquy_http::apps::AppWebhook { url, secret: secret.map(colloquy_model::Secret::new) }))
}

/// One `[[apps.agents]]` table: its `id` and webhook, and the rest read as the native API reads
/// an agent's fields, so each is checked the same way and an error names it.
fn configured_agent(
    at: &str,
    mut table: toml::Table,
    scope: colloquy_http::vendors::VendorScope<'_>,
) -> anyhow::Result<colloquy_http::apps::ConfiguredAgent> {
    use colloquy_http::apps::ConfiguredAgent;
    let mut text = |key: &str| -> anyhow::Result<Option<String>> {
        match table.remove(key) {
            None => Ok(None),
            Some(toml::Value::String(text)) => Ok(Some(text)),
            Some(other) => bail!("{at}.{key} must be a string, not {}", other.type_str()),
        }
    };
    let id = text("id")?.ok_or_else(|| anyhow::anyhow!("{at}.id is required"))?;
    if id.is_empty() || id.chars().count() > ConfiguredAgent::MAX_ID_CHARS || !id.chars().all(|c| c.is_ascii_graphic())
    {
        bail!(
            "{at}.id {id:?} must be 1 to {} printable ASCII characters without spaces",
            ConfiguredAgent::MAX_ID_CHARS
        );
    }
    let webhook = webhook(at, text("webhook_url")?, text("webhook_secret")?)?;
    let wire: colloquy_http::native::wire::ProfileConfig =
        toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| anyhow::anyhow!("{at}: {}", e.message()))?;
    let profile = colloquy_http::native::to_model::profile_from_wire(wire, scope).map_err(|e| in_config(at, e))?;
    Ok(ConfiguredAgent { id, profile, webhook })
}

/// An API error about a field of the table at `at`, as a config error naming the whole path.
fn in_config(at: &str, error: colloquy_http::error::ApiError) -> anyhow::Error {
    match error.field {
        Some(field) => anyhow::anyhow!("{at}.{field}: {}", error.message),
        None => anyhow::anyhow!("{at}: {}", error.message),
    }
}

/// Refuses a configured agent whose LLM is a local model this machine does not have.
pub fn check_local_models(
    apps: &[colloquy_http::apps::App],
    models: &dyn colloquy_http::fields::LocalModels,
) -> anyhow::Result<()> {
    for (a, app) in apps.iter().enumerate() {
        for (i, agent) in app.agents.iter().enumerate() {
            if let Some(colloquy_model::Llm { provider: colloquy_model::LlmProvider::Local { model }, .. }) =
                &agent.profile.llm
            {
                colloquy_http::fields::local_llm("llm.model", model, models)
                    .map_err(|e| in_config(&format!("apps[{a}].agents[{i}]"), e))?;
            }
        }
    }
    Ok(())
}

fn default_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("colloquy"));
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).context("HOME is not set; pass --data-dir")?;
    Ok(PathBuf::from(home).join(".local/share/colloquy"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_records_are_the_sqlite_file_unless_a_postgres_url_is_given() {
        let overrides = || Overrides { data_dir: Some("/tmp".into()), ..Overrides::default() };
        assert_eq!(resolve(ConfigFile::default(), overrides()).unwrap().database, Database::SqliteInDataDir);
        let file = || toml::from_str::<ConfigFile>("[store]\nurl = \"postgres://u:pw@127.0.0.1:5432/colloquy\"\n");
        let config = resolve(file().unwrap(), overrides()).unwrap();
        assert_eq!(config.database, Database::Postgres("postgres://u:pw@127.0.0.1:5432/colloquy".into()));
        assert!(!format!("{config:?}").contains("pw"), "the URL's password is never printed");
        // The flag wins over the file.
        let flag = Overrides { database: Some("postgresql://127.0.0.1/other".into()), ..overrides() };
        assert_eq!(
            resolve(file().unwrap(), flag).unwrap().database,
            Database::Postgres("postgresql://127.0.0.1/other".into())
        );
        // Anything else is refused, naming where it came from.
        let wrong = Overrides { database: Some("mysql://127.0.0.1/x".into()), ..overrides() };
        assert!(resolve(ConfigFile::default(), wrong).unwrap_err().to_string().contains("--database"));
        let file: ConfigFile = toml::from_str("[store]\nurl = \"/var/lib/colloquy.db\"\n").unwrap();
        assert!(resolve(file, overrides()).unwrap_err().to_string().contains("store.url"));
        assert!(toml::from_str::<ConfigFile>("[store]\npath = \"x\"\n").is_err(), "unknown keys are errors");
    }

    #[test]
    fn flags_override_the_file_and_defaults_fill_the_rest() {
        let file: ConfigFile = toml::from_str(
            "[server]\nhttp = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/x\"\n[limits]\nmax_agents = 5\n[log]\nformat = \"json\"\n",
        )
        .unwrap();
        let overrides = Overrides { http: Some("127.0.0.1:9001".parse().unwrap()), ..Overrides::default() };
        let config = resolve(file, overrides).unwrap();
        assert_eq!(config.http.port(), 9001);
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(config.max_agents, 5);
        assert_eq!(config.requests_per_second, Config::DEFAULT_REQUESTS_PER_SECOND);
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.rtc.max_channels, RtcConfig::DEFAULT_MAX_CHANNELS);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let err = toml::from_str::<ConfigFile>("[limits]\nmax_agent = 5\n").unwrap_err().to_string();
        assert!(err.contains("max_agent"), "{err}");
        let file: ConfigFile = toml::from_str("[limits]\nmax_agents = 0\n").unwrap();
        let overrides = Overrides { data_dir: Some("/tmp".into()), ..Overrides::default() };
        assert!(resolve(file, overrides).unwrap_err().to_string().contains("max_agents"));
    }

    #[test]
    fn rtc_and_brake_settings_are_read_and_checked() {
        let overrides = || Overrides { data_dir: Some("/tmp".into()), ..Overrides::default() };
        let config = resolve(ConfigFile::default(), overrides()).unwrap();
        assert_eq!(config.rtc.max_join_wait, RtcConfig::DEFAULT_MAX_JOIN_WAIT);
        assert_eq!(config.rtc.max_peer_addresses, RtcConfig::DEFAULT_MAX_PEER_ADDRESSES);
        assert_eq!(config.brake.free_failures, BrakeConfig::DEFAULT.free_failures);
        let text = "[rtc]\nmax_join_wait_ms = 250\nmax_peer_addresses = 4\nconnect_timeout_ms = 5000\n\
                    [brake]\nfree_failures = 2\nfree_failures_per_address = 9\nwindow_ms = 60000\n\
                    max_block_ms = 2000\nmax_entries = 50\n";
        let config = resolve(toml::from_str(text).unwrap(), overrides()).unwrap();
        assert_eq!(config.rtc.max_join_wait, Duration::from_millis(250));
        assert_eq!(config.rtc.max_peer_addresses, 4);
        assert_eq!(config.rtc.connect_timeout, Duration::from_secs(5));
        let brake = config.brake;
        assert_eq!((brake.free_failures, brake.free_failures_per_address, brake.max_entries), (2, 9, 50));
        assert_eq!((brake.window, brake.max_block), (Duration::from_secs(60), Duration::from_secs(2)));
        for (text, expected) in [
            ("[rtc]\nmax_join_wait_ms = 0\n", "rtc.max_join_wait_ms"),
            ("[rtc]\nmax_peer_addresses = 0\n", "rtc.max_peer_addresses"),
            ("[brake]\nfree_failures = 0\n", "brake.free_failures"),
            ("[brake]\nmax_block_ms = 999\n", "brake.max_block_ms"),
            ("[brake]\nwindow_ms = 0\n", "brake.window_ms"),
        ] {
            let err = resolve(toml::from_str(text).unwrap(), overrides()).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
        let err = toml::from_str::<ConfigFile>("[brake]\nfree_failure = 2\n").unwrap_err().to_string();
        assert!(err.contains("free_failure"), "{err}");
        let err = toml::from_str::<ConfigFile>("[rtc]\nmax_join_wait = 2\n").unwrap_err().to_string();
        assert!(err.contains("max_join_wait"), "{err}");
    }

    #[test]
    fn apps_are_read_and_checked() {
        let overrides = || Overrides { data_dir: Some("/tmp".into()), ..Overrides::default() };
        let app = |id: &str, key: &str| format!("[[apps]]\nid = \"{id}\"\nkey = \"{key}\"\nsecret = \"12345678\"\n");
        let text = format!(
            "{}webhook_url = \"http://127.0.0.1:9/hook\"\nwebhook_secret = \"s\"\n{}artc_tokens = \"issued_only\"\n",
            app("1234567890", "k1"),
            app("other", "k2")
        );
        let config = resolve(toml::from_str(&text).unwrap(), overrides()).unwrap();
        assert_eq!(config.apps.len(), 2);
        use colloquy_http::apps::ArtcTokens;
        assert_eq!(
            (config.apps[0].artc_tokens, config.apps[1].artc_tokens),
            (ArtcTokens::Signed, ArtcTokens::IssuedOnly)
        );
        assert_eq!(config.apps[0].webhook.as_ref().unwrap().url, "http://127.0.0.1:9/hook");
        assert!(config.apps[1].webhook.is_none());
        // A ZEGO app has no key: it may be left out (twice), but not given empty.
        let keyless = |id: &str| format!("[[apps]]\nid = \"{id}\"\nsecret = \"12345678\"\n");
        let text = format!("{}{}", keyless("1234567890"), keyless("1234567891"));
        let config = resolve(toml::from_str(&text).unwrap(), overrides()).unwrap();
        assert_eq!((config.apps[0].key.as_deref(), config.apps[0].rate_key()), (None, "1234567890"));
        assert_eq!(config.apps[1].key, None);
        for (text, expected) in [
            (format!("{}{}", app("a", "k"), app("a", "k2")), "apps[1].id"),
            (format!("{}{}", app("a", "k"), app("b", "k")), "apps[1].key"),
            (app("native", "k"), "apps[0].id"),
            (app("bad id", "k"), "apps[0].id"),
            ("[[apps]]\nid = \"a\"\nkey = \"k\"\nsecret = \"short\"\n".to_owned(), "apps[0].secret"),
            (format!("{}webhook_url = \"ftp://x\"\n", app("a", "k")), "apps[0].webhook_url"),
            (format!("{}artc_tokens = \"all\"\n", app("a", "k")), "apps[0].artc_tokens"),
            (app("a", " "), "apps[0].key"),
        ] {
            let err = resolve(toml::from_str(&text).unwrap(), overrides()).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn the_playground_switch_is_true_false_or_auto() {
        let parse = |text: &str| toml::from_str::<ConfigFile>(text).map(|f| f.playground.enabled);
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("[playground]\nenabled = true\n").unwrap(), Some(PlaygroundSwitch::On));
        assert_eq!(parse("[playground]\nenabled = false\n").unwrap(), Some(PlaygroundSwitch::Off));
        assert_eq!(parse("[playground]\nenabled = \"auto\"\n").unwrap(), Some(PlaygroundSwitch::Auto));
        assert!(parse("[playground]\nenabled = \"yes\"\n").is_err());
        assert!(parse("[playground]\nenable = true\n").unwrap_err().to_string().contains("enable"));
        assert!(PlaygroundSwitch::Auto.enabled(true) && !PlaygroundSwitch::Auto.enabled(false));
        assert!(PlaygroundSwitch::On.enabled(false) && !PlaygroundSwitch::Off.enabled(true));
    }

    #[test]
    fn vendor_keys_name_registry_vendors_and_fill_configured_agents() {
        let overrides = || Overrides { data_dir: Some("/tmp".into()), ..Overrides::default() };
        let app = "[[apps]]\nid = \"a\"\nkey = \"k\"\nsecret = \"12345678\"\nsubstitute_unsupported_vendors = true\n";
        let text = format!(
            "{app}[apps.vendor_keys]\ndeepgram = \"dg-app\"\n\
             [[apps.agents]]\nid = \"ear\"\n[apps.agents.asr]\nvendor = \"deepgram\"\n"
        );
        let config = resolve(toml::from_str(&text).unwrap(), overrides()).unwrap();
        assert!(config.apps[0].substitute_unsupported_vendors);
        assert_eq!(config.apps[0].vendor_keys["deepgram"].expose(), "dg-app");
        let asr = config.apps[0].agents[0].profile.asr.as_ref().unwrap();
        let colloquy_model::AsrProvider::Vendor(choice) = &asr.provider else { panic!("{asr:?}") };
        assert_eq!(choice.secrets["key"].expose(), "dg-app", "the app's key fills the agent's");
        let error = resolve(toml::from_str(&format!("{app}[apps.vendor_keys]\nacme = \"x\"\n")).unwrap(), overrides())
            .unwrap_err()
            .to_string();
        assert!(error.contains("apps[0].vendor_keys.acme") && error.contains("deepgram"), "{error}");
    }

    #[test]
    fn configured_agents_are_read_as_native_fields_and_checked() {
        let overrides = || Overrides { data_dir: Some("/tmp".into()), ..Overrides::default() };
        let app = "[[apps]]\nid = \"a\"\nkey = \"k\"\nsecret = \"12345678\"\n";
        let text = format!(
            "{app}[[apps.agents]]\nid = \"39f8e0bc005e4f309379701645f4****\"\nprompt = \"You are Ada.\"\n\
             webhook_url = \"http://127.0.0.1:9/ada\"\nidle_timeout = 90\n\
             [apps.agents.llm]\nvendor = \"openai\"\nurl = \"http://127.0.0.1:8000/v1\"\nmodel = \"m\"\n\
             [apps.agents.greeting]\ntext = \"Hello\"\n\
             [[apps.agents]]\nid = \"plain\"\n"
        );
        let config = resolve(toml::from_str(&text).unwrap(), overrides()).unwrap();
        let agents = &config.apps[0].agents;
        assert_eq!(agents.len(), 2);
        let ada = &agents[0].profile;
        let llm = ada.llm.as_ref().unwrap();
        assert_eq!(llm.system_messages[0].content, "You are Ada.");
        assert!(matches!(&llm.provider, colloquy_model::LlmProvider::OpenAiCompatible(e) if e.model == "m"));
        assert_eq!(ada.greeting.as_ref().unwrap().text, "Hello");
        assert_eq!(ada.idle_timeout, Some(colloquy_model::IdleTimeout::AfterSecs(90)));
        assert_eq!(agents[0].webhook.as_ref().unwrap().url, "http://127.0.0.1:9/ada");
        assert_eq!(agents[1].profile, colloquy_model::AgentProfile::default());
        assert!(config.apps[0].configured_agent("plain").unwrap().is_some());
        assert!(config.apps[0].configured_agent("other").is_err());

        for (agent, expected) in [
            ("voice = \"x\"\n", "apps[0].agents[0]: unknown field `voice`"),
            ("[apps.agents.llm]\nurl = \"ftp://x\"\nvendor = \"openai\"\n", "apps[0].agents[0].llm.url"),
            ("prompt = \"p\"\n[apps.agents.llm]\nsystem_messages = []\n", "apps[0].agents[0].prompt"),
            ("idle_timeout = 999999\n", "apps[0].agents[0].idle_timeout"),
            ("webhook_secret = \"s\"\n", "apps[0].agents[0].webhook_secret is set without webhook_url"),
            ("webhook_url = 5\n", "apps[0].agents[0].webhook_url must be a string"),
        ] {
            let text = format!("{app}[[apps.agents]]\nid = \"x\"\n{agent}");
            let err = resolve(toml::from_str(&text).unwrap(), overrides()).unwrap_err().to_string();
            assert!(err.contains(expected), "{agent}: {err}");
        }
        for (agents, expected) in [
            ("[[apps.agents]]\nprompt = \"p\"\n", "apps[0].agents[0].id is required"),
            ("[[apps.agents]]\nid = \"has space\"\n", "apps[0].agents[0].id"),
            ("[[apps.agents]]\nid = \"x\"\n[[apps.agents]]\nid = \"x\"\n", "apps[0].agents[1].id"),
        ] {
            let err = resolve(toml::from_str(&format!("{app}{agents}")).unwrap(), overrides()).unwrap_err().to_string();
            assert!(err.contains(expected), "{agents}: {err}");
        }

        // A local LLM this machine does not have is refused at start-up, naming the agent.
        let text = format!("{app}[[apps.agents]]\nid = \"x\"\n[apps.agents.llm]\nmodel = \"missing\"\n");
        let config = resolve(toml::from_str(&text).unwrap(), overrides()).unwrap();
        let models = colloquy_http::fields::ListedModels::default_llm();
        let err = check_local_models(&config.apps, &models).unwrap_err().to_string();
        assert!(err.starts_with("apps[0].agents[0].llm.model:") && err.contains("missing"), "{err}");
    }
}
