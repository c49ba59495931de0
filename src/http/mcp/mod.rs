//! `/mcp`: rmcp's Streamable HTTP service, stateless with JSON responses, behind the bearer
//! guard (every request, `initialize` included) and a check that answers malformed JSON-RPC
//! with JSON-RPC errors and a tool call beyond the token's scopes with 403
//! `insufficient_scope` (the needed scope in the challenge) before rmcp sees it.
//! rmcp itself checks `Host` (DNS rebinding) and `Origin`. A plain tool call skips rmcp's
//! per-request serve loop (`direct`); rmcp still parses and dispatches it.

mod direct;

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use rmcp::model::{ClientJsonRpcMessage, ClientRequest};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::app::AppState;
use crate::http::bearer::{BearerGuard, authenticate};
use crate::http::mcp::direct::DirectPath;
use crate::http::paths;
use crate::mcp::{McpServer, required_scope};
use crate::oauth::VerifiedToken;
use crate::upstream::Upstreams;

/// The `/mcp` route with its guards.
pub fn routes(state: &AppState, shutdown: &CancellationToken) -> Router {
    let config = &state.config;
    let mut allowed_hosts = vec![
        config.public_url.host_and_port().to_owned(),
        "localhost".into(),
        "127.0.0.1".into(),
        "::1".into(),
    ];
    allowed_hosts.extend(config.mcp.allowed_hosts.iter().cloned());
    let mut allowed_origins = config.mcp.allowed_origins.clone();
    allowed_origins.push(origin_with_port(
        config.public_url.as_str(),
        config.public_url.is_https(),
    ));
    let server_config = StreamableHttpServerConfig::default()
        // Stateless: no in-memory sessions to lose on restart; each request is authorised on
        // its own. 2026-07-28 requests are stateless in any case.
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_allowed_hosts(allowed_hosts.iter().cloned())
        .with_allowed_origins(allowed_origins)
        .with_max_request_body_bytes(config.limits.max_body_bytes)
        .with_cancellation_token(shutdown.child_token());
    let server = McpServer::new(
        state.queue.clone(),
        state.metrics.clone(),
        state.upstreams.clone(),
    );
    let direct = DirectPath::new(server.clone(), allowed_hosts, shutdown.child_token());
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(NeverSessionManager::default()),
        server_config,
    );
    // One endpoint for the process, borrowed by each request: rmcp's own `tower::Service`
    // impl (and axum's `route_service`) would clone its service, allow-lists and all, twice per
    // request. The guard and the check are calls, not route layers: each layer is one more
    // boxed service that axum clones, with everything inside it, on every request.
    let endpoint = Arc::new(McpEndpoint {
        guard: BearerGuard::new(state.auth.clone(), &[]),
        upstreams: state.upstreams.clone(),
        direct,
        service,
    });
    let handle = move |request: Request| {
        let endpoint = endpoint.clone();
        async move { endpoint.serve(request).await }
    };
    Router::new().route(paths::MCP, any(handle))
}

/// `/mcp`: the bearer guard, then the request check, then rmcp.
struct McpEndpoint {
    /// The token check, and the challenges.
    guard: BearerGuard,
    /// The upstream tools' scopes.
    upstreams: Upstreams,
    /// Plain tool calls, on rmcp's dispatch without its per-request serve loop.
    direct: DirectPath,
    /// rmcp's Streamable HTTP service, which answers what passes both.
    service: StreamableHttpService<McpServer, NeverSessionManager>,
}

impl McpEndpoint {
    /// Answers one request: a challenge, the check's refusal, or rmcp's answer.
    async fn serve(&self, request: Request) -> Response {
        match authenticate(&self.guard, request).await {
            Ok(request) => self.check_request(request).await,
            Err(challenge) => challenge,
        }
    }

    /// Hands `request` to rmcp.
    async fn forward(&self, request: Request) -> Response {
        self.service.handle(request).await.into_response()
    }

