//! The agent API: long-poll claiming, reports and their rules, and who may call it.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Lifecycle, McpUser, call_tool_ok, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_long_poll_returns_a_task_queued_while_it_waits() {
    let app = spawn_app().await;
    let agent = app.add_agent("poller", &["homelab"]).await;
    let token = app.access_token("tasks:read tasks:write").await;
    let client = app.mcp_client(&token, Lifecycle::Initialize).await;
    let waiting = {
        let http = app.http.clone();
        let url = app.internal("/agent/v1/tasks/next?wait=20");
        let agent = agent.clone();
        tokio::spawn(async move { http.get(url).bearer_auth(agent).send().await.expect("poll") })
    };
    // Let the poll reach the queue before sending; the test does not depend on it (the
    // claim re-checks), it only makes the "arrives while waiting" path the one exercised.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let sent = client.send_task("wake up").await;
    let response = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("poll answered quickly")
        .expect("task");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["task"]["id"], sent["id"]);
    assert_eq!(body["task"]["status"], "acknowledged");
    assert_eq!(
        app.agent_next(&agent, 0).await.status(),
        StatusCode::NO_CONTENT,
        "nothing left"
    );
}

#[tokio::test]
async fn urgent_tasks_are_claimed_first_and_targets_are_respected() {
    let app = spawn_app_with(|config| {
        config.targets.push(nexus_gateway::config::TargetConfig {
            name: "nexus:felt".into(),
            transport: nexus_gateway::config::TransportKind::AgentApi,
            description: None,
            telegram: None,
        });
    })
    .await;
    let token = app.access_token("tasks:read tasks:write").await;
    let client = app.mcp_client(&token, Lifecycle::Initialize).await;
    client.send_task("routine").await;
    call_tool_ok(
        &client,
        "send_message",
        json!({"message": "for felt", "target": "nexus:felt"}),
    )
    .await;
    call_tool_ok(
        &client,
        "send_message",
        json!({"message": "fire!", "urgent": true}),
    )
    .await;
    let homelab = app.add_agent("home", &["homelab"]).await;
    let felt = app.add_agent("felt", &["nexus:felt"]).await;
    let order: Vec<String> = {
        let mut claimed = Vec::new();
        while let Ok(body) = app.agent_next(&homelab, 0).await.json::<Value>().await {
            claimed.push(
                body["task"]["content"]
                    .as_str()
                    .expect("content")
                    .to_owned(),
            );
        }
        claimed
    };
    assert_eq!(order, ["fire!", "routine"]);
    let felt_task: Value = app.agent_next(&felt, 0).await.json().await.expect("task");
    assert_eq!(felt_task["task"]["target"], "nexus:felt");
    // An agent cannot report on another target's task.
    let foreign = app
        .agent_update(
            &homelab,
            felt_task["task"]["id"].as_str().expect("id"),
            json!({"content": "mine now"}),
        )
        .await;
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    assert!(
        nexus_gateway::admin::add_agent(&app.config, "ghost", &["nowhere".into()])
            .await
            .is_err()
    );
}

