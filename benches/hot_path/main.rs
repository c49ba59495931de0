//! The hot path, measured against baselines from the same run (issue 12's budgets):
//!
//! - `tools/call queue_status` at concurrency 64 against a bare axum route that parses the same
//!   JSON-RPC body and answers the same result (this program, re-run as `--bare-server`);
//! - `tools/call send_message` with distinct texts (durable writes) at concurrency 16;
//! - `/token` refresh grants at concurrency 8;
//! - resident memory after start, after 100,000 tool calls, and with 1,000 idle keep-alive
//!   connections; `/readyz` after a restart with 100,000 stored messages.
//!
//! The gateway is the release binary in its own process, on a fresh data dir, with tokens from
//! the real OAuth flow. `cargo bench --bench hot_path -- [--seconds S] [--rounds R]
//! [--cores 0,0-1] [--json PATH] [--compare PATH] [--gateway BINARY] [--quick]
//! [--only sends|status|refresh] [--concurrency N]`. It prints a table and writes a JSON file a
//! later run can be compared with (`--compare`).

// A benchmark fails loudly on purpose: a panic with a message is the report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bare;
mod gateway;
mod load;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use serde_json::{Value, json};

use gateway::{Gateway, Tokens, tool_call};
use load::{MakeRequest, Run};

/// What the command line chose.
struct Options {
    seconds: u64,
    rounds: usize,
    /// CPU lists the servers are pinned to, one measurement of the ratio per list.
    cores: Vec<String>,
    json: std::path::PathBuf,
    compare: Option<std::path::PathBuf>,
    /// Skips the slow steps (100,000 calls, 100,000 stored messages, 1,000 connections).
    quick: bool,
    /// The gateway binary (another build, to compare two in one run).
    binary: std::path::PathBuf,
    /// One measurement alone, for as long as asked, to profile it with `perf record -p`.
    only: Option<Only>,
    /// The connections of `--only status` (64 by default, as in the full run).
    concurrency: Option<usize>,
}

/// The measurements `--only` can run alone.
#[derive(Clone, Copy, PartialEq)]
enum Only {
    /// Durable sends at concurrency 16.
    Sends,
    /// `queue_status` calls at concurrency 64.
    Status,
    /// Refresh grants at concurrency 8.
    Refresh,
}

const USAGE: &str = "usage: cargo bench --bench hot_path -- [--seconds S] [--rounds R] \
[--cores 0,0-1] [--json PATH] [--compare PATH] [--gateway BINARY] [--quick] \
[--only sends|status|refresh] [--concurrency N (status only)] [--help]";

