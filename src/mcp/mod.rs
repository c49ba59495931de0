//! The MCP server (rmcp): five tools over the task queue. Thin: each tool reads the caller's
//! verified token claims, calls `Queue`, and shapes the answer. `tools/list` shows only the
//! tools the token's scopes allow, and a call to any other is refused.

pub mod tools;
pub mod waits;

use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::server::common::{AsRequestContext, FromContextPart};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ProtocolVersion, ResultType,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, tool, tool_handler, tool_router};

use crate::config::upstreams::ToolMode;
use crate::mcp::tools::{
    CancelMessageResult, GetMessageArgs, GetMessageResult, MessageIdArgs, PullUpdatesArgs,
    PullUpdatesResult, QueueStatusArgs, QueueStatusResult, SendMessageArgs, SendMessageResult,
    TargetCounts,
};
use crate::mcp::waits::WaitSlots;
use crate::metrics::Metrics;
use crate::oauth::VerifiedToken;
use crate::oauth::scope::{Scope, ScopeSet};
use crate::queue::error::QueueError;
use crate::queue::message::MessageStatus;
use crate::queue::view::{MessageView, UpdateView};
use crate::queue::{PullQuery, Queue, SendRequest, Sent, UpdatePage};
use crate::upstream::Upstreams;

/// The longest a `pull_updates` call may wait for news.
const MAX_PULL_WAIT_SECONDS: u32 = 50;
/// How often a waiting `pull_updates` reports progress.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);

/// The scope a built-in tool needs; `None` for a name that is not a built-in tool.
pub fn builtin_scope(tool: &str) -> Option<Scope> {
    match tool {
        "send_message" | "cancel_message" => Some(Scope::TasksWrite),
        "pull_updates" | "queue_status" | "get_message" => Some(Scope::TasksRead),
        _ => None,
    }
}

/// The scope a tool needs, built-in or federated; `None` for a name that is no tool of ours.
pub fn required_scope(tool: &str, upstreams: &Upstreams) -> Option<Scope> {
    builtin_scope(tool).or_else(|| {
        upstreams
            .route(tool)
            .map(|route| Scope::Upstream(route.scope.as_str().into()))
    })
}

/// The request's verified access token, put there by the bearer guard.
pub struct Caller(pub Arc<VerifiedToken>);

impl<C: AsRequestContext> FromContextPart<C> for Caller {
    fn from_context_part(context: &mut C) -> Result<Self, McpError> {
        verified_token(context.as_request_context())
            .map(Caller)
            .ok_or_else(unauthenticated)
    }
}

fn verified_token(context: &RequestContext<RoleServer>) -> Option<Arc<VerifiedToken>> {
    context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Arc<VerifiedToken>>())
        .map(Arc::clone)
}

fn unauthenticated() -> McpError {
    // Unreachable behind the bearer guard; refusing is the safe answer if it ever is reached.
    McpError::invalid_request("this request carries no verified access token", None)
}

/// The MCP server handler. rmcp asks for one per request (stateless); each is a handle to
/// the same shared state, so making one is a reference count, not a build.
#[derive(Clone)]
pub struct McpServer {
    shared: Arc<Shared>,
}

/// What every request's handler shares, built once at start.
struct Shared {
    queue: Queue,
    metrics: Metrics,
    upstreams: Upstreams,
    tool_router: ToolRouter<McpServer>,
    // The bounds on waiting pulls hold across requests.
    waits: Arc<WaitSlots>,
    // rmcp asks for the server's description on every stateless request; the targets it
    // names are fixed at start.
    info: ServerConfig,
}

impl McpServer {
    /// The handler over `queue` and `upstreams`, with the tool table, the wait bounds and the
    /// server's description built here, once.
    pub fn new(queue: Queue, metrics: Metrics, upstreams: Upstreams) -> Self {
        let info = server_info(&queue);
        Self {
            shared: Arc::new(Shared {
                queue,
                metrics,
                upstreams,
                tool_router: Self::tool_router(),
                waits: Arc::default(),
                info,
            }),
        }
    }
}

