//! The one typed, validated configuration: defaults, then a TOML file, then `NEXUS_*`
//! environment variables (nested keys joined by `__`). Every problem is reported with its key
//! path, all at once, so an operator fixes a file in one pass.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Value};
use figment::{Figment, Provider};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use url::Url;

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
    /// Where the SQLite store lives.
    pub data_dir: PathBuf,
    /// Who approves authorization requests.
    pub approval: ApprovalMode,
    /// Peers whose `X-Forwarded-For` is believed (the reverse proxy).
    pub trusted_proxies: Vec<IpAddr>,
    /// Log output format.
    pub log_format: LogFormat,
    /// A second, internal listener for `/metrics` (and the probes); off when unset. Never
    /// expose it through the public proxy.
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
    /// How long a rotated refresh token still answers with the same new pair.
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
}

/// Rate and size limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Client registrations per minute from one IP address.
    pub register_per_minute: u32,
    /// Token and revocation requests per minute from one IP address.
    pub token_per_minute: u32,
    /// Owner login attempts per minute from one IP address.
    pub login_per_minute: u32,
    /// Largest request body accepted on any endpoint, in bytes.
    pub max_body_bytes: usize,
    /// Time allowed for a request to produce its response headers.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

/// The public origin of the gateway: `http(s)://host[:port]`, with no path, query or fragment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PublicUrl {
    origin: String,
    host_and_port: String,
    https: bool,
}

impl PublicUrl {
    /// Parses and checks a public origin.
    pub fn parse(input: &str) -> Result<Self, String> {
        let url = Url::parse(input).map_err(|error| format!("not a URL ({error})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("must start with https:// (or http:// for local use)".into());
        }
        let Some(host) = url.host_str() else {
            return Err("must name a host".into());
        };
        if url.path() != "/" {
            return Err("must not have a path: the issuer is the bare origin".into());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("must not have a query or fragment".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials".into());
        }
        let host_and_port = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        Ok(Self {
            origin: format!("{}://{host_and_port}", url.scheme()),
            host_and_port,
            https: url.scheme() == "https",
        })
    }

    /// The origin as published, with no trailing slash: the OAuth `issuer`.
    pub fn as_str(&self) -> &str {
        &self.origin
    }

    /// An absolute URL for `path` (which starts with `/`) under this origin.
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// Whether the host is a loopback name or address.
    pub fn is_loopback(&self) -> bool {
        let host = self
            .host_and_port
            .rsplit_once(':')
            .map_or(self.host_and_port.as_str(), |(host, _)| host);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<IpAddr>()
                .is_ok_and(|address| address.is_loopback())
    }

    /// Whether the origin is served over HTTPS (cookies are then `Secure`).
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The `host[:port]` a client puts in the `Host` header to reach us.
    pub fn host_and_port(&self) -> &str {
        &self.host_and_port
    }
}

impl TryFrom<String> for PublicUrl {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<PublicUrl> for String {
    fn from(value: PublicUrl) -> Self {
        value.origin
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.origin)
    }
}

impl Default for Config {
    fn default() -> Self {
        let listen = SocketAddr::from(([127, 0, 0, 1], 8080));
        Self {
            listen,
            public_url: PublicUrl {
                origin: format!("http://{listen}"),
                host_and_port: listen.to_string(),
                https: false,
            },
            data_dir: PathBuf::from("./data"),
            approval: ApprovalMode::Password,
            trusted_proxies: Vec::new(),
            log_format: LogFormat::Pretty,
            internal_listen: None,
            oauth: OAuthConfig::default(),
            limits: LimitsConfig::default(),
            targets: vec![TargetConfig {
                name: "homelab".into(),
                transport: TransportKind::AgentApi,
                description: Some("the homelab agent".into()),
                telegram: None,
            }],
            mcp: McpConfig::default(),
        }
    }
}

impl Default for OAuthConfig {
    fn default() -> Self {
        Self {
            access_token_ttl: Duration::from_secs(3600),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            refresh_grace: Duration::from_secs(60),
            code_ttl: Duration::from_secs(60),
            authorization_request_ttl: Duration::from_secs(10 * 60),
            owner_session_ttl: Duration::from_secs(15 * 60),
            unused_client_ttl: Duration::from_secs(24 * 3600),
            custom_redirect_schemes: Vec::new(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            // claude.ai registers a client on every connection, and all its users share a
            // handful of egress addresses: keep this generous.
            register_per_minute: 60,
            token_per_minute: 120,
            login_per_minute: 10,
            // A 16 KiB task, JSON-escaped inside a JSON-RPC request, fits with room to spare.
            max_body_bytes: 256 * 1024,
            // Above the agent API's 30 s long poll.
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// Every problem found while loading a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigProblem>);

/// One problem with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The dotted key path, such as `oauth.code_ttl`.
    pub key: String,
    /// What is wrong, in words an operator can act on.
    pub message: String,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            formatter,
            "invalid configuration ({} problem(s)):",
            self.0.len()
        )?;
        for problem in &self.0 {
            writeln!(formatter, "  {}: {}", problem.key, problem.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// Loads defaults, then `file` (when given), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigErrors> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigErrors(vec![ConfigProblem {
                    key: "--config".into(),
                    message: format!("file {} does not exist", path.display()),
                }]));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        // `NEXUS_CONFIG` names the file itself (read by the CLI), not a key.
        figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__").ignore(&["config"]));
        Self::from_figment(&figment)
    }

    /// Loads from TOML text alone (over the defaults); for tests and `config check`.
    pub fn from_toml(text: &str) -> Result<Self, ConfigErrors> {
        let figment =
            Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(text));
        Self::from_figment(&figment)
    }

