//! The gateway under test: the release binary in its own process (so its memory and its cores
//! are its own), on a fresh data dir, and the real OAuth flow that gets the benchmark its tokens.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use serde_json::Value;

use crate::load;

/// A running gateway process.
pub struct Gateway {
    child: Child,
    pub public: SocketAddr,
    pub internal: SocketAddr,
    pub data_dir: PathBuf,
    /// Time from spawning the process to the first `/readyz` 200.
    pub ready_after: Duration,
}

/// Where a gateway keeps its store and the URL it answers as; by default its own SQLite file
/// and its own address.
#[derive(Debug, Default, Clone, Copy)]
pub struct Placement<'a> {
    /// A `postgres://` URL, for the store in PostgreSQL.
    pub database_url: Option<&'a str>,
    /// Another gateway's public URL, for a replica behind the same name.
    pub public_url: Option<&'a str>,
}

/// A port nobody is using right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

impl Gateway {
    /// Starts the gateway on `data_dir` (created if new), pinned to `cores` when given
    /// (a `taskset` CPU list), and waits until it is ready.
    pub async fn start(binary: &Path, data_dir: &Path, cores: Option<&str>) -> Self {
        Self::start_with(binary, data_dir, cores, "").await
    }

    /// `start` with `extra` appended to the configuration file (targets, say).
    pub async fn start_with(
        binary: &Path,
        data_dir: &Path,
        cores: Option<&str>,
        extra: &str,
    ) -> Self {
        Self::start_placed(binary, data_dir, cores, &Placement::default(), extra).await
    }

    /// `start_with` on the store and public URL `placement` names (replicas share both).
    pub async fn start_placed(
        binary: &Path,
        data_dir: &Path,
        cores: Option<&str>,
        placement: &Placement<'_>,
        extra: &str,
    ) -> Self {
        let public = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let internal = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let public_url = placement
            .public_url
            .map_or_else(|| format!("http://{public}"), str::to_owned);
        let database_url = placement
            .database_url
            .map(|url| format!("database_url = \"{url}\"\n"))
            .unwrap_or_default();
        let config = format!(
            r#"listen = "{public}"
public_url = "{public_url}"
{database_url}data_dir = "{data}"
internal_listen = "{internal}"
approval = "auto"
log_format = "json"

[limits]
register_per_minute = 100000
authorize_per_minute = 100000
token_per_minute = 10000000
{extra}"#,
            data = data_dir.display()
        );
        std::fs::create_dir_all(data_dir).expect("data dir");
        let config_path = Self::config_path(data_dir);
        std::fs::write(&config_path, config).expect("config");
        // The log goes to a file, as it would to journald: its cost is part of the measurement.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.join("gateway.log"))
            .expect("log file");
        let mut command = match cores {
            Some(list) => {
                let mut command = Command::new("taskset");
                command.args(["-c", list]).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        command
            .arg("--config")
            .arg(&config_path)
            .arg("serve")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let started = Instant::now();
        let child = command.spawn().expect("spawn the gateway");
        let mut gateway = Self {
            child,
            public,
            internal,
            data_dir: data_dir.to_path_buf(),
            ready_after: Duration::ZERO,
        };
        gateway.ready_after = gateway.wait_ready(started).await;
        gateway
    }

    /// Where the configuration file of a gateway on `data_dir` is written.
    pub fn config_path(data_dir: &Path) -> PathBuf {
        data_dir.join("bench.toml")
    }

    async fn wait_ready(&mut self, started: Instant) -> Duration {
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                panic!(
                    "the gateway exited with {status}; see its log in {}",
                    self.data_dir.display()
                );
            }
            let request = Request::get("/readyz")
                .header("host", self.internal.to_string())
                .body(Full::new(Bytes::new()))
                .expect("request");
            if let Some((200, _)) = load::once(self.internal, request).await {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the gateway never got ready"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory, in MiB.
    pub fn resident_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc status");
        proc_mib(&status, "VmRSS:").expect("VmRSS")
    }

    /// Bytes the gateway has logged so far.
    pub fn log_bytes(&self) -> u64 {
        std::fs::metadata(self.data_dir.join("gateway.log"))
            .map(|meta| meta.len())
            .unwrap_or(0)
    }

    /// Stops the process with SIGTERM, as a service manager would, and waits for it.
    pub fn stop(mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = self.child.wait();
    }

    /// The base URL of the public side.
    pub fn base(&self) -> String {
        format!("http://{}", self.public)
    }
}

/// A `Name:   1234 kB` field of a `/proc/<pid>/` file, in MiB.
pub fn proc_mib(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map(|kib| kib / 1024.0)
}

/// An access token and its refresh token, from the real flow.
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub client_id: String,
}

/// Register (RFC 7591), authorize with PKCE (approval "auto" answers at once), exchange.
pub async fn oauth_flow(http: &reqwest::Client, gateway: &Gateway) -> Tokens {
    let base = gateway.base();
    let redirect_uri = "http://127.0.0.1/callback";
    let registered: Value = http
        .post(format!("{base}/register"))
        .json(&serde_json::json!({
            "redirect_uris": [redirect_uri],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "client_name": "hot path bench",
        }))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("registration json");
    let client_id = registered["client_id"]
        .as_str()
        .expect("client_id")
        .to_owned();
    let (challenge, verifier) = oauth2::PkceCodeChallenge::new_random_sha256();
    let resource = format!("{base}/mcp");
    let authorized = http
        .get(format!("{base}/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", redirect_uri),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("state", "bench"),
            ("scope", "tasks:read tasks:write"),
            ("resource", &resource),
        ])
        .send()
        .await
        .expect("authorize");
    let location = authorized
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .expect("a redirect with the code")
        .to_owned();
    let code = url::Url::parse(&location)
        .expect("location")
        .query_pairs()
        .find(|(name, _)| name == "code")
        .map(|(_, value)| value.into_owned())
        .expect("code");
    let tokens: Value = http
        .post(format!("{base}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", verifier.secret()),
            ("redirect_uri", redirect_uri),
            ("client_id", &client_id),
            ("resource", &resource),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token json");
    Tokens {
        access: tokens["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned(),
        refresh: tokens["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_owned(),
        client_id,
    }
}

/// A `tools/call` request for `/mcp`.
pub fn tool_call(
    gateway: SocketAddr,
    token: &str,
    id: u64,
    name: &str,
    arguments: Value,
) -> Request<Full<Bytes>> {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": arguments}});
    Request::post("/mcp")
        .header("host", gateway.to_string())
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-06-18")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request")
}
