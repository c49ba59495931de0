//! The rules that span keys or need more than a type to check (such as `auto` approval only on
//! loopback), run once every key has been read.

use std::collections::BTreeSet;
use std::time::Duration;

use url::Url;

use super::{ApprovalMode, Config, ConfigProblem, TelegramMode, TransportKind};

impl Config {
    /// Rules that span keys or need more than a type to check.
    pub(super) fn semantic_problems(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, message: String| {
            problems.push(ConfigProblem {
                key: key.into(),
                message,
            })
        };
        if let Some(url) = &self.database_url
            && let Err(message) = check_database_url(url.expose())
        {
            problem("database_url", message);
        }
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
            (
                "limits.header_read_timeout",
                self.limits.header_read_timeout,
            ),
            ("limits.body_read_timeout", self.limits.body_read_timeout),
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
        for (key, value) in [
            (
                "limits.header_read_timeout",
                self.limits.header_read_timeout,
            ),
            ("limits.body_read_timeout", self.limits.body_read_timeout),
        ] {
            if value > Duration::from_secs(30) {
                problem(
                    key,
                    "must be at most 30 seconds: a slow client holds a connection this long".into(),
                );
            }
        }
        if self.limits.max_connections == 0 {
            problem("limits.max_connections", "must be at least 1".into());
        }
        if self.oauth.refresh_grace > Duration::from_secs(300) {
            problem("oauth.refresh_grace", "must be at most 5 minutes".into());
        }
        let mut pinned = BTreeSet::new();
        for (index, document) in self.oauth.cimd_documents.iter().enumerate() {
            let key = format!("oauth.cimd_documents[{index}]");
            if let Err(reason) = crate::oauth::cimd::check_document(
                &document.client_id,
                document,
                &self.oauth.custom_redirect_schemes,
            ) {
                problem(&key, format!("{}: {reason}", document.client_id));
            }
            let built_in = crate::oauth::cimd::built_in_documents()
                .iter()
                .any(|known| known.client_id == document.client_id);
            if built_in || !pinned.insert(document.client_id.as_str()) {
                problem(
                    &key,
                    format!(
                        "{} is already pinned (built in, or listed twice)",
                        document.client_id
                    ),
                );
            }
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
            (
                "limits.authorize_per_minute",
                self.limits.authorize_per_minute,
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
        problems.extend(super::upstreams::upstream_problems(
            &self.upstreams,
            &super::upstreams::BUILTIN_TOOL_NAMES,
        ));
        problems
    }
}

/// A `database_url` must name a PostgreSQL database; the message never repeats the URL, which
/// may carry a password.
fn check_database_url(url: &str) -> Result<(), String> {
    let parsed = Url::parse(url).map_err(|error| format!("not a URL ({error})"))?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return Err(format!(
            "must be a postgres:// URL, not {}:// (leave it unset for the SQLite file in data_dir)",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) && !url.contains("host=") {
        return Err("names no host".into());
    }
    Ok(())
}
