//! The call path of a federated tool: the pinned definition and its drift first, then the
//! call timeout (waiting for a slot included), the upstream's concurrency cap, cancellation
//! when the caller goes away, and the result cap. Every failure is a tool error that says what
//! happened, never a protocol error or a hang.

use std::sync::atomic::Ordering;
use std::time::Instant;

use rmcp::model::{CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::upstream::{Route, Upstreams, read};

/// The largest result passed back from an upstream; a larger one becomes a tool error.
pub const MAX_RESULT_BYTES: usize = 1024 * 1024;

impl Upstreams {
    /// Forwards a call to an exposed tool. Every failure is a tool error (`isError`) that says
    /// what happened, never a protocol error or a hang. `cancel` fires when the caller goes
    /// away; dropping the upstream call then sends it `notifications/cancelled`.
    pub async fn call(
        &self,
        route: &Route,
        client_id: &str,
        arguments: Option<Map<String, Value>>,
        cancel: CancellationToken,
    ) -> CallToolResult {
        let timeout = self
            .get(&route.upstream)
            .map_or(crate::config::upstreams::DEFAULT_CALL_TIMEOUT, |upstream| {
                upstream.config.call_timeout
            });
        self.call_with_timeout(route, client_id, arguments, cancel, timeout)
            .await
    }

    /// `call` with its own time limit (queued calls have a longer one).
    pub(super) async fn call_with_timeout(
        &self,
        route: &Route,
        client_id: &str,
        arguments: Option<Map<String, Value>>,
        cancel: CancellationToken,
        timeout: std::time::Duration,
    ) -> CallToolResult {
        let started = Instant::now();
        let (outcome, result) = self.forward(route, arguments, cancel, timeout).await;
        let elapsed = started.elapsed();
        self.inner
            .metrics
            .upstream_call(&route.upstream, &route.exposed, outcome, elapsed);
        // The audit line: who called what and how it went, never the arguments.
        tracing::info!(
            client_id = %client_id,
            upstream = %route.upstream,
            tool = %route.exposed,
            outcome,
            duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            "upstream tool call"
        );
        result
    }

    async fn forward(
        &self,
        route: &Route,
        arguments: Option<Map<String, Value>>,
        cancel: CancellationToken,
        timeout: std::time::Duration,
    ) -> (&'static str, CallToolResult) {
        let Some(upstream) = self.inner.upstreams.get(&route.upstream) else {
            return (
                "refused",
                tool_error(format!("no upstream named {}", route.upstream)),
            );
        };
        match read(&upstream.pinned)
            .get(&route.tool)
            .map(|pinned| pinned.drift)
        {
            None => {
                return (
                    "refused",
                    tool_error(format!(
                        "upstream {} has not offered {} yet; try again once it is up",
                        route.upstream, route.tool
                    )),
                );
            }
            Some(Some(drift)) if drift.blocks_calls() => {
                return (
                    "refused",
                    tool_error(format!(
                        "the tool {} changed at upstream {} ({}) since the owner approved it; calls are stopped until the owner runs `nexus-gateway upstreams approve {}`",
                        route.exposed,
                        route.upstream,
                        drift.as_str(),
                        route.upstream
                    )),
                );
            }
            Some(_) => {}
        }
        let call = async {
            // Waiting for a slot counts toward the timeout.
            let Ok(_slot) = upstream.slots.acquire().await else {
                return ("error", tool_error("the gateway is shutting down".into()));
            };
            let Some((generation, peer)) = upstream.peer() else {
                return ("unavailable", tool_error(upstream.unavailable()));
            };
            let mut params = CallToolRequestParams::new(route.tool.clone());
            params.arguments = arguments;
            match peer.call_tool_once(params).await {
                Ok(CallToolResponse::Complete(result)) => {
                    let size = serde_json::to_vec(&result).map_or(usize::MAX, |bytes| bytes.len());
                    if size > MAX_RESULT_BYTES {
                        return (
                            "too_large",
                            tool_error(format!(
                                "upstream {} answered {size} bytes, more than the gateway passes on ({MAX_RESULT_BYTES})",
                                route.upstream
                            )),
                        );
                    }
                    let outcome = if result.is_error == Some(true) {
                        "tool_error"
                    } else {
                        "ok"
                    };
                    (outcome, result)
                }
                Ok(CallToolResponse::InputRequired(_)) => (
                    "refused",
                    tool_error(format!(
                        "upstream {} asked for interactive input, which the gateway does not pass on",
                        route.upstream
                    )),
                ),
                Ok(_) => (
                    "refused",
                    tool_error(format!(
                        "upstream {} answered with a task, which the gateway does not pass on",
                        route.upstream
                    )),
                ),
                Err(
                    error @ (rmcp::ServiceError::TransportSend(_)
                    | rmcp::ServiceError::TransportClosed),
                ) => {
                    tracing::warn!(upstream = %route.upstream, error = %error, "call failed: the connection is broken; reconnecting");
                    upstream
                        .broken_generation
                        .store(generation, Ordering::Relaxed);
                    upstream.broken.notify_one();
                    (
                        "unavailable",
                        tool_error(format!(
                            "upstream {} cannot be reached; the gateway is reconnecting, try again in a few seconds",
                            route.upstream
                        )),
                    )
                }
                Err(error) => (
                    "error",
                    tool_error(format!(
                        "upstream {} failed the call: {error}",
                        route.upstream
                    )),
                ),
            }
        };
        tokio::select! {
            answered = tokio::time::timeout(timeout, call) => match answered {
                Ok(answer) => answer,
                Err(_) => (
                    "timeout",
                    tool_error(format!(
                        "upstream {} did not answer within {} s; the call was cancelled",
                        route.upstream,
                        timeout.as_secs()
                    )),
                ),
            },
            () = cancel.cancelled() => ("cancelled", tool_error("the call was cancelled".into())),
        }
    }
}

/// An `isError` result with `message` as its text.
pub fn tool_error(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}