    /// Checks a POSTed body before rmcp sees it: a tool call the token's scopes do not cover
    /// gets the 403 step-up challenge MCP clients act on, and malformed JSON-RPC gets the
    /// JSON-RPC error the spec defines (rmcp would answer 415 with plain text). rmcp parses the
    /// body itself, so a well-formed message is only peeked at here (method and tool name); the
    /// full parse that finds out what is wrong runs only when rmcp refuses a body.
    async fn check_request(&self, request: Request) -> Response {
        if request.method() != Method::POST {
            return self.forward(request).await;
        }
        let (parts, body) = request.into_parts();
        let bytes = match to_bytes(body, usize::MAX).await {
            Ok(bytes) => bytes,
            // The body deadline or the size limit made reading fail.
            Err(error) if caused_by_deadline(&error) => {
                return StatusCode::REQUEST_TIMEOUT.into_response();
            }
            Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
        };
        // Borrowed from the body when the peek can read it (the usual case): no copy per call.
        let tool: Option<Cow<'_, str>> = match peek(&bytes) {
            Some(peeked) => peeked.called_tool(),
            None => match read_message(&bytes) {
                Ok(message) => called_tool(&message).map(|tool| Cow::Owned(tool.to_owned())),
                Err(refusal) => return json_rpc_error(refusal.id, refusal.code, refusal.message),
            },
        };
        if let Some(tool) = tool {
            let verified = parts.extensions.get::<Arc<VerifiedToken>>();
            if let Some(scope) = required_scope(&tool, &self.upstreams)
                && !verified.is_some_and(|verified| verified.scopes().contains(&scope))
            {
                return self.guard.insufficient_scope(&[scope]).into_response();
            }
            if let Some(peer) = self.direct.peer(&parts.headers)
                && let Ok(ClientJsonRpcMessage::Request(request)) = serde_json::from_slice(&bytes)
                && DirectPath::takes(&request)
            {
                return self.direct.call(parts, request, peer).await;
            }
        }
        let response = self
            .forward(Request::from_parts(parts, Body::from(bytes.clone())))
            .await;
        if response.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE
            && let Err(refusal) = read_message(&bytes)
        {
            // rmcp could not parse what the peek could: say why, as JSON-RPC.
            return json_rpc_error(refusal.id, refusal.code, refusal.message);
        }
        response
    }
}

/// The two fields of a message the scope check reads, borrowed from the body.
#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    params: Option<PeekParams<'a>>,
}

/// `params.name`. Only an object is read: a derived struct would also take `["a name"]`,
/// which rmcp does not read as a tool call, and the gate must not answer 403 for it.
struct PeekParams<'a> {
    name: Option<Cow<'a, str>>,
}

/// A tool name, borrowed from the body unless it holds escapes.
#[derive(Deserialize)]
struct ToolName<'a>(#[serde(borrow)] Cow<'a, str>);

/// The keys of `params`: only `name` matters here.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum ParamsKey {
    Name,
    #[serde(other)]
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for PeekParams<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectOnly;
        impl<'de> serde::de::Visitor<'de> for ObjectOnly {
            type Value = PeekParams<'de>;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut name = None;
                while let Some(key) = map.next_key::<ParamsKey>()? {
                    match key {
                        // A repeated name makes the peek fail, and the full parse decide.
                        ParamsKey::Name if name.is_some() => {
                            return Err(serde::de::Error::duplicate_field("name"));
                        }
                        ParamsKey::Name => name = Some(map.next_value::<ToolName<'de>>()?.0),
                        ParamsKey::Other => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(PeekParams { name })
            }
        }
        deserializer.deserialize_map(ObjectOnly)
    }
}

impl<'a> Peek<'a> {
    /// The tool a `tools/call` names.
    fn called_tool(self) -> Option<Cow<'a, str>> {
        if self.method.as_deref() != Some("tools/call") {
            return None;
        }
        self.params.and_then(|params| params.name)
    }
}

/// The method and tool name of a single message, if its shape lets them be read cheaply (a
/// JSON object whose `params`, if any, is an object with a string `name`, if any). `None`
/// sends the body down the full parse. A call whose name is read wrongly here could not
/// reach a tool it may not call: the tool handler checks scopes again on rmcp's parse.
fn peek(bytes: &[u8]) -> Option<Peek<'_>> {
    let first = bytes.iter().find(|byte| !byte.is_ascii_whitespace())?;
    if *first != b'{' {
        return None;
    }
    serde_json::from_slice(bytes).ok()
}

/// Whether reading a body failed because its deadline (`limits.body_read_timeout`) passed.
fn caused_by_deadline(error: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if current.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = current.source();
    }
    false
}

/// Why a body is not a JSON-RPC message we pass on: the error object's parts.
struct Refusal {
    id: Value,
    code: i64,
    message: &'static str,
}

