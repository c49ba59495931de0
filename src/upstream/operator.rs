//! The operator's upstream commands: `upstreams list` (configuration, pins, drift), `upstreams
//! approve NAME` (pin what the upstream offers now, ending drift), and `upstreams import FILE`
//! (a Claude-Desktop-style `mcpServers` file printed as `[[upstreams]]` TOML with empty
//! allow-lists and the tools each server offers, so the owner chooses).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rmcp::model::Tool;
use serde::Deserialize;
use tokio::sync::Notify;

use crate::clock::UnixSeconds;
use crate::config::upstreams::{UpstreamConfig, is_valid_upstream_name};
use crate::queue::rfc3339;
use crate::store::Store;
use crate::upstream::client::UpstreamClient;
use crate::upstream::pinned::{Drift, compare};
use crate::upstream::supervisor::connect;

/// Lists each upstream with its tools, their pins and drift, and (`live`, from a running
/// gateway) its state.
pub async fn list(
    upstreams: &[UpstreamConfig],
    store: &Store,
    live: Option<serde_json::Value>,
) -> Result<String, String> {
    if upstreams.is_empty() {
        return Ok(
            "no upstreams are configured ([[upstreams]] in the configuration file)\n".into(),
        );
    }
    let mut out = String::new();
    for upstream in upstreams {
        let pins = store
            .pinned_tools(&upstream.name)
            .await
            .map_err(|error| error.to_string())?;
        let pins: BTreeMap<String, _> = pins
            .into_iter()
            .map(|record| (record.name.clone(), record))
            .collect();
        let kind = match (&upstream.command, &upstream.url) {
            (Some(command), _) => format!("stdio {}", command.display()),
            (None, Some(url)) => format!("http {url}"),
            (None, None) => "unconfigured".into(),
        };
        let drifted = pins.values().filter(|pin| pin.drift.is_some()).count();
        let state = match &live {
            Some(live) => {
                live[&upstream.name]["state"]
                    .as_str()
                    .map_or("not running".to_owned(), |state| {
                        format!(
                            "{state}, {} restarts",
                            live[&upstream.name]["restarts"].as_u64().unwrap_or(0)
                        )
                    })
            }
            None => "state unknown: no gateway answers on internal_listen".to_owned(),
        };
        let _ = writeln!(
            out,
            "{}  [{state}]  {kind}  {} tools allowed, {} pinned, {drifted} drifted  (timeout {} s, {} at once)",
            upstream.name,
            upstream.tools.len(),
            pins.len(),
            upstream.call_timeout.as_secs(),
            upstream.max_concurrency
        );
        for tool in &upstream.tools {
            let state = match pins.get(&tool.name) {
                None => "not seen yet (a warning: the upstream may not offer it)".to_owned(),
                Some(pin) => match pin.drift.as_deref().and_then(Drift::parse) {
                    None => format!("pinned {}", rfc3339(pin.pinned_at)),
                    Some(drift) if drift.blocks_calls() => format!(
                        "DRIFT ({}): calls stopped until `upstreams approve {}`",
                        drift.as_str(),
                        upstream.name
                    ),
                    Some(drift) => format!("drift ({}): pinned text still served", drift.as_str()),
                },
            };
            let _ = writeln!(
                out,
                "  {} <- {}  scope {}  {:?}  {state}",
                upstream.exposed_name(tool),
                tool.name,
                upstream.scope_of(tool),
                tool.mode
            );
        }
    }
    Ok(out)
}

/// Connects to `upstream`, and pins each allowed tool as it is offered now.
pub async fn approve(
    upstream: &UpstreamConfig,
    store: &Store,
    shim: &Path,
    now: UnixSeconds,
) -> Result<String, String> {
    let live = live_tools(upstream, shim).await?;
    let pins = store
        .pinned_tools(&upstream.name)
        .await
        .map_err(|error| error.to_string())?;
    let mut out = String::new();
    for tool in &upstream.tools {
        let Some(offered) = live.iter().find(|offered| offered.name == tool.name) else {
            let _ = writeln!(
                out,
                "{}: not offered by the upstream; nothing pinned",
                tool.name
            );
            continue;
        };
        let previous = pins
            .iter()
            .find(|pin| pin.name == tool.name)
            .and_then(|pin| serde_json::from_str(&pin.definition).ok());
        let change = match previous
            .as_ref()
            .map(|pinned| compare(pinned, Some(offered)))
        {
            None => "pinned for the first time".to_owned(),
            Some(None) => "unchanged".to_owned(),
            Some(Some(drift)) => format!("re-pinned ({} changed)", drift.as_str()),
        };
        let definition = serde_json::to_string(offered).map_err(|error| error.to_string())?;
        store
            .pin_tool(&upstream.name, &tool.name, &definition, now)
            .await
            .map_err(|error| error.to_string())?;
        let _ = writeln!(out, "{}: {change}", tool.name);
    }
    out.push_str("a running gateway picks this up within 30 s\n");
    Ok(out)
}

/// Connects to `config`'s server once, and lists what it offers now.
async fn live_tools(config: &UpstreamConfig, shim: &Path) -> Result<Vec<Tool>, String> {
    let handler = UpstreamClient {
        tools_changed: Arc::new(Notify::new()),
    };
    let mut connection = connect(config, shim, handler).await?;
    let tools = connection.service.peer().list_all_tools().await;
    let _ = connection.service.close().await;
    tools.map_err(|error| format!("tools/list failed: {error}"))
}

