//! The soak (issue 13): a mixed load on the release binary for a set time, reporting errors,
//! latency percentiles and resident memory. Not a test: `scripts/soak` runs it.
//!
//! `cargo bench --bench soak -- [--minutes 10] [--rate 200] [--binary PATH]`
//!
//! The gateway runs in its own process (so its memory is its own) with two targets: `homelab`
//! over the agent API and `chat` over Telegram, against the tests' fake Bot API. At once:
//! - tool callers (`queue_status`, `send_message` with distinct texts to either target,
//!   `get_message`) paced to `--rate` calls per second in all;
//! - a refresh chain rotating its refresh token;
//! - `pull_updates` callers with `wait`;
//! - agents long-polling the agent API, claiming tasks and completing them;
//! - a person in the Telegram chat answering every posted task with `/done`.
//!
//! The bar: zero errors, every task sent reaches `complete`, and resident memory at the end
//! within 10 % of what it was after the first minute (the allocator's warm-up; the figure at
//! start is printed too). Writes `target/bench/soak.json`.

// A benchmark fails loudly on purpose: a panic with a message is the report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "../../tests/it/fake_telegram.rs"]
mod fake_telegram;
#[allow(dead_code)]
#[path = "../hot_path/gateway.rs"]
mod gateway;
#[allow(dead_code)]
#[path = "../hot_path/load.rs"]
mod load;
#[allow(dead_code)]
#[path = "../../tests/it/serve_process.rs"]
mod serve_process;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use fake_telegram::{AGENT_USER, BOT_TOKEN, FakeTelegram, TASK_CHAT};
use gateway::{Gateway, Tokens};
use serve_process::{call_tool, printed_secret};

/// The time allowed after the load stops for the last tasks to be completed.
const DRAIN: Duration = Duration::from_secs(30);
/// How long the allocator may warm up before memory is held to the bar.
const WARM_UP: Duration = Duration::from_secs(60);

struct Options {
    minutes: f64,
    rate: u32,
    binary: PathBuf,
}

fn options() -> Options {
    let mut options = Options {
        minutes: 10.0,
        rate: 200,
        binary: PathBuf::from(env!("CARGO_BIN_EXE_nexus-gateway")),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--minutes" => {
                options.minutes = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--minutes N")
            }
            "--rate" => options.rate = args.next().and_then(|v| v.parse().ok()).expect("--rate N"),
            "--binary" => options.binary = args.next().map(PathBuf::from).expect("--binary PATH"),
            "--bench" => {}
            other => panic!(
                "unknown argument {other}; see the comment at the top of benches/soak/main.rs"
            ),
        }
    }
    options
}

