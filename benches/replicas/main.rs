//! The store engines against each other, in one run on one machine: `tools/call queue_status`
//! (concurrency 64) and durable `send_message` (concurrency 16, distinct texts) on the SQLite
//! default, on PostgreSQL with one replica, and on PostgreSQL with two replicas sharing the
//! load (half the connections each, throughput summed). Setups alternate within each round so
//! the machine's drift hits them alike; the table shows medians and ratios to SQLite.
//!
//! `cargo build --release && cargo bench --bench replicas [-- --seconds N --rounds N]`. It starts
//! a throwaway PostgreSQL with `scripts/postgres` (or uses `POSTGRES_BENCH_URL`, a superuser URL).
//! Not a test: the figures go in BENCHMARKS.md.

// A benchmark stops at the first thing that is not as it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../hot_path/gateway.rs"]
#[allow(dead_code)]
mod gateway;
#[path = "../hot_path/load.rs"]
#[allow(dead_code)]
mod load;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use gateway::{Gateway, Placement, oauth_flow, tool_call};
use load::{MakeRequest, Run};

struct Options {
    seconds: u64,
    rounds: usize,
    binary: PathBuf,
}

fn options() -> Options {
    let mut options = Options {
        seconds: 5,
        rounds: 3,
        binary: Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/nexus-gateway"),
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
            "--gateway" => options.binary = args.next().expect("--gateway BINARY").into(),
            _ => {}
        }
    }
    options
}

/// A throwaway PostgreSQL server (scripts/postgres), stopped when dropped.
struct Postgres {
    url: String,
    dir: Option<PathBuf>,
}

impl Postgres {
    fn start() -> Self {
        if let Ok(url) = std::env::var("POSTGRES_BENCH_URL") {
            return Self { url, dir: None };
        }
        let dir = std::env::temp_dir().join(format!("nexus-bench-pg-{}", std::process::id()));
        let output = std::process::Command::new(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/postgres"),
        )
        .arg("start")
        .arg(&dir)
        .output()
        .expect("scripts/postgres runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let url = String::from_utf8(output.stdout)
            .expect("utf-8")
            .trim()
            .to_owned();
        Self {
            url,
            dir: Some(dir),
        }
    }

    /// A new empty database on the server.
    fn database(&self, name: &str) -> String {
        let status = std::process::Command::new("psql")
            .arg(&self.url)
            .args(["-qc", &format!("CREATE DATABASE {name}")])
            .status()
            .expect("psql runs");
        assert!(status.success(), "create database {name}");
        let mut url = url::Url::parse(&self.url).expect("url");
        url.set_path(name);
        url.to_string()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::process::Command::new(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/postgres"),
            )
            .arg("stop")
            .arg(dir)
            .status();
        }
    }
}

/// One setup under measurement: its gateways (one, or two replicas) and a token.
struct Setup {
    name: &'static str,
    gateways: Vec<Gateway>,
    token: Arc<str>,
}

impl Setup {
    async fn start(
        name: &'static str,
        binary: &Path,
        scratch: &Path,
        database_url: Option<&str>,
        replicas: usize,
    ) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let first = Gateway::start_placed(
            binary,
            &scratch.join(format!("{name}-0")),
            None,
            &Placement {
                database_url,
                public_url: None,
            },
            "",
        )
        .await;
        let public_url = first.base();
        let mut gateways = vec![first];
        for index in 1..replicas {
            gateways.push(
                Gateway::start_placed(
                    binary,
                    &scratch.join(format!("{name}-{index}")),
                    None,
                    &Placement {
                        database_url,
                        public_url: Some(&public_url),
                    },
                    "",
                )
                .await,
            );
        }
        let token: Arc<str> = oauth_flow(&http, &gateways[0]).await.access.into();
        Self {
            name,
            gateways,
            token,
        }
    }

    /// `connections` closed loops split over the replicas, run at once; throughput summed,
    /// latencies of the first replica's share.
    async fn run(
        &self,
        connections: usize,
        seconds: u64,
        make: impl Fn(SocketAddr, u64) -> MakeRequest,
    ) -> Run {
        let share = connections / self.gateways.len();
        // Every replica's share runs at the same time.
        let shares: Vec<_> = self
            .gateways
            .iter()
            .enumerate()
            .map(|(index, gateway)| {
                tokio::spawn(load::run(
                    gateway.public,
                    share,
                    Duration::from_secs(seconds),
                    make(gateway.public, index as u64 * 1_000_000_000),
                ))
            })
            .collect();
        let mut runs = Vec::new();
        for share in shares {
            runs.push(share.await.expect("load"));
        }
        let mut total = runs[0];
        for run in &runs[1..] {
            total.requests += run.requests;
            total.failures += run.failures;
            total.per_second += run.per_second;
        }
        total
    }
}

