//! The only module that knows axum and tower-http: routers, the middleware stack, and the
//! mapping of domain errors to responses. Handlers are thin: they parse, call a service, and
//! shape the answer.

pub mod access_log;
pub mod agent_api;
pub mod authorize;
pub mod bearer;
pub mod client_ip;
pub mod error;
pub mod health;
pub mod mcp;
pub mod metadata;
pub mod metrics;
pub mod pages;
pub mod path_guard;
pub mod paths;
pub mod rate_limit;
pub mod register;
pub mod server;
pub mod telegram;
pub mod token;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, Method, StatusCode, header};
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower_http::cors::{Any, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::sensitive_headers::{
    SetSensitiveRequestHeadersLayer, SetSensitiveResponseHeadersLayer,
};
use tower_http::timeout::{RequestBodyDeadlineLayer, TimeoutLayer};
use tower_http::trace::TraceLayer;

use crate::app::AppState;

/// The public HTTP surface: OAuth endpoints, the owner's pages, `/mcp`, the Telegram webhook,
/// probes, and `extra` (routes mounted by the caller), under the one middleware stack. The agent
/// API and metrics are not here: they are served only on the internal listener
/// (`internal_router`), so no proxy rule can expose them by mistake.
pub fn router(
    state: AppState,
    extra: Router,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Router {
    // Machine-readable endpoints that browser-based clients (MCP Inspector) call cross-origin.
    // `/authorize` is deliberately not here: it is a page, not an API.
    let public_api = Router::new()
        .route(
            paths::PROTECTED_RESOURCE_METADATA_MCP,
            get(metadata::protected_resource),
        )
        .route(
            paths::PROTECTED_RESOURCE_METADATA,
            get(metadata::protected_resource),
        )
        .route(
            paths::AUTHORIZATION_SERVER_METADATA,
            get(metadata::authorization_server),
        )
        .route(
            paths::AUTHORIZATION_SERVER_METADATA_MCP,
            get(metadata::authorization_server),
        )
        .route(paths::JWKS, get(metadata::jwks))
        .route(
            paths::REGISTER,
            post(register::register).layer(DefaultBodyLimit::max(register::MAX_REGISTRATION_BYTES)),
        )
        .route(
            paths::TOKEN,
            post(token::token).layer(DefaultBodyLimit::max(token::MAX_FORM_BYTES)),
        )
        .route(
            paths::REVOKE,
            post(token::revoke).layer(DefaultBodyLimit::max(token::MAX_FORM_BYTES)),
        )
        .layer(cors());

    let owner_pages = Router::new()
        .route(paths::AUTHORIZE, get(authorize::authorize))
        .route(paths::AUTHORIZE_LOGIN, post(authorize::login))
        .route(paths::AUTHORIZE_CONSENT, get(authorize::consent))
        .route(paths::AUTHORIZE_DECISION, post(authorize::decision))
        .route(
            paths::AUTHORIZE_TELEGRAM,
            post(authorize::approve_in_telegram),
        )
        .route(
            paths::AUTHORIZE_TELEGRAM_WAIT,
            get(authorize::wait_for_telegram),
        )
        .route(paths::STYLESHEET, get(pages::stylesheet));

    let telegram_webhook = Router::new().route(paths::TELEGRAM_WEBHOOK, post(telegram::webhook));

    let probes = Router::new()
        .route(paths::HEALTHZ, get(health::healthz))
        .route(paths::READYZ, get(health::readyz));

    let mcp = mcp::routes(&state, shutdown);
    let routes = Router::new()
        .merge(public_api)
        .merge(owner_pages)
        .merge(probes)
        .merge(telegram_webhook)
        .with_state(state.clone())
        .merge(mcp)
        .merge(extra);
    with_stack(routes, &state)
}

/// The internal listener's surface: the agent API, `/metrics` and the probes, under the same
/// middleware stack. Bind it to loopback or a mesh-side interface only.
pub fn internal_router(state: AppState) -> Router {
    let routes = Router::new()
        .route(paths::METRICS, get(metrics::metrics))
        .route(paths::UPSTREAMS, get(metrics::upstreams))
        .route(paths::HEALTHZ, get(health::healthz))
        .route(paths::READYZ, get(health::readyz))
        .with_state(state.clone())
        .merge(agent_api::routes(state.clone()));
    with_stack(routes, &state)
}

/// The one middleware stack, read top to bottom.
fn with_stack(routes: Router, state: &AppState) -> Router {
    let max_body_bytes = state.config.limits.max_body_bytes;
    let request_metrics = state.metrics.clone();
    let request_timeout = state.config.limits.request_timeout;
    let access_log = state.config.access_log;
    let body_read_timeout = state.config.limits.body_read_timeout;
    let sensitive_request_headers = [
        header::AUTHORIZATION,
        header::COOKIE,
        HeaderName::from_static("x-telegram-bot-api-secret-token"),
    ];
    // `Router::layer` wraps each route (and the fallback) after routing, so every layer here
    // sees the matched route template.
    routes
        .layer(// Read top to bottom: the first layer sees the request first.
            ServiceBuilder::new()
                // A client's own `x-request-id` would become our id (the layer below keeps
                // one it finds), so it is taken off first and kept apart for the logs.
                .map_request(take_client_request_id)
                // A request id before anything logs, so every line of one request shares it.
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                // Mark credentials sensitive before the trace layer can see them.
                .layer(SetSensitiveRequestHeadersLayer::new(sensitive_request_headers))
                // One span per request: method, route template and request id. Never the URI:
                // /authorize and redirects carry codes, state and challenges in the query.
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|request: &Request| {
                            let route = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str).unwrap_or("unmatched");
                            let request_id = request
                                .extensions()
                                .get::<RequestId>()
                                .and_then(|id| id.header_value().to_str().ok())
                                .unwrap_or_default();
                            let client_request_id = request
                                .extensions()
                                .get::<ClientRequestId>()
                                .map(|id| id.0.as_str());
                            tracing::info_span!("http.request", method = %request.method(), route, request_id, client_request_id)
                        })
                        .on_response(access_log::AccessLine(access_log)),
                )
                // Echo the id so a user's report can be matched to our logs.
                .layer(PropagateRequestIdLayer::x_request_id())
                // The owner session cookie is a credential too.
                .layer(SetSensitiveResponseHeadersLayer::new([header::SET_COOKIE]))
                // Bound every body before a handler buffers it: in size, and in time (a client
                // trickling a body a byte at a time would otherwise hold its connection forever).
                .layer(RequestBodyLimitLayer::new(max_body_bytes))
                .layer(RequestBodyDeadlineLayer::new(body_read_timeout))
                // Bound the time to response headers; streamed bodies are not cut by this.
                .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, request_timeout))
                // Responses by route template and status, the path guard's refusals included.
                .layer(metrics::CountRequestsLayer::new(request_metrics))
                // A path that a proxy and this router could read differently is refused before
                // any handler sees it (with a request id and an access line, like any 400).
                .layer(path_guard::RefuseAmbiguousPathsLayer),
        )
}

