//! What a `tools/call` round trip costs, against a baseline measured in the same run.
//!
//! `cargo bench --bench round_trip` starts the real gateway in-process (SQLite in a temp dir),
//! issues a bearer token, and times sequential requests over one keep-alive connection:
//! `GET /healthz` (the baseline: HTTP, routing, the middleware stack) and `tools/call` of
//! `queue_status`, `send_message` and `pull_updates` (plus ES256 verification, the revocation
//! lookup, rmcp and the queue's SQL). Rounds alternate, so machine noise hits both sides; the
//! ratio to the baseline is the number to compare across machines and commits.

// A benchmark fails loudly on purpose: a panic with a message is the report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use nexus_gateway::app::App;
use nexus_gateway::clock::SystemClock;
use nexus_gateway::config::{ApprovalMode, Config, PublicUrl};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const WARM_UP: usize = 200;
const PER_ROUND: usize = 1000;
const ROUNDS: usize = 3;

#[tokio::main]
async fn main() {
    let data = tempfile::TempDir::new().expect("temp dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let base = format!("http://{address}");
    let config = Config {
        listen: address,
        public_url: PublicUrl::parse(&base).expect("url"),
        data_dir: data.path().to_path_buf(),
        approval: ApprovalMode::Auto,
        ..Config::default()
    };
    let app = App::build_with_clock(config, Arc::new(SystemClock))
        .await
        .expect("app");
    let token = app
        .state()
        .auth
        .issue_bearer_token("bench", &app.state().auth.settings().scopes.all(), 3600)
        .await
        .expect("token")
        .token
        .expose()
        .to_owned();
    let shutdown = CancellationToken::new();
    tokio::spawn(app.serve(listener, shutdown.clone()));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .expect("client");

    let health = || {
        let request = http.get(format!("{base}/healthz"));
        async move {
            let response = request.send().await.expect("healthz");
            assert!(response.status().is_success());
            response.bytes().await.expect("body");
        }
    };
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let tool = |name: &'static str| {
        let arguments = match name {
            "send_message" => {
                json!({"message": format!("bench task {}", counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed))})
            }
            "pull_updates" => json!({"since": "0", "limit": 10}),
            _ => json!({}),
        };
        let request = http
            .post(format!("{base}/mcp"))
            .bearer_auth(&token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}}));
        async move {
            let response = request.send().await.expect("tools/call");
            assert!(response.status().is_success());
            let body: serde_json::Value = response.json().await.expect("json");
            assert!(body["result"]["isError"] != true, "{body}");
        }
    };

    for _ in 0..WARM_UP {
        health().await;
        tool("queue_status").await;
    }
    let names = ["healthz", "queue_status", "send_message", "pull_updates"];
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
    for _ in 0..ROUNDS {
        for (index, name) in names.iter().enumerate() {
            let started = Instant::now();
            for _ in 0..PER_ROUND {
                if *name == "healthz" {
                    health().await
                } else {
                    tool(name).await
                }
            }
            samples[index].push(started.elapsed() / PER_ROUND as u32);
        }
    }
    let median = |values: &mut Vec<Duration>| {
        values.sort();
        values[values.len() / 2]
    };
    let baseline = median(&mut samples[0].clone());
    println!(
        "round trips over one keep-alive connection, median of {ROUNDS} rounds of {PER_ROUND}:"
    );
    for (index, name) in names.iter().enumerate() {
        let value = median(&mut samples[index]);
        println!(
            "  {name:14} {:7.0} µs   {:4.1}x the /healthz baseline",
            value.as_secs_f64() * 1e6,
            value.as_secs_f64() / baseline.as_secs_f64()
        );
    }
    shutdown.cancel();
}
