//! An upstream MCP server fixture for the federation integration tests: the gateway connects
//! to it as an rmcp client, over stdio (the default) or Streamable HTTP (`--http ADDR`, served
//! at `/mcp`). It does on demand what real servers cannot: sleep until cancelled, crash
//! mid-call, answer with a huge result, show the environment and HTTP headers it got, ask its
//! client for sampling, elicitation or roots (`ask`, which also shows the capabilities the client
//! declared), flood its stderr (`shout`, optionally leaving the last line
//! unterminated), and let a test make its tool list drift through
//! `<state-dir>/tools.json`.
//!
//! Usage: `upstream_fixture [--http 127.0.0.1:PORT] [--state-dir DIR]`
//!
//! With `--state-dir`, it writes `DIR/pid` (its process id), appends to `DIR/events.log`
//! `started` at every start, `began slow` when a `slow` call starts sleeping, `cancelled slow`
//! when it is cancelled and, in HTTP mode, `request <METHOD> <PATH>` for every HTTP request that
//! reaches it; writes `DIR/addr` (the bound address, useful with port 0) in HTTP mode, and reads
//! `DIR/tools.json` at every `tools/list` and `tools/call`:
//! `{"<tool>": {"description": "...", "input_schema": {...}}, "hide": ["<tool>", ...]}`.
//! In HTTP mode `/moved` answers every request with a 307 to `/mcp` (a same-origin redirect).
//! Nothing is ever written to stdout except the protocol.

use std::collections::BTreeMap;
use std::error::Error;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ElicitRequest,
    Implementation, JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities,
    ServerConfig, ServerRequest, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler, ServiceExt, tool, tool_handler, tool_router,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// `big`'s default size: 2 MiB.
const DEFAULT_BIG_BYTES: usize = 2 * 1024 * 1024;

