//! What bounds one client's use of `/mcp`: how many `pull_updates` calls may wait at once, and
//! how many updates one `get_message` answer holds.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::support::{
    Lifecycle, McpClient, McpUser, TestApp, call_tool, call_tool_ok, spawn_app, tool_text,
};

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
    // From an explicit cursor: each woken call reads the news whichever of them reads first
    // (without one, the first to read moves the client's stored cursor past it for the others).
    for _ in 0..=WAITS_PER_CLIENT {
        spawn_call(
            &mut waits,
            &app,
            &token,
            "pull_updates",
            json!({"wait": 30, "since": "0"}),
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

#[tokio::test]
async fn a_client_that_hangs_up_on_its_waits_gets_their_slots_back() {
    let app = spawn_app().await;
    let token = app.access_token(BOTH_SCOPES).await;
    // Every slot taken by a pull that waits for news, then the client goes away: each call's
    // connection closes with the call unanswered.
    let mut abandoned = JoinSet::new();
    for _ in 0..WAITS_PER_CLIENT {
        spawn_call(
            &mut abandoned,
            &app,
            &token,
            "pull_updates",
            json!({"wait": 30, "since": "0"}),
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    abandoned.shutdown().await;

    // The slots come back as the gateway notices the closed connections: soon, all of them
    // hold a new wait again, and none is declined.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut waits = JoinSet::new();
        for _ in 0..WAITS_PER_CLIENT {
            spawn_call(&mut waits, &app, &token, "pull_updates", json!({"wait": 2}));
        }
        let mut declined = 0;
        while let Some(answer) = waits.join_next().await {
            let answer = answer.expect("no panic");
            declined += usize::from(answer.get("wait_declined").is_some());
        }
        if declined == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{declined} waits still declined 10 s after their holders hung up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A task with `notes` agent notes after its `queued` and `claimed` updates.
async fn task_with_notes(app: &TestApp, client: &McpClient, notes: usize) -> (String, String) {
    let sent = client.send_task("a chatty task").await;
    let id = sent["id"].as_str().expect("id").to_owned();
    let agent = app.add_agent("chatty", &["homelab"]).await;
    app.agent_next(&agent, 0).await;
    for note in 0..notes {
        let response = app
            .agent_update(&agent, &id, json!({"content": format!("note {note}")}))
            .await;
        assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    }
    (id, agent)
}

fn contents(page: &Value) -> Vec<String> {
    page["updates"]
        .as_array()
        .expect("updates")
        .iter()
        .map(|update| update["content"].as_str().expect("content").to_owned())
        .collect()
}

#[tokio::test]
async fn get_message_answers_a_page_of_updates_at_a_time() {
    let app = spawn_app().await;
    let token = app.access_token(BOTH_SCOPES).await;
    let client = app.mcp_client(&token, Lifecycle::Initialize).await;
    let (id, _) = task_with_notes(&app, &client, 118).await;

    // 120 updates: the default page holds 100.
    let first = call_tool_ok(&client, "get_message", json!({"id": id})).await;
    assert_eq!(first["message"]["id"], id.as_str());
    assert_eq!(contents(&first).len(), 100);
    assert_eq!(first["has_more"], true);
    let rest = call_tool_ok(
        &client,
        "get_message",
        json!({"id": id, "after": first["next_cursor"]}),
    )
    .await;
    assert_eq!(contents(&rest).len(), 20);
    assert_eq!(contents(&rest).last().map(String::as_str), Some("note 117"));
    assert_eq!(rest["has_more"], false);
    assert!(rest.get("next_cursor").is_none(), "{rest}");

    // Smaller pages, in order, with nothing missed or repeated.
    let mut seen = Vec::new();
    let mut after = None::<Value>;
    loop {
        let mut arguments = json!({"id": id, "limit": 7});
        if let Some(cursor) = &after {
            arguments["after"] = cursor.clone();
        }
        let page = call_tool_ok(&client, "get_message", arguments).await;
        assert!(contents(&page).len() <= 7);
        seen.extend(contents(&page));
        if page["has_more"] == false {
            break;
        }
        after = Some(page["next_cursor"].clone());
    }
    assert_eq!(seen.len(), 120);
    assert_eq!(seen[0], "queued");
    assert_eq!(seen[2], "note 0");

    // At most 500 a page, whatever is asked; a bad cursor is a tool error.
    let all = call_tool_ok(&client, "get_message", json!({"id": id, "limit": 100_000})).await;
    assert_eq!(contents(&all).len(), 120);
    let bad = call_tool(
        &client,
        "get_message",
        json!({"id": id, "after": "yesterday"}),
    )
    .await;
    assert_eq!(bad.is_error, Some(true));
    assert!(tool_text(&bad).contains("after"), "{}", tool_text(&bad));
}
