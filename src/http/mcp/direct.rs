//! The direct path for a plain tool call: rmcp's own parse and rmcp's own dispatch
//! (`Service::handle_request` on the one `McpServer`), without the serve loop rmcp's stateless
//! transport builds around each request: a peer, two bounded channels and three tasks beside
//! the handler's own, about a quarter of a call's heap allocations and most of the memory it
//! holds while it runs (BENCHMARKS.md, issue 12). Only a request that rmcp's transport would
//! pass on unchanged takes this path ([`DirectPath::peer`], [`DirectPath::takes`]); anything
//! else, or anything unusual, goes to rmcp.

use axum::http::{HeaderMap, StatusCode, header, request::Parts, uri::Authority};
use axum::response::{IntoResponse, Response};
use rmcp::RoleServer;
use rmcp::model::{
    ClientCapabilities, ClientJsonRpcMessage, ClientRequest, Extensions, GetMeta, Implementation,
    InitializeRequestParams, JsonRpcRequest, ProtocolVersion, ServerJsonRpcMessage,
};
use rmcp::service::{Peer, RequestContext, Service, serve_directly};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::mcp::McpServer;
use crate::telemetry::log_internal;

/// The header a client names its protocol version in.
const PROTOCOL_VERSION: &str = "mcp-protocol-version";

/// rmcp's stateless handling of a tool call, minus its per-request serve loop.
pub(super) struct DirectPath {
    server: McpServer,
    /// One peer for each protocol version a plain request may name: the versions that still
    /// have `initialize`. A handler reads the request's version from its peer
    /// (`context.protocol_version()`), and rmcp's stateless path gives it the version the
    /// `MCP-Protocol-Version` header names (2025-03-26 when there is none), so these peers
    /// carry exactly that.
    peers: Vec<(ProtocolVersion, Peer<RoleServer>)>,
    /// The `Host` values taken as they are: rmcp's allow-list, each entry verbatim.
    hosts: Vec<String>,
    /// Cancelled when the gateway stops, as rmcp's per-request token would be.
    stopping: CancellationToken,
}

impl DirectPath {
    /// Must run inside the runtime: rmcp makes a peer only together with a serve loop.
    pub(super) fn new(server: McpServer, hosts: Vec<String>, stopping: CancellationToken) -> Self {
        let peers = ProtocolVersion::KNOWN_VERSIONS
            .iter()
            .filter(|version| version.has_initialize())
            .map(|version| (version.clone(), peer_for(&server, version.clone())))
            .collect();
        Self {
            server,
            peers,
            hosts,
            stopping,
        }
    }

    /// The peer to run a tool call with, when rmcp's transport would hand a tool call with
    /// these headers straight to the handler and answer with the handler's one message as JSON
    /// (and [`Self::takes`] agrees). Each rule keeps to what rmcp 3.9's `handle_post` checks in
    /// its stateless mode with JSON responses; where a rule is narrower than rmcp's, the
    /// request simply goes to rmcp.
    pub(super) fn peer(&self, headers: &HeaderMap) -> Option<&Peer<RoleServer>> {
        let version = admitted_version(headers, &self.hosts)?;
        self.peers
            .iter()
            .find(|(known, _)| known.as_str() == version)
            .map(|(_, peer)| peer)
    }

    /// Whether the message itself may take the direct path: a tool call without `_meta`. A
    /// progress token there would have the handler notify through its peer, which rmcp
    /// answers as an event stream; a protocol version there makes rmcp negotiate the request
    /// on its own.
    pub(super) fn takes(request: &JsonRpcRequest<ClientRequest>) -> bool {
        matches!(request.request, ClientRequest::CallToolRequest(_))
            && request.request.get_meta().is_empty()
    }

