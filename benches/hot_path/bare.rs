//! The baseline: a bare axum route that parses a JSON-RPC body and answers a given result, in
//! its own process (this benchmark run again with `--bare-server`), pinned like the gateway.

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use axum::Json;
use axum::body::Bytes;
use axum::routing::post;
use serde_json::{Value, json};

/// The argument that makes this program serve the bare route.
pub const FLAG: &str = "--bare-server";

/// The bare route's process.
pub struct Bare {
    child: Child,
    pub address: SocketAddr,
}

impl Bare {
    /// Starts the bare route answering `result`, pinned to `cores` when given.
    pub fn start(result: &Value, cores: Option<&str>) -> Self {
        let program = std::env::current_exe().expect("this program");
        let mut command = match cores {
            Some(list) => {
                let mut command = Command::new("taskset");
                command.args(["-c", list]).arg(&program);
                command
            }
            None => Command::new(&program),
        };
        let mut child = command
            .arg(FLAG)
            .env("BARE_RESULT", result.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the bare route");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the bare route's address");
        let address = line.trim().parse().expect("an address");
        Self { child, address }
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves the bare route until killed (the `--bare-server` mode).
pub fn serve() {
    let result: Value = serde_json::from_str(&std::env::var("BARE_RESULT").expect("BARE_RESULT"))
        .expect("BARE_RESULT json");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("{}", listener.local_addr().expect("address"));
        let route = post(move |body: Bytes| {
            let result = result.clone();
            async move {
                let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                Json(json!({"jsonrpc": "2.0", "id": request["id"], "result": result}))
            }
        });
        let app = axum::Router::new().route("/mcp", route);
        axum::serve(listener, app).await.expect("serve");
    });
}