    fn from_figment(figment: &Figment) -> Result<Self, ConfigErrors> {
        let mut problems = Vec::new();
        match figment.data() {
            Ok(data) => {
                let defaults = Value::serialize(Config::default())
                    .ok()
                    .and_then(|value| value.into_dict());
                for dict in data.values() {
                    report_unknown_keys(dict, defaults.as_ref(), "", &mut problems);
                }
            }
            Err(error) => problems.extend(figment_problems(error)),
        }
        // Each key is read on its own so that one bad value does not hide the next.
        let mut reader = KeyReader {
            figment,
            problems: &mut problems,
        };
        let listen = reader.read("listen");
        let public_url = reader.read("public_url");
        let data_dir = reader.read("data_dir");
        let approval = reader.read("approval");
        let trusted_proxies = reader.read("trusted_proxies");
        let log_format = reader.read("log_format");
        let internal_listen = reader.read_optional("internal_listen");
        let oauth = read_oauth(&mut reader);
        let limits = read_limits(&mut reader);
        let targets = reader.read("targets");
        let mcp = reader.read("mcp");

        let (
            Some(listen),
            Some(public_url),
            Some(data_dir),
            Some(approval),
            Some(trusted_proxies),
            Some(log_format),
            Some(internal_listen),
            Some(oauth),
            Some(limits),
            Some(targets),
            Some(mcp),
        ) = (
            listen,
            public_url,
            data_dir,
            approval,
            trusted_proxies,
            log_format,
            internal_listen,
            oauth,
            limits,
            targets,
            mcp,
        )
        else {
            return Err(ConfigErrors(problems));
        };
        let config = Config {
            listen,
            public_url,
            data_dir,
            approval,
            trusted_proxies,
            log_format,
            internal_listen,
            oauth,
            limits,
            targets,
            mcp,
        };
        problems.extend(config.semantic_problems());
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(problems))
        }
    }

    /// Rules that span keys or need more than a type to check.
    fn semantic_problems(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, message: String| {
            problems.push(ConfigProblem {
                key: key.into(),
                message,
            })
        };
        if self.approval == ApprovalMode::Auto {
            // Behind a proxy on the same host, a loopback listener is reachable from anywhere;
            // only a gateway that is local end to end may approve without asking.
            if !self.listen.ip().is_loopback() {
                problem(
                    "approval",
                    format!(
                        "`auto` approves every client without asking anyone, so it is only allowed on a loopback listener, not {}",
                        self.listen
                    ),
                );
            }
            if !self.public_url.is_loopback() {
                problem(
                    "approval",
                    format!(
                        "`auto` is only allowed when public_url is a loopback address, not {}",
                        self.public_url
                    ),
                );
            }
            if !self.trusted_proxies.is_empty() {
                problem("approval", "`auto` cannot be combined with trusted_proxies: proxied requests come from the outside".into());
            }
        }
        let positive = [
            ("oauth.access_token_ttl", self.oauth.access_token_ttl),
            ("oauth.refresh_token_ttl", self.oauth.refresh_token_ttl),
            ("oauth.code_ttl", self.oauth.code_ttl),
            (
                "oauth.authorization_request_ttl",
                self.oauth.authorization_request_ttl,
            ),
            ("oauth.owner_session_ttl", self.oauth.owner_session_ttl),
            ("oauth.unused_client_ttl", self.oauth.unused_client_ttl),
            ("limits.request_timeout", self.limits.request_timeout),
        ];
        for (key, value) in positive {
            if value.as_secs() == 0 {
                problem(key, "must be at least one second".into());
            }
        }
        if self.oauth.code_ttl > Duration::from_secs(600) {
            problem(
                "oauth.code_ttl",
                "must be at most 10 minutes (RFC 6749 §4.1.2)".into(),
            );
        }
        if self.oauth.refresh_grace > Duration::from_secs(300) {
            problem("oauth.refresh_grace", "must be at most 5 minutes".into());
        }
        for scheme in &self.oauth.custom_redirect_schemes {
            let lowered = scheme.to_ascii_lowercase();
            let valid = !lowered.is_empty()
                && lowered.starts_with(|c: char| c.is_ascii_alphabetic())
                && lowered
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
            if !valid {
                problem(
                    "oauth.custom_redirect_schemes",
                    format!("`{scheme}` is not a URI scheme"),
                );
            } else if matches!(
                lowered.as_str(),
                "http" | "https" | "javascript" | "data" | "file" | "vbscript" | "blob"
            ) {
                problem(
                    "oauth.custom_redirect_schemes",
                    format!("`{scheme}` cannot be listed as a custom scheme"),
                );
            }
        }
        for (key, value) in [
            (
                "limits.register_per_minute",
                self.limits.register_per_minute,
            ),
            ("limits.token_per_minute", self.limits.token_per_minute),
            ("limits.login_per_minute", self.limits.login_per_minute),
        ] {
            if value == 0 {
                problem(key, "must be at least 1".into());
            }
        }
        if self.limits.max_body_bytes < 64 * 1024 {
            problem(
                "limits.max_body_bytes",
                "must be at least 65536 (a 16 KiB task has to fit)".into(),
            );
        }
        if self.targets.is_empty() {
            problem("targets", "at least one target is needed".into());
        }
        let mut seen = BTreeSet::new();
        for (index, target) in self.targets.iter().enumerate() {
            if !crate::queue::message::is_valid_target_name(&target.name) {
                problem(
                    &format!("targets[{index}].name"),
                    format!(
                        "`{}` must use lowercase letters, digits and -_:. (1 to 64)",
                        target.name
                    ),
                );
            } else if !seen.insert(target.name.as_str()) {
                problem(
                    &format!("targets[{index}].name"),
                    format!("`{}` is defined twice", target.name),
                );
            }
        }
        for (index, target) in self.targets.iter().enumerate() {
            let key = format!("targets[{index}].telegram");
            match (target.transport, &target.telegram) {
                (TransportKind::Telegram, None) => problem(
                    &key,
                    "a telegram target needs a [targets.telegram] section".into(),
                ),
                (TransportKind::AgentApi, Some(_)) => problem(
                    &key,
                    "only targets with transport = \"telegram\" take a telegram section".into(),
                ),
                (TransportKind::Telegram, Some(telegram)) => {
                    if telegram.bot_token_file.is_some() == telegram.bot_token_env.is_some() {
                        problem(&key, "set exactly one of bot_token_file or bot_token_env (the token never goes in this file)".into());
                    }
                    if !(telegram.api_base.starts_with("https://")
                        || telegram.api_base.starts_with("http://"))
                    {
                        problem(&format!("{key}.api_base"), "must be an http(s) URL".into());
                    }
                    if telegram.poll_timeout > Duration::from_secs(50) {
                        problem(
                            &format!("{key}.poll_timeout"),
                            "must be at most 50s (the Bot API's limit)".into(),
                        );
                    }
                    if telegram.mode == TelegramMode::Webhook && !self.public_url.is_https() {
                        problem(
                            &format!("{key}.mode"),
                            "webhook mode needs an https public_url (Telegram only calls https)"
                                .into(),
                        );
                    }
                }
                (TransportKind::AgentApi, None) => {}
            }
        }
        for origin in &self.mcp.allowed_origins {
            let valid = Url::parse(origin.trim_end_matches(":*"))
                .is_ok_and(|url| url.host_str().is_some() && url.path() == "/");
            if !valid && origin != "null" {
                problem(
                    "mcp.allowed_origins",
                    format!("`{origin}` is not an origin such as https://app.example.com:443"),
                );
            }
        }
        problems
    }

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

    /// Where the SQLite file lives.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("nexus-gateway.sqlite3")
    }
}

