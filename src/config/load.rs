//! Loading: defaults, then a TOML file, then `NEXUS_*` environment variables, each key read on
//! its own into a problem collector so that every problem is reported, with its key path, at once.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Value};
use figment::{Figment, Provider};
use serde::de::DeserializeOwned;

use super::{Config, ENV_PREFIX, LimitsConfig, OAuthConfig, TargetConfig};

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
        let not_keys = not_configuration_keys(&figment);
        let not_keys: Vec<&str> = not_keys.iter().map(String::as_str).collect();
        figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__").ignore(&not_keys));
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
                // Every key, optional ones included: an unset option is skipped when the
                // defaults are serialised, and would otherwise count as unknown.
                let every_key = Config {
                    internal_listen: Some(Config::default().listen),
                    database_url: Some(crate::secrets::Secret::new("")),
                    ..Config::default()
                };
                let defaults = Value::serialize(every_key)
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
        let database_url = reader.read_optional("database_url");
        let approval = reader.read("approval");
        let trusted_proxies = reader.read("trusted_proxies");
        let log_format = reader.read("log_format");
        let access_log = reader.read("access_log");
        let internal_listen = reader.read_optional("internal_listen");
        let oauth = read_oauth(&mut reader);
        let limits = read_limits(&mut reader);
        let targets = reader.read("targets");
        let mcp = reader.read("mcp");
        let upstreams = reader.read("upstreams");

        let (
            Some(listen),
            Some(public_url),
            Some(data_dir),
            Some(database_url),
            Some(approval),
            Some(trusted_proxies),
            Some(log_format),
            Some(access_log),
            Some(internal_listen),
            Some(oauth),
            Some(limits),
            Some(targets),
            Some(mcp),
            Some(upstreams),
        ) = (
            listen,
            public_url,
            data_dir,
            database_url,
            approval,
            trusted_proxies,
            log_format,
            access_log,
            internal_listen,
            oauth,
            limits,
            targets,
            mcp,
            upstreams,
        )
        else {
            return Err(ConfigErrors(problems));
        };
        let config = Config {
            listen,
            public_url,
            data_dir,
            database_url,
            approval,
            trusted_proxies,
            log_format,
            access_log,
            internal_listen,
            oauth,
            limits,
            targets,
            mcp,
            upstreams,
        };
        problems.extend(config.semantic_problems());
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(problems))
        }
    }
}

/// The documented environment variable for a Telegram bot token (see `deploy/`).
const TELEGRAM_TOKEN_VARIABLE: &str = "NEXUS_TELEGRAM_TOKEN";

/// The `NEXUS_*` variables that are not configuration keys, as the environment provider names
/// them (prefix off, `__` as `.`, lower case): `NEXUS_CONFIG` names the file itself (read by the
/// CLI), and secrets live in variables of the same prefix, the documented
/// `NEXUS_TELEGRAM_TOKEN` and any variable a target names in `bot_token_env`. Read as keys,
/// they would be refused as unknown ones. Any other unknown variable is still a problem: a
/// misspelt override should stop the gateway, not be ignored.
fn not_configuration_keys(file: &Figment) -> Vec<String> {
    let mut variables = vec![
        format!("{ENV_PREFIX}CONFIG"),
        TELEGRAM_TOKEN_VARIABLE.into(),
    ];
    // A file whose targets do not parse is reported later; it names no variable here.
    if let Ok(targets) = file.extract_inner::<Vec<TargetConfig>>("targets") {
        variables.extend(
            targets
                .into_iter()
                .filter_map(|target| target.telegram?.bot_token_env),
        );
    }
    variables
        .iter()
        .filter_map(|variable| environment_key(variable))
        .collect()
}

/// The key the environment provider reads `variable` as, if it has our prefix.
fn environment_key(variable: &str) -> Option<String> {
    let prefix = variable.get(..ENV_PREFIX.len())?;
    prefix.eq_ignore_ascii_case(ENV_PREFIX).then(|| {
        variable[ENV_PREFIX.len()..]
            .replace("__", ".")
            .to_ascii_lowercase()
    })
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
        registration: reader.read("oauth.registration")?,
        cimd_documents: reader.read("oauth.cimd_documents")?,
        cimd_fetch: reader.read("oauth.cimd_fetch")?,
    })
}

fn read_limits(reader: &mut KeyReader<'_, '_>) -> Option<LimitsConfig> {
    Some(LimitsConfig {
        register_per_minute: reader.read("limits.register_per_minute")?,
        authorize_per_minute: reader.read("limits.authorize_per_minute")?,
        token_per_minute: reader.read("limits.token_per_minute")?,
        login_per_minute: reader.read("limits.login_per_minute")?,
        max_body_bytes: reader.read("limits.max_body_bytes")?,
        request_timeout: reader.read_duration("limits.request_timeout")?,
        header_read_timeout: reader.read_duration("limits.header_read_timeout")?,
        body_read_timeout: reader.read_duration("limits.body_read_timeout")?,
        max_connections: reader.read("limits.max_connections")?,
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

    #[test]
    fn secret_variables_are_named_as_the_environment_provider_reads_them() {
        assert_eq!(
            environment_key("NEXUS_TELEGRAM_TOKEN").as_deref(),
            Some("telegram_token")
        );
        assert_eq!(
            environment_key("nexus_Bot__Token").as_deref(),
            Some("bot.token")
        );
        assert_eq!(environment_key("TELEGRAM_TOKEN"), None);
        assert_eq!(environment_key("NEXUS"), None);
        let file = Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(
            "[[targets]]\nname = \"t\"\ntransport = \"telegram\"\n[targets.telegram]\nbot_token_env = \"NEXUS_FELT_BOT\"\nchat_id = 1\n",
        ));
        assert_eq!(
            not_configuration_keys(&file),
            ["config", "telegram_token", "felt_bot"]
        );
    }
}