#[derive(Debug, Deserialize, JsonSchema)]
struct EchoArgs {
    /// The text to echo back.
    text: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct AddArgs {
    /// The first addend.
    a: i64,
    /// The second addend.
    b: i64,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct SlowArgs {
    /// How long to sleep, in seconds (fractions allowed).
    seconds: f64,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct AskArgs {
    /// What to ask the client for: "sampling", "elicitation" or "roots".
    what: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct ShoutArgs {
    /// How many lines to write to stderr.
    lines: usize,
    /// How long each line is, in bytes (its number first, then `y`s).
    length: usize,
    /// Leave the last line without its newline (as a process dying mid-write would).
    #[serde(default)]
    unterminated: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct BigArgs {
    /// How many bytes of text to return (default 2 MiB).
    #[serde(default)]
    bytes: Option<usize>,
}

/// `tools.json`: per-tool overrides plus the names to hide.
#[derive(Debug, Default, Deserialize)]
struct Drift {
    #[serde(default)]
    hide: Vec<String>,
    #[serde(flatten)]
    tools: BTreeMap<String, ToolOverride>,
}

#[derive(Debug, Deserialize)]
struct ToolOverride {
    description: Option<String>,
    input_schema: Option<JsonObject>,
}

#[derive(Clone)]
struct Fixture {
    state_dir: Option<Arc<PathBuf>>,
    tool_router: Arc<ToolRouter<Fixture>>,
}

impl Fixture {
    /// Appends `line` to `<state-dir>/events.log`, if there is a state dir.
    fn event(&self, line: &str) {
        if let Some(dir) = &self.state_dir
            && let Err(error) = append_event(dir, line)
        {
            eprintln!("upstream fixture: cannot write events.log: {error}");
        }
    }

    /// The current drift file, or no drift when there is none.
    fn drift(&self) -> Result<Drift, McpError> {
        let Some(dir) = &self.state_dir else {
            return Ok(Drift::default());
        };
        match std::fs::read(dir.join("tools.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|error| {
                McpError::internal_error(format!("bad tools.json: {error}"), None)
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Drift::default()),
            Err(error) => Err(McpError::internal_error(
                format!("cannot read tools.json: {error}"),
                None,
            )),
        }
    }
}

/// `tool` as the drift file shows it, or `None` when hidden.
fn drifted(mut tool: Tool, drift: &Drift) -> Option<Tool> {
    if drift.hide.iter().any(|name| *name == tool.name) {
        return None;
    }
    if let Some(over) = drift.tools.get(tool.name.as_ref()) {
        if let Some(description) = &over.description {
            tool.description = Some(description.clone().into());
        }
        if let Some(schema) = &over.input_schema {
            tool.input_schema = Arc::new(schema.clone());
        }
    }
    Some(tool)
}

fn append_event(dir: &std::path::Path, line: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("events.log"))?;
    file.write_all(format!("{line}\n").as_bytes())
}

fn text_and_structured(text: String, structured: Value) -> CallToolResult {
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(structured);
    result
}

#[tool_router]
impl Fixture {
    #[tool(description = "Echo the text back as \"echo: <text>\".")]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> CallToolResult {
        text_and_structured(format!("echo: {}", args.text), json!({ "echo": args.text }))
    }

    #[tool(description = "Add two integers and return the sum as text.")]
    async fn add(&self, Parameters(args): Parameters<AddArgs>) -> Result<String, String> {
        args.a
            .checked_add(args.b)
            .map(|sum| sum.to_string())
            .ok_or_else(|| "the sum overflows a 64-bit integer".into())
    }

    #[tool(description = "Sleep for the given seconds, then answer \"done\".")]
    async fn slow(
        &self,
        Parameters(args): Parameters<SlowArgs>,
        ct: CancellationToken,
    ) -> Result<String, String> {
        let duration = Duration::try_from_secs_f64(args.seconds)
            .map_err(|error| format!("bad seconds: {error}"))?;
        self.event("began slow");
        tokio::select! {
            () = tokio::time::sleep(duration) => Ok("done".into()),
            () = ct.cancelled() => {
                self.event("cancelled slow");
                Err("cancelled".into())
            }
        }
    }

    #[tool(description = "Exit the whole server process at once with code 3.")]
    async fn crash(&self) -> String {
        std::process::exit(3)
    }

    #[tool(description = "Return a text content of the given number of bytes (default 2 MiB).")]
    async fn big(&self, Parameters(args): Parameters<BigArgs>) -> String {
        "x".repeat(args.bytes.unwrap_or(DEFAULT_BIG_BYTES))
    }

    #[tool(description = "List the names (not values) of the server's environment variables.")]
    async fn env(&self) -> CallToolResult {
        let mut names: Vec<String> = std::env::vars_os()
            .map(|(name, _)| name.to_string_lossy().into_owned())
            .collect();
        names.sort();
        text_and_structured(names.join("\n"), json!({ "names": names }))
    }

    #[tool(description = "Show the HTTP headers of the current request (HTTP transport only).")]
    async fn headers(&self, context: RequestContext<RoleServer>) -> CallToolResult {
        let mut lines = Vec::new();
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        if let Some(parts) = context.extensions.get::<http::request::Parts>() {
            for (name, value) in &parts.headers {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                lines.push(format!("{name}: {value}"));
                map.entry(name.as_str().to_owned()).or_default().push(value);
            }
        }
        text_and_structured(lines.join("\n"), json!({ "headers": map }))
    }

    #[tool(
        description = "Ask the client for sampling, elicitation or roots; answer whether it was refused, with the capabilities the client declared."
    )]
    async fn ask(
        &self,
        Parameters(args): Parameters<AskArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, String> {
        let peer = &context.peer;
        #[allow(deprecated)] // sampling and roots: deprecated, yet servers still ask.
        let answer = match args.what.as_str() {
            "sampling" => {
                let params = serde_json::from_value(json!({
                    "messages": [{"role": "user", "content": {"type": "text", "text": "hi"}}],
                    "maxTokens": 10
                }))
                .map_err(|error| error.to_string())?;
                peer.create_message(params)
                    .await
                    .map(|result| json!(result))
            }
            "roots" => peer.list_roots().await.map(|result| json!(result)),
            "elicitation" => {
                // rmcp's `create_elicitation` needs a feature the gateway does not build with.
                let params = serde_json::from_value(json!({
                    "mode": "form",
                    "message": "your name?",
                    "requestedSchema": {"type": "object", "properties": {"name": {"type": "string"}}}
                }))
                .map_err(|error| error.to_string())?;
                peer.send_request(ServerRequest::ElicitRequest(ElicitRequest::new(params)))
                    .await
                    .map(|result| json!(result))
            }
            other => return Err(format!("cannot ask for {other:?}")),
        };
        let info = peer.peer_info();
        let mut report = json!({
            "asked": args.what,
            "capabilities": info.as_ref().map(|info| json!(info.capabilities)),
            "protocol_version": info.as_ref().map(|info| json!(info.protocol_version)),
        });
        let text = match answer {
            Ok(answered) => {
                report["refused"] = json!(false);
                report["answer"] = answered;
                format!("{} answered", args.what)
            }
            Err(error) => {
                report["refused"] = json!(true);
                report["error"] = json!(error.to_string());
                if let rmcp::ServiceError::McpError(data) = &error {
                    report["code"] = json!(data.code.0);
                }
                format!("{} refused: {error}", args.what)
            }
        };
        Ok(text_and_structured(text, report))
    }

    #[tool(description = "Write lines of the given length to stderr, all at once.")]
    async fn shout(&self, Parameters(args): Parameters<ShoutArgs>) -> Result<String, String> {
        let mut burst = Vec::with_capacity(args.lines.saturating_mul(args.length + 1));
        for number in 0..args.lines {
            let mut line = format!("{number:06}").into_bytes();
            line.resize(args.length, b'y');
            burst.extend_from_slice(&line);
            burst.push(b'\n');
        }
        if args.unterminated {
            burst.pop();
        }
        let mut stderr = std::io::stderr().lock();
        stderr
            .write_all(&burst)
            .and_then(|()| stderr.flush())
            .map_err(|error| format!("cannot write stderr: {error}"))?;
        Ok(format!("shouted {} lines", args.lines))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Fixture {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("upstream-fixture", "0.1.0"))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let drift = self.drift()?;
        let tools = self
            .tool_router
            .list_all()
            .into_iter()
            .filter_map(|tool| drifted(tool, &drift))
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        if self.drift()?.hide.iter().any(|name| *name == request.name) {
            return Err(McpError::invalid_params("tool not found", None));
        }
        self.tool_router
            .call(ToolCallContext::new(self, request, context))
            .await
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        let tool = self.tool_router.get(name)?.clone();
        drifted(tool, &self.drift().ok()?)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut http = None;
    let mut state_dir = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--http" => http = Some(args.next().ok_or("--http needs an address")?),
            "--state-dir" => {
                state_dir = Some(PathBuf::from(
                    args.next().ok_or("--state-dir needs a path")?,
                ));
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: upstream_fixture [--http ADDR] [--state-dir DIR]"
                )
                .into());
            }
        }
    }
    if let Some(dir) = &state_dir {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("pid"), std::process::id().to_string())?;
        append_event(dir, "started")?;
    }
    let fixture = Fixture {
        state_dir: state_dir.clone().map(Arc::new),
        tool_router: Arc::new(Fixture::tool_router()),
    };

    let Some(addr) = http else {
        eprintln!("upstream fixture ready (stdio)");
        let service = fixture
            .serve((tokio::io::stdin(), tokio::io::stdout()))
            .await?;
        service.waiting().await?;
        return Ok(());
    };
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let local = listener.local_addr()?;
    if let Some(dir) = &state_dir {
        std::fs::write(dir.join("addr"), local.to_string())?;
    }
    let service = StreamableHttpService::new(
        move || Ok(fixture.clone()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let requests = state_dir.clone();
    let router = axum::Router::new()
        .route_service("/mcp", service)
        .route(
            "/moved",
            axum::routing::any(|| async {
                (
                    http::StatusCode::TEMPORARY_REDIRECT,
                    [(http::header::LOCATION, "/mcp")],
                )
            }),
        )
        // Every request that reaches the fixture, for the tests of what the gateway never sends.
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                if let Some(dir) = &requests
                    && let Err(error) = append_event(
                        dir,
                        &format!("request {} {}", request.method(), request.uri().path()),
                    )
                {
                    eprintln!("upstream fixture: cannot write events.log: {error}");
                }
                next.run(request)
            },
        ));
    eprintln!("upstream fixture ready on http://{local}/mcp");
    axum::serve(listener, router).await?;
    Ok(())
}