/// Latencies (µs) and errors per kind of request.
#[derive(Default)]
struct Tally {
    latencies: BTreeMap<&'static str, Vec<u32>>,
    errors: BTreeMap<&'static str, usize>,
    /// The first few errors' texts, for the report.
    samples: Vec<(&'static str, String)>,
}

type Shared = Arc<Mutex<Tally>>;

fn record(tally: &Shared, kind: &'static str, started: Instant, outcome: Result<(), String>) {
    let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
    let mut tally = tally.lock().unwrap();
    tally.latencies.entry(kind).or_default().push(micros);
    if let Err(error) = outcome {
        *tally.errors.entry(kind).or_default() += 1;
        if tally.samples.len() < 10 {
            tally.samples.push((kind, error));
        }
    }
}

/// The ids of every task sent, by target.
#[derive(Default)]
struct Sent {
    ids: Vec<(String, &'static str)>,
}

fn main() {
    let options = options();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(soak(options));
}

async fn soak(options: Options) {
    let scratch = tempfile::TempDir::new().expect("scratch dir");
    let data_dir = scratch.path().join("data");
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let telegram = FakeTelegram::start().await;
    let token_file = data_dir.join("bot-token");
    std::fs::write(&token_file, format!("{BOT_TOKEN}\n")).expect("bot token");
    let targets = format!(
        r#"
[[targets]]
name = "homelab"
transport = "agent_api"

[[targets]]
name = "chat"
transport = "telegram"
[targets.telegram]
bot_token_file = "{token}"
chat_id = {TASK_CHAT}
api_base = "{api}"
poll_timeout = "1s"
"#,
        token = token_file.display(),
        api = telegram.base_url,
    );
    let gateway = Gateway::start_with(&options.binary, &data_dir, None, &targets).await;
    let at_start = gateway.resident_mib();
    // An agent for `homelab`, through the CLI, on the running gateway's store.
    let config = Gateway::config_path(&data_dir);
    let agent_token = printed_secret(
        &options.binary,
        &data_dir,
        &config.display().to_string(),
        &["agents", "add", "soak", "--targets", "homelab"],
    );
    // The OAuth flow reads the redirect with the code itself.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client");
    let tally: Shared = Arc::default();
    let sent: Arc<Mutex<Sent>> = Arc::default();
    let duration = Duration::from_secs_f64(options.minutes * 60.0);
    let deadline = Instant::now() + duration;
    println!(
        "soak: {:.1} min, {} tool calls/s, gateway pid {} (log {})",
        options.minutes,
        options.rate,
        gateway.pid(),
        data_dir.join("gateway.log").display()
    );

    let mut workers = Vec::new();
    const CALLERS: u32 = 4;
    for caller in 0..CALLERS {
        let tokens = gateway::oauth_flow(&http, &gateway).await;
        let period = Duration::from_secs_f64(f64::from(CALLERS) / f64::from(options.rate));
        workers.push(tokio::spawn(tool_caller(
            http.clone(),
            gateway.base(),
            tokens.access,
            caller,
            period,
            deadline,
            tally.clone(),
            sent.clone(),
        )));
    }
    let chain = gateway::oauth_flow(&http, &gateway).await;
    workers.push(tokio::spawn(refresher(
        http.clone(),
        gateway.base(),
        chain,
        deadline,
        tally.clone(),
    )));
    for _ in 0..2 {
        let tokens = gateway::oauth_flow(&http, &gateway).await;
        workers.push(tokio::spawn(puller(
            http.clone(),
            gateway.base(),
            tokens.access,
            deadline,
            tally.clone(),
        )));
    }
    let agents_until = deadline + DRAIN;
    for _ in 0..2 {
        workers.push(tokio::spawn(agent(
            http.clone(),
            format!("http://{}", gateway.internal),
            agent_token.clone(),
            agents_until,
            tally.clone(),
        )));
    }
    workers.push(tokio::spawn(telegram_person(
        telegram.clone(),
        agents_until,
    )));

    // Memory, every 10 s.
    let mut samples = vec![(0.0, at_start)];
    let started = Instant::now();
    let mut after_warm_up = None;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(10).min(deadline - Instant::now())).await;
        let mib = gateway.resident_mib();
        samples.push((started.elapsed().as_secs_f64(), mib));
        if after_warm_up.is_none() && started.elapsed() >= WARM_UP.min(duration / 2) {
            after_warm_up = Some(mib);
        }
        let (anon, file, shmem) = rss_breakdown(gateway.pid());
        println!(
            "  {:5.0} s  RSS {mib:5.1} MiB (anon {anon:5.1}, file {file:4.1}, shmem {shmem:4.1}); store connections {}",
            started.elapsed().as_secs_f64(),
            store_connections(gateway.pid())
        );
    }
    let at_end = gateway.resident_mib();
    for worker in workers {
        worker.await.expect("worker");
    }

    // Every task sent reached `complete`?
    let sent_ids = std::mem::take(&mut sent.lock().unwrap().ids);
    let tokens = gateway::oauth_flow(&http, &gateway).await;
    let mut unfinished = Vec::new();
    for (id, target) in &sent_ids {
        let message = call_tool(
            &http,
            &gateway.base(),
            &tokens.access,
            "get_message",
            json!({"id": id}),
        )
        .await
        .expect("get_message");
        let status = &message["message"]["status"];
        if status != "complete" {
            unfinished.push(format!("{id} ({target}): {status}"));
        }
    }
    gateway.stop();

