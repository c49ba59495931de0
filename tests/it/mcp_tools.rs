//! `/mcp` end to end: a token from the OAuth flow, rmcp's own client for both protocol
//! generations, an agent on the agent API, and `pull_updates` following along.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{
    Lifecycle, McpUser, TestApp, call_tool, call_tool_ok, spawn_app, spawn_in, tool_names,
    tool_text,
};

const BOTH_SCOPES: &str = "tasks:read tasks:write";

/// Pulls with no arguments and returns (status or content) per update.
async fn pull(client: &crate::support::McpClient) -> Vec<Value> {
    let pulled = client.pull(json!({})).await;
    pulled["updates"].as_array().expect("updates").clone()
}

async fn round_trip(app: &TestApp, lifecycle: Lifecycle, text: &str) {
    let token = app.access_token(BOTH_SCOPES).await;
    let client = app.mcp_client(&token, lifecycle).await;
    let tools = tool_names(&client).await;
    assert_eq!(
        tools,
        [
            "cancel_message",
            "get_message",
            "pull_updates",
            "queue_status",
            "send_message",
        ]
    );

    let sent = client.send_task(text).await;
    assert_eq!(sent["queued"], true);
    assert_eq!(sent["target"], "homelab");
    assert_eq!(sent["status"], "pending");
    let id = sent["id"].as_str().expect("id").to_owned();

    // Nothing in progress yet: the key is there, null (the seed's contract).
    let idle = call_tool_ok(&client, "queue_status", json!({})).await;
    assert_eq!(idle.get("current_task"), Some(&Value::Null), "{idle}");
    let agent = app
        .add_agent(&format!("agent-{}", &id[..8]), &["homelab"])
        .await;
    let claimed: Value = app.agent_next(&agent, 0).await.json().await.expect("task");
    assert_eq!(claimed["task"]["id"], id.as_str());
    assert_eq!(claimed["task"]["content"], text);
    assert_eq!(claimed["task"]["status"], "acknowledged");
    let working = app
        .agent_update(
            &agent,
            &id,
            json!({"content": "on it", "status": "in_progress"}),
        )
        .await;
    assert_eq!(working.status(), StatusCode::CREATED);
    let status = call_tool_ok(&client, "queue_status", json!({})).await;
    assert_eq!(status["in_progress"], 1);
    assert_eq!(status["current_task"]["id"], id.as_str());
    assert_eq!(
        app.agent_update(&agent, &id, json!({"content": "halfway"}))
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        app.agent_update(
            &agent,
            &id,
            json!({"content": "done: 42", "status": "complete"})
        )
        .await
        .status(),
        StatusCode::CREATED
    );

    // Each step exactly once, in order, then nothing new.
    let updates = pull(&client).await;
    let steps: Vec<(Value, Value)> = updates
        .iter()
        .map(|update| (update["status"].clone(), update["content"].clone()))
        .collect();
    assert_eq!(
        steps,
        vec![
            (json!("pending"), json!("queued")),
            (
                json!("acknowledged"),
                json!(format!("claimed by agent agent-{}", &id[..8]))
            ),
            (json!("in_progress"), json!("on it")),
            (Value::Null, json!("halfway")),
            (json!("complete"), json!("done: 42")),
        ]
    );
    let seqs: Vec<i64> = updates
        .iter()
        .map(|update| update["seq"].as_i64().expect("seq"))
        .collect();
    assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "{seqs:?}");
    assert!(
        updates
            .iter()
            .all(|update| update["message_id"] == id.as_str())
    );
    assert!(pull(&client).await.is_empty(), "nothing is delivered twice");

    let detail = call_tool_ok(&client, "get_message", json!({"id": id})).await;
    assert_eq!(detail["message"]["status"], "complete");
    assert!(detail["message"]["finished_at"].is_string());
    assert_eq!(detail["updates"].as_array().map(Vec::len), Some(5));
    client.cancel().await.expect("close");
}

#[tokio::test]
async fn a_task_goes_out_and_its_replies_come_back_with_the_initialize_lifecycle() {
    let app = spawn_app().await;
    round_trip(&app, Lifecycle::Initialize, "check the backups").await;
}

#[tokio::test]
async fn a_task_goes_out_and_its_replies_come_back_with_the_2026_lifecycle() {
    let app = spawn_app().await;
    round_trip(&app, Lifecycle::Discover, "rotate the logs").await;
}

