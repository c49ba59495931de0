//! What bounds one client's use of `/mcp`: how many `pull_updates` calls may wait at once.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::support::{TestApp, spawn_app};

const BOTH_SCOPES: &str = "tasks:read tasks:write";
/// `MAX_WAITS_PER_CLIENT` in `src/mcp/waits.rs`.
const WAITS_PER_CLIENT: usize = 4;

/// A `tools/call` as one independent HTTP request, so calls really run at once.
fn spawn_call(
    calls: &mut JoinSet<Value>,
    app: &TestApp,
    token: &str,
    name: &str,
    arguments: Value,
) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": name, "arguments": arguments}})
    .to_string();
    let request = app.mcp_request().bearer_auth(token).body(body);
    calls.spawn(async move {
        let reply: Value = request
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        reply["result"]["structuredContent"].clone()
    });
}

#[tokio::test]
async fn a_client_waiting_in_too_many_pulls_gets_an_answer_at_once() {
    let app = spawn_app().await;
    let token = app.access_token(BOTH_SCOPES).await;
    let mut waits = JoinSet::new();
    for _ in 0..=WAITS_PER_CLIENT {
        spawn_call(
            &mut waits,
            &app,
            &token,
            "pull_updates",
            json!({"wait": 30}),
        );
    }
    // Nothing has happened, so only the call over the cap can answer now.
    let first = tokio::time::timeout(Duration::from_secs(10), waits.join_next())
        .await
        .expect("the call over the cap answers without waiting")
        .expect("a call")
        .expect("no panic");
    assert!(
        first["updates"].as_array().is_some_and(Vec::is_empty),
        "{first}"
    );
    let declined = first["wait_declined"].as_str().unwrap_or_default();
    assert!(declined.contains("already has 4"), "{first}");

    // The others are still waiting, and news ends their wait.
    let mut sends = JoinSet::new();
    spawn_call(
        &mut sends,
        &app,
        &token,
        "send_message",
        json!({"message": "wake up"}),
    );
    assert_eq!(
        sends.join_next().await.expect("send").expect("no panic")["queued"],
        true
    );
    for _ in 0..WAITS_PER_CLIENT {
        let woken = tokio::time::timeout(Duration::from_secs(10), waits.join_next())
            .await
            .expect("a waiting call is woken by the update")
            .expect("a call")
            .expect("no panic");
        assert!(woken.get("wait_declined").is_none(), "{woken}");
        assert_eq!(woken["updates"][0]["content"], "queued", "{woken}");
    }

    // Slots are given back: the client may wait again (and is answered when news comes).
    let mut again = JoinSet::new();
    spawn_call(&mut again, &app, &token, "pull_updates", json!({"wait": 1}));
    let after = again.join_next().await.expect("call").expect("no panic");
    assert!(after.get("wait_declined").is_none(), "{after}");
}
