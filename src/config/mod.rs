//! The one typed, validated configuration: defaults, then a TOML file, then `NEXUS_*`
//! environment variables (nested keys joined by `__`). Every problem is reported with its key
//! path, all at once, so an operator fixes a file in one pass.

//!
//! - `public_url.rs`: `PublicUrl`, the origin every absolute URL is built from.
//! - `load.rs`: file + environment, read key by key into the problem collector.
//! - `rules.rs`: the rules that span keys (checked after every key has a type).
//! - `upstreams.rs`: `[[upstreams]]`, the MCP servers whose tools are federated, and their rules.

mod load;
mod public_url;
mod rules;
#[cfg(test)]
mod tests;
pub mod upstreams;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use load::{ConfigErrors, ConfigProblem};
pub use public_url::PublicUrl;

/// The prefix of every environment override (`NEXUS_PUBLIC_URL`, `NEXUS_OAUTH__CODE_TTL`).
pub const ENV_PREFIX: &str = "NEXUS_";

/// The validated configuration of one gateway.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The socket the gateway listens on.
    pub listen: SocketAddr,
    /// The public origin: the OAuth issuer and the root of every absolute URL we publish.
    pub public_url: PublicUrl,
    /// Where the SQLite store lives (and, on any engine, files only this host needs).
    pub data_dir: PathBuf,
    /// A `postgres://` URL: the store lives in that PostgreSQL database, shared by every
    /// replica, instead of a SQLite file in `data_dir`. Usually set as `NEXUS_DATABASE_URL`,
    /// since it may carry a password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_url: Option<crate::secrets::Secret>,
    /// Who approves authorization requests.
    pub approval: ApprovalMode,
    /// Peers whose `X-Forwarded-For` is believed (the reverse proxy).
    pub trusted_proxies: Vec<IpAddr>,
    /// Log output format.
    pub log_format: LogFormat,
    /// Which requests get an access-log line.
    #[serde(default)]
    pub access_log: AccessLog,
    /// The internal listener: the agent API, `/metrics` and the probes, which the public
    /// listener never serves. Keep it on loopback or a mesh-side interface; never expose it
    /// through the public proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_listen: Option<SocketAddr>,
    /// Authorization-server lifetimes and policies.
    pub oauth: OAuthConfig,
    /// Rate and size limits.
    pub limits: LimitsConfig,
    /// Where tasks can be sent; the first is the default.
    pub targets: Vec<TargetConfig>,
    /// The MCP endpoint's browser-facing checks.
    pub mcp: McpConfig,
    /// Upstream MCP servers whose allow-listed tools are published through `/mcp`.
    #[serde(default)]
    pub upstreams: Vec<upstreams::UpstreamConfig>,
}

/// One destination for tasks, and how tasks reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// The name clients use (`homelab`, `nexus:felt`).
    pub name: String,
    /// How tasks reach the agent.
    pub transport: TransportKind,
    /// What the target is, shown to models in the tool description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The bot and chat, for `transport = "telegram"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telegram: Option<TelegramConfig>,
}

/// A Telegram bot delivering tasks to one chat. The bot token never lives in the config file:
/// it is read from `bot_token_file` or the environment variable `bot_token_env`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// A file holding the bot token (and nothing else but white space).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_token_file: Option<PathBuf>,
    /// An environment variable holding the bot token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_token_env: Option<String>,
    /// The chat tasks go to and replies come from.
    pub chat_id: i64,
    /// When set, only these users' messages in the chat count.
    #[serde(default)]
    pub allowed_user_ids: Vec<i64>,
    /// The owner's Telegram user id: enables "approve in Telegram" at /authorize.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_user_id: Option<i64>,
    /// The Bot API's base URL (tests point it at a fake).
    #[serde(default = "default_telegram_api_base")]
    pub api_base: String,
    /// How replies are received.
    #[serde(default)]
    pub mode: TelegramMode,
    /// How long one `getUpdates` long poll waits (at most 50 s).
    #[serde(default = "default_poll_timeout", with = "humantime_serde")]
    pub poll_timeout: Duration,
}

fn default_telegram_api_base() -> String {
    "https://api.telegram.org".into()
}

fn default_poll_timeout() -> Duration {
    Duration::from_secs(30)
}