fn read_oauth(reader: &mut KeyReader<'_, '_>) -> Option<OAuthConfig> {
    Some(OAuthConfig {
        access_token_ttl: reader.read_duration("oauth.access_token_ttl")?,
        refresh_token_ttl: reader.read_duration("oauth.refresh_token_ttl")?,
        refresh_grace: reader.read_duration("oauth.refresh_grace")?,
        code_ttl: reader.read_duration("oauth.code_ttl")?,
        authorization_request_ttl: reader.read_duration("oauth.authorization_request_ttl")?,
        owner_session_ttl: reader.read_duration("oauth.owner_session_ttl")?,
        unused_client_ttl: reader.read_duration("oauth.unused_client_ttl")?,
        custom_redirect_schemes: reader.read("oauth.custom_redirect_schemes")?,
    })
}

fn read_limits(reader: &mut KeyReader<'_, '_>) -> Option<LimitsConfig> {
    Some(LimitsConfig {
        register_per_minute: reader.read("limits.register_per_minute")?,
        token_per_minute: reader.read("limits.token_per_minute")?,
        login_per_minute: reader.read("limits.login_per_minute")?,
        max_body_bytes: reader.read("limits.max_body_bytes")?,
        request_timeout: reader.read_duration("limits.request_timeout")?,
    })
}