    let after_warm_up = after_warm_up.unwrap_or(at_start);
    let tally = tally.lock().unwrap();
    let mut report = serde_json::Map::new();
    let mut total_errors = 0;
    println!(
        "\n{:<16} {:>9} {:>7} {:>9} {:>9} {:>9}",
        "request", "count", "errors", "p50 µs", "p99 µs", "max µs"
    );
    for (kind, latencies) in &tally.latencies {
        let mut sorted = latencies.clone();
        sorted.sort_unstable();
        let at = |p: f64| sorted[((sorted.len() as f64 - 1.0) * p).round() as usize];
        let errors = tally.errors.get(kind).copied().unwrap_or(0);
        total_errors += errors;
        println!(
            "{kind:<16} {:>9} {errors:>7} {:>9} {:>9} {:>9}",
            sorted.len(),
            at(0.5),
            at(0.99),
            at(1.0)
        );
        report.insert(
            (*kind).to_owned(),
            json!({"count": sorted.len(), "errors": errors, "p50_us": at(0.5), "p99_us": at(0.99), "max_us": at(1.0)}),
        );
    }
    for (kind, error) in &tally.samples {
        println!("  error in {kind}: {error}");
    }
    let growth = (at_end - after_warm_up) / after_warm_up;
    println!(
        "\ntasks sent {} (unfinished {}); RSS at start {at_start:.1} MiB, after warm-up {after_warm_up:.1} MiB, at end {at_end:.1} MiB ({:+.1} %)",
        sent_ids.len(),
        unfinished.len(),
        growth * 100.0
    );
    for task in unfinished.iter().take(5) {
        println!("  unfinished: {task}");
    }
    report.insert(
        "memory".into(),
        json!({"start_mib": at_start, "after_warm_up_mib": after_warm_up, "end_mib": at_end, "growth": growth, "samples": samples}),
    );
    report.insert(
        "tasks".into(),
        json!({"sent": sent_ids.len(), "unfinished": unfinished.len()}),
    );
    report.insert("minutes".into(), json!(options.minutes));
    report.insert("rate".into(), json!(options.rate));
    std::fs::create_dir_all("target/bench").expect("target/bench");
    std::fs::write("target/bench/soak.json", Value::Object(report).to_string()).expect("report");

    let passed = total_errors == 0 && unfinished.is_empty() && growth <= 0.10;
    println!(
        "{}",
        if passed {
            "PASS: zero errors, nothing unfinished, memory flat"
        } else {
            "FAIL"
        }
    );
    if !passed {
        std::process::exit(1);
    }
}

/// Resident memory by kind, in MiB: anonymous (the heap), file-backed, shared (SQLite's WAL
/// index is a shared mapping).
fn rss_breakdown(pid: u32) -> (f64, f64, f64) {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| gateway::proc_mib(&rollup, name).unwrap_or(0.0);
    let (rss, anon, shmem) = (field("Rss:"), field("Anonymous:"), field("RssShmem:"));
    (anon, rss - anon - shmem, shmem)
}

/// How many SQLite connections the gateway holds: its open descriptors of the database file.
fn store_connections(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| std::fs::read_link(entry.path()).ok())
                .filter(|target| target.extension().is_some_and(|ext| ext == "sqlite3"))
                .count()
        })
        .unwrap_or(0)
}

/// Paced tool calls: `queue_status`, a `send_message` with a distinct text, `get_message`.
#[allow(clippy::too_many_arguments)]
async fn tool_caller(
    http: reqwest::Client,
    base: String,
    token: String,
    caller: u32,
    period: Duration,
    deadline: Instant,
    tally: Shared,
    sent: Arc<Mutex<Sent>>,
) {
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_id: Option<String> = None;
    let mut n: u64 = 0;
    while Instant::now() < deadline {
        ticker.tick().await;
        n += 1;
        let started = Instant::now();
        // One send in ten calls; the rest reads, as an MCP client mostly does.
        match n % 10 {
            0 => {
                let target = if n.is_multiple_of(20) {
                    "chat"
                } else {
                    "homelab"
                };
                let text = format!("soak task {caller}-{n}");
                let outcome = call_tool(
                    &http,
                    &base,
                    &token,
                    "send_message",
                    json!({"message": text, "target": target}),
                )
                .await;
                let outcome = outcome.and_then(|result| {
                    let id = result["id"]
                        .as_str()
                        .ok_or(format!("send_message: {result}"))?
                        .to_owned();
                    sent.lock().unwrap().ids.push((id.clone(), target));
                    last_id = Some(id);
                    Ok(())
                });
                record(&tally, "send_message", started, outcome);
            }
            5 if last_id.is_some() => {
                let id = last_id.clone().unwrap_or_default();
                let outcome = call_tool(&http, &base, &token, "get_message", json!({"id": id}))
                    .await
                    .map(drop);
                record(&tally, "get_message", started, outcome);
            }
            _ => {
                let outcome = call_tool(&http, &base, &token, "queue_status", json!({}))
                    .await
                    .map(drop);
                record(&tally, "queue_status", started, outcome);
            }
        }
    }
}