/// The message, parsed as rmcp will parse it; or, when it is not one, the JSON-RPC error
/// that says why. The typed parse comes first; only a refusal is looked at closer.
fn read_message(bytes: &[u8]) -> Result<ClientJsonRpcMessage, Refusal> {
    let is_batch = bytes
        .iter()
        .find(|byte| !byte.is_ascii_whitespace())
        .is_some_and(|first| *first == b'[');
    if !is_batch && let Ok(message) = serde_json::from_slice::<ClientJsonRpcMessage>(bytes) {
        return Ok(message);
    }
    let message = match serde_json::from_slice::<Value>(bytes) {
        Ok(message) => message,
        Err(_) => {
            return Err(Refusal {
                id: Value::Null,
                code: PARSE_ERROR,
                message: "Parse error: the body is not JSON",
            });
        }
    };
    if message.is_array() {
        return Err(Refusal {
            id: Value::Null,
            code: INVALID_REQUEST,
            message: "Invalid Request: batches are not supported; send one message per request",
        });
    }
    let id = message.get("id").cloned().unwrap_or(Value::Null);
    let is_json_rpc = message["jsonrpc"] == "2.0"
        && (message["method"].is_string()
            || message.get("result").is_some()
            || message.get("error").is_some());
    if !is_json_rpc {
        return Err(Refusal {
            id,
            code: INVALID_REQUEST,
            message: "Invalid Request: not a JSON-RPC 2.0 message",
        });
    }
    // MCP requests carry a string or number id (a null id is what JSON-RPC keeps for answers
    // to requests whose id could not be read): such a request is invalid, not mismatched params.
    if message["method"].is_string() && message.get("id").is_some_and(Value::is_null) {
        return Err(Refusal {
            id: Value::Null,
            code: INVALID_REQUEST,
            message: "Invalid Request: a request's id must be a string or a number, not null",
        });
    }
    Err(Refusal {
        id,
        code: INVALID_PARAMS,
        message: "Invalid params: the params do not match the method",
    })
}

/// The tool a `tools/call` request names.
fn called_tool(message: &ClientJsonRpcMessage) -> Option<&str> {
    match message {
        ClientJsonRpcMessage::Request(request) => match &request.request {
            ClientRequest::CallToolRequest(call) => Some(call.params.name.as_ref()),
            _ => None,
        },
        _ => None,
    }
}

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const INVALID_PARAMS: i64 = -32602;

fn json_rpc_error(id: Value, code: i64, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// An origin with its port spelled out, as rmcp's allow-list wants it.
fn origin_with_port(origin: &str, https: bool) -> String {
    let has_port = origin
        .rsplit_once(':')
        .is_some_and(|(_, port)| port.bytes().all(|byte| byte.is_ascii_digit()));
    if has_port {
        origin.to_owned()
    } else {
        format!("{origin}:{}", if https { 443 } else { 80 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peeked_tool(body: &str) -> Option<Option<String>> {
        peek(body.as_bytes()).map(|peeked| peeked.called_tool().map(Cow::into_owned))
    }

    #[test]
    fn the_peek_reads_a_tool_calls_name_and_leaves_anything_odd_to_the_full_parse() {
        let call = |params: &str| {
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{params}}}"#)
        };
        let name = |tool: &str| Some(Some(tool.to_owned()));
        assert_eq!(
            peeked_tool(&call(r#"{"name":"queue_status","arguments":{"a":[1]}}"#)),
            name("queue_status")
        );
        // Escapes are decoded as rmcp decodes them.
        assert_eq!(
            peeked_tool(&call(r#"{"name":"send\u005fmessage"}"#)),
            name("send_message")
        );
        assert_eq!(
            peeked_tool(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#),
            Some(None)
        );
        assert_eq!(peeked_tool(&call("{}")), Some(None));
        // Not read here: the full parse (and rmcp) decide.
        assert_eq!(peeked_tool(&call(r#"["send_message"]"#)), None);
        assert_eq!(peeked_tool(&call(r#"{"name":"a","name":"b"}"#)), None);
        assert_eq!(peeked_tool(&call(r#"{"name":5}"#)), None);
        assert_eq!(
            peeked_tool(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#),
            None
        );
        assert_eq!(peeked_tool("\u{feff}{}"), None);
        assert_eq!(peeked_tool("{not json"), None);
    }

    #[test]
    fn origins_get_explicit_ports() {
        assert_eq!(
            origin_with_port("https://mcp.example.com", true),
            "https://mcp.example.com:443"
        );
        assert_eq!(
            origin_with_port("http://127.0.0.1:8080", false),
            "http://127.0.0.1:8080"
        );
    }
}
