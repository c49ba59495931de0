//! Upstream MCP servers (`[[upstreams]]`): an allow-list of tools from a stdio child or a
//! Streamable HTTP server, each exposed under a name and a scope of ours. Every problem (a bad
//! name, both or neither of `command`/`url`, a relative command, an exposed name clients cannot
//! use, a collision) is reported with its key path; names are never rewritten to avoid one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigProblem;

/// The names of the built-in task tools (`mcp::tools`), which no upstream tool may take. Kept
/// here so `config` stays a leaf; `mcp` checks that the list matches its router.
pub const BUILTIN_TOOL_NAMES: [&str; 5] = [
    "send_message",
    "pull_updates",
    "queue_status",
    "get_message",
    "cancel_message",
];

/// The default time one forwarded call may take.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest a call may be given: claude.ai gives up on a tool call at 300 s.
pub const MAX_CALL_TIMEOUT: Duration = Duration::from_secs(280);
/// The default number of calls in flight to one upstream.
pub const DEFAULT_MAX_CONCURRENCY: u32 = 8;

/// One upstream MCP server and the tools it publishes through the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `[a-z][a-z0-9]{0,11}`: its tools are exposed as `<name>_<tool>`.
    pub name: String,
    /// stdio: the absolute path of the server's executable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<PathBuf>,
    /// stdio: its arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// stdio: extra environment; the child sees only `PATH`, `HOME`, `LANG`, `TZ` and these.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Streamable HTTP: the server's MCP endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Streamable HTTP: the environment variable holding a static bearer credential for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_env: Option<String>,
    /// The longest one call may take, waiting for a free slot included.
    #[serde(default = "default_call_timeout", with = "humantime_serde")]
    pub call_timeout: Duration,
    /// Calls in flight to this upstream at once.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: u32,
    /// The tools published; no wildcards.
    #[serde(default)]
    pub tools: Vec<UpstreamToolConfig>,
}

/// One allow-listed tool of an upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamToolConfig {
    /// The tool's name at the upstream.
    pub name: String,
    /// The name clients see instead of `<upstream>_<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose_as: Option<String>,
    /// The scope a token needs to see and call it; `upstream:<upstream>` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// `direct` (answer in the call) or `queued` (run through the durable queue).
    #[serde(default)]
    pub mode: ToolMode,
}

/// How a call to an upstream tool is carried out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolMode {
    /// Forwarded, and answered within the call.
    #[default]
    Direct,
    /// Answered at once with a task id; the result arrives as an update.
    Queued,
}

fn default_call_timeout() -> Duration {
    DEFAULT_CALL_TIMEOUT
}

fn default_max_concurrency() -> u32 {
    DEFAULT_MAX_CONCURRENCY
}

impl UpstreamConfig {
    /// The name clients see for `tool`.
    pub fn exposed_name(&self, tool: &UpstreamToolConfig) -> String {
        tool.expose_as
            .clone()
            .unwrap_or_else(|| format!("{}_{}", self.name, tool.name))
    }

    /// The scope a token needs for `tool`.
    pub fn scope_of(&self, tool: &UpstreamToolConfig) -> String {
        tool.scope
            .clone()
            .unwrap_or_else(|| format!("upstream:{}", self.name))
    }
}

/// Whether `name` may name an upstream: `[a-z][a-z0-9]{0,11}` (no `_`, so the boundary of
/// `<upstream>_<tool>` is never ambiguous).
pub fn is_valid_upstream_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|first| first.is_ascii_lowercase())
        && name.len() <= 12
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// Whether `name` is a tool name every MCP client accepts: `^[A-Za-z0-9_-]{1,64}$`.
pub fn is_valid_exposed_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
}

/// Whether `scope` may be an upstream scope: `upstream:` and then lowercase letters, digits,
/// `:`, `_` and `-`.
pub fn is_valid_upstream_scope(scope: &str) -> bool {
    scope.strip_prefix("upstream:").is_some_and(|rest| {
        !rest.is_empty()
            && rest.bytes().all(|byte| {
                byte.is_ascii_lowercase() || byte.is_ascii_digit() || b":_-".contains(&byte)
            })
    })
}