/// The server's description: name, version, capabilities and instructions naming the targets.
fn server_info(queue: &Queue) -> ServerConfig {
    let targets: Vec<String> = queue
        .targets()
        .iter()
        .map(|target| match &target.description {
            Some(description) => format!("`{}` ({description})", target.name),
            None => format!("`{}`", target.name),
        })
        .collect();
    ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
        .with_server_info(Implementation::new("nexus-gateway", env!("CARGO_PKG_VERSION")))
        .with_instructions(format!(
            "This server hands tasks to the user's homelab agent and brings its replies back. Send work with send_message, \
             then follow it with pull_updates (no arguments: everything new since your last pull) or get_message. Agents \
             work asynchronously: a task may take minutes. Targets: {} (the first is the default).",
            targets.join(", ")
        ))
}

#[tool_router]
impl McpServer {
    #[tool(
        description = "Send a task or message to the homelab agent. Use this when the user wants their agent to do something or needs to tell it something. It returns at once with the task's id; the agent works asynchronously, so follow its progress and replies with pull_updates (or get_message with the id). Sending the exact same text to the same target while an earlier copy is still open queues nothing and returns the open task's id instead (queued: false, reason: duplicate). Needs the tasks:write scope.",
        annotations(
            title = "Send a task to the agent",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn send_message(
        &self,
        Caller(caller): Caller,
        Parameters(args): Parameters<SendMessageArgs>,
    ) -> Result<Json<SendMessageResult>, String> {
        let request = SendRequest {
            content: args.message,
            target: args.target,
            urgent: args.urgent.unwrap_or(false),
            sender: caller.claims().client_id.clone(),
        };
        match self.shared.queue.send(request).await.map_err(tool_error)? {
            Sent::Queued { id, target } => Ok(Json(SendMessageResult {
                queued: true,
                id,
                target: Some(target),
                status: Some(MessageStatus::Pending),
                reason: None,
            })),
            Sent::Duplicate { id } => Ok(Json(SendMessageResult {
                queued: false,
                id,
                target: None,
                status: None,
                reason: Some("duplicate".into()),
            })),
        }
    }

    #[tool(
        description = "Get the agent's replies and the status changes of tasks, oldest first. Call it with no arguments to get everything you have not seen yet (the gateway remembers where you stopped), or pass `since` (a next_cursor from an earlier call, or an RFC 3339 time) to read from a point. Pass `wait` (seconds, up to 50) to wait for the agent instead of getting an empty list; a client may have at most 4 calls waiting at once, and a call over that answers at once with wait_declined saying so. Filter by message_id or target when you only care about one task. Each update has the task's id, the text, and the new status when the update changed it (acknowledged, in_progress, complete, error, cancelled). Needs the tasks:read scope.",
        annotations(
            title = "Pull the agent's updates",
            read_only_hint = true,
            open_world_hint = false
        )
    )]
    async fn pull_updates(
        &self,
        Caller(caller): Caller,
        context: RequestContext<RoleServer>,
        Parameters(args): Parameters<PullUpdatesArgs>,
    ) -> Result<Json<PullUpdatesResult>, String> {
        let client_id = &caller.claims().client_id;
        let mut wait_seconds = args.wait.unwrap_or(0).min(MAX_PULL_WAIT_SECONDS);
        let mut wait_declined = None;
        // Held until the answer is built; dropping it gives the place back.
        let _slot = if wait_seconds == 0 {
            None
        } else {
            match self.shared.waits.acquire(client_id) {
                Ok(slot) => Some(slot),
                Err(refused) => {
                    tracing::info!(%client_id, reason = ?refused, "pull_updates answered without waiting");
                    wait_seconds = 0;
                    wait_declined = Some(refused.to_string());
                    None
                }
            }
        };
        let wait = Duration::from_secs(u64::from(wait_seconds));
        let deadline = tokio::time::Instant::now() + wait;
        let mut query = PullQuery {
            since: args.since,
            message_id: args.message_id,
            target: args.target,
            limit: args.limit.map(i64::from),
        };
        let mut waited = 0u32;
        let pulled = loop {
            let pulled = self
                .shared
                .queue
                .pull_updates(client_id, query.clone())
                .await
                .map_err(tool_error)?;
            if !pulled.updates.is_empty()
                || tokio::time::Instant::now() >= deadline
                || context.ct.is_cancelled()
            {
                break pulled;
            }
            // Continue from where this pull ended, whatever `since` was.
            query.since = Some(pulled.next_cursor.clone());
            // A progress notification turns the answer into a stream: clients (and proxies)
            // see the call is alive while the agent works.
            if let Some(token) = context.meta.get_progress_token() {
                waited += 1;
                let progress = ProgressNotificationParam::new(token, f64::from(waited))
                    .with_message("waiting for the agent");
                let _ = context.peer.notify_progress(progress).await;
            }
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            self.shared
                .queue
                .wait_for_update(remaining.min(PROGRESS_INTERVAL))
                .await;
        };
        Ok(Json(PullUpdatesResult {
            updates: pulled.updates.iter().map(UpdateView::from).collect(),
            next_cursor: pulled.next_cursor,
            wait_declined,
        }))
    }

    #[tool(
        description = "See how busy the agent is: how many tasks are pending (not yet seen), acknowledged, and in progress, per target, the task being worked on now, and how many updates exist. Use it before sending more work or to explain a delay. Needs the tasks:read scope.",
        annotations(title = "Queue status", read_only_hint = true, open_world_hint = false)
    )]
    async fn queue_status(
        &self,
        Parameters(args): Parameters<QueueStatusArgs>,
    ) -> Result<Json<QueueStatusResult>, String> {
        let snapshot = self
            .shared
            .queue
            .snapshot(args.target.as_deref())
            .await
            .map_err(tool_error)?;
        let targets: Vec<TargetCounts> = snapshot
            .per_target
            .iter()
            .map(|counts| TargetCounts {
                target: counts.target.clone(),
                pending: counts.pending,
                acknowledged: counts.acknowledged,
                in_progress: counts.in_progress,
            })
            .collect();
        Ok(Json(QueueStatusResult {
            pending: targets.iter().map(|counts| counts.pending).sum(),
            acknowledged: targets.iter().map(|counts| counts.acknowledged).sum(),
            in_progress: targets.iter().map(|counts| counts.in_progress).sum(),
            total_updates: snapshot.total_updates,
            current_task: snapshot.current_task.as_ref().map(MessageView::from),
            targets,
        }))
    }

    #[tool(
        description = "Look up one task by its id: its text, current status, when it was queued, acknowledged, started and finished, and its updates (status changes and the agent's replies), oldest first, 100 at a time by default: when has_more is true, call again with after set to next_cursor for the next page. Use it to answer 'what happened to that task?'. Needs the tasks:read scope.",
        annotations(title = "Get a task", read_only_hint = true, open_world_hint = false)
    )]
    async fn get_message(
        &self,
        Parameters(args): Parameters<GetMessageArgs>,
    ) -> Result<Json<GetMessageResult>, String> {
        let page = UpdatePage {
            after: args.after,
            limit: args.limit.map(i64::from),
        };
        let detail = self
            .shared
            .queue
            .message(&args.id, page)
            .await
            .map_err(tool_error)?;
        Ok(Json(GetMessageResult {
            message: MessageView::from(&detail.message),
            updates: detail.updates.iter().map(UpdateView::from).collect(),
            has_more: detail.has_more,
            next_cursor: detail.next_cursor,
        }))
    }

    #[tool(
        description = "Cancel a task the agent has not started on yet (status pending or acknowledged). A task in progress or finished cannot be cancelled; the error says which. Needs the tasks:write scope.",
        annotations(
            title = "Cancel a task",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn cancel_message(
        &self,
        Caller(caller): Caller,
        Parameters(args): Parameters<MessageIdArgs>,
    ) -> Result<Json<CancelMessageResult>, String> {
        let message = self
            .shared
            .queue
            .cancel(&args.id, &caller.claims().client_id)
            .await
            .map_err(tool_error)?;
        Ok(Json(CancelMessageResult {
            cancelled: true,
            id: message.id,
            status: message.status,
        }))
    }
}

