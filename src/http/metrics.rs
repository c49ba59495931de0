//! `/metrics` in the Prometheus text format (queue depth is read at scrape time), served on the
//! internal listener; and the layer that counts responses by route template and status.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::{MatchedPath, State};
use axum::http::{HeaderValue, header};
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

/// The layer that counts each response of a route or the fallback by route template and status
/// (never the raw path: unbounded label values), under `unmatched` for a path no route serves.
/// It sits below the body limit and the timeout, so their 413 and 408 are not counted here.
///
/// A plain `tower` service rather than `axum::middleware::from_fn`, which boxes the inner service
/// and the future on every request.
#[derive(Clone)]
pub struct CountRequestsLayer {
    metrics: Metrics,
}

impl CountRequestsLayer {
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for CountRequestsLayer {
    type Service = CountRequests<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountRequests {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// See [`CountRequestsLayer`].
#[derive(Clone)]
pub struct CountRequests<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, B> tower::Service<http::Request<B>> for CountRequests<S>
where
    S: tower::Service<http::Request<B>, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Counted<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // `MatchedPath` is a shared string: this clone does not copy the template.
        let route = request.extensions().get::<MatchedPath>().cloned();
        Counted {
            response: self.inner.call(request),
            metrics: self.metrics.clone(),
            route,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`CountRequests`]: counts the response when it is ready.
    pub struct Counted<F> {
        #[pin]
        response: F,
        metrics: Metrics,
        route: Option<MatchedPath>,
    }
}

impl<F> Future for Counted<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = std::task::ready!(this.response.poll(cx));
        if let Ok(response) = &output {
            let route = this.route.as_ref().map_or("unmatched", MatchedPath::as_str);
            this.metrics.request(route, response.status().as_u16());
        }
        Poll::Ready(output)
    }
}