fn options() -> Options {
    let mut options = Options {
        seconds: 5,
        rounds: 3,
        cores: Vec::new(),
        json: std::path::PathBuf::from("target/bench/hot_path.json"),
        compare: None,
        quick: false,
        binary: env!("CARGO_BIN_EXE_nexus-gateway").into(),
        only: None,
        concurrency: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                options.seconds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--seconds N")
            }
            "--rounds" => {
                options.rounds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--rounds N")
            }
            "--cores" => {
                options.cores = args
                    .next()
                    .expect("--cores LIST,LIST")
                    .split(',')
                    .map(str::to_owned)
                    .collect()
            }
            "--json" => options.json = args.next().expect("--json PATH").into(),
            "--compare" => options.compare = Some(args.next().expect("--compare PATH").into()),
            "--gateway" => options.binary = args.next().expect("--gateway BINARY").into(),
            "--only" => {
                options.only = Some(match args.next().as_deref() {
                    Some("sends") => Only::Sends,
                    Some("status") => Only::Status,
                    Some("refresh") => Only::Refresh,
                    _ => panic!("--only sends|status|refresh"),
                })
            }
            "--concurrency" => {
                options.concurrency = Some(
                    args.next()
                        .and_then(|v| v.parse().ok())
                        .filter(|&n| n > 0)
                        .expect("--concurrency N"),
                )
            }
            "--quick" => {
                options.quick = true;
                options.seconds = 2;
                options.rounds = 1;
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            // `cargo bench` passes `--bench`.
            "--bench" => {}
            unknown => {
                eprintln!("unknown argument {unknown:?}\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    if options.concurrency.is_some() && options.only != Some(Only::Status) {
        // The full run's concurrencies are the budgets'; silently ignoring the flag would
        // let a reader believe they were changed.
        eprintln!("--concurrency applies to --only status\n{USAGE}");
        std::process::exit(2);
    }
    options
}

fn main() {
    if std::env::args().any(|arg| arg == bare::FLAG) {
        bare::serve();
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(measure(options()));
}

/// Makes `queue_status` calls to `address` (the gateway or the bare route).
fn queue_status_calls(address: SocketAddr, token: Arc<str>) -> MakeRequest {
    Arc::new(move |id| tool_call(address, &token, id, "queue_status", json!({})))
}

/// The median of `runs` by requests per second, and the median p99.
fn median(runs: &[Run]) -> Run {
    let mut by_rate = runs.to_vec();
    by_rate.sort_by(|a, b| a.per_second.total_cmp(&b.per_second));
    let mut middle = by_rate[by_rate.len() / 2];
    let mut p99s: Vec<u32> = runs.iter().map(|run| run.p99_us).collect();
    p99s.sort_unstable();
    middle.p99_us = p99s[p99s.len() / 2];
    middle.failures = runs.iter().map(|run| run.failures).sum();
    middle
}

/// `queue_status` at concurrency 64 against the bare route, rounds alternating.
async fn versus_bare(
    options: &Options,
    gateway: &Gateway,
    token: &Arc<str>,
    cores: Option<&str>,
) -> (Run, Run, u64) {
    // The bare route answers exactly what the gateway answers.
    let request = tool_call(gateway.public, token, 1, "queue_status", json!({}));
    let (status, sample) = load::once(gateway.public, request)
        .await
        .expect("a queue_status answer");
    assert_eq!(
        status,
        200,
        "queue_status: {}",
        String::from_utf8_lossy(&sample)
    );
    let answer: Value = serde_json::from_slice(&sample).expect("json answer");
    let bare = bare::Bare::start(&answer["result"], cores);
    let duration = Duration::from_secs(options.seconds);
    let warm_up = Duration::from_secs(1);
    let gateway_calls = queue_status_calls(gateway.public, token.clone());
    let bare_calls = queue_status_calls(bare.address, token.clone());
    let mut calls = load::run(gateway.public, 64, warm_up, gateway_calls.clone())
        .await
        .requests;
    load::run(bare.address, 64, warm_up, bare_calls.clone()).await;
    let (mut bare_runs, mut gateway_runs) = (Vec::new(), Vec::new());
    for _ in 0..options.rounds {
        bare_runs.push(load::run(bare.address, 64, duration, bare_calls.clone()).await);
        let run = load::run(gateway.public, 64, duration, gateway_calls.clone()).await;
        calls += run.requests;
        gateway_runs.push(run);
    }
    (median(&bare_runs), median(&gateway_runs), calls)
}

async fn measure(options: Options) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let scratch = tempfile::TempDir::new().expect("temp dir");
    let gateway = Gateway::start(&options.binary, &scratch.path().join("data"), None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut report = json!({
        "date": time_now(),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "seconds": options.seconds,
        "rounds": options.rounds,
    });
    report["memory_start_mib"] = json!(gateway.resident_mib());
    report["ready_empty_ms"] = json!(gateway.ready_after.as_secs_f64() * 1e3);

    let Tokens { access, .. } = gateway::oauth_flow(&http, &gateway).await;
    let token: Arc<str> = access.into();
    if let Some(only) = options.only {
        // The mode for profiling: say which process to attach to.
        println!(
            "gateway pid {} (perf record -g -p {})",
            gateway.pid(),
            gateway.pid()
        );
        match only {
            Only::Sends => {
                let (_, sends) = send_messages(&options, &gateway, &token).await;
                println!("send_message, c16: {sends:?}");
            }
            Only::Status => {
                // Resident memory around the run says what the load itself leaves behind.
                let before = gateway.resident_mib();
                let calls = queue_status_calls(gateway.public, token.clone());
                let seconds = Duration::from_secs(options.seconds);
                let concurrency = options.concurrency.unwrap_or(64);
                let run = load::run(gateway.public, concurrency, seconds, calls).await;
                let after = gateway.resident_mib();
                tokio::time::sleep(Duration::from_secs(2)).await;
                let idle = gateway.resident_mib();
                println!("queue_status, c{concurrency}: {run:?}");
                println!(
                    "RSS before {before:.1} MiB, after {after:.1} MiB, after 2 s idle {idle:.1} MiB"
                );
            }
            Only::Refresh => {
                let grants = refresh_grants(&options, &http, &gateway).await;
                println!("refresh grants, c8: {grants}");
            }
        }
        gateway.stop();
        return;
    }
    let log_before = gateway.log_bytes();
    let (bare, ours, mut calls) = versus_bare(&options, &gateway, &token, None).await;
    report["log_bytes_per_call"] =
        json!((gateway.log_bytes() - log_before) as f64 / calls.max(1) as f64);
    report["queue_status"] = run_json(&ours);
    report["bare_route"] = run_json(&bare);
    report["queue_status_ratio"] = json!(ours.per_second / bare.per_second);
    report["queue_status_p99_ratio"] =
        json!(f64::from(ours.p99_us) / f64::from(bare.p99_us.max(1)));

    if !options.quick {
        let rest = 100_000u64.saturating_sub(calls);
        let calls_per_second = ours.per_second.max(1.0);
        let seconds = (rest as f64 / calls_per_second).ceil() as u64 + 1;
        calls += load::run(
            gateway.public,
            64,
            Duration::from_secs(seconds),
            queue_status_calls(gateway.public, token.clone()),
        )
        .await
        .requests;
        report["tool_calls_before_memory"] = json!(calls);
        report["memory_after_calls_mib"] = json!(gateway.resident_mib());
        // mimalloc keeps freed memory for a while before it returns it (`purge_delay`): the
        // same figure after the gateway has been idle for a moment says what stays.
        tokio::time::sleep(Duration::from_secs(2)).await;
        report["memory_after_calls_idle_mib"] = json!(gateway.resident_mib());
    }

    let (sent, send_run) = send_messages(&options, &gateway, &token).await;
    report["send_message"] = run_json(&send_run);
    report["refresh"] = json!(refresh_grants(&options, &http, &gateway).await);

    let mut idle = Vec::new();
    if !options.quick {
        for _ in 0..1000 {
            let mut sender = load::connect(gateway.public).await.expect("connect");
            let request = Request::get("/healthz")
                .header("host", gateway.public.to_string())
                .body(Full::new(Bytes::new()))
                .expect("request");
            let response = sender.send_request(request).await.expect("healthz");
            assert!(response.status().is_success());
            drop(response);
            idle.push(sender);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        report["memory_idle_1000_mib"] = json!(gateway.resident_mib());
    }
    drop(idle);

    let mut stored = sent;
    if !options.quick {
        // Top the queue up to 100,000 messages, then time a restart.
        while stored < 100_000 {
            let make = distinct_sends(gateway.public, token.clone(), stored);
            stored += load::run(gateway.public, 16, Duration::from_secs(5), make)
                .await
                .requests;
        }
        let data_dir = gateway.data_dir.clone();
        gateway.stop();
        let restarted = Gateway::start(&options.binary, &data_dir, None).await;
        report["stored_messages"] = json!(stored);
        report["ready_after_restart_ms"] = json!(restarted.ready_after.as_secs_f64() * 1e3);
        report["memory_start_with_messages_mib"] = json!(restarted.resident_mib());
        restarted.stop();
    } else {
        gateway.stop();
    }

    // Scaling: the ratio to the bare route with both servers pinned to the same cores.
    let mut scaling = Vec::new();
    for cores in &options.cores {
        let pinned = Gateway::start(
            &options.binary,
            &scratch.path().join(format!("data-{cores}")),
            Some(cores),
        )
        .await;
        let Tokens { access, .. } = gateway::oauth_flow(&http, &pinned).await;
        let (bare, ours, _) = versus_bare(&options, &pinned, &access.into(), Some(cores)).await;
        scaling.push(json!({"cores": cores, "bare": run_json(&bare), "queue_status": run_json(&ours), "ratio": ours.per_second / bare.per_second}));
        pinned.stop();
    }
    report["scaling"] = json!(scaling);

    print_table(&report);
    if let Some(path) = &options.compare {
        let before: Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("--compare file"))
                .expect("--compare json");
        print_comparison(&before, &report);
    }
    if let Some(parent) = options.json.parent() {
        std::fs::create_dir_all(parent).expect("json dir");
    }
    std::fs::write(
        &options.json,
        serde_json::to_string_pretty(&report).expect("json"),
    )
    .expect("write json");
    println!("\nwritten to {}", options.json.display());
}

/// `send_message` calls whose texts never repeat (numbered from `first`), so each is a write.
fn distinct_sends(address: SocketAddr, token: Arc<str>, first: u64) -> MakeRequest {
    Arc::new(move |n| {
        tool_call(
            address,
            &token,
            n,
            "send_message",
            json!({"message": format!("bench task {first} {n}")}),
        )
    })
}

/// Durable writes at concurrency 16; returns how many were sent and the median run.
async fn send_messages(options: &Options, gateway: &Gateway, token: &Arc<str>) -> (u64, Run) {
    let mut sent = 0;
    let mut runs = Vec::new();
    for round in 0..options.rounds {
        let make = distinct_sends(gateway.public, token.clone(), round as u64 * 1_000_000_000);
        let run = load::run(
            gateway.public,
            16,
            Duration::from_secs(options.seconds),
            make,
        )
        .await;
        sent += run.requests - run.failures;
        runs.push(run);
    }
    (sent, median(&runs))
}

/// Refresh grants at concurrency 8, each worker rotating its own refresh token.
async fn refresh_grants(options: &Options, http: &reqwest::Client, gateway: &Gateway) -> Value {
    let mut chains = Vec::new();
    for _ in 0..8 {
        chains.push(gateway::oauth_flow(http, gateway).await);
    }
    let base = gateway.base();
    let mut rates = Vec::new();
    for _ in 0..options.rounds {
        let deadline = Instant::now() + Duration::from_secs(options.seconds);
        let started = Instant::now();
        let mut workers = Vec::new();
        for chain in chains.drain(..) {
            let http = http.clone();
            let url = format!("{base}/token");
            workers.push(tokio::spawn(async move {
                let mut chain = chain;
                let mut granted = 0u64;
                while Instant::now() < deadline {
                    let answer: Value = http
                        .post(&url)
                        .form(&[
                            ("grant_type", "refresh_token"),
                            ("refresh_token", &chain.refresh),
                            ("client_id", &chain.client_id),
                        ])
                        .send()
                        .await
                        .expect("refresh")
                        .json()
                        .await
                        .expect("refresh json");
                    chain.refresh = answer["refresh_token"]
                        .as_str()
                        .unwrap_or_else(|| panic!("refresh refused: {answer}"))
                        .to_owned();
                    granted += 1;
                }
                (chain, granted)
            }));
        }
        let mut granted = 0;
        for worker in workers {
            let (chain, count) = worker.await.expect("refresh worker");
            chains.push(chain);
            granted += count;
        }
        rates.push(granted as f64 / started.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    json!({"per_second": rates[rates.len() / 2]})
}

fn run_json(run: &Run) -> Value {
    json!({"per_second": run.per_second, "p50_us": run.p50_us, "p99_us": run.p99_us, "failures": run.failures})
}

fn time_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("an RFC 3339 time")
}

/// The rows a report prints, with each one's budget.
const ROWS: &[(&str, &str, &str)] = &[
    ("bare route, c64 (req/s)", "/bare_route/per_second", ""),
    ("bare route p99 (µs)", "/bare_route/p99_us", ""),
    ("queue_status, c64 (req/s)", "/queue_status/per_second", ""),
    ("queue_status p99 (µs)", "/queue_status/p99_us", ""),
    ("queue_status / bare route", "/queue_status_ratio", "≥ 0.60"),
    ("p99 / bare route p99", "/queue_status_p99_ratio", "≤ 2.0"),
    ("log bytes per call", "/log_bytes_per_call", ""),
    (
        "send_message, c16 (msg/s)",
        "/send_message/per_second",
        "≥ 5,000",
    ),
    ("refresh grants (per s)", "/refresh/per_second", "≥ 1,000"),
    ("RSS at start (MiB)", "/memory_start_mib", "≤ 20"),
    (
        "RSS after 100k calls (MiB)",
        "/memory_after_calls_mib",
        "≤ start + 10",
    ),
    (
        "  the same, after 2 s idle (MiB)",
        "/memory_after_calls_idle_mib",
        "",
    ),
    (
        "RSS, 1,000 idle conns (MiB)",
        "/memory_idle_1000_mib",
        "≤ 100",
    ),
    ("ready, empty store (ms)", "/ready_empty_ms", ""),
    (
        "ready, 100k messages (ms)",
        "/ready_after_restart_ms",
        "≤ 100",
    ),
];

fn print_table(report: &Value) {
    println!(
        "\nhot path, {} cpus, {} rounds of {} s, {}",
        report["cpus"], report["rounds"], report["seconds"], report["date"]
    );
    println!("{:32} {:>12}   budget", "measurement", "value");
    for (label, pointer, budget) in ROWS {
        if let Some(value) = report.pointer(pointer).and_then(Value::as_f64) {
            println!("{label:32} {value:>12.2}   {budget}");
        }
    }
    for run in report["scaling"].as_array().into_iter().flatten() {
        println!(
            "pinned to cores {:10} bare {:>9.0}/s  queue_status {:>8.0}/s  ratio {:.3}",
            run["cores"].as_str().unwrap_or(""),
            run["bare"]["per_second"].as_f64().unwrap_or(0.0),
            run["queue_status"]["per_second"].as_f64().unwrap_or(0.0),
            run["ratio"].as_f64().unwrap_or(0.0)
        );
    }
}

fn print_comparison(before: &Value, now: &Value) {
    println!("\ncompared with the run of {}:", before["date"]);
    println!(
        "{:32} {:>12} {:>12} {:>8}",
        "measurement", "before", "now", "now/before"
    );
    for (label, pointer, _) in ROWS {
        if let (Some(old), Some(new)) = (
            before.pointer(pointer).and_then(Value::as_f64),
            now.pointer(pointer).and_then(Value::as_f64),
        ) {
            println!("{label:32} {old:>12.2} {new:>12.2} {:>8.2}", new / old);
        }
    }
}