#[tokio::test]
async fn tool_results_carry_structured_content_text_and_an_output_schema() {
    let app = spawn_app().await;
    let token = app.access_token(BOTH_SCOPES).await;
    let client = app.mcp_client(&token, Lifecycle::Initialize).await;
    let tools = client.list_all_tools().await.expect("tools/list");
    for tool in &tools {
        assert!(
            tool.output_schema.is_some(),
            "{} has no output schema",
            tool.name
        );
        assert!(
            tool.description
                .as_ref()
                .is_some_and(|description| description.len() > 80),
            "{} needs a real description",
            tool.name
        );
    }
    let result = call_tool(&client, "queue_status", json!({})).await;
    let text: Value = serde_json::from_str(&tool_text(&result)).expect("the text is the same JSON");
    assert_eq!(Some(text), result.structured_content);
    let info = client.peer_info().expect("server info");
    assert!(
        info.instructions
            .as_deref()
            .is_some_and(|text| text.contains("homelab"))
    );
}

#[tokio::test]
async fn fifty_concurrent_identical_sends_queue_exactly_one_message() {
    let app = spawn_app().await;
    let token = app.access_token(BOTH_SCOPES).await;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "send_message", "arguments": {"message": "same text"}}})
    .to_string();
    // Fifty independent HTTP requests in flight at once: the server sees real concurrency.
    let sends: Vec<_> = (0..50)
        .map(|_| {
            let request = app.mcp_request().bearer_auth(&token).body(body.clone());
            tokio::spawn(async move {
                request
                    .send()
                    .await
                    .expect("send")
                    .json::<Value>()
                    .await
                    .expect("json")
            })
        })
        .collect();
    let mut results = Vec::new();
    for send in sends {
        results.push(send.await.expect("task")["result"]["structuredContent"].clone());
    }
    let queued: Vec<&Value> = results
        .iter()
        .filter(|result| result["queued"] == true)
        .collect();
    assert_eq!(queued.len(), 1, "exactly one queued: {results:?}");
    let id = queued[0]["id"].clone();
    for duplicate in results.iter().filter(|result| result["queued"] == false) {
        assert_eq!(duplicate["reason"], "duplicate");
        assert_eq!(duplicate["id"], id, "duplicates name the open message");
    }
    assert_eq!(
        results
            .iter()
            .filter(|result| result["queued"] == false)
            .count(),
        49
    );
    let client = app.mcp_client(&token, Lifecycle::Initialize).await;
    assert_eq!(
        call_tool_ok(&client, "queue_status", json!({})).await["pending"],
        1
    );
    // Once finished, the same text may be sent again.
    let agent = app.add_agent("finisher", &["homelab"]).await;
    app.agent_next(&agent, 0).await;
    app.agent_update(
        &agent,
        id.as_str().expect("id"),
        json!({"content": "ok", "status": "complete"}),
    )
    .await;
    assert_eq!(client.send_task("same text").await["queued"], true);
}

#[tokio::test]
async fn the_queue_and_read_cursors_survive_a_restart() {
    let app = spawn_app().await;
    let public_url = app.base_url.clone();
    let token = app.access_token(BOTH_SCOPES).await;
    let client = app.mcp_client(&token, Lifecycle::Initialize).await;
    let first = client.send_task("first").await;
    assert_eq!(pull(&client).await.len(), 1);
    call_tool_ok(
        &client,
        "send_message",
        json!({"message": "second", "urgent": true}),
    )
    .await;
    client.cancel().await.expect("close");
    let agent = app.add_agent("survivor", &["homelab"]).await;
    let data_dir = app.stop().await;

    let app = spawn_in(data_dir, Some(&public_url), |_| {}).await;
    let client = app.mcp_client(&token, Lifecycle::Initialize).await;
    assert_eq!(
        call_tool_ok(&client, "queue_status", json!({})).await["pending"],
        2
    );
    let claimed: Value = app.agent_next(&agent, 0).await.json().await.expect("task");
    assert_eq!(claimed["task"]["content"], "second", "urgent first");
    let updates = pull(&client).await;
    let contents: Vec<&str> = updates
        .iter()
        .map(|update| update["content"].as_str().expect("content"))
        .collect();
    assert_eq!(
        contents,
        ["queued (urgent)", "claimed by agent survivor"],
        "the cursor persisted"
    );
    let again = client.send_task("first").await;
    assert_eq!(again["queued"], false, "dedup holds across restarts");
    assert_eq!(again["id"], first["id"]);
}

#[tokio::test]
async fn a_read_only_token_neither_sees_nor_calls_write_tools() {
    let app = spawn_app().await;
    let token = app.access_token("tasks:read").await;
    let client = app.mcp_client(&token, Lifecycle::Initialize).await;
    let tools = tool_names(&client).await;
    assert_eq!(tools, ["get_message", "pull_updates", "queue_status"]);
    let response = app
        .mcp_post(
            Some(&token),
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"send_message","arguments":{"message":"hi"}}}"#,
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"tasks:write\""),
        "{challenge}"
    );
    assert!(challenge.contains("resource_metadata="), "{challenge}");
    let write_only = app.access_token("tasks:write").await;
    let client = app.mcp_client(&write_only, Lifecycle::Discover).await;
    let tools = tool_names(&client).await;
    assert_eq!(tools, ["cancel_message", "send_message"]);
}