#[tokio::test]
async fn illegal_reports_get_clear_errors() {
    let app = spawn_app().await;
    let token = app.access_token("tasks:read tasks:write").await;
    let client = app.mcp_client(&token, Lifecycle::Initialize).await;
    let sent = client.send_task("task").await;
    let id = sent["id"].as_str().expect("id").to_owned();
    let agent = app.add_agent("strict", &["homelab"]).await;
    app.agent_next(&agent, 0).await;
    assert_eq!(
        app.agent_update(
            &agent,
            &id,
            json!({"content": "done", "status": "complete"})
        )
        .await
        .status(),
        StatusCode::CREATED
    );

    let backwards = app
        .agent_update(
            &agent,
            &id,
            json!({"content": "again", "status": "in_progress"}),
        )
        .await;
    assert_eq!(backwards.status(), StatusCode::CONFLICT);
    let body: Value = backwards.json().await.expect("json");
    assert_eq!(body["error"], "conflict");
    assert!(
        body["message"].as_str().is_some_and(
            |message| message.contains("complete") && message.contains("already finished")
        ),
        "{body}"
    );
    let after_end = app
        .agent_update(&agent, &id, json!({"content": "one more thing"}))
        .await;
    assert_eq!(after_end.status(), StatusCode::CONFLICT);

    let cases = [
        (
            json!({"content": "x", "status": "cancelled"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"content": "x", "status": "done"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"status": "complete"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({"content": ""}), StatusCode::BAD_REQUEST),
    ];
    for (body, expected) in cases {
        let response = app.agent_update(&agent, &id, body.clone()).await;
        assert_eq!(response.status(), expected, "{body}");
        assert!(response.json::<Value>().await.expect("json")["message"].is_string());
    }
    let not_json = app
        .http
        .post(app.internal(&format!("/agent/v1/tasks/{id}/updates")))
        .bearer_auth(&agent)
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .expect("request");
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        app.agent_update(&agent, "no-such-task", json!({"content": "x"}))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let read: Value = app
        .http
        .get(app.internal(&format!("/agent/v1/tasks/{id}")))
        .bearer_auth(&agent)
        .send()
        .await
        .expect("read")
        .json()
        .await
        .expect("json");
    assert_eq!(read["task"]["status"], "complete");
    assert_eq!(read["updates"].as_array().map(Vec::len), Some(3));
    let bad_wait = app
        .http
        .get(app.internal("/agent/v1/tasks/next?wait=soon"))
        .bearer_auth(&agent)
        .send()
        .await
        .expect("poll");
    assert_eq!(bad_wait.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn only_live_agent_tokens_open_the_agent_api() {
    let app = spawn_app().await;
    let oauth = app.access_token("tasks:read tasks:write").await;
    assert_eq!(
        app.agent_next(&oauth, 0).await.status(),
        StatusCode::UNAUTHORIZED,
        "OAuth tokens are not agent tokens"
    );
    let missing = app
        .http
        .get(app.internal("/agent/v1/tasks/next"))
        .send()
        .await
        .expect("poll");
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert!(missing.headers().contains_key("www-authenticate"));
    let agent = app.add_agent("temp", &["homelab"]).await;
    assert_eq!(
        app.agent_next(&agent, 0).await.status(),
        StatusCode::NO_CONTENT
    );
    let listed = nexus_gateway::admin::list_agents(&app.config)
        .await
        .expect("listed");
    assert!(
        listed.contains("temp") && !listed.contains(&agent),
        "tokens are never listed"
    );
    nexus_gateway::admin::revoke_agent(&app.config, "temp")
        .await
        .expect("revoked");
    assert_eq!(
        app.agent_next(&agent, 0).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.agent_next("nxa_forged", 0).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_agent_api_is_served_on_the_internal_listener_only() {
    let app = spawn_app().await;
    let agent = app.add_agent("inside", &["homelab"]).await;
    let public = app
        .http
        .get(app.url("/agent/v1/tasks/next"))
        .bearer_auth(&agent)
        .send()
        .await
        .expect("public");
    assert_eq!(public.status(), StatusCode::NOT_FOUND);
    let internal = app.agent_next(&agent, 0).await;
    assert_eq!(internal.status(), StatusCode::NO_CONTENT);
    // A path that decodes or normalises into another is refused before any handler, on both.
    for base in [&app.base_url, &app.internal_url] {
        for path in [
            "/agent/v1/tasks/x%2f..%2f..%2fhealthz",
            "/healthz/../agent/v1/tasks/next",
            "/a/%2e%2e/healthz",
        ] {
            // Sent raw: a URL parser would normalise the dot segments away.
            let raw = format!("{base}{path}");
            let response = raw_get(&raw, &agent).await;
            assert_eq!(response, 400, "{raw}");
        }
    }
}

/// Two agents of one target race for each task: both report on it at once, or one claims it
/// while the other reports. Exactly one may win each race, and only the winner writes.
#[tokio::test]
async fn two_agents_racing_for_a_task_never_both_win() {
    let app = spawn_app().await;
    let token = app.access_token("tasks:read tasks:write").await;
    let client = app.mcp_client(&token, Lifecycle::Initialize).await;
    let first = app.add_agent("first", &["homelab"]).await;
    let second = app.add_agent("second", &["homelab"]).await;
    for round in 0..40 {
        let sent = client.send_task(&format!("race {round}")).await;
        let id = sent["id"].as_str().expect("id").to_owned();
        let report = |agent: &str| {
            let request = app
                .http
                .post(app.internal(&format!("/agent/v1/tasks/{id}/updates")))
                .bearer_auth(agent)
                .json(&json!({"content": "mine", "status": "in_progress"}));
            tokio::spawn(async move { request.send().await.expect("report").status() })
        };
        let (first_won, second_won) = if round % 2 == 0 {
            let (a, b) = (report(&first), report(&second));
            let (a, b) = (a.await.expect("task"), b.await.expect("task"));
            for status in [a, b] {
                assert!(
                    status == StatusCode::CREATED || status == StatusCode::CONFLICT,
                    "{status}"
                );
            }
            (a == StatusCode::CREATED, b == StatusCode::CREATED)
        } else {
            let claim = {
                let request = app
                    .http
                    .get(app.internal("/agent/v1/tasks/next?wait=0"))
                    .bearer_auth(&first);
                tokio::spawn(async move { request.send().await.expect("claim") })
            };
            let b = report(&second);
            let claimed = claim.await.expect("task");
            let a = claimed.status() == StatusCode::OK
                && claimed.json::<Value>().await.expect("json")["task"]["id"] == id.as_str();
            (a, b.await.expect("task") == StatusCode::CREATED)
        };
        assert!(
            first_won != second_won,
            "round {round}: first won {first_won}, second won {second_won}"
        );
        let winner = if first_won {
            "agent:first"
        } else {
            "agent:second"
        };
        let read: Value = app
            .http
            .get(app.internal(&format!("/agent/v1/tasks/{id}")))
            .bearer_auth(&first)
            .send()
            .await
            .expect("read")
            .json()
            .await
            .expect("json");
        for update in read["updates"].as_array().expect("updates") {
            assert!(
                update["source"] == "gateway" || update["source"] == winner,
                "round {round}: {read}"
            );
        }
    }
}

/// A GET with the path sent exactly as written (no client-side normalisation).
async fn raw_get(url: &str, token: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("http");
    let (authority, path) = rest.split_at(rest.find('/').expect("path"));
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read");
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status line")
}

#[tokio::test]
async fn an_agent_reads_a_task_a_page_of_updates_at_a_time() {
    let app = spawn_app().await;
    let token = app.access_token("tasks:read tasks:write").await;
    let client = app.mcp_client(&token, Lifecycle::Initialize).await;
    let sent = client.send_task("long story").await;
    let id = sent["id"].as_str().expect("id").to_owned();
    let agent = app.add_agent("reader", &["homelab"]).await;
    app.agent_next(&agent, 0).await;
    for note in 0..8 {
        app.agent_update(&agent, &id, json!({"content": format!("note {note}")}))
            .await;
    }
    let read = |query: String| {
        let request = app
            .http
            .get(app.internal(&format!("/agent/v1/tasks/{id}{query}")))
            .bearer_auth(&agent);
        async move { request.send().await.expect("read") }
    };
    let first: Value = read("?limit=4".into()).await.json().await.expect("json");
    assert_eq!(first["task"]["id"], id.as_str());
    assert_eq!(first["updates"].as_array().map(Vec::len), Some(4));
    assert_eq!(first["has_more"], true);
    let cursor = first["next_cursor"].as_str().expect("cursor").to_owned();
    let rest: Value = read(format!("?after={cursor}&limit=100"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(rest["updates"].as_array().map(Vec::len), Some(6));
    assert_eq!(rest["updates"][5]["content"], "note 7");
    assert_eq!(rest["has_more"], false);
    assert!(rest.get("next_cursor").is_none(), "{rest}");
    let whole: Value = read(String::new()).await.json().await.expect("json");
    assert_eq!(whole["updates"].as_array().map(Vec::len), Some(10));
    assert_eq!(
        read("?after=soon".into()).await.status(),
        StatusCode::BAD_REQUEST
    );
}