/// A Claude-Desktop-style configuration file.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DesktopConfig {
    mcp_servers: BTreeMap<String, DesktopServer>,
}

#[derive(Debug, Deserialize)]
struct DesktopServer {
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    url: Option<String>,
}

/// Reads an `mcpServers` file and prints `[[upstreams]]` TOML for it: empty allow-lists, and
/// the tools each server offers as comments (servers that do not start are said so).
pub async fn import(file: &Path, shim: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|error| format!("cannot read {}: {error}", file.display()))?;
    let desktop: DesktopConfig = serde_json::from_str(&text)
        .map_err(|error| format!("{} is not an mcpServers file: {error}", file.display()))?;
    let mut out = String::from(
        "# Generated by `nexus-gateway upstreams import`. Every allow-list is empty: add the tools\n# to publish, e.g. tools = [{ name = \"get_status\" }].\n",
    );
    for (original, server) in desktop.mcp_servers {
        let name = upstream_name(&original);
        let command = server.command.as_deref().map(resolve_command);
        let config = UpstreamConfig {
            name: name.clone(),
            command: command.clone().flatten(),
            args: server.args.clone(),
            env: server.env.clone(),
            url: server.url.clone(),
            bearer_token_env: None,
            call_timeout: crate::config::upstreams::DEFAULT_CALL_TIMEOUT,
            max_concurrency: crate::config::upstreams::DEFAULT_MAX_CONCURRENCY,
            tools: Vec::new(),
        };
        out.push('\n');
        if name != original {
            let _ = writeln!(
                out,
                "# \"{original}\" renamed: upstream names are [a-z][a-z0-9]{{0,11}}"
            );
        }
        let offered = match (&command, &server.url) {
            (Some(None), _) => Err(format!(
                "`{}` was not found on PATH; give its absolute path",
                server.command.as_deref().unwrap_or_default()
            )),
            _ => offered_tools(&config, shim).await,
        };
        out.push_str("[[upstreams]]\n");
        let _ = writeln!(out, "name = {}", toml_string(&name));
        // The command as found on PATH, or as written when it was not found (to be fixed).
        let command = config
            .command
            .as_ref()
            .map(|command| (command.display().to_string(), ""))
            .or_else(|| {
                server
                    .command
                    .clone()
                    .map(|original| (original, "  # not found on PATH: give its absolute path"))
            });
        match (command, &config.url) {
            (Some((command, note)), _) => {
                let _ = writeln!(out, "command = {}{note}", toml_string(&command));
                let args: Vec<String> = config.args.iter().map(|arg| toml_string(arg)).collect();
                let _ = writeln!(out, "args = [{}]", args.join(", "));
                if !config.env.is_empty() {
                    let env: Vec<String> = config
                        .env
                        .iter()
                        .map(|(key, value)| {
                            format!("{} = {}", toml_string(key), toml_string(value))
                        })
                        .collect();
                    let _ = writeln!(out, "env = {{ {} }}", env.join(", "));
                }
            }
            (None, Some(url)) => {
                let _ = writeln!(out, "url = {}", toml_string(url));
            }
            (None, None) => {
                let _ = writeln!(out, "# neither command nor url: fill one in");
            }
        }
        out.push_str("tools = []\n");
        match offered {
            Ok(tools) => {
                let _ = writeln!(out, "# offers {} tools:", tools.len());
                for (tool, description) in tools {
                    let _ = writeln!(out, "#   {tool}: {description}");
                }
            }
            Err(error) => {
                let _ = writeln!(out, "# could not list its tools: {error}");
            }
        }
    }
    Ok(out)
}

async fn offered_tools(
    config: &UpstreamConfig,
    shim: &Path,
) -> Result<Vec<(String, String)>, String> {
    Ok(live_tools(config, shim)
        .await?
        .into_iter()
        .map(|tool| {
            let description: String = tool
                .description
                .as_deref()
                .unwrap_or_default()
                .chars()
                .take_while(|c| *c != '\n')
                .take(100)
                .collect();
            (tool.name.to_string(), description)
        })
        .collect())
}

/// A valid upstream name from a free-form server name.
fn upstream_name(original: &str) -> String {
    if is_valid_upstream_name(original) {
        return original.to_owned();
    }
    let mut name: String = original
        .to_ascii_lowercase()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .skip_while(|c| c.is_ascii_digit())
        .take(12)
        .collect();
    if name.is_empty() {
        name = "server".into();
    }
    name
}

/// The absolute path of `command`: itself when absolute, else the first match on `PATH`.
/// `Some(None)` when it cannot be found.
fn resolve_command(command: &str) -> Option<PathBuf> {
    let path = Path::new(command);
    if path.is_absolute() {
        return Some(path.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|directory| directory.join(command))
            .find(|candidate| candidate.is_file())
    })
}

fn toml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_become_valid_upstream_names() {
        assert_eq!(upstream_name("fleet"), "fleet");
        assert_eq!(upstream_name("Fleet-Status_MCP"), "fleetstatusm");
        assert_eq!(upstream_name("2fa"), "fa");
        assert_eq!(upstream_name("___"), "server");
        assert!(is_valid_upstream_name(&upstream_name("My Server 2")));
    }
}
