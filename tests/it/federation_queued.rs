//! Queued upstream calls (`mode = "queued"`) against the repository's fixture server: the call
//! answers with a task id, the result arrives as the task's final update, and a call a stop or
//! a crash cut short ends in `error` after the restart, never run twice.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tempfile::TempDir;

use crate::support::fixture::{client, fixture_upstream, ready};
use crate::support::{Lifecycle, McpClient, call_tool};

/// Pulls (waiting) until task `id` reaches a final status; returns (status, content).
async fn final_update(client: &McpClient, id: &str) -> (String, String) {
    use crate::support::McpUser;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let pulled = client
            .pull(json!({"message_id": id, "since": "0", "limit": 200}))
            .await;
        if let Some(update) = pulled["updates"]
            .as_array()
            .expect("updates")
            .iter()
            .find(|update| matches!(update["status"].as_str(), Some("complete" | "error")))
        {
            return (
                update["status"].as_str().unwrap_or_default().to_owned(),
                update["content"].as_str().unwrap_or_default().to_owned(),
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "task {id} never finished: {pulled}"
        );
        client.pull(json!({"wait": 2})).await;
    }
}

#[tokio::test]
async fn a_queued_call_answers_at_once_and_its_result_arrives_as_an_update() {
    let state = Arc::new(TempDir::new().expect("state dir"));
    let mut upstream =
        fixture_upstream(state.path(), &[("echo", None, None), ("slow", None, None)]);
    for tool in &mut upstream.tools {
        tool.mode = nexus_gateway::config::upstreams::ToolMode::Queued;
    }
    let data = Arc::new(TempDir::new().expect("data"));
    let app = crate::support::spawn_in(data.clone(), None, {
        let upstream = upstream.clone();
        move |config| config.upstreams = vec![upstream]
    })
    .await;
    ready(&app, "fx").await;
    let client = client(&app, "tasks:read upstream:fx").await;
    let queued = call_tool(&client, "fx_echo", json!({"text": "later"})).await;
    let answer = queued.structured_content.expect("structured");
    assert_eq!(answer["queued"], true, "{answer}");
    let id = answer["id"].as_str().expect("id").to_owned();
    assert_eq!(
        final_update(&client, &id).await,
        ("complete".to_owned(), "echo: later".to_owned())
    );

    // A call still running when the gateway stops ends in `error` after the restart: never
    // lost silently, never run twice.
    let slow = call_tool(&client, "fx_slow", json!({"seconds": 60})).await;
    let slow_id = slow.structured_content.expect("structured")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let log = state.path().join("events.log");
    let public_url = app.base_url.clone();
    // Running: the task is in progress (its worker claimed it and called the upstream).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let detail = call_tool(&client, "get_message", json!({"id": slow_id})).await;
        if detail.structured_content.expect("detail")["message"]["status"] == "in_progress" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the queued call never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let data = app.stop().await;
    let app = crate::support::spawn_in(data, Some(&public_url), move |config| {
        config.upstreams = vec![upstream]
    })
    .await;
    ready(&app, "fx").await;
    let client = app
        .mcp_client(
            &app.access_token("tasks:read upstream:fx").await,
            Lifecycle::Initialize,
        )
        .await;
    let (status, content) = final_update(&client, &slow_id).await;
    assert_eq!(status, "error");
    assert!(content.contains("interrupted by a restart"), "{content}");
    let started = std::fs::read_to_string(&log)
        .expect("events")
        .matches("started")
        .count();
    assert_eq!(
        started, 2,
        "the fixture ran once per gateway, and the call was not re-run"
    );
}

#[tokio::test]
async fn a_queued_call_a_crash_left_claimed_ends_in_error_after_the_restart() {
    let state = Arc::new(TempDir::new().expect("state dir"));
    let mut upstream = fixture_upstream(state.path(), &[("echo", None, None)]);
    upstream.tools[0].mode = nexus_gateway::config::upstreams::ToolMode::Queued;
    // First life: no queued tool, so no worker; the task is claimed as the worker would, and
    // the "crash" leaves it acknowledged.
    let data = Arc::new(TempDir::new().expect("data"));
    let app = crate::support::spawn_in(data.clone(), None, |_| {}).await;
    let target = nexus_gateway::upstream::queued::queued_target("fx");
    let sent = app
        .queue
        .send_internal(&target, r#"{"tool":"fx_echo"}"#.into(), "c_test".into())
        .await
        .expect("queued");
    let nexus_gateway::queue::Sent::Queued { id, .. } = sent else {
        panic!("not queued: {sent:?}");
    };
    let worker = nexus_gateway::store::AgentRecord {
        id: "gateway-fx".into(),
        name: "gateway-fx".into(),
        targets: vec![target],
        created_at: 0,
        revoked_at: None,
    };
    let claimed = app
        .queue
        .claim_next(&worker, Duration::ZERO)
        .await
        .expect("claim");
    assert_eq!(claimed.map(|task| task.id), Some(id.clone()));
    let public_url = app.base_url.clone();
    let data = app.stop().await;
    // Second life, with the queued tool: the interrupted task is ended, not run.
    let app = crate::support::spawn_in(data, Some(&public_url), move |config| {
        config.upstreams = vec![upstream]
    })
    .await;
    ready(&app, "fx").await;
    let client = client(&app, "tasks:read").await;
    let (status, content) = final_update(&client, &id).await;
    assert_eq!(status, "error");
    assert!(content.contains("interrupted by a restart"), "{content}");
}
