//! Refuses request paths that a proxy and this router could read differently: encoded slashes
//! or backslashes (`%2f`, `%5c`), encoded dots (`%2e`), and dot segments (`/./`, `/../`). nginx
//! matches its locations on the decoded, normalised path while axum routes the raw one, so
//! `/agent/v1/tasks/x%2f..%2f..%2f..%2f..%2fhealthz` looked like `/healthz` to nginx and reached
//! the agent guard here. No path we serve needs any of them.

use axum::Json;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Middleware: 400 for an ambiguous path, before routing.
pub async fn refuse_ambiguous_paths(request: Request, next: Next) -> Response {
    if is_ambiguous(request.uri().path()) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({
                "error": "invalid_request",
                "error_description": "the request path has encoded slashes, encoded dots or dot segments"
            })),
        )
            .into_response();
    }
    next.run(request).await
}

/// Whether a raw (still percent-encoded) path could mean another path once decoded or
/// normalised.
fn is_ambiguous(path: &str) -> bool {
    let lowered = path.to_ascii_lowercase();
    ["%2f", "%5c", "%2e", "\\"]
        .iter()
        .any(|needle| lowered.contains(needle))
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
        ] {
            assert!(!is_ambiguous(path), "{path}");
        }
    }
}
