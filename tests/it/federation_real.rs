//! Federation with real upstream MCP servers, installed by `scripts/test` at the versions pinned
//! in `tests/upstreams/` (`@modelcontextprotocol/server-everything` from npm, `mcp-server-time`
//! from PyPI). `#[ignore]`d for a plain `cargo test`; `scripts/test` runs them.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::fixture::{ready, until_status};
use crate::support::{Lifecycle, call_tool, spawn_app_with, tool_names, tool_text};

fn installed(relative: &str) -> PathBuf {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    assert!(
        path.exists(),
        "{} is missing: scripts/test installs the upstream servers",
        path.display()
    );
    path
}

fn everything() -> PathBuf {
    installed("tests/upstreams/node_modules/.bin/mcp-server-everything")
}

fn upstream(body: &str) -> nexus_gateway::config::upstreams::UpstreamConfig {
    nexus_gateway::config::Config::from_toml(&format!("[[upstreams]]\n{body}"))
        .expect("config")
        .upstreams
        .remove(0)
}

#[tokio::test]
#[ignore = "needs the npm upstream servers; run by scripts/test"]
async fn federation_real_server_everything_over_stdio_for_both_protocol_generations() {
    let config = upstream(&format!(
        "name = \"ev\"\ncommand = {:?}\nargs = [\"stdio\"]\nenv = {{ EVERYTHING_REGION = \"home\" }}\ntools = [{{ name = \"echo\" }}, {{ name = \"get-sum\", expose_as = \"sum\", scope = \"upstream:ev:math\" }}, {{ name = \"get-env\" }}, {{ name = \"trigger-sampling-request\" }}]\n",
        everything().display().to_string()
    ));
    let app = spawn_app_with(|gateway| gateway.upstreams = vec![config]).await;
    ready(&app, "ev").await;
    for lifecycle in [Lifecycle::Initialize, Lifecycle::Discover] {
        let client = app
            .mcp_client(
                &app.access_token("upstream:ev upstream:ev:math").await,
                lifecycle,
            )
            .await;
        // The sampling tool is registered only for clients that can sample: not for us.
        assert_eq!(tool_names(&client).await, ["ev_echo", "ev_get-env", "sum"]);
        assert_eq!(
            tool_text(&call_tool(&client, "ev_echo", json!({"message": "hi"})).await),
            "Echo: hi"
        );
        assert_eq!(
            tool_text(&call_tool(&client, "sum", json!({"a": 2, "b": 3})).await),
            "The sum of 2 and 3 is 5."
        );
    }
    let client = app
        .mcp_client(
            &app.access_token("upstream:ev").await,
            Lifecycle::Initialize,
        )
        .await;
    let env: Value = serde_json::from_str(&tool_text(
        &call_tool(&client, "ev_get-env", json!({})).await,
    ))
    .expect("json");
    let names: Vec<&String> = env.as_object().expect("object").keys().collect();
    assert!(
        names.iter().any(|name| *name == "EVERYTHING_REGION"),
        "{names:?}"
    );
    for name in names {
        assert!(
            ["PATH", "HOME", "LANG", "TZ", "EVERYTHING_REGION"].contains(&name.as_str()),
            "the server saw {name}"
        );
    }
}

#[tokio::test]
#[ignore = "needs the npm upstream servers; run by scripts/test"]
async fn federation_real_server_everything_over_http_comes_back_after_a_restart() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("port")
        .port();
    let start = || {
        tokio::process::Command::new(everything())
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .kill_on_drop(true)
            .stderr(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("server-everything starts")
    };
    let wait_listening = || async {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "server-everything did not listen"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let mut server = start();
    wait_listening().await;
    let config = upstream(&format!(
        "name = \"evh\"\nurl = \"http://127.0.0.1:{port}/mcp\"\ncall_timeout = \"10s\"\ntools = [{{ name = \"echo\" }}]\n"
    ));
    let app = spawn_app_with(|gateway| gateway.upstreams = vec![config]).await;
    ready(&app, "evh").await;
    let client = app
        .mcp_client(
            &app.access_token("upstream:evh").await,
            Lifecycle::Initialize,
        )
        .await;
    assert_eq!(
        tool_text(&call_tool(&client, "evh_echo", json!({"message": "one"})).await),
        "Echo: one"
    );
    server.kill().await.expect("kill");
    let down = call_tool(&client, "evh_echo", json!({"message": "two"})).await;
    assert_eq!(down.is_error, Some(true), "{}", tool_text(&down));
    assert!(
        tool_text(&down).contains("upstream evh"),
        "{}",
        tool_text(&down)
    );
    assert!(tool_names(&client).await.contains(&"evh_echo".to_owned()));
    // The failed call made the supervisor reconnect; with the server back it is ready again.
    until_status(&app, "evh", "left ready", |status| {
        *status != nexus_gateway::upstream::Status::Ready
    })
    .await;
    let _server = start();
    wait_listening().await;
    ready(&app, "evh").await;
    let back = call_tool(&client, "evh_echo", json!({"message": "three"})).await;
    assert_eq!(tool_text(&back), "Echo: three");
}

#[tokio::test]
#[ignore = "needs the PyPI upstream server; run by scripts/test"]
async fn federation_real_mcp_server_time_over_stdio() {
    let config = upstream(&format!(
        "name = \"time\"\ncommand = {:?}\ntools = [{{ name = \"get_current_time\" }}, {{ name = \"convert_time\" }}]\n",
        installed("target/upstream-venv/bin/mcp-server-time")
            .display()
            .to_string()
    ));
    let app = spawn_app_with(|gateway| gateway.upstreams = vec![config]).await;
    ready(&app, "time").await;
    let client = app
        .mcp_client(
            &app.access_token("upstream:time").await,
            Lifecycle::Discover,
        )
        .await;
    assert_eq!(
        tool_names(&client).await,
        ["time_convert_time", "time_get_current_time"]
    );
    let now = call_tool(&client, "time_get_current_time", json!({"timezone": "UTC"})).await;
    assert_ne!(now.is_error, Some(true), "{}", tool_text(&now));
    assert!(tool_text(&now).contains("UTC"), "{}", tool_text(&now));
    // A token without the scope sees none of them.
    let other = app
        .mcp_client(&app.access_token("tasks:read").await, Lifecycle::Initialize)
        .await;
    assert!(
        !tool_names(&other)
            .await
            .iter()
            .any(|name| name.starts_with("time_"))
    );
}