fn main() {
    let options = options();
    assert!(
        options.binary.exists(),
        "build it first: cargo build --release ({})",
        options.binary.display()
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(measure(options));
}

async fn measure(options: Options) {
    let postgres = Postgres::start();
    let scratch = tempfile::TempDir::new().expect("scratch");
    let one_db = postgres.database("bench_one");
    let two_db = postgres.database("bench_two");
    let setups = [
        Setup::start("sqlite", &options.binary, scratch.path(), None, 1).await,
        Setup::start(
            "postgres",
            &options.binary,
            scratch.path(),
            Some(&one_db),
            1,
        )
        .await,
        Setup::start(
            "postgres x2",
            &options.binary,
            scratch.path(),
            Some(&two_db),
            2,
        )
        .await,
    ];
    let mut status: Vec<Vec<Run>> = vec![Vec::new(); setups.len()];
    let mut sends: Vec<Vec<Run>> = vec![Vec::new(); setups.len()];
    for round in 0..options.rounds {
        for (index, setup) in setups.iter().enumerate() {
            let token = setup.token.clone();
            let run = setup
                .run(64, options.seconds, |address, _| {
                    let token = token.clone();
                    Arc::new(move |id| tool_call(address, &token, id, "queue_status", json!({})))
                })
                .await;
            status[index].push(run);
            let token = setup.token.clone();
            let run = setup
                .run(16, options.seconds, |address, offset| {
                    let token = token.clone();
                    let first = offset + round as u64 * 100_000_000;
                    Arc::new(move |id| {
                        tool_call(
                            address,
                            &token,
                            id,
                            "send_message",
                            json!({"message": format!("bench task {}", first + id)}),
                        )
                    })
                })
                .await;
            sends[index].push(run);
            eprintln!(
                "round {round} {}: queue_status {:.0}/s, send_message {:.0}/s",
                setup.name,
                status[index].last().map_or(0.0, |r| r.per_second),
                sends[index].last().map_or(0.0, |r| r.per_second)
            );
        }
    }
    println!(
        "| setup | queue_status c64 (req/s) | p99 (µs) | vs SQLite | send_message c16 (msg/s) | p99 (µs) | vs SQLite | failures |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let base_status = median(&status[0]).per_second;
    let base_sends = median(&sends[0]).per_second;
    for (index, setup) in setups.iter().enumerate() {
        let (s, m) = (median(&status[index]), median(&sends[index]));
        println!(
            "| {} | {:.0} | {} | {:.2} | {:.0} | {} | {:.2} | {} |",
            setup.name,
            s.per_second,
            s.p99_us,
            s.per_second / base_status,
            m.per_second,
            m.p99_us,
            m.per_second / base_sends,
            status[index]
                .iter()
                .chain(&sends[index])
                .map(|run| run.failures)
                .sum::<u64>()
        );
    }
    for setup in setups {
        for gateway in setup.gateways {
            gateway.stop();
        }
    }
}

fn median(runs: &[Run]) -> Run {
    let mut sorted = runs.to_vec();
    sorted.sort_by(|a, b| a.per_second.total_cmp(&b.per_second));
    sorted[sorted.len() / 2]
}
