//! What an operator and a waiting client see: `/metrics` on the internal listener only, request
//! ids the gateway chose, and `pull_updates` waiting for the agent, streaming progress while it
//! waits.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Lifecycle, McpUser, call_tool_ok, spawn_app};

#[tokio::test]
async fn metrics_count_requests_tools_tokens_and_queue_depth_on_the_internal_listener_only() {
    let app = spawn_app().await;
    let token = app.access_token("tasks:read tasks:write").await;
    let client = app.mcp_client(&token, Lifecycle::Initialize).await;
    client.send_task("count me").await;
    call_tool_ok(&client, "queue_status", json!({})).await;
    let _ = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "rt_nope"),
            ("client_id", "c_nope"),
        ])
        .await;

    let metrics = app.metrics().await;
    for expected in [
        r#"nexus_tool_calls_total{tool="send_message",outcome="ok"} 1"#,
        r#"nexus_tool_calls_total{tool="queue_status",outcome="ok"} 1"#,
        r#"nexus_tokens_issued_total{grant_type="authorization_code"} 1"#,
        r#"nexus_token_failures_total{reason="invalid_client"} 1"#,
        r#"nexus_queue_messages{status="pending"} 1"#,
        r#"nexus_http_requests_total{route="/token",status="200"} 1"#,
        r#"nexus_http_requests_total{route="/mcp",status="200"}"#,
    ] {
        assert!(
            metrics.contains(expected),
            "missing {expected} in:\n{metrics}"
        );
    }
    assert!(!metrics.contains("count me"), "no message text in metrics");
    assert_eq!(
        app.http
            .get(app.url("/metrics"))
            .send()
            .await
            .expect("public")
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.http
            .get(format!("{}/readyz", app.internal_url))
            .send()
            .await
            .expect("ready")
            .status(),
        StatusCode::OK
    );
    // A path no route serves is counted under one label, never under the path it asked for
    // (which would make the label set as large as what scanners try).
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("nexus_http_requests_total{route=\"unmatched\",status=\"404\"} 1\n"),
        "the public 404 in:\n{metrics}"
    );
}

#[tokio::test]
async fn the_request_id_is_always_ours_and_a_clients_is_logged_apart() {
    let logs = crate::log_capture::LogCapture::start();
    let app = spawn_app().await;
    let response = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "evil")
        .send()
        .await
        .expect("healthz");
    let ours = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_ne!(ours, "evil", "a client may not choose the id our logs use");
    assert!(uuid::Uuid::parse_str(&ours).is_ok(), "{ours}");
    let long_id = "x".repeat(100);
    let long = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", &long_id)
        .send()
        .await
        .expect("healthz");
    assert_ne!(long.headers()["x-request-id"], long_id.as_str());

    let text = logs.text();
    assert!(
        text.contains(&format!(" request_id=\"{ours}\"")),
        "our id is in the span:\n{text}"
    );
    assert!(!text.contains(" request_id=\"evil\""), "{text}");
    assert!(text.contains("client_request_id=\"evil\""), "{text}");
    assert!(
        text.contains(&format!("client_request_id=\"{}\"", "x".repeat(64))),
        "kept to 64 characters: {text}"
    );
    assert!(!text.contains(&long_id), "{text}");
}

#[tokio::test]
async fn a_refused_ambiguous_path_is_logged_and_counted_like_any_other_400() {
    let logs = crate::log_capture::LogCapture::start();
    let app = spawn_app().await;
    let response = app
        .http
        .get(app.url("/mcp%2f..%2fhealthz"))
        .send()
        .await
        .expect("ambiguous");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let id = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let text = logs.text();
    assert!(
        text.lines()
            .any(|line| line.contains(&format!("request_id=\"{id}\""))
                && line.contains("served")
                && line.contains("status=400")),
        "an access line for {id}:\n{text}"
    );
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("nexus_http_requests_total{route=\"unmatched\",status=\"400\"} 1\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_waiting_pull_returns_as_soon_as_the_agent_reports() {
    let app = spawn_app().await;
    let token = app.access_token("tasks:read tasks:write").await;
    let client = app.mcp_client(&token, Lifecycle::Initialize).await;
    let sent = client.send_task("wait for me").await;
    client.pull(json!({})).await;
    let agent = app.add_agent("waiter", &["homelab"]).await;
    let waiting = {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "pull_updates", "arguments": {"wait": 20}}});
        let request = app.mcp_request().bearer_auth(&token).json(&body);
        tokio::spawn(async move {
            request
                .send()
                .await
                .expect("pull")
                .json::<Value>()
                .await
                .expect("json")
        })
    };
    assert_eq!(app.agent_next(&agent, 0).await.status(), StatusCode::OK);
    // The pull asked to wait 20 s; an answer within 10 s is one the report woke.
    let reply = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("answered before the wait ran out")
        .expect("task");
    let updates = reply["result"]["structuredContent"]["updates"]
        .as_array()
        .expect("updates")
        .clone();
    assert_eq!(
        updates.first().map(|update| update["message_id"].clone()),
        Some(sent["id"].clone())
    );
    assert_eq!(
        updates.first().map(|update| update["status"].clone()),
        Some(json!("acknowledged"))
    );
}

#[tokio::test]
async fn a_waiting_pull_with_a_progress_token_streams_progress_before_the_result() {
    let app = spawn_app().await;
    let token = app.access_token("tasks:read").await;
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "pull_updates", "arguments": {"wait": 3}, "_meta": {"progressToken": "p-1"}}});
    let response = app
        .mcp_request()
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .expect("pull");
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let stream = response.text().await.expect("stream");
    let progress = stream
        .find("notifications/progress")
        .expect("a progress event");
    let result = stream.find("\"result\"").expect("the result");
    assert!(progress < result, "progress comes first:\n{stream}");
    assert!(stream.contains("waiting for the agent"));
}
