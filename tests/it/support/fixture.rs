//! The repository's upstream MCP fixture (`examples/upstream_fixture.rs`) as the federation
//! tests use it: its binary, its upstream configuration, a gateway publishing it, its HTTP mode,
//! and the files it writes in its state dir.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nexus_gateway::config::Config;
use nexus_gateway::config::upstreams::{UpstreamConfig, UpstreamToolConfig};
use nexus_gateway::upstream::Status;
use tempfile::TempDir;

use super::{Lifecycle, McpClient, TestApp, spawn_app_with};

/// The fixture server, built by `cargo build --examples` (scripts/test does).
pub(crate) fn fixture_binary() -> PathBuf {
    let binary = Path::new(env!("CARGO_BIN_EXE_nexus-gateway"));
    let path = binary
        .parent()
        .expect("target dir")
        .join("examples/upstream_fixture");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --examples` (scripts/test does)",
        path.display()
    );
    path
}

/// Allow-lists `tools` (name, expose_as, scope) of the fixture as upstream `fx`.
pub(crate) fn fixture_upstream(
    state_dir: &Path,
    tools: &[(&str, Option<&str>, Option<&str>)],
) -> UpstreamConfig {
    let mut upstream: UpstreamConfig = toml_upstream(&format!(
        "name = \"fx\"\ncommand = {:?}\nargs = [\"--state-dir\", {:?}]\nenv = {{ FIXTURE_REGION = \"home\" }}\n",
        fixture_binary().display().to_string(),
        state_dir.display().to_string()
    ));
    upstream.tools = tools
        .iter()
        .map(|(name, expose_as, scope)| UpstreamToolConfig {
            name: (*name).into(),
            expose_as: expose_as.map(str::to_owned),
            scope: scope.map(str::to_owned),
            mode: Default::default(),
        })
        .collect();
    upstream
}

pub(crate) fn toml_upstream(body: &str) -> UpstreamConfig {
    let config = Config::from_toml(&format!("[[upstreams]]\n{body}")).expect("upstream config");
    config.upstreams.into_iter().next().expect("one upstream")
}

/// Waits (bounded) until upstream `name` is ready.
pub(crate) async fn ready(app: &TestApp, name: &str) {
    until_status(app, name, "ready", |status| *status == Status::Ready).await;
}

/// Waits (bounded: 20 s) until upstream `name`'s state is one `wanted` accepts; `what` names
/// it for the failure message.
pub(crate) async fn until_status(
    app: &TestApp,
    name: &str,
    what: &str,
    wanted: impl Fn(&Status) -> bool,
) {
    let upstream = app.upstreams.get(name).expect("configured");
    tokio::time::timeout(Duration::from_secs(20), upstream.wait_for_status(wanted))
        .await
        .unwrap_or_else(|_| panic!("upstream {name} never {what}: {:?}", upstream.status()));
}

pub(crate) async fn client(app: &TestApp, scope: &str) -> McpClient {
    app.mcp_client(&app.access_token(scope).await, Lifecycle::Initialize)
        .await
}

/// The fixture `fx` still answers an `echo` through `client`, on its first connection: what
/// happened before (a slow call, a cancellation) did not get it restarted.
pub(crate) async fn answers_without_a_restart(app: &TestApp, client: &McpClient) {
    let echoed =
        super::call_tool(client, "fx_echo", serde_json::json!({"text": "still here"})).await;
    assert_eq!(super::tool_text(&echoed), "echo: still here");
    assert_eq!(app.upstreams.get("fx").expect("fx").restarts(), 0);
}

/// A gateway publishing the fixture's tools; returns it with the fixture's state dir.
pub(crate) async fn gateway_with_fixture(
    tools: &[(&str, Option<&str>, Option<&str>)],
    adjust: impl FnOnce(&mut UpstreamConfig),
) -> (TestApp, Arc<TempDir>) {
    let state = Arc::new(TempDir::new().expect("state dir"));
    let mut upstream = fixture_upstream(state.path(), tools);
    adjust(&mut upstream);
    let app = spawn_app_with(|config| config.upstreams = vec![upstream]).await;
    ready(&app, "fx").await;
    (app, state)
}

/// Waits (bounded: another process writes it) until the fixture's events.log has `event`.
pub(crate) async fn wait_for_event(state: &Path, event: &str) {
    let log = state.join("events.log");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains(event)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the fixture never logged {event:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (bounded) for a file another process writes.
pub(crate) fn wait_for_file(path: &Path) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && !text.trim().is_empty()
        {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The fixture serving Streamable HTTP on a port of its own; returns it (killed when dropped)
/// with its address (`127.0.0.1:PORT`).
pub(crate) async fn http_fixture(state: &Path) -> (tokio::process::Child, String) {
    let server = tokio::process::Command::new(fixture_binary())
        .args(["--http", "127.0.0.1:0", "--state-dir"])
        .arg(state)
        .kill_on_drop(true)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("fixture starts");
    let address = tokio::task::spawn_blocking({
        let path = state.join("addr");
        move || wait_for_file(&path)
    })
    .await
    .expect("addr");
    (server, address.trim().to_owned())
}