/// Reads one key at a time, recording a problem instead of stopping at the first.
struct KeyReader<'figment, 'problems> {
    figment: &'figment Figment,
    problems: &'problems mut Vec<ConfigProblem>,
}

impl KeyReader<'_, '_> {
    fn read<T: DeserializeOwned>(&mut self, key: &str) -> Option<T> {
        match self.figment.extract_inner::<T>(key) {
            Ok(value) => Some(value),
            Err(error) => {
                let key_parts: Vec<&str> = key.split('.').collect();
                for error in error {
                    // Figment reports the extracted key after the path inside it
                    // (`1.transport.targets`); put it first.
                    let mut path: Vec<&str> = error.path.iter().map(String::as_str).collect();
                    if path.ends_with(&key_parts) {
                        path.truncate(path.len() - key_parts.len());
                    }
                    let mut full = key_parts.clone();
                    full.extend(path);
                    let source = error
                        .metadata
                        .as_ref()
                        .map(|metadata| format!(" (from {})", metadata.name))
                        .unwrap_or_default();
                    self.problems.push(ConfigProblem {
                        key: display_path(&full),
                        message: format!("{}{source}", error.kind),
                    });
                }
                None
            }
        }
    }

    /// Reads a key that may be absent; `Some(None)` when it is.
    fn read_optional<T: DeserializeOwned>(&mut self, key: &str) -> Option<Option<T>> {
        if self.figment.find_value(key).is_err() {
            return Some(None);
        }
        self.read(key).map(Some)
    }