/// Every problem with the `[[upstreams]]` section; `builtin_tools` are names already taken.
pub fn upstream_problems(
    upstreams: &[UpstreamConfig],
    builtin_tools: &[&str],
) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    let mut problem = |key: String, message: String| problems.push(ConfigProblem { key, message });
    let mut names = BTreeSet::new();
    // exposed name -> where it was defined
    let mut exposed: BTreeMap<String, String> = builtin_tools
        .iter()
        .map(|name| ((*name).to_owned(), "a built-in tool".to_owned()))
        .collect();
    for (index, upstream) in upstreams.iter().enumerate() {
        let key = format!("upstreams[{index}]");
        if !is_valid_upstream_name(&upstream.name) {
            problem(
                format!("{key}.name"),
                format!(
                    "`{}` must be a lowercase letter then up to 11 lowercase letters or digits",
                    upstream.name
                ),
            );
        } else if !names.insert(upstream.name.as_str()) {
            problem(
                format!("{key}.name"),
                format!("`{}` is defined twice", upstream.name),
            );
        }
        match (&upstream.command, &upstream.url) {
            (Some(_), Some(_)) | (None, None) => problem(
                key.clone(),
                "set exactly one of `command` (a stdio server) or `url` (a Streamable HTTP server)"
                    .into(),
            ),
            (Some(command), None) => {
                if !command.is_absolute() {
                    problem(
                        format!("{key}.command"),
                        format!(
                            "`{}` must be an absolute path (the gateway searches no PATH)",
                            command.display()
                        ),
                    );
                }
                if upstream.bearer_token_env.is_some() {
                    problem(
                        format!("{key}.bearer_token_env"),
                        "only HTTP upstreams take a bearer credential; pass a stdio server its secrets in `env`".into(),
                    );
                }
            }
            (None, Some(url)) => {
                let parsed = url::Url::parse(url);
                let valid = parsed.as_ref().is_ok_and(|url| {
                    matches!(url.scheme(), "http" | "https") && url.host_str().is_some()
                });
                if !valid {
                    problem(
                        format!("{key}.url"),
                        format!("`{url}` is not an http(s) URL"),
                    );
                }
                if !upstream.args.is_empty() || !upstream.env.is_empty() {
                    problem(
                        key.clone(),
                        "`args` and `env` are for stdio servers (with `command`)".into(),
                    );
                }
            }
        }
        if upstream.call_timeout.is_zero() || upstream.call_timeout > MAX_CALL_TIMEOUT {
            problem(
                format!("{key}.call_timeout"),
                "must be between 1s and 280s (claude.ai gives up on a call at 300 s)".into(),
            );
        }
        if upstream.max_concurrency == 0 {
            problem(
                format!("{key}.max_concurrency"),
                "must be at least 1".into(),
            );
        }
        let mut tool_names = BTreeSet::new();
        for (tool_index, tool) in upstream.tools.iter().enumerate() {
            let tool_key = format!("{key}.tools[{tool_index}]");
            if tool.name.is_empty() || tool.name.contains('*') {
                problem(
                    format!("{tool_key}.name"),
                    "name one tool exactly (there are no wildcards)".into(),
                );
            } else if !tool_names.insert(tool.name.as_str()) {
                problem(
                    format!("{tool_key}.name"),
                    format!("`{}` is listed twice", tool.name),
                );
            }
            let name = upstream.exposed_name(tool);
            if !is_valid_exposed_name(&name) {
                problem(
                    format!(
                        "{tool_key}.{}",
                        if tool.expose_as.is_some() {
                            "expose_as"
                        } else {
                            "name"
                        }
                    ),
                    format!(
                        "the exposed name `{name}` must be 1 to 64 letters, digits, `_` or `-` (set expose_as)"
                    ),
                );
            } else if let Some(earlier) = exposed.get(&name) {
                problem(
                    format!("{tool_key}.expose_as"),
                    format!("the exposed name `{name}` is taken by {earlier}"),
                );
            } else {
                exposed.insert(name, tool_key.clone());
            }
            let scope = upstream.scope_of(tool);
            // A default scope from an invalid name is that name's problem, reported above.
            let named_validly = is_valid_upstream_name(&upstream.name);
            if (tool.scope.is_some() || named_validly) && !is_valid_upstream_scope(&scope) {
                problem(
                    format!("{tool_key}.scope"),
                    format!(
                        "`{scope}` must start with `upstream:` and use lowercase letters, digits, `:`, `_` and `-`"
                    ),
                );
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stdio(name: &str, tools: &[(&str, Option<&str>)]) -> UpstreamConfig {
        UpstreamConfig {
            name: name.into(),
            command: Some("/opt/fleet/bin/fleet-mcp".into()),
            args: Vec::new(),
            env: BTreeMap::new(),
            url: None,
            bearer_token_env: None,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            tools: tools
                .iter()
                .map(|(tool, expose_as)| UpstreamToolConfig {
                    name: (*tool).into(),
                    expose_as: expose_as.map(str::to_owned),
                    scope: None,
                    mode: ToolMode::Direct,
                })
                .collect(),
        }
    }

    fn keys(problems: &[ConfigProblem]) -> Vec<&str> {
        problems
            .iter()
            .map(|problem| problem.key.as_str())
            .collect()
    }

    #[test]
    fn names_and_scopes_follow_the_upstream() {
        let fleet = stdio("fleet", &[("get_status", None), ("search", Some("logs"))]);
        assert_eq!(fleet.exposed_name(&fleet.tools[0]), "fleet_get_status");
        assert_eq!(fleet.exposed_name(&fleet.tools[1]), "logs");
        assert_eq!(fleet.scope_of(&fleet.tools[0]), "upstream:fleet");
        assert!(upstream_problems(&[fleet], &["send_message"]).is_empty());
    }

    #[test]
    fn every_problem_is_named_by_its_key() {
        let mut both = stdio("Bad_Name", &[("x", Some("send_message")), ("x", None)]);
        both.url = Some("http://127.0.0.1:3001/mcp".into());
        let mut relative = stdio("rel", &[("t*", None)]);
        relative.command = Some("fleet-mcp".into());
        relative.call_timeout = Duration::from_secs(600);
        relative.tools[0].scope = Some("admin".into());
        let problems = upstream_problems(&[both, relative], &["send_message"]);
        assert_eq!(
            keys(&problems),
            [
                "upstreams[0].name",
                "upstreams[0]",
                "upstreams[0].tools[0].expose_as",
                "upstreams[0].tools[1].name",
                "upstreams[1].command",
                "upstreams[1].call_timeout",
                "upstreams[1].tools[0].name",
                "upstreams[1].tools[0].name",
                "upstreams[1].tools[0].scope",
            ],
            "{problems:#?}"
        );
        assert!(problems[2].message.contains("a built-in tool"));
    }

    #[test]
    fn collisions_between_upstreams_name_both_sides() {
        let first = stdio("aa", &[("x", Some("shared"))]);
        let second = stdio("bb", &[("y", Some("shared"))]);
        let problems = upstream_problems(&[first, second], &[]);
        assert_eq!(keys(&problems), ["upstreams[1].tools[0].expose_as"]);
        assert!(problems[0].message.contains("upstreams[0].tools[0]"));
    }

    #[test]
    fn exposed_names_are_what_clients_accept() {
        assert!(is_valid_exposed_name("fleet_get-status"));
        assert!(!is_valid_exposed_name("fleet.get"));
        assert!(!is_valid_exposed_name(&"a".repeat(65)));
        assert!(is_valid_upstream_name("fleet2"));
        assert!(!is_valid_upstream_name("2fleet"));
        assert!(!is_valid_upstream_name("fleet_x"));
        assert!(!is_valid_upstream_name("abcdefghijklm"));
        assert!(is_valid_upstream_scope("upstream:fleet:read"));
        assert!(!is_valid_upstream_scope("tasks:read"));
        assert!(!is_valid_upstream_scope("upstream:"));
    }
}
