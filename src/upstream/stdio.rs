//! stdio upstreams: the child runs under a small shim (this binary's hidden `upstream-shim`
//! command) as the leader of its own process group, with a cleared environment. The whole group
//! is killed when the connection is dropped, and the shim kills it if the gateway dies without
//! cleaning up (SIGKILL): it watches its parent. So neither the server nor a grandchild under
//! npx, uvx or a shell outlives the gateway. Stderr goes to the log line by line, capped.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Pid, getpgrp};
use rmcp::transport::TokioChildProcess;
use tokio::io::AsyncReadExt;
use tokio::process::ChildStderr;

use crate::config::upstreams::UpstreamConfig;

/// The hidden subcommand that runs an upstream under the shim.
pub const SHIM_SUBCOMMAND: &str = "upstream-shim";
/// The only variables of the gateway's environment a child sees (besides its own `env`).
const PASSED_VARIABLES: [&str; 4] = ["PATH", "HOME", "LANG", "TZ"];
/// Longest stderr line logged; the rest of it is dropped.
const MAX_STDERR_LINE: usize = 1024;
/// Stderr lines logged per window, at most; a chatty or hostile child cannot flood the log.
const MAX_STDERR_LINES_PER_SECOND: u32 = 20;
/// The rate cap's window.
const STDERR_RATE_WINDOW: Duration = Duration::from_secs(1);
/// How often the shim checks that the gateway is still its parent.
const SHIM_WATCH_INTERVAL: Duration = Duration::from_millis(200);

/// Kills the upstream's whole process group when dropped.
#[derive(Debug)]
pub struct ProcessGroupGuard(Option<i32>);

impl Drop for ProcessGroupGuard {
    fn drop(&mut self) {
        if let Some(leader) = self.0 {
            // The group may be gone already; nothing else can be done about an error here.
            let _ = killpg(Pid::from_raw(leader), Signal::SIGKILL);
        }
    }
}

/// Starts `config`'s server under `shim` (this binary); returns the MCP transport, the group
/// guard, and the child's stderr.
pub fn spawn(
    config: &UpstreamConfig,
    command: &Path,
    shim: &Path,
) -> std::io::Result<(TokioChildProcess, ProcessGroupGuard, Option<ChildStderr>)> {
    let mut wrapped = tokio::process::Command::new(shim);
    wrapped
        .arg(SHIM_SUBCOMMAND)
        .arg("--")
        .arg(command)
        .args(&config.args)
        .env_clear()
        .process_group(0)
        .kill_on_drop(true);
    for name in PASSED_VARIABLES {
        if let Some(value) = std::env::var_os(name) {
            wrapped.env(name, value);
        }
    }
    wrapped.envs(&config.env);
    let (transport, stderr) = TokioChildProcess::builder(wrapped)
        .stderr(Stdio::piped())
        .spawn()?;
    let leader = transport.id().and_then(|pid| i32::try_from(pid).ok());
    Ok((transport, ProcessGroupGuard(leader), stderr))
}

/// Logs an upstream's stderr, one event per line, with the line length and rate capped. The
/// lines over the rate are counted, and the count is logged when their second is over, even if
/// the child says nothing more (a crash's last burst is the one that matters).
pub fn forward_stderr(upstream: String, mut stderr: ChildStderr) {
    tokio::spawn(async move {
        let mut buffer = [0u8; 4096];
        let mut line = Vec::new();
        let mut truncated = false;
        let mut log = StderrLog::new(upstream);
        loop {
            let read = if log.dropped > 0 {
                let window_end = log.window + STDERR_RATE_WINDOW;
                match tokio::time::timeout_at(window_end, stderr.read(&mut buffer)).await {
                    Ok(read) => read,
                    Err(_) => {
                        log.next_window();
                        continue;
                    }
                }
            } else {
                stderr.read(&mut buffer).await
            };
            let Ok(read @ 1..) = read else {
                break;
            };
            for &byte in &buffer[..read] {
                if byte != b'\n' {
                    if line.len() < MAX_STDERR_LINE {
                        line.push(byte);
                    } else {
                        truncated = true;
                    }
                    continue;
                }
                log.line(&line, truncated);
                line.clear();
                truncated = false;
            }
        }
        // A last line without its newline (a crash mid-write) is still a line.
        if !line.is_empty() {
            log.line(&line, truncated);
        }
        log.report_dropped();
    });
}

/// The rate cap's state: lines logged and dropped in the current one-second window.
struct StderrLog {
    upstream: String,
    window: tokio::time::Instant,
    logged: u32,
    dropped: u32,
}

impl StderrLog {
    fn new(upstream: String) -> Self {
        Self {
            upstream,
            window: tokio::time::Instant::now(),
            logged: 0,
            dropped: 0,
        }
    }

    /// Logs one line, or counts it as dropped when this second's allowance is spent.
    fn line(&mut self, line: &[u8], truncated: bool) {
        if self.window.elapsed() >= STDERR_RATE_WINDOW {
            self.next_window();
        }
        if self.logged < MAX_STDERR_LINES_PER_SECOND {
            self.logged += 1;
            let text = String::from_utf8_lossy(line);
            tracing::info!(upstream = %self.upstream, truncated, "upstream stderr: {}", text.trim_end());
        } else {
            self.dropped += 1;
        }
    }

    /// Reports the window's dropped lines and starts a new window.
    fn next_window(&mut self) {
        self.report_dropped();
        self.window = tokio::time::Instant::now();
        (self.logged, self.dropped) = (0, 0);
    }

    /// Logs how many stderr lines the rate cap dropped, if any.
    fn report_dropped(&self) {
        if self.dropped > 0 {
            tracing::warn!(upstream = %self.upstream, dropped = self.dropped, "upstream stderr lines dropped (rate cap)");
        }
    }
}

/// The shim: runs `command` in this process group, passes its exit code on, and kills the
/// whole group if the gateway (its parent) goes away. Returns the exit code.
pub fn run_shim(command: &OsStr, args: &[OsString]) -> i32 {
    let parent = std::os::unix::process::parent_id();
    let mut child = match std::process::Command::new(command).args(args).spawn() {
        Ok(child) => child,
        Err(error) => {
            eprintln!("nexus-gateway upstream-shim: cannot start {command:?}: {error}");
            return 127;
        }
    };
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.code().unwrap_or(1),
            Ok(None) => {}
            Err(_) => return 1,
        }
        if std::os::unix::process::parent_id() != parent {
            // Orphaned: the gateway died without stopping us. Take the whole group down.
            let _ = killpg(getpgrp(), Signal::SIGKILL);
            return 1;
        }
        std::thread::sleep(SHIM_WATCH_INTERVAL);
    }
}
