//! `/agent/v1`: the HTTP transport for agents. An agent long-polls for the next task of its
//! targets (claiming it moves it to acknowledged), posts updates and status changes, and reads
//! tasks. Agent tokens (`nxa_...`) are checked here; OAuth access tokens are not accepted, and
//! agent tokens are not accepted on `/mcp`.

use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::app::AppState;
use crate::http::bearer::{TokenPresence, bearer_token};
use crate::http::error::{ApiError, after_reading_body};
use crate::http::paths;
use crate::queue::UpdatePage;
use crate::queue::message::MessageStatus;
use crate::queue::view::{MessageView, UpdateView};
use crate::store::AgentRecord;

/// The longest an agent may long-poll, below the request timeout.
pub const MAX_WAIT_SECONDS: u64 = 30;

/// The agent API routes.
pub fn routes(state: AppState) -> Router {
    Router::new()
        .route(paths::AGENT_NEXT_TASK, get(next_task))
        .route(paths::AGENT_TASK, get(read_task))
        .route(paths::AGENT_TASK_UPDATES, post(post_update))
        .route_layer(from_fn_with_state(state.clone(), require_agent))
        .with_state(state)
}

async fn require_agent(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let TokenPresence::Present(token) = bearer_token(request.headers()) else {
        return after_reading_body(
            request,
            ApiError::unauthorized(
                "this endpoint requires an agent token (nexus-gateway agents add)",
            )
            .into_response(),
        )
        .await;
    };
    match state.agents.authenticate(&token).await {
        Ok(Some(agent)) => {
            request.extensions_mut().insert(agent);
            next.run(request).await
        }
        Ok(None) => {
            after_reading_body(
                request,
                ApiError::unauthorized("the agent token is unknown or revoked").into_response(),
            )
            .await
        }
        Err(error) => after_reading_body(request, ApiError::from(error).into_response()).await,
    }
}

#[derive(Debug, Deserialize)]
struct NextTaskQuery {
    wait: Option<u64>,
}

/// `GET /agent/v1/tasks/next?wait=30`: 200 with the claimed task, or 204 when none came.
async fn next_task(
    State(state): State<AppState>,
    Extension(agent): Extension<AgentRecord>,
    query: Result<Query<NextTaskQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Ok(Query(query)) = query else {
        return Err(ApiError::bad_request(
            "`wait` must be a whole number of seconds",
        ));
    };
    let wait = Duration::from_secs(query.wait.unwrap_or(0).min(MAX_WAIT_SECONDS));
    Ok(match state.queue.claim_next(&agent, wait).await? {
        Some(message) => Json(json!({"task": MessageView::from(&message)})).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

#[derive(Debug, Deserialize)]
struct ReadTaskQuery {
    after: Option<String>,
    limit: Option<u32>,
}

/// `GET /agent/v1/tasks/{id}?after=...&limit=...`: the task and a page of its updates (100 by
/// default, at most 500), with `has_more` and, when it is true, the `next_cursor` to pass as
/// `after`.
async fn read_task(
    State(state): State<AppState>,
    Extension(agent): Extension<AgentRecord>,
    Path(id): Path<String>,
    query: Result<Query<ReadTaskQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Ok(Query(query)) = query else {
        return Err(ApiError::bad_request(
            "`limit` must be a whole number and `after` a next_cursor",
        ));
    };
    let page = UpdatePage {
        after: query.after,
        limit: query.limit.map(i64::from),
    };
    let detail = state.queue.message_for_agent(&agent, &id, page).await?;
    let mut body = json!({
        "task": MessageView::from(&detail.message),
        "updates": detail.updates.iter().map(UpdateView::from).collect::<Vec<_>>(),
        "has_more": detail.has_more,
    });
    if let Some(cursor) = detail.next_cursor {
        body["next_cursor"] = json!(cursor);
    }
    Ok(Json(body).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    content: String,
    status: Option<String>,
}

/// `POST /agent/v1/tasks/{id}/updates {content, status?}`.
async fn post_update(
    State(state): State<AppState>,
    Extension(agent): Extension<AgentRecord>,
    Path(id): Path<String>,
    body: Result<Json<UpdateBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = match body {
        Ok(Json(body)) => body,
        Err(rejection) => {
            return Err(ApiError::new(
                rejection.status(),
                "bad_request",
                format!(
                    "the body must be JSON like {{\"content\": \"...\", \"status\": \"in_progress\"}}: {}",
                    rejection.body_text()
                ),
            ));
        }
    };
    let status = match body.status.as_deref() {
        None => None,
        Some(text) => match text.parse::<MessageStatus>() {
            Ok(
                status @ (MessageStatus::InProgress
                | MessageStatus::Complete
                | MessageStatus::Error
                | MessageStatus::Acknowledged),
            ) => Some(status),
            _ => {
                return Err(ApiError::bad_request(
                    "status must be one of acknowledged, in_progress, complete, error",
                ));
            }
        },
    };
    let (message, update) = state
        .queue
        .report(&agent, &id, &body.content, status)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"task": MessageView::from(&message), "update": UpdateView::from(&update)})),
    )
        .into_response())
}