#[tool_handler(router = self.shared.tool_router)]
impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        self.shared.info.clone()
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let verified = verified_token(&context);
        let no_scopes = ScopeSet::default();
        let granted = verified
            .as_deref()
            .map_or(&no_scopes, VerifiedToken::scopes);
        let mut tools: Vec<_> = self
            .shared
            .tool_router
            .list_all()
            .into_iter()
            .filter(|tool| builtin_scope(&tool.name).is_some_and(|scope| granted.contains(&scope)))
            .collect();
        tools.extend(
            self.shared
                .upstreams
                .list_tools(|scope| granted.contains_str(scope)),
        );
        let supports_cache_hints = context
            .protocol_version()
            .is_some_and(|version| version >= ProtocolVersion::V_2026_07_28);
        Ok(ListToolsResult {
            result_type: Some(ResultType::COMPLETE),
            tools,
            meta: None,
            next_cursor: None,
            ttl_ms: supports_cache_hints.then_some(0),
            // The list depends on the caller's token, so no shared cache may keep it.
            cache_scope: supports_cache_hints.then_some(CacheScope::Private),
        })
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        // The HTTP layer already answered 403 for a missing scope; this keeps the rule true
        // even for a request that reached rmcp another way.
        let verified = verified_token(&context).ok_or_else(unauthenticated)?;
        let claims = verified.claims();
        if let Some(scope) = required_scope(&request.name, &self.shared.upstreams)
            && !verified.scopes().contains(&scope)
        {
            return Err(McpError::invalid_request(
                format!("this token lacks the {} scope", scope.as_str()),
                None,
            ));
        }
        let tool = request.name.to_string();
        if builtin_scope(&tool).is_none()
            && let Some(route) = self.shared.upstreams.route(&tool)
        {
            // Federated: forwarded with only the arguments (never the caller's token), or, for a
            // queued tool, run in the background through the queue.
            let result = if route.mode == ToolMode::Queued {
                self.shared
                    .upstreams
                    .enqueue(
                        &self.shared.queue,
                        route,
                        &claims.client_id,
                        request.arguments,
                    )
                    .await
            } else {
                self.shared
                    .upstreams
                    .call(
                        route,
                        &claims.client_id,
                        request.arguments,
                        context.ct.clone(),
                    )
                    .await
            };
            let outcome = if result.is_error == Some(true) {
                "tool_error"
            } else {
                "ok"
            };
            self.shared.metrics.tool_call(&tool, outcome);
            return Ok(CallToolResponse::Complete(result));
        }
        let result = self
            .shared
            .tool_router
            .call(ToolCallContext::new(self, request, context))
            .await;
        let outcome = match &result {
            Ok(CallToolResponse::Complete(done)) if done.is_error == Some(true) => "tool_error",
            Ok(_) => "ok",
            Err(_) => "refused",
        };
        self.shared.metrics.tool_call(&tool, outcome);
        result
    }
}

/// Turns a queue failure into text the model reads (a tool error, not a protocol error).
fn tool_error(error: QueueError) -> String {
    if let QueueError::Internal(source) = &error {
        crate::telemetry::log_internal("tool call", source);
        return "the gateway could not complete this call because of an internal error; try again shortly".into();
    }
    error.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::upstreams::BUILTIN_TOOL_NAMES;

    /// The config check refuses upstream names that collide with `BUILTIN_TOOL_NAMES`, and the
    /// scope gate knows the built-ins by `builtin_scope`: both must name exactly the router's tools.
    #[test]
    fn the_builtin_names_the_config_guards_are_the_routers_tools_each_with_a_scope() {
        let mut routed: Vec<String> = McpServer::tool_router()
            .list_all()
            .into_iter()
            .map(|tool| tool.name.into_owned())
            .collect();
        routed.sort();
        let mut listed: Vec<String> = BUILTIN_TOOL_NAMES
            .iter()
            .map(|name| (*name).to_owned())
            .collect();
        listed.sort();
        assert_eq!(routed, listed);
        assert!(routed.iter().all(|name| builtin_scope(name).is_some()));
    }
}
