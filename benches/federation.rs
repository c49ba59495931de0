//! What the gateway adds to a federated tool call, against the same upstream called directly
//! with rmcp's client in the same run.
//!
//! `cargo build --release --example upstream_fixture && cargo bench --bench federation` starts
//! the real gateway in-process with the repository's fixture server as a stdio upstream, then
//! times `echo` calls (p50 and p99) at concurrency 1 and 16, two ways, alternating rounds:
//! directly (rmcp's client over stdio to a second copy of the fixture) and through the gateway
//! (`tools/call` over HTTP with a bearer token: routing, ES256 verification, the scope check,
//! rmcp, the upstream call). The difference is what the gateway adds.

// A benchmark fails loudly on purpose: a panic with a message is the report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nexus_gateway::app::App;
use nexus_gateway::clock::SystemClock;
use nexus_gateway::config::{ApprovalMode, Config, PublicUrl};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;

// The allocator the shipped binary uses (src/main.rs), so the in-process gateway is measured
// as it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const WARM_UP: usize = 200;
const CALLS: usize = 2000;
const ROUNDS: usize = 3;

fn fixture() -> PathBuf {
    let bench = std::env::current_exe().expect("exe");
    let profile_dir = bench
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let path = profile_dir.join("examples/upstream_fixture");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --release --example upstream_fixture` first",
        path.display()
    );
    path
}

/// p50 and p99 of `samples`.
fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    let at = |fraction: f64| samples[((samples.len() as f64 - 1.0) * fraction) as usize];
    (at(0.50), at(0.99))
}

/// Runs `CALLS` calls of `call` with `concurrency` in flight; returns each call's latency.
async fn measure<F, Fut>(concurrency: usize, call: F) -> Vec<Duration>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let call = call.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for _ in 0..CALLS / concurrency {
                let started = Instant::now();
                call().await;
                latencies.push(started.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.expect("worker"));
    }
    all
}

#[tokio::main]
async fn main() {
    let fixture = fixture();
    let data = tempfile::TempDir::new().expect("temp dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let base = format!("http://{address}");
    let mut config = Config {
        listen: address,
        public_url: PublicUrl::parse(&base).expect("url"),
        data_dir: data.path().to_path_buf(),
        approval: ApprovalMode::Auto,
        ..Config::default()
    };
    config.upstreams = Config::from_toml(&format!(
        "[[upstreams]]\nname = \"fx\"\ncommand = {:?}\nmax_concurrency = 16\ntools = [{{ name = \"echo\" }}]\n",
        fixture.display().to_string()
    ))
    .expect("upstream")
    .upstreams;
    let app = App::build_with_clock(config, Arc::new(SystemClock))
        .await
        .expect("app")
        .with_upstream_shim(env!("CARGO_BIN_EXE_nexus-gateway").into());
    let catalog = app.state().auth.settings().scopes.all();
    let token = app
        .state()
        .auth
        .issue_bearer_token("bench", &catalog, 3600)
        .await
        .expect("token")
        .token
        .expose()
        .to_owned();
    let upstreams = app.state().upstreams.clone();
    let shutdown = CancellationToken::new();
    tokio::spawn(app.serve(listener, shutdown.clone()));
    let fx = upstreams.get("fx").expect("fx").clone();
    tokio::time::timeout(
        Duration::from_secs(30),
        fx.wait_for_status(|status| *status == nexus_gateway::upstream::Status::Ready),
    )
    .await
    .expect("the upstream is ready");

    // Direct: rmcp's client to a second copy of the same server.
    let direct =
        ().serve(TokioChildProcess::new(tokio::process::Command::new(&fixture)).expect("spawn"))
            .await
            .expect("direct client");
    let direct = Arc::new(direct);
    let direct_call = {
        let direct = direct.clone();
        move || {
            let direct = direct.clone();
            async move {
                let mut params = CallToolRequestParams::new("echo");
                params.arguments = json!({"text": "bench"}).as_object().cloned();
                let result = direct.call_tool(params).await.expect("direct call");
                assert_ne!(result.is_error, Some(true));
            }
        }
    };
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(32)
        .build()
        .expect("client");
    let gateway_call = mcp_call(&http, &base, &token, "fx_echo", json!({"text": "bench"}));
    // The same path to a built-in tool: what `/mcp` itself costs (issue 12's hot path), so the
    // federation hop can be told apart from it.
    let builtin_call = mcp_call(&http, &base, &token, "queue_status", json!({}));
    for _ in 0..WARM_UP {
        direct_call().await;
        gateway_call().await;
        builtin_call().await;
    }
    println!(
        "federated `echo`, {CALLS} calls per round, {ROUNDS} alternating rounds (latency per call):"
    );
    for concurrency in [1, 16] {
        let (mut direct_samples, mut gateway_samples, mut builtin_samples) =
            (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            direct_samples.extend(measure(concurrency, direct_call.clone()).await);
            gateway_samples.extend(measure(concurrency, gateway_call.clone()).await);
            builtin_samples.extend(measure(concurrency, builtin_call.clone()).await);
        }
        let (direct_p50, direct_p99) = percentiles(&mut direct_samples);
        let (gateway_p50, gateway_p99) = percentiles(&mut gateway_samples);
        let (builtin_p50, builtin_p99) = percentiles(&mut builtin_samples);
        let micros = |duration: Duration| duration.as_secs_f64() * 1e6;
        println!(
            "  concurrency {concurrency:2}: direct p50 {:6.0} µs p99 {:6.0} µs | through the gateway p50 {:6.0} µs p99 {:6.0} µs | added p50 {:6.0} µs p99 {:6.0} µs",
            micros(direct_p50),
            micros(direct_p99),
            micros(gateway_p50),
            micros(gateway_p99),
            micros(gateway_p50) - micros(direct_p50),
            micros(gateway_p99) - micros(direct_p99),
        );
        println!(
            "                  built-in queue_status through /mcp p50 {:6.0} µs p99 {:6.0} µs | federated hop beyond /mcp itself p50 {:6.0} µs",
            micros(builtin_p50),
            micros(builtin_p99),
            micros(gateway_p50) - micros(builtin_p50),
        );
    }
    shutdown.cancel();
}

/// A `tools/call` of `name` through the gateway's `/mcp`, checked to succeed.
fn mcp_call(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    name: &'static str,
    arguments: serde_json::Value,
) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Clone + use<> {
    let (http, url, token) = (http.clone(), format!("{base}/mcp"), token.to_owned());
    move || {
        let request = http
            .post(&url)
            .bearer_auth(&token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}}));
        Box::pin(async move {
            let response = request.send().await.expect("tools/call");
            assert!(response.status().is_success());
            let body: serde_json::Value = response.json().await.expect("json");
            assert!(body["result"]["isError"] != true, "{body}");
        })
    }
}