/// A refresh chain: one rotation every 100 ms, each with the newest refresh token.
async fn refresher(
    http: reqwest::Client,
    base: String,
    mut chain: Tokens,
    deadline: Instant,
    tally: Shared,
) {
    let resource = format!("{base}/mcp");
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        let outcome = async {
            let response = http
                .post(format!("{base}/token"))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &chain.refresh),
                    ("client_id", &chain.client_id),
                    ("resource", &resource),
                ])
                .send()
                .await
                .map_err(|error| error.to_string())?;
            let status = response.status();
            let body: Value = response.json().await.map_err(|error| error.to_string())?;
            let refresh = body["refresh_token"]
                .as_str()
                .ok_or(format!("{status}: {body}"))?;
            chain.refresh = refresh.to_owned();
            Ok(())
        }
        .await;
        record(&tally, "refresh", started, outcome);
    }
}

/// `pull_updates` with a 5 s wait, over and over.
async fn puller(
    http: reqwest::Client,
    base: String,
    token: String,
    deadline: Instant,
    tally: Shared,
) {
    while Instant::now() < deadline {
        let started = Instant::now();
        let outcome = call_tool(
            &http,
            &base,
            &token,
            "pull_updates",
            json!({"wait": 5, "limit": 100}),
        )
        .await;
        let outcome = outcome.and_then(|result| match result["updates"].as_array() {
            Some(_) => Ok(()),
            None => Err(format!("pull_updates: {result}")),
        });
        record(&tally, "pull_updates", started, outcome);
    }
}

/// An agent: long-polls for the next task, then reports progress and completion.
async fn agent(
    http: reqwest::Client,
    internal: String,
    token: String,
    until: Instant,
    tally: Shared,
) {
    while Instant::now() < until {
        let started = Instant::now();
        let claimed = http
            .get(format!("{internal}/agent/v1/tasks/next?wait=5"))
            .bearer_auth(&token)
            .send()
            .await;
        let task = match claimed {
            Ok(response) if response.status() == 204 => {
                record(&tally, "agent_next", started, Ok(()));
                continue;
            }
            Ok(response) if response.status() == 200 => {
                let body: Value = response.json().await.unwrap_or_default();
                record(&tally, "agent_next", started, Ok(()));
                body["task"]["id"].as_str().unwrap_or_default().to_owned()
            }
            Ok(response) => {
                record(
                    &tally,
                    "agent_next",
                    started,
                    Err(format!("{}", response.status())),
                );
                continue;
            }
            Err(error) => {
                record(&tally, "agent_next", started, Err(error.to_string()));
                continue;
            }
        };
        for (status, content) in [("in_progress", "working on it"), ("complete", "done")] {
            let started = Instant::now();
            let outcome = http
                .post(format!("{internal}/agent/v1/tasks/{task}/updates"))
                .bearer_auth(&token)
                .json(&json!({"status": status, "content": content}))
                .send()
                .await
                .map_err(|error| error.to_string())
                .and_then(|response| {
                    if response.status().is_success() {
                        Ok(())
                    } else {
                        Err(format!("{task} {status}: {}", response.status()))
                    }
                });
            record(&tally, "agent_update", started, outcome);
        }
    }
}

/// The person in the Telegram chat: answers every task the bot posts with `/done`.
async fn telegram_person(telegram: FakeTelegram, until: Instant) {
    let mut answered = HashSet::new();
    while Instant::now() < until {
        for post in telegram.sent() {
            if post.chat_id == TASK_CHAT
                && post.text.starts_with("Task #")
                && answered.insert(post.message_id)
            {
                telegram.user_says(
                    TASK_CHAT,
                    AGENT_USER,
                    "/done all green",
                    Some(post.message_id),
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