    /// Runs `request` as rmcp's serve loop would: the HTTP request's parts in the context's
    /// extensions, the handler's result or error as the one JSON-RPC message of the answer.
    pub(super) async fn call(
        &self,
        parts: Parts,
        request: JsonRpcRequest<ClientRequest>,
        peer: &Peer<RoleServer>,
    ) -> Response {
        let id = request.id;
        let cancel = self.stopping.child_token();
        let mut context = RequestContext::new(id.clone(), peer.clone());
        context.ct = cancel.clone();
        let mut extensions = Extensions::new();
        extensions.insert(parts);
        context.extensions = extensions;
        // As in rmcp, the handler runs in a task of its own, inside the request's span, and
        // its token is cancelled when the call ends, whichever way: a client that goes away
        // (this future dropped with its connection) has the handler end its own way, so an
        // upstream call is cancelled upstream and audited as cancelled, and a long pull gives
        // its slot back.
        let _cancel_when_done = cancel.drop_guard();
        let server = self.server.clone();
        let handler = async move { server.handle_request(request.request, context).await };
        let handled = tokio::spawn(handler.instrument(tracing::Span::current())).await;
        let message = match handled {
            Ok(Ok(result)) => ServerJsonRpcMessage::response(result, id),
            Ok(Err(error)) => ServerJsonRpcMessage::error(error, Some(id)),
            Err(failure) => {
                log_internal("a tool call's handler", &failure);
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        };
        match serde_json::to_vec(&message) {
            Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
            Err(error) => {
                log_internal("serialising a tool call's answer", &error);
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}

/// A peer carrying `version` as its client's protocol version. rmcp makes a peer only with a
/// serve loop; this one's transport receives nothing and drops whatever is sent, so the loop
/// ends at once and dispatches nothing, and the peer stays, holding the version. Sending
/// through it fails, which no admitted request leads to (none carries a progress token).
fn peer_for(server: &McpServer, version: ProtocolVersion) -> Peer<RoleServer> {
    let transport = (
        futures_util::sink::drain(),
        futures_util::stream::empty::<ClientJsonRpcMessage>(),
    );
    let mut info =
        InitializeRequestParams::new(ClientCapabilities::default(), Implementation::default());
    info.protocol_version = version;
    serve_directly(server.clone(), transport, Some(info))
        .peer()
        .clone()
}

/// The protocol version a tool call with these headers runs at, if rmcp would pass the headers
/// as they are (the version is then one `DirectPath` has a peer for, or the call goes to rmcp).
fn admitted_version<'h>(headers: &'h HeaderMap, hosts: &[String]) -> Option<&'h str> {
    if !host_is_listed(headers, hosts)
        // rmcp checks an Origin against its allow-list; a request with none needs no check.
        || headers.contains_key(header::ORIGIN)
        || !accepts_json_and_event_stream(headers)
        || !is_json(headers)
        // `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*` (checked against the body by rmcp for
        // 2026-07-28), `Mcp-Session-Id`, and whatever else the protocol adds.
        || headers
            .keys()
            .any(|name| name.as_str().starts_with("mcp-") && name != PROTOCOL_VERSION)
    {
        return None;
    }
    let mut versions = headers.get_all(PROTOCOL_VERSION).iter();
    match (versions.next(), versions.next()) {
        // rmcp's stateless path assumes this version when the header is missing.
        (None, _) => Some(ProtocolVersion::V_2025_03_26.as_str()),
        (Some(value), None) => value.to_str().ok(),
        (Some(_), Some(_)) => None,
    }
}

/// Whether `Host` is one of the allow-list's entries, spelled the same (case aside). rmcp
/// compares normalised hosts and lets an entry without a port match any port; an exact match
/// is one it always allows.
fn host_is_listed(headers: &HeaderMap, hosts: &[String]) -> bool {
    let Some(host) = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    Authority::try_from(host).is_ok()
        && hosts.iter().any(|listed| listed.eq_ignore_ascii_case(host))
}

/// `Accept` names both `application/json` and `text/event-stream`, in a form read the same
/// by any parser: no quotes and no parameters (so no `q=0` either). rmcp insists on both.
fn accepts_json_and_event_stream(headers: &HeaderMap) -> bool {
    let (mut json, mut event_stream) = (false, false);
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        if value.contains(['"', ';']) {
            return false;
        }
        for media_type in value.split(',').map(str::trim) {
            json |= media_type.eq_ignore_ascii_case("application/json");
            event_stream |= media_type.eq_ignore_ascii_case("text/event-stream");
        }
    }
    json && event_stream
}

/// `Content-Type` is JSON, parameters aside: rmcp's own rule.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            let essence = value.split_once(';').map_or(value, |(essence, _)| essence);
            essence.trim().eq_ignore_ascii_case("application/json")
        })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    const HOSTS: [&str; 2] = ["mcp.example.com", "127.0.0.1:8080"];

    /// What claude.ai, the SDKs and rmcp's own client send with a tool call.
    fn plain() -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("host", "mcp.example.com"),
            ("accept", "application/json, text/event-stream"),
            ("content-type", "application/json"),
            ("mcp-protocol-version", "2025-06-18"),
            ("authorization", "Bearer x"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        headers
    }

    fn version(headers: &HeaderMap) -> Option<&str> {
        let hosts: Vec<String> = HOSTS.iter().map(|host| (*host).to_owned()).collect();
        admitted_version(headers, &hosts)
    }

    fn with(name: &'static str, value: &'static str) -> HeaderMap {
        let mut headers = plain();
        headers.insert(name, HeaderValue::from_static(value));
        headers
    }

    fn without(name: &'static str) -> HeaderMap {
        let mut headers = plain();
        headers.remove(name);
        headers
    }

    #[test]
    fn a_plain_tool_calls_headers_are_admitted_at_the_version_they_name() {
        assert_eq!(version(&plain()), Some("2025-06-18"));
        assert_eq!(
            version(&with("mcp-protocol-version", "2024-11-05")),
            Some("2024-11-05")
        );
        // rmcp's stateless path assumes 2025-03-26 when the header is missing.
        assert_eq!(
            version(&without("mcp-protocol-version")),
            Some("2025-03-26")
        );
        // Spellings rmcp reads the same.
        assert_eq!(
            version(&with("host", "MCP.example.com")),
            Some("2025-06-18")
        );
        assert_eq!(version(&with("host", "127.0.0.1:8080")), Some("2025-06-18"));
        assert_eq!(
            version(&with("content-type", "application/json; charset=utf-8")),
            Some("2025-06-18")
        );
        assert_eq!(
            version(&with("accept", "text/event-stream,APPLICATION/JSON")),
            Some("2025-06-18")
        );
    }

    #[test]
    fn anything_rmcp_would_check_or_refuse_goes_to_rmcp() {
        for headers in [
            // Host: missing, unlisted, another port, not an authority.
            without("host"),
            with("host", "evil.example"),
            with("host", "mcp.example.com:8443"),
            with("host", "127.0.0.1:8080/x"),
            // Any Origin, even one rmcp would allow.
            with("origin", "https://mcp.example.com"),
            // Accept: missing, one of the two, zero weight, quoted, parameters.
            without("accept"),
            with("accept", "application/json"),
            with("accept", "application/json, text/event-stream;q=0"),
            with("accept", "application/json, text/event-stream;q=1"),
            with("accept", "\"application/json\", text/event-stream"),
            // Content-Type: missing or not JSON.
            without("content-type"),
            with("content-type", "text/plain"),
            with("content-type", "application/json-seq"),
            // Headers rmcp checks against the body, or session state.
            with("mcp-method", "tools/call"),
            with("mcp-name", "queue_status"),
            with("mcp-param-target", "x"),
            with("mcp-session-id", "abc"),
        ] {
            assert_eq!(version(&headers), None, "{headers:?}");
        }
        let mut twice = plain();
        twice.append(
            "mcp-protocol-version",
            HeaderValue::from_static("2025-06-18"),
        );
        assert_eq!(version(&twice), None);
        let mut latin1 = plain();
        latin1.insert(
            "mcp-protocol-version",
            HeaderValue::from_bytes(b"2025-06-18\xff").expect("a header value"),
        );
        assert_eq!(version(&latin1), None);
    }

    #[test]
    fn only_the_versions_with_initialize_get_a_peer() {
        let legacy: Vec<&str> = ProtocolVersion::KNOWN_VERSIONS
            .iter()
            .filter(|version| version.has_initialize())
            .map(ProtocolVersion::as_str)
            .collect();
        assert_eq!(
            legacy,
            ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"],
            "rmcp's versions changed: check its stateless path before admitting a new one"
        );
    }

    #[test]
    fn only_tool_calls_without_meta_are_taken() {
        let parse = |body: &str| {
            match serde_json::from_str::<ClientJsonRpcMessage>(body).expect("JSON-RPC") {
                ClientJsonRpcMessage::Request(request) => Some(request),
                _ => None,
            }
            .expect("a request")
        };
        let call = |params: &str| {
            format!(r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{params}}}"#)
        };
        assert!(DirectPath::takes(&parse(&call(
            r#"{"name":"queue_status"}"#
        ))));
        assert!(DirectPath::takes(&parse(&call(
            r#"{"name":"send_message","arguments":{"text":"hi"}}"#
        ))));
        for body in [
            call(r#"{"name":"queue_status","_meta":{"progressToken":1}}"#),
            call(
                r#"{"name":"queue_status","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}"#,
            ),
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#.to_owned(),
            r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#.to_owned(),
        ] {
            assert!(!DirectPath::takes(&parse(&body)), "{body}");
        }
    }
}
