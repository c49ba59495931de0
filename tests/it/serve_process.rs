//! The real binary's `serve` as its own process, for the tests that need a process to kill or to
//! configure as an operator would: started on a data directory with a configuration file, its
//! listeners' addresses read from its JSON log, killed when the test ends however it ends; and
//! a plain-HTTP `tools/call` for talking to it (the soak bench includes this file too).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

/// A running `nexus-gateway serve`.
pub struct ServeProcess {
    child: Child,
    /// The public listener.
    pub public: SocketAddr,
    /// The internal listener, when the configuration has one.
    pub internal: Option<SocketAddr>,
    /// The log lines after the ones `start` read.
    logged: std::sync::mpsc::Receiver<String>,
}

impl ServeProcess {
    /// Runs `serve` with `config` (a file name relative to `dir`, which is the working
    /// directory) and waits until the public listener is up, and the internal one when
    /// `wait_for_internal`. No `NEXUS_*` variable of the test's environment leaks in.
    pub async fn start(dir: &Path, config: &str, wait_for_internal: bool) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_nexus-gateway"));
        command
            .args(["--config", config, "serve"])
            .current_dir(dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("NEXUS_")) {
            command.env_remove(name);
        }
        let mut child = command.spawn().expect("the binary starts");
        // The logs (JSON lines on stderr) say which ports the listeners got.
        let stderr = child.stderr.take().expect("stderr");
        let (lines, logged) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Keep reading after the test stops listening: a closed pipe would fail the
            // gateway's next log write.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let (public, internal, logged) = tokio::task::spawn_blocking(move || {
            let (mut public, mut internal, mut seen) = (None, None, Vec::new());
            while let Ok(line) = logged.recv_timeout(Duration::from_secs(30)) {
                if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) {
                    let address = event["address"].as_str().and_then(|a| a.parse().ok());
                    match event["message"].as_str() {
                        Some("internal listener (agent API, metrics) up") => internal = address,
                        Some("nexus-gateway listening") => public = address,
                        _ => {}
                    }
                }
                seen.push(line);
                if let Some(public) = public
                    && (internal.is_some() || !wait_for_internal)
                {
                    return (public, internal, logged);
                }
            }
            panic!(
                "the gateway did not report its listeners:\n{}",
                seen.join("\n")
            )
        })
        .await
        .expect("the listeners are up");
        Self {
            child,
            public,
            internal,
            logged,
        }
    }

    /// The next JSON log line `wanted` accepts, waiting up to 10 s for it.
    pub fn log_line(&self, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            let Ok(line) = self.logged.recv_timeout(left) else {
                break;
            };
            if let Ok(event) = serde_json::from_str::<Value>(&line)
                && wanted(&event)
            {
                return event;
            }
            seen.push(line);
        }
        panic!("no such log line in:\n{}", seen.join("\n"))
    }

    /// SIGTERM, as systemd stops a service, and waits for the exit (30 s at most: a stop that
    /// hangs fails the test instead of hanging it); the exit status and the lines logged since
    /// those read, the last ones included (they are written by a thread of their own).
    pub fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("the gateway's status") {
                // The reader thread ends when the pipe closes, which it has (unless a child of
                // the gateway still holds it: hence the same deadline).
                let lines = std::iter::from_fn(|| {
                    let left = deadline.checked_duration_since(std::time::Instant::now())?;
                    self.logged
                        .recv_timeout(left.min(Duration::from_secs(5)))
                        .ok()
                })
                .collect();
                return (status, lines);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the gateway did not stop within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as the OOM killer or a power cut of the process would: no clean-up runs.
    pub fn kill_9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `tools/call` over plain HTTP, as any MCP client sends it; the structured result, or what
/// went wrong (a transport error, a non-2xx answer, a JSON-RPC error or a tool error).
pub async fn call_tool(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    name: &str,
    arguments: Value,
) -> Result<Value, String> {
    let response = http
        .post(format!("{base}/mcp"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}}))
        .send()
        .await
        .map_err(|error| format!("{name}: {error}"))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|error| format!("{name}: {status}: {error}"))?;
    if !status.is_success() || body["result"]["isError"] == true || body.get("error").is_some() {
        return Err(format!("{name}: {status}: {body}"));
    }
    Ok(body["result"]["structuredContent"].clone())
}

/// Runs an operator command of `binary` (`tokens issue`, `agents add`, ...) in `dir` with the
/// configuration file `config`, checks it succeeded, and returns the first line it printed:
/// the secret such commands show once.
pub fn printed_secret(binary: &Path, dir: &Path, config: &str, args: &[&str]) -> String {
    let output = Command::new(binary)
        .args(["--config", config])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the operator command runs");
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .next()
        .expect("a first line")
        .trim()
        .to_owned()
}
