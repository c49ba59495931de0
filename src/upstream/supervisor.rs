//! One supervisor task per upstream: connect (starting), serve (ready), and after a failure wait
//! with jittered backoff from 1 s to 5 min (backoff), reset after a healthy minute. A ping every
//! 30 s checks the connection; a ping that times out while calls are in flight is not a failure,
//! so a slow call never gets its upstream restarted. Each (re)connection, and each
//! `tools/list_changed`, compares the live tool list with the pinned one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::RoleClient;
use rmcp::model::{ClientRequest, PingRequest, Tool};
use rmcp::service::{Peer, RunningService, ServiceExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::upstreams::UpstreamConfig;
use crate::upstream::client::UpstreamClient;
use crate::upstream::pinned::{Drift, compare};
use crate::upstream::stdio::{ProcessGroupGuard, forward_stderr};
use crate::upstream::{PING_TIMEOUT, PinnedTool, Status, Upstream, Upstreams, http, stdio};

/// How often a ready upstream is pinged.
const PING_INTERVAL: Duration = Duration::from_secs(30);
/// The longest the handshake and the first tool list may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A connection that lived this long resets the backoff.
const HEALTHY_RESET: Duration = Duration::from_secs(60);
/// The first and the longest wait before reconnecting.
const MAX_BACKOFF: Duration = Duration::from_secs(5 * 60);

/// A live connection to an upstream, and (stdio) the guard of its process group.
pub(crate) struct Connection {
    pub service: RunningService<RoleClient, UpstreamClient>,
    _group: Option<ProcessGroupGuard>,
}

/// Why a connection could not be made, and whether trying again can help.
pub(crate) struct ConnectError {
    pub reason: String,
    /// The configuration cannot work as it is (the command does not exist, the credential's
    /// variable is unset): retrying is pointless until the operator fixes it.
    pub permanent: bool,
}

impl From<ConnectError> for String {
    fn from(error: ConnectError) -> Self {
        error.reason
    }
}

impl From<String> for ConnectError {
    fn from(reason: String) -> Self {
        Self {
            reason,
            permanent: false,
        }
    }
}

/// Connects to `config`'s server: spawns it under `shim` (stdio) or opens a session (HTTP).
pub(crate) async fn connect(
    config: &UpstreamConfig,
    shim: &Path,
    handler: UpstreamClient,
) -> Result<Connection, ConnectError> {
    let connecting = async {
        match (&config.command, &config.url) {
            (Some(command), _) => {
                if !command.is_file() {
                    return Err(ConnectError {
                        reason: format!("{} does not exist", command.display()),
                        permanent: true,
                    });
                }
                let (transport, group, stderr) = stdio::spawn(config, command, shim)
                    .map_err(|error| format!("cannot start {}: {error}", command.display()))?;
                if let Some(stderr) = stderr {
                    forward_stderr(config.name.clone(), stderr);
                }
                let service = handler
                    .serve(transport)
                    .await
                    .map_err(|error| format!("the MCP handshake failed: {error}"))?;
                Ok(Connection {
                    service,
                    _group: Some(group),
                })
            }
            (None, Some(url)) => {
                let transport = http::transport(config, url).map_err(|reason| ConnectError {
                    reason,
                    permanent: true,
                })?;
                let service = handler
                    .serve(transport)
                    .await
                    .map_err(|error| format!("the MCP handshake failed: {error}"))?;
                Ok(Connection {
                    service,
                    _group: None,
                })
            }
            (None, None) => Err(ConnectError {
                reason: "neither command nor url is set".to_owned(),
                permanent: true,
            }),
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| {
            ConnectError::from(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()))
        })?
}

/// Keeps `upstream` connected until `shutdown`.
pub(super) async fn supervise(
    upstreams: Upstreams,
    upstream: Arc<Upstream>,
    shim: PathBuf,
    shutdown: CancellationToken,
) {
    let name = upstream.config.name.clone();
    let mut failures: u32 = 0;
    loop {
        upstream.set_status(Status::Starting);
        let tools_changed = Arc::new(Notify::new());
        let handler = UpstreamClient {
            tools_changed: tools_changed.clone(),
        };
        let reason = match connect(&upstream.config, &shim, handler).await {
            Ok(connection) => {
                let started = Instant::now();
                let reason =
                    serve_connection(&upstreams, &upstream, connection, &tools_changed, &shutdown)
                        .await;
                upstream.clear_peer();
                upstreams.metrics().upstream_up(&name, false);
                if shutdown.is_cancelled() {
                    return;
                }
                if started.elapsed() >= HEALTHY_RESET {
                    failures = 0;
                }
                reason
            }
            Err(ConnectError {
                reason,
                permanent: true,
            }) => {
                tracing::error!(upstream = %name, reason = %reason, "upstream disabled: fix its configuration and restart the gateway");
                upstream.set_status(Status::Disabled { reason });
                return;
            }
            Err(ConnectError { reason, .. }) => reason,
        };
        failures = failures.saturating_add(1);
        upstream
            .restarts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        upstreams.metrics().upstream_restart(&name);
        let wait = backoff(failures, rand::random());
        tracing::warn!(upstream = %name, reason = %reason, retry_in_s = wait.as_secs(), "upstream down; will retry");
        upstream.set_status(Status::Backoff {
            retry_at: Instant::now() + wait,
            reason,
        });
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Serves one connection until it fails or `shutdown`; returns why it ended.
async fn serve_connection(
    upstreams: &Upstreams,
    upstream: &Arc<Upstream>,
    connection: Connection,
    tools_changed: &Notify,
    shutdown: &CancellationToken,
) -> String {
    let name = upstream.config.name.clone();
    let Connection { service, _group } = connection;
    let peer = service.peer().clone();
    let closing = service.cancellation_token();
    if let Err(error) = refresh_pins(upstreams, upstream, &peer).await {
        closing.cancel();
        return error;
    }
    let generation = upstream.set_peer(peer.clone());
    upstream.set_status(Status::Ready);
    upstreams.metrics().upstream_up(&name, true);
    tracing::info!(upstream = %name, "upstream ready");
    let mut waiting = tokio::spawn(service.waiting());
    let mut ticker = tokio::time::interval(PING_INTERVAL);
    ticker.tick().await;
    let reason = loop {
        tokio::select! {
            () = shutdown.cancelled() => break "the gateway is stopping".to_owned(),
            _ = &mut waiting => break "the connection closed".to_owned(),
            // A call on an earlier connection may have found that one broken: not this one.
            () = upstream.broken.notified() => {
                if upstream.is_broken(generation) {
                    break "a call found the connection broken".to_owned();
                }
            }
            () = tools_changed.notified() => {
                if let Err(error) = refresh_pins(upstreams, upstream, &peer).await {
                    tracing::warn!(upstream = %name, error = %error, "cannot re-check the tool list");
                }
            }
            _ = ticker.tick() => {
                // Approvals made with the CLI land in the store.
                if let Err(error) = upstreams.load_pins(upstream).await {
                    tracing::warn!(upstream = %name, error = %error, "cannot read pinned tools");
                }
                let busy = upstream.slots.available_permits() < upstream.config.max_concurrency as usize;
                match tokio::time::timeout(PING_TIMEOUT, ping(&peer)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => break format!("ping failed: {error}"),
                    Err(_) if busy => {
                        tracing::debug!(upstream = %name, "ping timed out during calls; not a failure");
                    }
                    Err(_) => break "ping timed out".to_owned(),
                }
            }
        }
    };
    closing.cancel();
    waiting.abort();
    reason
}

async fn ping(peer: &Peer<RoleClient>) -> Result<(), rmcp::ServiceError> {
    peer.send_request(ClientRequest::PingRequest(PingRequest {
        method: Default::default(),
        extensions: Default::default(),
    }))
    .await
    .map(|_| ())
}

/// Compares the live tool list with the pinned definitions: pins tools seen for the first time,
/// records drift (log, metric, store) for the others.
async fn refresh_pins(
    upstreams: &Upstreams,
    upstream: &Upstream,
    peer: &Peer<RoleClient>,
) -> Result<(), String> {
    let name = &upstream.config.name;
    // Approvals made with the CLI since the last look are in the store.
    upstreams
        .load_pins(upstream)
        .await
        .map_err(|error| format!("cannot read pinned tools: {error}"))?;
    let live = tokio::time::timeout(CONNECT_TIMEOUT, peer.list_all_tools())
        .await
        .map_err(|_| "tools/list did not answer".to_owned())?
        .map_err(|error| format!("tools/list failed: {error}"))?;
    let live: BTreeMap<String, Tool> = live
        .into_iter()
        .map(|tool| (tool.name.to_string(), tool))
        .collect();
    let mut pinned = upstream.pinned();
    for allowed in &upstream.config.tools {
        let live_tool = live.get(&allowed.name);
        match pinned.get_mut(&allowed.name) {
            None => {
                let Some(tool) = live_tool else {
                    tracing::warn!(upstream = %name, tool = %allowed.name, "an allow-listed tool is not offered by the upstream");
                    continue;
                };
                let definition = serde_json::to_string(tool)
                    .map_err(|error| format!("cannot store a definition: {error}"))?;
                upstreams
                    .store()
                    .pin_tool(name, &allowed.name, &definition, upstreams.now())
                    .await
                    .map_err(|error| format!("cannot pin a definition: {error}"))?;
                tracing::info!(upstream = %name, tool = %allowed.name, "tool definition pinned");
                pinned.insert(
                    allowed.name.clone(),
                    PinnedTool {
                        tool: tool.clone(),
                        drift: None,
                    },
                );
            }
            Some(entry) => {
                let drift = compare(&entry.tool, live_tool);
                if drift != entry.drift {
                    report_drift(upstreams, name, &allowed.name, drift).await;
                    entry.drift = drift;
                }
            }
        }
    }
    upstream.set_pinned(pinned);
    Ok(())
}

async fn report_drift(upstreams: &Upstreams, upstream: &str, tool: &str, drift: Option<Drift>) {
    if let Some(drift) = drift {
        upstreams.notify(format!(
            "Upstream {upstream}: the tool {tool} changed since you approved it ({}). {} Run `nexus-gateway upstreams approve {upstream}` to accept the new definition.",
            drift.as_str(),
            if drift.blocks_calls() {
                "Calls to it are stopped until then."
            } else {
                "Clients still see the text you approved."
            }
        ));
    }
    match drift {
        Some(drift) => tracing::warn!(
            upstream = %upstream,
            tool = %tool,
            drift = drift.as_str(),
            calls_stopped = drift.blocks_calls(),
            "an upstream tool changed since it was pinned; run `nexus-gateway upstreams approve` to accept it"
        ),
        None => {
            tracing::info!(upstream = %upstream, tool = %tool, "an upstream tool matches its pinned definition again")
        }
    }
    upstreams
        .metrics()
        .upstream_drift(upstream, tool, drift.is_some());
    if let Err(error) = upstreams
        .store()
        .set_tool_drift(upstream, tool, drift.map(Drift::as_str))
        .await
    {
        tracing::warn!(upstream = %upstream, error = %error, "cannot record drift");
    }
}

/// Capped exponential backoff with jitter: 1 s, 2 s, 4 s ... up to 5 min, each scaled by a factor
/// in [0.5, 1.0) from `jitter`, so a crashing upstream is not restarted in a tight loop.
pub fn backoff(failures: u32, jitter: u16) -> Duration {
    crate::clock::jittered_backoff(failures, jitter, MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_from_a_second_to_five_minutes() {
        assert_eq!(backoff(1, 0), Duration::from_millis(500));
        assert!(backoff(1, u16::MAX) < Duration::from_secs(1));
        assert_eq!(backoff(4, 0), Duration::from_secs(4));
        assert!(backoff(40, u16::MAX) < MAX_BACKOFF);
        assert!(backoff(40, 0) >= MAX_BACKOFF / 2);
    }
}
