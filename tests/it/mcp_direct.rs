//! Plain tool calls skip rmcp's per-request serve loop (`src/http/mcp/direct.rs`) and must be
//! answered exactly as rmcp's own stateless transport answers them. Each call here goes twice:
//! as a plain call, which takes the direct path, and with an `Origin` the allow-list holds,
//! which rmcp checks and so sends that copy through rmcp's transport.

use std::time::Duration;

use serde_json::{Value, json};

use crate::log_capture::LogCapture;
use crate::support::{TestApp, spawn_app};

/// Status, content type and JSON body of one `tools/call`.
async fn answer(
    app: &TestApp,
    token: &str,
    version: Option<&str>,
    origin: Option<&str>,
    body: &Value,
) -> (u16, String, Value) {
    let mut request = app
        .mcp_request_at(version)
        .bearer_auth(token)
        .body(body.to_string());
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    let response = request.send().await.expect("tools/call");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().expect("ascii").to_owned())
        .unwrap_or_default();
    let json = response.json().await.expect("a JSON answer");
    (status, content_type, json)
}

fn call(id: Value, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
}

#[tokio::test]
async fn a_plain_tool_call_is_answered_as_rmcps_transport_answers_it() {
    let app = spawn_app().await;
    let token = app.access_token("tasks:read tasks:write").await;
    let origin = app.url("");
    let text = "compare the direct path with rmcp's";
    let (_, _, sent) = answer(
        &app,
        &token,
        Some("2025-06-18"),
        None,
        &call(
            json!(1),
            json!({"name": "send_message", "arguments": {"message": text}}),
        ),
    )
    .await;
    let id = sent["result"]["structuredContent"]["id"]
        .as_str()
        .expect("a task id")
        .to_owned();

    let calls = [
        // Sending the same open text again finds the same task: the same answer both times.
        call(
            json!(2),
            json!({"name": "send_message", "arguments": {"message": text}}),
        ),
        call(json!("s-3"), json!({"name": "queue_status"})),
        call(
            json!(4),
            json!({"name": "get_message", "arguments": {"id": id}}),
        ),
        call(
            json!(5),
            json!({"name": "pull_updates", "arguments": {"since": "0"}}),
        ),
        // Errors: a task that does not exist, bad arguments, a tool that does not exist.
        call(
            json!(6),
            json!({"name": "get_message", "arguments": {"id": "0192e5a0-0000-7000-8000-000000000000"}}),
        ),
        call(
            json!(7),
            json!({"name": "send_message", "arguments": {"message": 5}}),
        ),
        call(json!(8), json!({"name": "no_such_tool"})),
    ];
    for version in [
        Some("2025-06-18"),
        Some("2025-11-25"),
        Some("2024-11-05"),
        None,
    ] {
        for body in &calls {
            let direct = answer(&app, &token, version, None, body).await;
            let through_rmcp = answer(&app, &token, version, Some(&origin), body).await;
            assert_eq!(direct, through_rmcp, "{version:?} {body}");
            assert_eq!(direct.0, 200, "{body}: {:?}", direct.2);
            assert_eq!(direct.2["id"], body["id"]);
        }
    }
}

#[tokio::test]
async fn a_direct_call_logs_inside_its_request_and_skips_rmcps_loop() {
    let logs = LogCapture::start();
    let app = spawn_app().await;
    let token = app.access_token("tasks:read tasks:write").await;
    let count = |needle: &str| {
        logs.text()
            .lines()
            .filter(|line| line.contains(needle))
            .count()
    };

    // The handler runs in a task of its own, and what it logs still belongs to the request.
    let send = call(
        json!(1),
        json!({"name": "send_message", "arguments": {"message": "where was this logged"}}),
    );
    let response = app
        .mcp_request()
        .bearer_auth(&token)
        .body(send.to_string())
        .send()
        .await
        .expect("send_message");
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let text = logs.text();
    let queued: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("message queued"))
        .collect();
    assert_eq!(queued.len(), 1, "{text}");
    assert!(queued[0].contains(&request_id), "{request_id}: {text}");

    // rmcp's serve loop warns of every call it answers with an error; a plain call never
    // reaches that loop, the copy with an Origin does.
    let unknown = call(json!(2), json!({"name": "no_such_tool"}));
    answer(&app, &token, Some("2025-06-18"), None, &unknown).await;
    assert_eq!(count("response error"), 0, "{}", logs.text());
    let origin = app.url("");
    answer(&app, &token, Some("2025-06-18"), Some(&origin), &unknown).await;
    assert_eq!(count("response error"), 1, "{}", logs.text());
}

/// A call still running when the gateway stops is answered by its handler: the stop cancels
/// the call's token, and a waiting pull answers with what it has (rmcp's transport answers such
/// a call 500 at once).
#[tokio::test]
async fn a_direct_call_running_at_a_stop_is_answered_by_its_handler() {
    let app = spawn_app().await;
    let token = app.access_token("tasks:read").await;
    let pull = call(
        json!(1),
        json!({"name": "pull_updates", "arguments": {"wait": 20, "since": "0"}}),
    );
    let request = app.mcp_request().bearer_auth(&token).body(pull.to_string());
    let pulling = tokio::spawn(request.send());
    // Let the pull start waiting before the stop comes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopping = tokio::spawn(app.stop());
    // The pull asked to wait 20 s; an answer within 10 s is one the stop ended.
    let response = tokio::time::timeout(Duration::from_secs(10), pulling)
        .await
        .expect("answered when the stop came")
        .expect("no panic")
        .expect("a response");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let reply: Value = response.json().await.expect("JSON");
    assert!(
        reply["result"]["structuredContent"]["updates"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "{reply}"
    );
    stopping.await.expect("the stop ends");
}