/// The longest client request id kept for the logs.
const MAX_CLIENT_REQUEST_ID: usize = 64;

/// The `x-request-id` a client sent: logged beside ours so a client's report can be matched,
/// but never used as ours, or a client could make its requests' log lines look like another's
/// (or fill the logs with whatever it likes).
#[derive(Debug, Clone)]
struct ClientRequestId(String);

/// Removes a client's `x-request-id` and keeps its first 64 visible ASCII characters.
fn take_client_request_id(mut request: Request) -> Request {
    if let Some(sent) = request
        .headers_mut()
        .remove(HeaderName::from_static("x-request-id"))
    {
        let kept = visible_prefix(sent.as_bytes());
        if !kept.is_empty() {
            request.extensions_mut().insert(ClientRequestId(kept));
        }
    }
    request
}

/// The visible ASCII characters of `bytes`, at most `MAX_CLIENT_REQUEST_ID` of them.
fn visible_prefix(bytes: &[u8]) -> String {
    bytes
        .iter()
        .filter(|byte| byte.is_ascii_graphic())
        .take(MAX_CLIENT_REQUEST_ID)
        .map(|&byte| char::from(byte))
        .collect()
}

/// Whether the request's `Content-Type` is `media_type` (parameters such as charset ignored).
pub(crate) fn has_media_type(headers: &axum::http::HeaderMap, media_type: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|found| found.trim().eq_ignore_ascii_case(media_type))
}

fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("mcp-protocol-version"),
            HeaderName::from_static("mcp-session-id"),
            HeaderName::from_static("mcp-method"),
            HeaderName::from_static("mcp-name"),
            HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([
            header::WWW_AUTHENTICATE,
            HeaderName::from_static("mcp-session-id"),
        ])
        .max_age(std::time::Duration::from_secs(3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_request_id_keeps_only_64_visible_ascii_characters() {
        assert_eq!(visible_prefix(b"abc-123"), "abc-123");
        assert_eq!(visible_prefix(b"a b\tc\x7f\xffd"), "abcd");
        assert_eq!(visible_prefix(&[b'x'; 100]).len(), 64);
        assert_eq!(visible_prefix(b" \t"), "");
    }
}