#[tokio::test]
async fn every_request_needs_an_oauth_token_initialize_included() {
    let app = spawn_app().await;
    let initialize = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#;
    let response = app.mcp_post(None, initialize).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(
        challenge,
        format!(
            "Bearer resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\", scope=\"tasks:read tasks:write\"",
            app.base_url
        )
    );
    let agent = app.add_agent("intruder", &["homelab"]).await;
    assert_eq!(
        app.mcp_post(Some(&agent), initialize).await.status(),
        StatusCode::UNAUTHORIZED,
        "agent tokens are not OAuth tokens"
    );
    let token = app.access_token(BOTH_SCOPES).await;
    assert_eq!(
        app.mcp_post(Some(&token), initialize).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn malformed_messages_and_bad_arguments_get_json_rpc_or_tool_errors_never_a_500() {
    let app = spawn_app().await;
    let token = app.access_token(BOTH_SCOPES).await;
    let call = |name: &str, arguments: Value| {
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": name, "arguments": arguments}}).to_string()
    };
    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "json-rpc error"),
        ("[]".into(), "json-rpc error"),
        (r#"{"id":1,"method":"tools/list"}"#.into(), "json-rpc error"),
        (
            r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":5}"#.into(),
            "json-rpc error",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"no/such/method"}"#.into(),
            "json-rpc error",
        ),
        (call("no_such_tool", json!({})), "json-rpc error"),
        (
            call("send_message", json!({"text": "wrong field"})),
            "tool error",
        ),
        (
            call("send_message", json!({"message": "   "})),
            "tool error",
        ),
        (
            call("send_message", json!({"message": "x".repeat(17 * 1024)})),
            "tool error",
        ),
        (
            call(
                "send_message",
                json!({"message": "hi", "target": "nowhere"}),
            ),
            "tool error",
        ),
        (
            call("pull_updates", json!({"since": "last tuesday"})),
            "tool error",
        ),
        (
            call("get_message", json!({"id": "no-such-id"})),
            "tool error",
        ),
        (call("cancel_message", json!({})), "tool error"),
    ];
    for (body, kind) in cases {
        let response = app.mcp_post(Some(&token), &body).await;
        let status = response.status();
        assert!(
            status.is_client_error() || status.is_success(),
            "{body}: {status}"
        );
        let text = response.text().await.expect("body");
        match kind {
            "tool error" => {
                assert_eq!(status, StatusCode::OK, "{body}");
                let reply: Value = serde_json::from_str(&text).expect("json");
                assert_eq!(reply["result"]["isError"], true, "{body}: {reply}");
                assert!(
                    reply["result"]["content"][0]["text"]
                        .as_str()
                        .is_some_and(|message| !message.is_empty())
                );
            }
            _ => {
                let reply: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|_| panic!("{body}: not JSON: {text}"));
                assert!(reply["error"]["code"].is_i64(), "{body}: {reply}");
                assert_eq!(reply["jsonrpc"], "2.0", "{body}");
            }
        }
    }
    let unknown_method: Value = app
        .mcp_post(
            Some(&token),
            r#"{"jsonrpc":"2.0","id":4,"method":"no/such/method"}"#,
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(unknown_method["error"]["code"], -32601, "{unknown_method}");
    let unknown_tool: Value = app
        .mcp_post(Some(&token), &call("no_such_tool", json!({})))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(unknown_tool["error"]["code"], -32602, "{unknown_tool}");
    let parse_error: Value = app
        .mcp_post(Some(&token), "{not json")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(parse_error["error"]["code"], -32700);
    let wrong_params: Value = app
        .mcp_post(
            Some(&token),
            r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":5}"#,
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(wrong_params["error"]["code"], -32602);
    assert_eq!(wrong_params["id"], 3);
    // The method reads fine; only rmcp's full parse finds the version wrong.
    let not_json_rpc: Value = app
        .mcp_post(Some(&token), r#"{"jsonrpc":"1.0","id":7,"method":"ping"}"#)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(not_json_rpc["error"]["code"], -32600, "{not_json_rpc}");
    // rmcp's other 415, for a well-formed message sent as something other than JSON, stays.
    let wrong_type = reqwest::Client::new()
        .post(app.url("/mcp"))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .body(r#"{"jsonrpc":"2.0","id":8,"method":"ping"}"#)
        .send()
        .await
        .expect("mcp request");
    assert_eq!(wrong_type.status(), 415);
    let unknown_target = app
        .mcp_post(
            Some(&token),
            &call(
                "send_message",
                json!({"message": "hi", "target": "nowhere"}),
            ),
        )
        .await;
    let reply: Value = unknown_target.json().await.expect("json");
    assert!(
        reply["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|text| text.contains("homelab")),
        "names the known targets: {reply}"
    );
}

#[tokio::test]
async fn a_foreign_host_or_origin_is_refused() {
    let app = spawn_app().await;
    let token = app.access_token(BOTH_SCOPES).await;
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    // A plain tool call takes the direct path past rmcp's serve loop, not past these checks.
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"queue_status"}}"#;
    let cases = [
        (None, None, StatusCode::OK),
        (Some("https://evil.example"), None, StatusCode::FORBIDDEN),
        (None, Some("evil.example"), StatusCode::FORBIDDEN),
        (None, Some("127.0.0.1.evil.example"), StatusCode::FORBIDDEN),
        (Some("https://claude.ai"), None, StatusCode::OK),
        (Some(app.base_url.as_str()), None, StatusCode::OK),
    ];
    for body in [list, call] {
        for (origin, host, expected) in cases {
            let mut request = app.mcp_request().bearer_auth(&token).body(body);
            if let Some(origin) = origin {
                request = request.header("origin", origin);
            }
            if let Some(host) = host {
                request = request.header("host", host);
            }
            assert_eq!(
                request.send().await.expect("request").status(),
                expected,
                "{body}: origin {origin:?}, host {host:?}"
            );
        }
    }
}

#[tokio::test]
async fn cancelling_works_before_work_starts_and_is_explained_after() {
    let app = spawn_app().await;
    let token = app.access_token(BOTH_SCOPES).await;
    let client = app.mcp_client(&token, Lifecycle::Initialize).await;
    let first = client.send_task("never mind").await;
    let cancelled = call_tool_ok(&client, "cancel_message", json!({"id": first["id"]})).await;
    assert_eq!(cancelled["status"], "cancelled");
    let again = call_tool(&client, "cancel_message", json!({"id": first["id"]})).await;
    assert_eq!(again.is_error, Some(true));
    assert!(
        tool_text(&again).contains("already finished"),
        "{}",
        tool_text(&again)
    );

    let second = client.send_task("long job").await;
    let agent = app.add_agent("worker", &["homelab"]).await;
    app.agent_next(&agent, 0).await;
    app.agent_update(
        &agent,
        second["id"].as_str().expect("id"),
        json!({"content": "started", "status": "in_progress"}),
    )
    .await;
    let refused = call_tool(&client, "cancel_message", json!({"id": second["id"]})).await;
    assert!(
        tool_text(&refused).contains("can no longer be cancelled"),
        "{}",
        tool_text(&refused)
    );
}

#[tokio::test]
async fn pull_updates_reads_from_a_cursor_or_a_time_and_filters() {
    let app = spawn_app().await;
    let token = app.access_token(BOTH_SCOPES).await;
    let client = app.mcp_client(&token, Lifecycle::Initialize).await;
    let first = client.send_task("one").await;
    client.send_task("two").await;
    let page = client.pull(json!({"limit": 1})).await;
    assert_eq!(page["updates"].as_array().map(Vec::len), Some(1));
    let rest = client.pull(json!({"since": page["next_cursor"]})).await;
    assert_eq!(rest["updates"].as_array().map(Vec::len), Some(1));
    let from_start = client.pull(json!({"since": "1970-01-01T00:00:00Z"})).await;
    assert_eq!(from_start["updates"].as_array().map(Vec::len), Some(2));
    let future = client.pull(json!({"since": "2999-01-01T00:00:00Z"})).await;
    assert!(future["updates"].as_array().is_some_and(Vec::is_empty));
    let only_first = client
        .pull(json!({"since": "0", "message_id": first["id"]}))
        .await;
    assert_eq!(only_first["updates"].as_array().map(Vec::len), Some(1));
    // Another client has its own cursor.
    let other = app
        .mcp_client(&app.access_token(BOTH_SCOPES).await, Lifecycle::Discover)
        .await;
    assert_eq!(pull(&other).await.len(), 2);
}

#[tokio::test]
async fn a_request_with_a_null_id_is_an_invalid_request() {
    let app = spawn_app().await;
    let token = app.access_token(BOTH_SCOPES).await;
    let response = app
        .mcp_post(
            Some(&token),
            r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
        )
        .await;
    assert!(response.status().is_client_error() || response.status().is_success());
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], -32600, "{body}");
    assert_eq!(body["id"], Value::Null);
}
