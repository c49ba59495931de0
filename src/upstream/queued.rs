//! `mode = "queued"`: a long upstream call through the durable queue. The call answers at once
//! with a task id (as `send_message` does); a worker of the gateway's own claims the task, runs
//! the call against the upstream, and records the result (or error) as the task's final update,
//! which `pull_updates` and `get_message` return. A task that a restart interrupted ends in
//! `error` saying so: it is never lost silently, and never run twice.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{CallToolResult, ContentBlock};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::queue::message::MessageStatus;
use crate::queue::{Queue, Sent};
use crate::store::AgentRecord;
use crate::upstream::{Route, Upstream, Upstreams, tool_error};

/// How long a queued call may run: far past a client's own limit, which is the point.
pub const QUEUED_CALL_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// The final update of a call that a stop or restart of the gateway cut short.
const INTERRUPTED: &str = "interrupted by a restart of the gateway; it was not run again (call the tool again if you still want it)";
/// The longest result text a task update holds (the queue's limit on an update's text).
const MAX_RESULT_TEXT: usize = 16 * 1024;

/// What a queued task holds: the exposed tool and its arguments.
#[derive(Debug, Serialize, Deserialize)]
struct QueuedCall {
    tool: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    arguments: Option<Map<String, Value>>,
}

/// The queue target of an upstream's queued calls (no agent can be given it: targets of agents
/// must be configured ones).
pub fn queued_target(upstream: &str) -> String {
    format!("upstream:{upstream}")
}

impl Upstreams {
    /// Queues a call to `route` and answers with its task id at once.
    pub async fn enqueue(
        &self,
        queue: &Queue,
        route: &Route,
        client_id: &str,
        arguments: Option<Map<String, Value>>,
    ) -> CallToolResult {
        let call = QueuedCall {
            tool: route.exposed.clone(),
            arguments,
        };
        let Ok(content) = serde_json::to_string(&call) else {
            return tool_error("the arguments cannot be queued".into());
        };
        let sent = queue
            .send_internal(
                &queued_target(&route.upstream),
                content,
                client_id.to_owned(),
            )
            .await;
        let answer = match sent {
            Ok(Sent::Queued { id, target }) => json!({
                "queued": true,
                "id": id,
                "target": target,
                "status": "pending",
            }),
            Ok(Sent::Duplicate { id }) => json!({"queued": false, "reason": "duplicate", "id": id}),
            Err(error) => return tool_error(error.to_string()),
        };
        let text = format!(
            "{answer}\nThe call runs in the background: follow it with pull_updates or get_message; its final update carries the result."
        );
        let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
        result.structured_content = Some(answer);
        result
    }

    /// Runs `upstream`'s queued calls until `shutdown`: first ends the tasks a restart
    /// interrupted, then claims and runs each new one.
    pub(super) async fn run_queued(
        self,
        queue: Queue,
        upstream: Arc<Upstream>,
        shutdown: CancellationToken,
    ) {
        let name = upstream.config.name.clone();
        let target = queued_target(&name);
        let worker = AgentRecord {
            id: format!("gateway-{name}"),
            name: format!("gateway-{name}"),
            targets: vec![target.clone()],
            created_at: 0,
            revoked_at: None,
        };
        match queue.open_tasks(&target).await {
            Ok(tasks) => {
                for task in tasks.into_iter().filter(|task| {
                    matches!(
                        task.status,
                        MessageStatus::Acknowledged | MessageStatus::InProgress
                    )
                }) {
                    if let Err(error) = queue
                        .report(&worker, &task.id, INTERRUPTED, Some(MessageStatus::Error))
                        .await
                    {
                        tracing::warn!(upstream = %name, task = %task.id, error = %error, "cannot end an interrupted queued call");
                    }
                }
            }
            Err(error) => {
                tracing::warn!(upstream = %name, error = %error, "cannot read interrupted queued calls");
            }
        }
        loop {
            let claimed = tokio::select! {
                () = shutdown.cancelled() => return,
                claimed = queue.claim_next(&worker, Duration::from_secs(30)) => claimed,
            };
            match claimed {
                Ok(Some(task)) => {
                    tokio::spawn(self.clone().run_one(
                        queue.clone(),
                        worker.clone(),
                        task.id,
                        task.content,
                        shutdown.clone(),
                    ));
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(upstream = %name, error = %error, "cannot claim a queued call");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(5)) => {}
                    }
                }
            }
        }
    }

    async fn run_one(
        self,
        queue: Queue,
        worker: AgentRecord,
        id: String,
        content: String,
        shutdown: CancellationToken,
    ) {
        let (status, text) = match serde_json::from_str::<QueuedCall>(&content)
            .ok()
            .and_then(|call| Some((self.route(&call.tool)?.clone(), call.arguments)))
        {
            None => (
                MessageStatus::Error,
                "the queued call names no tool this gateway publishes any more".to_owned(),
            ),
            Some((route, arguments)) => {
                if let Err(error) = queue
                    .report(&worker, &id, "running", Some(MessageStatus::InProgress))
                    .await
                {
                    tracing::warn!(task = %id, error = %error, "cannot mark a queued call as running");
                    return;
                }
                let result = self
                    .call_with_timeout(
                        &route,
                        &worker.name,
                        arguments,
                        shutdown.clone(),
                        QUEUED_CALL_TIMEOUT,
                    )
                    .await;
                if shutdown.is_cancelled() {
                    (MessageStatus::Error, INTERRUPTED.to_owned())
                } else if result.is_error == Some(true) {
                    (MessageStatus::Error, result_text(&result))
                } else {
                    (MessageStatus::Complete, result_text(&result))
                }
            }
        };
        if let Err(error) = queue.report(&worker, &id, &text, Some(status)).await {
            tracing::warn!(task = %id, error = %error, "cannot record a queued call's result");
        }
    }
}

/// A result as the text of a task update: its text blocks (or its structured content), cut to
/// what an update holds.
fn result_text(result: &CallToolResult) -> String {
    let mut text: String = result
        .content
        .iter()
        .filter_map(|block| block.as_text().map(|text| text.text.as_str()))
        .collect::<Vec<_>>()
        .join("\n");
    if text.is_empty()
        && let Some(structured) = &result.structured_content
    {
        text = structured.to_string();
    }
    if text.trim().is_empty() {
        text = "(the tool returned no text)".into();
    }
    if text.len() > MAX_RESULT_TEXT {
        let mut cut = MAX_RESULT_TEXT - 64;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("\n[cut: the result was longer than a task update holds]");
    }
    text
}