/// How the gateway learns of Telegram updates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TelegramMode {
    /// `getUpdates` long polling: works behind NAT and with no public webhook.
    #[default]
    Polling,
    /// Telegram POSTs updates to `<public_url>/telegram/webhook/<target>`.
    Webhook,
}

/// How tasks reach an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    /// The agent polls `/agent/v1` with its own token.
    AgentApi,
    /// Tasks go to a Telegram chat through a bot; replies come back as updates.
    Telegram,
}

/// Checks on who may call `/mcp` from where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpConfig {
    /// `Origin` values allowed on `/mcp` (`scheme://host:port`, `:*` for any port). A request
    /// with any other `Origin` gets 403; requests without one (server-side clients) pass.
    pub allowed_origins: Vec<String>,
    /// `Host` values accepted besides the public URL's host and loopback names.
    pub allowed_hosts: Vec<String>,
}

impl Default for McpConfig {
    fn default() -> Self {
        Self {
            allowed_origins: vec![
                "https://claude.ai:443".into(),
                "https://claude.com:443".into(),
            ],
            allowed_hosts: Vec::new(),
        }
    }
}

/// How an authorization request is approved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalMode {
    /// The owner logs in with a passphrase and approves on a consent page.
    Password,
    /// Every request is approved at once; refused unless the listener is on loopback.
    Auto,
}

impl ApprovalMode {
    /// The mode as spelled in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalMode::Password => "password",
            ApprovalMode::Auto => "auto",
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    Pretty,
    /// One JSON object per line, for journald or a log shipper.
    Json,
}

/// Which requests get an access-log line (method, route template, status, latency, ids).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLog {
    /// Every request (the default).
    #[default]
    All,
    /// Only answers with a 4xx or 5xx status: for a busy `/mcp`, where a line per tool call
    /// costs more than the call.
    Errors,
    /// None: another layer (the reverse proxy) keeps the access log.
    Off,
}

/// Authorization-server lifetimes and policies.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// Lifetime of a JWT access token.
    #[serde(with = "humantime_serde")]
    pub access_token_ttl: Duration,
    /// Lifetime of a refresh token; each rotation starts a new one.
    #[serde(with = "humantime_serde")]
    pub refresh_token_ttl: Duration,
    /// How long a rotated refresh token still answers with the same new pair (until the new
    /// token is used, at most this long).
    #[serde(with = "humantime_serde")]
    pub refresh_grace: Duration,
    /// Lifetime of an authorization code.
    #[serde(with = "humantime_serde")]
    pub code_ttl: Duration,
    /// How long the owner has to log in and approve one authorization request.
    #[serde(with = "humantime_serde")]
    pub authorization_request_ttl: Duration,
    /// Lifetime of the owner's login session cookie.
    #[serde(with = "humantime_serde")]
    pub owner_session_ttl: Duration,
    /// Registered clients that never complete an authorization are removed after this.
    #[serde(with = "humantime_serde")]
    pub unused_client_ttl: Duration,
    /// Custom redirect-URI schemes accepted at registration, such as `cursor`.
    pub custom_redirect_schemes: Vec<String>,
    /// Whether anyone may register a client at `/register` (RFC 7591), or nobody: clients
    /// that identify themselves by a metadata document (claude.ai, Claude Code) need no
    /// registration.
    pub registration: Registration,
    /// Client ID Metadata Documents the owner pins, besides the built-in ones (claude.ai and
    /// Claude Code): clients that identify themselves by these URLs are accepted as described
    /// here, and nothing is fetched.
    pub cimd_documents: Vec<PinnedClientDocument>,
    /// Whether a metadata document that is not pinned is fetched from its URL (https only, no
    /// redirects, 5 KiB, 5 s, public addresses only); off, such a client is refused.
    pub cimd_fetch: bool,
}

/// Whether `/register` is open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    /// Anyone may register a client (the default: many MCP clients need it).
    #[default]
    Open,
    /// `/register` is not served and not advertised.
    Off,
}

/// A Client ID Metadata Document as the gateway keeps it: the client its URL names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinnedClientDocument {
    /// The document's URL, which is the client's id.
    pub client_id: String,
    /// The name shown on the consent page.
    pub client_name: String,
    /// Where codes may be sent (loopback ports may differ, as for registered clients).
    pub redirect_uris: Vec<String>,
}

