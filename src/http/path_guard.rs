//! Refuses request paths that a proxy and this router could read differently: encoded slashes
//! or backslashes (`%2f`, `%5c`), encoded dots (`%2e`), and dot segments (`/./`, `/../`). nginx
//! matches its locations on the decoded, normalised path while axum routes the raw one, so
//! `/agent/v1/tasks/x%2f..%2f..%2f..%2f..%2fhealthz` looked like `/healthz` to nginx and reached
//! the agent guard here. No path we serve needs any of them.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use serde_json::json;

/// The layer that answers 400 to an ambiguous path before the route's handler runs.
///
/// Written as a plain `tower` service rather than `axum::middleware::from_fn`: the middleware
/// form boxes the inner service and the future on every request, and this runs on every
/// request of both listeners.
#[derive(Debug, Clone, Copy, Default)]
pub struct RefuseAmbiguousPathsLayer;

impl<S> tower::Layer<S> for RefuseAmbiguousPathsLayer {
    type Service = RefuseAmbiguousPaths<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RefuseAmbiguousPaths { inner }
    }
}

/// See [`RefuseAmbiguousPathsLayer`].
#[derive(Debug, Clone)]
pub struct RefuseAmbiguousPaths<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for RefuseAmbiguousPaths<S>
where
    S: tower::Service<http::Request<B>, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if is_ambiguous(request.uri().path()) {
            return Either::Left(ready(Ok(refusal())));
        }
        Either::Right(self.inner.call(request))
    }
}

/// The answer to an ambiguous path.
fn refusal() -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({
            "error": "invalid_request",
            "error_description": "the request path has encoded slashes, encoded dots or dot segments"
        })),
    )
        .into_response()
}

/// Whether a raw (still percent-encoded) path could mean another path once decoded or
/// normalised.
fn is_ambiguous(path: &str) -> bool {
    // Case-insensitive without a lowered copy: this runs on every request.
    path.as_bytes().windows(3).any(|window| {
        window[0] == b'%'
            && matches!(
                [window[1], window[2].to_ascii_lowercase()],
                [b'2', b'f' | b'e'] | [b'5', b'c']
            )
    }) || path.contains('\\')
        || path
            .split('/')
            .any(|segment| segment == "." || segment == "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_separators_and_dot_segments_are_ambiguous() {
        for path in [
            "/agent/v1/tasks/x%2f..%2f..%2fhealthz",
            "/agent/v1/tasks/x%2F..",
            "/mcp%5c",
            "/mcp%5C",
            "/a/%2E%2E/healthz",
            "/a/%2e%2e/healthz",
            "/authorize/../agent/v1/tasks/next",
            "/./mcp",
            "/mcp/..",
            "/a\\b",
        ] {
            assert!(is_ambiguous(path), "{path}");
        }
        for path in [
            "/mcp",
            "/.well-known/oauth-authorization-server",
            "/agent/v1/tasks/m_abc.def",
            "/assets/nexus.css",
            "/telegram/webhook/homelab",
            "/a%2",
            "/a%20b",
        ] {
            assert!(!is_ambiguous(path), "{path}");
        }
    }
}
