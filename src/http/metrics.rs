//! `/metrics` in the Prometheus text format (queue depth is read at scrape time), served on the
//! internal listener; and the layer that counts every request by route template.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::metrics::Metrics;
use crate::queue::message::MessageStatus;

/// `GET /metrics`.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    if let Ok(snapshot) = state.queue.snapshot(None).await {
        let sum = |pick: fn(&crate::store::StatusCounts) -> i64| {
            snapshot.per_target.iter().map(pick).sum::<i64>()
        };
        state.metrics.set_queue_depth(
            MessageStatus::Pending.as_str(),
            sum(|counts| counts.pending),
        );
        state.metrics.set_queue_depth(
            MessageStatus::Acknowledged.as_str(),
            sum(|counts| counts.acknowledged),
        );
        state.metrics.set_queue_depth(
            MessageStatus::InProgress.as_str(),
            sum(|counts| counts.in_progress),
        );
    }
    let content_type = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
    (
        [(header::CONTENT_TYPE, content_type)],
        state.metrics.render(),
    )
        .into_response()
}

/// `GET /upstreams`: each upstream's live state, for `upstreams list`.
pub(crate) async fn upstreams(State(state): State<AppState>) -> Response {
    axum::Json(state.upstreams.live_state()).into_response()
}

/// Counts each request by its route template (never the raw path: unbounded label values).
pub async fn count_requests(
    State(metrics): State<Metrics>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    metrics.request(&route, response.status().as_u16());
    response
}
