//! What SECURITY.md promises about a crash: the binary, killed with SIGKILL in the middle of a
//! stream of sends, comes back with every task it acknowledged, and the token it issued before
//! still works (keys and grants are in the store, not in memory). And what a clean stop leaves:
//! the whole database in its file, nothing in SQLite's log for the next start to replay.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::serve_process::{ServeProcess, call_tool, printed_secret};

/// Writes `dir`'s `gateway.toml` (a free port, an internal listener, the store in `data`) and
/// issues a bearer token named `name` with the CLI, as an operator would before `serve`.
fn configure_with_token(dir: &Path, name: &str) -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    std::fs::write(
        dir.join("gateway.toml"),
        format!("listen = \"127.0.0.1:{port}\"\ninternal_listen = \"127.0.0.1:0\"\npublic_url = \"http://127.0.0.1:{port}\"\ndata_dir = \"data\"\nlog_format = \"json\"\n"),
    )
    .expect("config");
    printed_secret(
        Path::new(env!("CARGO_BIN_EXE_nexus-gateway")),
        dir,
        "gateway.toml",
        &["tokens", "issue", "--name", name],
    )
}

#[tokio::test]
async fn every_acknowledged_task_survives_a_kill_9_under_load() {
    let dir = TempDir::new().expect("dir");
    let token = configure_with_token(dir.path(), "crash");

    let gateway = ServeProcess::start(dir.path(), "gateway.toml", false).await;
    let base = format!("http://{}", gateway.public);
    let http = reqwest::Client::new();
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut senders = Vec::new();
    for sender in 0..8 {
        let (http, base, token, acknowledged) = (
            http.clone(),
            base.clone(),
            token.clone(),
            acknowledged.clone(),
        );
        senders.push(tokio::spawn(async move {
            for n in 0.. {
                let text = format!("crash test {sender}-{n}");
                let Ok(result) = call_tool(
                    &http,
                    &base,
                    &token,
                    "send_message",
                    json!({"message": text}),
                )
                .await
                else {
                    return; // the gateway is gone
                };
                let id = result["id"].as_str().expect("an id").to_owned();
                acknowledged.lock().unwrap().push(id);
            }
        }));
    }
    // Kill it mid-stream, once it has acknowledged a good number of sends.
    tokio::time::timeout(Duration::from_secs(60), async {
        while acknowledged.lock().unwrap().len() < 300 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("300 sends acknowledged within a minute");
    gateway.kill_9();
    for sender in senders {
        sender.await.expect("sender");
    }
    let acknowledged = acknowledged.lock().unwrap().clone();

    let gateway = ServeProcess::start(dir.path(), "gateway.toml", false).await;
    let base = format!("http://{}", gateway.public);
    let status = call_tool(&http, &base, &token, "queue_status", json!({}))
        .await
        .unwrap_or_else(|error| {
            panic!("the token issued before the crash must still work: {error}")
        });
    assert!(
        status["pending"].as_u64().expect("pending") >= acknowledged.len() as u64,
        "{} acknowledged, after the restart: {status}",
        acknowledged.len()
    );
    for id in &acknowledged {
        let message = call_tool(&http, &base, &token, "get_message", json!({"id": id}))
            .await
            .unwrap_or_else(|error| {
                panic!("task {id} was acknowledged, and is gone after kill -9: {error}")
            });
        assert_eq!(message["message"]["status"], "pending", "{message}");
    }
}

#[tokio::test]
async fn a_clean_stop_after_many_writes_leaves_nothing_to_replay() {
    let dir = TempDir::new().expect("dir");
    let token = configure_with_token(dir.path(), "stop");
    let gateway = ServeProcess::start(dir.path(), "gateway.toml", false).await;
    let base = format!("http://{}", gateway.public);
    let http = reqwest::Client::new();
    // About a database page per message: thousands of pages through the log.
    let mut senders = Vec::new();
    for sender in 0..8 {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        senders.push(tokio::spawn(async move {
            for n in 0..250 {
                let text = format!("{sender}-{n} {}", "x".repeat(3_500));
                call_tool(
                    &http,
                    &base,
                    &token,
                    "send_message",
                    json!({"message": text}),
                )
                .await
                .expect("queued");
            }
        }));
    }
    for sender in senders {
        sender.await.expect("sender");
    }
    let wal = dir.path().join("data").join("nexus-gateway.sqlite3-wal");
    assert!(std::fs::metadata(&wal).expect("a log while serving").len() > 0);
    let (status, logged) = gateway.terminate();
    assert!(status.success(), "{status}");
    // Lines go through the log thread: the last one, logged just before the exit, arrives.
    let last: Value = serde_json::from_str(logged.last().expect("lines at stop")).expect("JSON");
    let tail = &logged[logged.len().saturating_sub(5)..];
    assert_eq!(last["message"], "nexus-gateway stopped", "{tail:?}");
    let left = std::fs::metadata(&wal).map(|meta| meta.len()).unwrap_or(0);
    assert_eq!(left, 0, "a clean stop leaves nothing in the log to replay");
}
