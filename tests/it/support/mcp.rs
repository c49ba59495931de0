//! Acting on a gateway as an MCP client (rmcp's own client, both lifecycles) and as an agent:
//! tokens for a scope, sessions, tool calls and what they answered.

use serde_json::{Value, json};

use super::{Pkce, TestApp, redirect_params};

/// Which MCP lifecycle a test client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// `initialize` (protocol 2025-03-26 .. 2025-11-25).
    Initialize,
    /// `server/discover` and per-request metadata (2026-07-28).
    Discover,
}

/// An MCP client session from rmcp's own client.
pub type McpClient = rmcp::service::RunningService<rmcp::RoleClient, ()>;

impl TestApp {
    /// An access token for a new public client, granted `scope`.
    pub async fn access_token(&self, scope: &str) -> String {
        let client = self.register_client("none").await;
        let pkce = Pkce::new();
        let mut query = self.authorize_query(&client, &pkce, "s");
        query.retain(|(name, _)| *name != "scope");
        query.push(("scope", scope.to_owned()));
        let pairs: Vec<(&str, &str)> = query
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        let response = self.authorize(&pairs).await;
        let code = redirect_params(&response)["code"].clone();
        let tokens: Value = self
            .exchange(&client, &code, &pkce)
            .await
            .json()
            .await
            .expect("tokens");
        assert_eq!(tokens["scope"], scope);
        tokens["access_token"]
            .as_str()
            .expect("access token")
            .to_owned()
    }

    /// Connects rmcp's client to `/mcp` with `token`.
    pub async fn mcp_client(&self, token: &str, lifecycle: Lifecycle) -> McpClient {
        use rmcp::ServiceExt;
        use rmcp::service::{ClientLifecycleMode, ClientServiceExt};
        use rmcp::transport::StreamableHttpClientTransport;
        use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

        let config = StreamableHttpClientTransportConfig::with_uri(self.url("/mcp"))
            .auth_header(token.to_owned());
        let transport = StreamableHttpClientTransport::from_config(config);
        match lifecycle {
            Lifecycle::Initialize => ().serve(transport).await.expect("initialize"),
            Lifecycle::Discover => ()
                .serve_with_lifecycle(
                    transport,
                    ClientLifecycleMode::Discover {
                        preferred_versions: vec![rmcp::model::ProtocolVersion::V_2026_07_28],
                    },
                )
                .await
                .expect("server/discover"),
        }
    }

    /// A POST to `/mcp` with the headers a 2025-06-18 client sends (add a token and a body).
    pub fn mcp_request(&self) -> reqwest::RequestBuilder {
        self.mcp_request_at(Some("2025-06-18"))
    }

    /// A POST to `/mcp` with the headers a client at `version` sends, or with no
    /// `MCP-Protocol-Version` at all. (reqwest adds a header a second time rather than replacing
    /// it, so a version is chosen here, not added to `mcp_request`.)
    pub fn mcp_request_at(&self, version: Option<&str>) -> reqwest::RequestBuilder {
        let request = self
            .http
            .post(self.url("/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        match version {
            Some(version) => request.header("mcp-protocol-version", version),
            None => request,
        }
    }

    /// Posts a raw JSON-RPC message to `/mcp`, as a 2025-06-18 client would.
    pub async fn mcp_post(&self, token: Option<&str>, body: &str) -> reqwest::Response {
        let mut request = self.mcp_request().body(body.to_owned());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("mcp request")
    }

    /// Adds an agent through the operator command and returns its token.
    pub async fn add_agent(&self, name: &str, targets: &[&str]) -> String {
        let targets: Vec<String> = targets.iter().map(|target| (*target).to_owned()).collect();
        let output = nexus_gateway::admin::add_agent(&self.config, name, &targets)
            .await
            .expect("agent added");
        output.lines().next().expect("token line").to_owned()
    }

    /// `GET /agent/v1/tasks/next?wait=...`.
    pub async fn agent_next(&self, token: &str, wait: u64) -> reqwest::Response {
        self.http
            .get(self.internal(&format!("/agent/v1/tasks/next?wait={wait}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("next task")
    }

    /// `POST /agent/v1/tasks/{id}/updates`.
    pub async fn agent_update(&self, token: &str, id: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.internal(&format!("/agent/v1/tasks/{id}/updates")))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("update")
    }
}

/// What an MCP client's user does, as methods on the client (each asserts it succeeded and
/// returns the tool's structured content).
#[allow(async_fn_in_trait)]
pub trait McpUser {
    /// `send_message` with just a text.
    async fn send_task(&self, text: &str) -> Value;
    /// `pull_updates` with `arguments` (`{}` for "what I have not seen").
    async fn pull(&self, arguments: Value) -> Value;
}

impl McpUser for McpClient {
    async fn send_task(&self, text: &str) -> Value {
        call_tool_ok(self, "send_message", json!({"message": text})).await
    }

    async fn pull(&self, arguments: Value) -> Value {
        call_tool_ok(self, "pull_updates", arguments).await
    }
}

/// Calls a tool and returns its structured content (asserting it succeeded).
pub async fn call_tool_ok(client: &McpClient, name: &str, arguments: Value) -> Value {
    let result = call_tool(client, name, arguments).await;
    assert_ne!(result.is_error, Some(true), "{name} failed: {result:?}");
    result
        .structured_content
        .clone()
        .expect("structured content")
}

/// Calls a tool and returns the raw result.
pub async fn call_tool(
    client: &McpClient,
    name: &str,
    arguments: Value,
) -> rmcp::model::CallToolResult {
    let arguments = arguments.as_object().cloned().unwrap_or_default();
    let params = rmcp::model::CallToolRequestParams::new(name.to_owned()).with_arguments(arguments);
    client.call_tool(params).await.expect("tools/call")
}

/// The text of a tool result's first content block.
pub fn tool_text(result: &rmcp::model::CallToolResult) -> String {
    result
        .content
        .first()
        .and_then(|content| content.as_text())
        .map(|text| text.text.clone())
        .unwrap_or_default()
}

/// The names of the tools `tools/list` shows, sorted.
pub async fn tool_names(client: &McpClient) -> Vec<String> {
    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|tool| tool.name.to_string())
        .collect();
    names.sort();
    names
}