/// Rate and size limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Client registrations per minute from one IP address.
    pub register_per_minute: u32,
    /// Authorization requests per minute from one IP address (each parks a row in the store).
    pub authorize_per_minute: u32,
    /// Token and revocation requests per minute from one IP address.
    pub token_per_minute: u32,
    /// Owner login attempts per minute from one IP address.
    pub login_per_minute: u32,
    /// Largest request body accepted on any endpoint, in bytes.
    pub max_body_bytes: usize,
    /// Time allowed for a request to produce its response headers.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Time allowed to receive a request's headers; a keep-alive connection idle this long is
    /// closed too.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Time allowed to receive a whole request body, from when the headers arrived.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// Connections open at once, per listener; past it a new one is closed at once (and
    /// counted in `nexus_connections_refused_total`).
    pub max_connections: usize,
}

impl Default for Config {
    fn default() -> Self {
        let listen = SocketAddr::from(([127, 0, 0, 1], 8080));
        Self {
            listen,
            public_url: PublicUrl::of_listener(listen),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            approval: ApprovalMode::Password,
            trusted_proxies: Vec::new(),
            log_format: LogFormat::Pretty,
            access_log: AccessLog::All,
            internal_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
            oauth: OAuthConfig::default(),
            limits: LimitsConfig::default(),
            targets: vec![TargetConfig {
                name: "homelab".into(),
                transport: TransportKind::AgentApi,
                description: Some("the homelab agent".into()),
                telegram: None,
            }],
            mcp: McpConfig::default(),
            upstreams: Vec::new(),
        }
    }
}

impl Default for OAuthConfig {
    fn default() -> Self {
        Self {
            access_token_ttl: Duration::from_secs(3600),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            // Enough for a client's concurrent double refresh (seen from claude.ai), which
            // lands within a second or two; every second more is a second a stolen rotated
            // token is worth a live pair.
            refresh_grace: Duration::from_secs(10),
            code_ttl: Duration::from_secs(60),
            authorization_request_ttl: Duration::from_secs(10 * 60),
            owner_session_ttl: Duration::from_secs(15 * 60),
            unused_client_ttl: Duration::from_secs(24 * 3600),
            custom_redirect_schemes: Vec::new(),
            registration: Registration::Open,
            cimd_documents: Vec::new(),
            cimd_fetch: false,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            // claude.ai registers a client on every connection, and all its users share a
            // handful of egress addresses: keep this generous.
            register_per_minute: 60,
            // Each registration is followed by an authorization; retries and reconnects add a few.
            authorize_per_minute: 60,
            token_per_minute: 120,
            login_per_minute: 10,
            // A 16 KiB task, JSON-escaped inside a JSON-RPC request, fits with room to spare.
            max_body_bytes: 256 * 1024,
            // Above the agent API's 30 s long poll.
            request_timeout: Duration::from_secs(60),
            // Above nginx's upstream keep-alive (15 s in nginx/), so nginx, not us, closes an
            // idle upstream connection (else a request it sends as we close would fail).
            header_read_timeout: Duration::from_secs(20),
            body_read_timeout: Duration::from_secs(30),
            // Far below the service's descriptor limit (LimitNOFILE in deploy/), far above a
            // homelab's or a team's clients.
            max_connections: 4096,
        }
    }
}

impl Config {
    /// The targets served by Telegram, with their bot settings.
    pub fn telegram_targets(&self) -> impl Iterator<Item = (&TargetConfig, &TelegramConfig)> {
        self.targets
            .iter()
            .filter(|target| target.transport == TransportKind::Telegram)
            .filter_map(|target| target.telegram.as_ref().map(|telegram| (target, telegram)))
    }

    /// The canonical URL of the MCP endpoint: the `resource` and every token's `aud`.
    pub fn mcp_resource(&self) -> String {
        self.public_url.join(crate::http::paths::MCP)
    }

    /// Where the SQLite file lives (the store, unless `database_url` names PostgreSQL).
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("nexus-gateway.sqlite3")
    }

    /// Where the store lives: the PostgreSQL database `database_url` names, else the SQLite
    /// file in `data_dir`.
    pub fn store_location(&self) -> crate::store::StoreLocation {
        match &self.database_url {
            Some(url) => crate::store::StoreLocation::Postgres(url.expose().to_owned()),
            None => crate::store::StoreLocation::Sqlite(self.database_path()),
        }
    }
}