    fn read_duration(&mut self, key: &str) -> Option<Duration> {
        let text: String = self.read(key)?;
        match humantime::parse_duration(&text) {
            Ok(duration) => Some(duration),
            Err(error) => {
                self.problems.push(ConfigProblem {
                    key: key.to_owned(),
                    message: format!(
                        "`{text}` is not a duration such as `90s`, `10m` or `30d` ({error})"
                    ),
                });
                None
            }
        }
    }
}

fn figment_problems(error: figment::Error) -> Vec<ConfigProblem> {
    error
        .into_iter()
        .map(|error| {
            let source = error
                .metadata
                .as_ref()
                .map(|metadata| format!(" (from {})", metadata.name))
                .unwrap_or_default();
            let path: Vec<&str> = error.path.iter().map(String::as_str).collect();
            ConfigProblem {
                key: display_path(&path),
                message: format!("{}{source}", error.kind),
            }
        })
        .collect()
}

/// `["targets", "1", "transport"]` as `targets[1].transport`.
fn display_path(parts: &[&str]) -> String {
    let mut out = String::new();
    for part in parts {
        if part.bytes().all(|byte| byte.is_ascii_digit()) && !out.is_empty() {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

fn report_unknown_keys(
    dict: &Dict,
    known: Option<&Dict>,
    prefix: &str,
    problems: &mut Vec<ConfigProblem>,
) {
    let Some(known) = known else { return };
    let known_names: BTreeSet<&str> = known.keys().map(String::as_str).collect();
    for (name, value) in dict {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match known.get(name) {
            None => problems.push(ConfigProblem {
                key: path,
                message: format!(
                    "unknown key (known keys here: {})",
                    known_names.iter().copied().collect::<Vec<_>>().join(", ")
                ),
            }),
            Some(Value::Dict(_, known_child)) => {
                if let Value::Dict(_, child) = value {
                    report_unknown_keys(child, Some(known_child), &path, problems);
                }
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn problems(toml: &str) -> Vec<(String, String)> {
        match Config::from_toml(toml) {
            Ok(_) => Vec::new(),
            Err(errors) => errors
                .0
                .into_iter()
                .map(|problem| (problem.key, problem.message))
                .collect(),
        }
    }

    #[test]
    fn empty_file_gives_the_documented_defaults() {
        let config = Config::from_toml("").expect("defaults are valid");
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.public_url.as_str(), "http://127.0.0.1:8080");
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.approval, ApprovalMode::Password);
        assert_eq!(config.mcp_resource(), "http://127.0.0.1:8080/mcp");
    }

    #[test]
    fn every_problem_is_reported_with_its_key_path() {
        let found = problems(
            r#"
            listen = "not an address"
            public_url = "https://example.com/path"
            approval = "sometimes"
            colour = "blue"
            [oauth]
            code_ttl = "soon"
            [limits]
            login_per_minute = 0
            "#,
        );
        let keys: Vec<&str> = found.iter().map(|(key, _)| key.as_str()).collect();
        for expected in [
            "listen",
            "public_url",
            "approval",
            "colour",
            "oauth.code_ttl",
        ] {
            assert!(
                keys.contains(&expected),
                "no problem for {expected} in {found:?}"
            );
        }
    }

    #[test]
    fn auto_approval_is_refused_off_loopback() {
        let found = problems("listen = \"0.0.0.0:8080\"\napproval = \"auto\"\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "approval");
        assert!(problems("listen = \"127.0.0.1:9\"\napproval = \"auto\"\n").is_empty());
        let proxied = "listen = \"127.0.0.1:9\"\npublic_url = \"https://mcp.example.com\"\napproval = \"auto\"\n";
        assert_eq!(
            problems(proxied).len(),
            1,
            "a public URL means the outside can reach it"
        );
        let trusted =
            "listen = \"127.0.0.1:9\"\ntrusted_proxies = [\"127.0.0.1\"]\napproval = \"auto\"\n";
        assert_eq!(
            problems(trusted).len(),
            1,
            "a proxy in front means the outside can reach it"
        );
        assert!(PublicUrl::parse("http://[::1]:8080").is_ok_and(|url| url.is_loopback()));
        assert!(PublicUrl::parse("http://localhost").is_ok_and(|url| url.is_loopback()));
    }

    #[test]
    fn public_url_must_be_a_bare_origin() {
        for good in [
            "https://mcp.example.com",
            "https://mcp.example.com/",
            "http://127.0.0.1:8080",
        ] {
            assert!(PublicUrl::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "ftp://x",
            "https://x/mcp",
            "https://x?a=b",
            "https://x#f",
            "https://u:p@x",
            "nope",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            PublicUrl::parse("https://mcp.example.com/").map(|url| url.to_string()),
            Ok("https://mcp.example.com".into())
        );
    }

    #[test]
    fn targets_are_checked() {
        let config =
            Config::from_toml("[[targets]]\nname = \"nexus:felt\"\ntransport = \"agent_api\"\n")
                .expect("valid");
        assert_eq!(
            config.targets.len(),
            1,
            "a file's targets replace the default"
        );
        let found = problems(
            "[[targets]]\nname = \"Bad Name\"\ntransport = \"agent_api\"\n[[targets]]\nname = \"x\"\ntransport = \"pigeon\"\n",
        );
        assert!(
            found.iter().any(|(key, _)| key == "targets[1].transport"),
            "{found:?}"
        );
        let twice = problems(
            "[[targets]]\nname = \"a\"\ntransport = \"agent_api\"\n[[targets]]\nname = \"a\"\ntransport = \"agent_api\"\n",
        );
        assert_eq!(
            twice.first().map(|(key, _)| key.as_str()),
            Some("targets[1].name")
        );
        assert!(!problems("targets = []\n").is_empty());
    }

    #[test]
    fn telegram_targets_need_a_token_source_but_never_the_token() {
        let good = "[[targets]]\nname = \"homelab\"\ntransport = \"telegram\"\n[targets.telegram]\nbot_token_env = \"BOT\"\nchat_id = -1001\n";
        let config = Config::from_toml(good).expect("valid");
        let telegram = config.targets[0].telegram.as_ref().expect("telegram");
        assert_eq!(telegram.mode, TelegramMode::Polling);
        assert_eq!(telegram.api_base, "https://api.telegram.org");
        let missing = problems("[[targets]]\nname = \"homelab\"\ntransport = \"telegram\"\n");
        assert_eq!(
            missing.first().map(|(key, _)| key.as_str()),
            Some("targets[0].telegram")
        );
        let both = problems(&good.replace("chat_id", "bot_token_file = \"/t\"\nchat_id"));
        assert!(
            both.iter()
                .any(|(_, message)| message.contains("exactly one")),
            "{both:?}"
        );
        let inline_token = problems(&good.replace("chat_id", "bot_token = \"123:abc\"\nchat_id"));
        assert!(
            !inline_token.is_empty(),
            "a token in the file is an unknown key"
        );
        let webhook_http =
            problems(&good.replace("chat_id = -1001", "chat_id = -1001\nmode = \"webhook\""));
        assert!(
            webhook_http
                .iter()
                .any(|(key, _)| key == "targets[0].telegram.mode"),
            "{webhook_http:?}"
        );
    }

    #[test]
    fn custom_schemes_cannot_smuggle_dangerous_ones() {
        assert!(!problems("[oauth]\ncustom_redirect_schemes = [\"javascript\"]\n").is_empty());
        assert!(problems("[oauth]\ncustom_redirect_schemes = [\"cursor\"]\n").is_empty());
    }
}
