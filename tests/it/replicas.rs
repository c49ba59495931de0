//! Several replicas on one PostgreSQL database, each a real gateway on its own port: what must
//! hold when consecutive requests of one user land on different replicas. Ignored unless run
//! with `--ignored postgres_` and `POSTGRES_TEST_URL` (scripts/test starts a throwaway server).

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;
use tempfile::TempDir;

use crate::owner_approval::Browser;
use crate::support::postgres::{database_for, postgres_server};
use crate::support::{
    Lifecycle, McpClient, McpUser, Pkce, TestApp, hidden_field, redirect_params, spawn_in,
};

/// Two gateways sharing one new database, behind one public URL (the first one's), as two
/// replicas behind a load balancer are: tokens either issues are for the same audience.
pub(crate) async fn two_replicas(
    adjust: impl Fn(&mut nexus_gateway::config::Config) + Clone,
) -> (TestApp, TestApp) {
    let server = postgres_server().expect("POSTGRES_TEST_URL names the test PostgreSQL server");
    let first_dir = Arc::new(TempDir::new().expect("dir"));
    let database = database_for(&server, first_dir.path()).await;
    let database_url = nexus_gateway::secrets::Secret::new(database);
    let first = spawn_in(first_dir, None, {
        let adjust = adjust.clone();
        let database_url = database_url.clone();
        move |config| {
            config.database_url = Some(database_url);
            adjust(config);
        }
    })
    .await;
    let second = spawn_in(
        Arc::new(TempDir::new().expect("dir")),
        Some(&first.base_url),
        move |config| {
            config.database_url = Some(database_url);
            adjust(config);
        },
    )
    .await;
    (first, second)
}

/// An MCP session on each replica for one token.
async fn clients(a: &TestApp, b: &TestApp, scope: &str) -> (String, McpClient, McpClient) {
    let token = a.access_token(scope).await;
    let on_a = a.mcp_client(&token, Lifecycle::Initialize).await;
    let on_b = b.mcp_client(&token, Lifecycle::Initialize).await;
    (token, on_a, on_b)
}

#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/test runs it"]
async fn postgres_replicas_identical_sends_to_both_queue_one_task() {
    let (a, b) = two_replicas(|_| {}).await;
    let token = a.access_token("tasks:read tasks:write").await;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "send_message", "arguments": {"message": "rotate the backup disks"}}})
    .to_string();
    let sends: Vec<_> = (0..24)
        .map(|index| {
            let replica = if index % 2 == 0 { &a } else { &b };
            let request = replica.mcp_request().bearer_auth(&token).body(body.clone());
            tokio::spawn(async move {
                let response = request.send().await.expect("send");
                assert_eq!(response.status(), StatusCode::OK);
                response.json::<Value>().await.expect("json")["result"]["structuredContent"].clone()
            })
        })
        .collect();
    let mut results = Vec::new();
    for send in sends {
        results.push(send.await.expect("task"));
    }
    let queued: Vec<&Value> = results.iter().filter(|r| r["queued"] == true).collect();
    assert_eq!(queued.len(), 1, "exactly one queued: {results:?}");
    for duplicate in results.iter().filter(|r| r["queued"] == false) {
        assert_eq!(duplicate["reason"], "duplicate", "{duplicate}");
        assert_eq!(
            duplicate["id"], queued[0]["id"],
            "duplicates name the open task"
        );
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/test runs it"]
async fn postgres_replicas_agents_on_both_never_claim_one_task_twice() {
    let (a, b) = two_replicas(|_| {}).await;
    let (_, sender, _) = clients(&a, &b, "tasks:read tasks:write").await;
    const TASKS: usize = 40;
    for index in 0..TASKS {
        sender.send_task(&format!("task {index}")).await;
    }
    let agents = [
        (a.add_agent("left", &["homelab"]).await, &a),
        (b.add_agent("right", &["homelab"]).await, &b),
        (a.add_agent("left2", &["homelab"]).await, &a),
        (b.add_agent("right2", &["homelab"]).await, &b),
    ];
    let claimers: Vec<_> = agents
        .iter()
        .map(|(token, replica)| {
            let http = replica.http.clone();
            let url = replica.internal("/agent/v1/tasks/next?wait=0");
            let token = token.clone();
            tokio::spawn(async move {
                let mut claimed = Vec::new();
                loop {
                    let response = http
                        .get(&url)
                        .bearer_auth(&token)
                        .send()
                        .await
                        .expect("next");
                    if response.status() == StatusCode::NO_CONTENT {
                        return claimed;
                    }
                    assert_eq!(response.status(), StatusCode::OK);
                    let body: Value = response.json().await.expect("json");
                    claimed.push(body["task"]["id"].as_str().expect("id").to_owned());
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut busy_agents = 0;
    for claimer in claimers {
        let claimed = claimer.await.expect("claimer");
        busy_agents += usize::from(!claimed.is_empty());
        all.extend(claimed);
    }
    let distinct: std::collections::HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), TASKS, "every task claimed once: {all:?}");
    assert_eq!(distinct.len(), TASKS, "no task claimed twice");
    assert!(busy_agents >= 2, "agents on both replicas took part");
}

#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/test runs it"]
async fn postgres_replicas_a_late_commit_is_never_skipped_by_a_cursor() {
    let (a, b) = two_replicas(|_| {}).await;
    let (_, on_a, on_b) = clients(&a, &b, "tasks:read tasks:write").await;
    on_a.send_task("first").await;
    let start = on_a.pull(json!({})).await;
    let cursor = start["next_cursor"].as_str().expect("cursor").to_owned();

    // A writer (as another replica's transaction would) records an update and stays open.
    let url = a.config.database_url.as_ref().expect("database").expose();
    let mut slow = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::query("BEGIN")
        .execute(&mut slow)
        .await
        .expect("begin");
    sqlx::query(
        "INSERT INTO updates (message_id, target, content, status, source, created_at)
         VALUES (NULL, 'homelab', 'the slow one', NULL, 'test', 0)",
    )
    .execute(&mut slow)
    .await
    .expect("insert");

    // Meanwhile replica B queues a task (its update is recorded after the slow one's number).
    let quick = tokio::spawn(async move { on_b.send_task("the quick one").await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let meanwhile = on_a.pull(json!({"since": cursor})).await;
    assert_eq!(
        meanwhile["updates"].as_array().expect("updates").len(),
        0,
        "nothing is readable past a number still in flight: {meanwhile}"
    );
    sqlx::query("COMMIT")
        .execute(&mut slow)
        .await
        .expect("commit");
    quick
        .await
        .expect("the quick send finished once the slow one committed");

    let after = on_a.pull(json!({"since": cursor})).await;
    let contents: Vec<&str> = after["updates"]
        .as_array()
        .expect("updates")
        .iter()
        .map(|update| update["content"].as_str().expect("content"))
        .collect();
    assert_eq!(
        contents,
        ["the slow one", "queued"],
        "both, in order: {after}"
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/test runs it"]
async fn postgres_replicas_waiters_on_one_wake_within_a_second_of_a_send_on_the_other() {
    let (a, b) = two_replicas(|_| {}).await;
    let (_, on_a, on_b) = clients(&a, &b, "tasks:read tasks:write").await;
    let agent = b.add_agent("waiter", &["homelab"]).await;
    on_b.pull(json!({})).await;
    let long_poll = {
        let http = b.http.clone();
        let url = b.internal("/agent/v1/tasks/next?wait=20");
        tokio::spawn(async move {
            let response = http.get(url).bearer_auth(agent).send().await.expect("poll");
            (response.status(), Instant::now())
        })
    };
    let pull = tokio::spawn(async move {
        let pulled = on_b.pull(json!({"wait": 20})).await;
        (pulled, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent_at = Instant::now();
    on_a.send_task("wake the other replica").await;
    let (status, claimed_at) = long_poll.await.expect("poll");
    assert_eq!(status, StatusCode::OK);
    let (pulled, pulled_at) = pull.await.expect("pull");
    assert!(!pulled["updates"].as_array().expect("updates").is_empty());
    for (what, at) in [
        ("the agent's long poll", claimed_at),
        ("pull_updates", pulled_at),
    ] {
        let waited = at.duration_since(sent_at);
        assert!(
            waited < Duration::from_secs(1),
            "{what} on B woke {waited:?} after a send on A"
        );
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/test runs it"]
async fn postgres_replicas_a_revocation_on_one_is_in_force_on_the_other_within_a_second() {
    let (a, b) = two_replicas(|_| {}).await;
    let (client, tokens) = a.tokens_for_new_client().await;
    let access = tokens["access_token"].as_str().expect("access").to_owned();
    // B has verified (and cached) the token.
    assert_eq!(
        b.call_protected(crate::support::PROTECTED, &access)
            .await
            .status(),
        StatusCode::OK
    );
    let revoked = a
        .http
        .post(a.url("/revoke"))
        .form(&[("token", access.as_str()), ("client_id", &client.client_id)])
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), StatusCode::OK);
    let revoked_at = Instant::now();
    loop {
        let status = b
            .call_protected(crate::support::PROTECTED, &access)
            .await
            .status();
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "B still accepts a token A revoked"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A key rotated by the operator's command is used for verification on both.
    let rotated = nexus_gateway::admin::rotate_keys(&a.config)
        .await
        .expect("rotate");
    let new_kid = rotated
        .strip_prefix("new signing key ")
        .and_then(|rest| rest.split(';').next())
        .expect("the new kid")
        .to_owned();
    let rotated_at = Instant::now();
    loop {
        let published = [&a, &b]
            .iter()
            .all(|replica| publishes(&replica.state.auth.jwks(), &new_kid));
        if published {
            break;
        }
        assert!(
            rotated_at.elapsed() < Duration::from_secs(1),
            "a rotated key is not loaded on every replica"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fresh = a.tokens_for_new_client().await.1["access_token"]
        .as_str()
        .expect("access")
        .to_owned();
    assert_eq!(
        b.call_protected(crate::support::PROTECTED, &fresh)
            .await
            .status(),
        StatusCode::OK,
        "a token signed with the new key verifies on the other replica"
    );
}

fn publishes(jwks: &jsonwebtoken::jwk::JwkSet, kid: &str) -> bool {
    jwks.keys
        .iter()
        .any(|key| key.common.key_id.as_deref() == Some(kid))
}

#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/test runs it"]
async fn postgres_replicas_one_sign_in_can_hop_between_replicas_at_every_step() {
    let (a, b) = two_replicas(|config| {
        config.approval = nexus_gateway::config::ApprovalMode::Password;
    })
    .await;
    let client = b.register_client("none").await;
    let pkce = Pkce::new();
    // Log in on A, see the consent page on B with the same cookies, approve on A.
    let mut on_a = Browser::new(&a);
    let login_page = on_a.login_page(&client, &pkce, "hop").await;
    let passphrase = a
        .owner_passphrase
        .clone()
        .expect("generated on the first replica");
    let logged_in = on_a.log_in(&login_page, &passphrase).await;
    assert_eq!(logged_in.status(), StatusCode::SEE_OTHER);
    let consent_location = logged_in.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let mut on_b = Browser::new(&b);
    on_b.cookies = on_a.cookies.clone();
    let consent = on_b.get(&consent_location).await;
    assert_eq!(consent.status(), StatusCode::OK);
    let consent = consent.text().await.expect("html");
    let approved = on_a
        .decide(
            &hidden_field(&consent, "request_id"),
            &hidden_field(&consent, "csrf"),
            "approve",
        )
        .await;
    assert_eq!(approved.status(), StatusCode::SEE_OTHER);
    let code = redirect_params(&approved)["code"].clone();

    // Redeem on B.
    let tokens: Value = b
        .exchange(&client, &code, &pkce)
        .await
        .json()
        .await
        .expect("tokens");
    let refresh = tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();

    // Rotate on A; a retry of the same refresh on B inside the grace window gets the same
    // answer; the successor works on B.
    let first: Value = a
        .refresh(&client, &refresh)
        .await
        .json()
        .await
        .expect("json");
    let retried: Value = b
        .refresh(&client, &refresh)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        first["refresh_token"], retried["refresh_token"],
        "{retried}"
    );
    let successor = first["refresh_token"].as_str().expect("successor");
    let next: Value = b
        .refresh(&client, successor)
        .await
        .json()
        .await
        .expect("json");
    let latest = next["refresh_token"].as_str().expect("rotated on B");

    // The code replayed on A is reuse: refused, and the grant it made is revoked everywhere.
    let replayed = a.exchange(&client, &code, &pkce).await;
    assert_eq!(
        replayed.status(),
        StatusCode::BAD_REQUEST,
        "a code works once"
    );
    assert_eq!(
        b.refresh(&client, latest).await.status(),
        StatusCode::BAD_REQUEST,
        "the grant of a replayed code is revoked on every replica"
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/test runs it"]
async fn postgres_replicas_starting_together_make_one_signing_key_and_one_passphrase() {
    use nexus_gateway::app::App;
    use nexus_gateway::config::{ApprovalMode, Config};
    let server = postgres_server().expect("POSTGRES_TEST_URL names the test PostgreSQL server");
    let dirs = [TempDir::new().expect("dir"), TempDir::new().expect("dir")];
    let database = database_for(&server, &dirs[0].path().join("shared")).await;
    let config = |dir: &TempDir| Config {
        data_dir: dir.path().to_path_buf(),
        database_url: Some(nexus_gateway::secrets::Secret::new(database.clone())),
        approval: ApprovalMode::Password,
        ..Config::default()
    };
    // Both apply the schema, look for a key and an owner, and make them, at the same moment.
    let (first, second) = tokio::join!(App::build(config(&dirs[0])), App::build(config(&dirs[1])));
    let (first, second) = (first.expect("first starts"), second.expect("second starts"));
    let shown = [&first, &second]
        .iter()
        .filter(|app| app.generated_owner_passphrase().is_some())
        .count();
    assert_eq!(shown, 1, "one replica sets the passphrase and shows it");
    let kids = |app: &App| -> Vec<Option<String>> {
        app.state()
            .auth
            .jwks()
            .keys
            .into_iter()
            .map(|key| key.common.key_id)
            .collect()
    };
    assert_eq!(kids(&first).len(), 1, "one signing key");
    assert_eq!(kids(&first), kids(&second), "the same one on both");
}

#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/test runs it"]
async fn postgres_replicas_readyz_says_not_ready_while_the_database_is_away() {
    let server = postgres_server().expect("POSTGRES_TEST_URL names the test PostgreSQL server");
    let app = crate::support::spawn_app().await;
    let url = app
        .config
        .database_url
        .as_ref()
        .expect("on PostgreSQL")
        .expose();
    let name = url::Url::parse(url)
        .expect("url")
        .path()
        .trim_start_matches('/')
        .to_owned();
    let readyz = || async {
        app.http
            .get(app.internal("/readyz"))
            .send()
            .await
            .expect("readyz")
            .status()
    };
    assert_eq!(readyz().await, StatusCode::OK);
    let mut admin = sqlx::PgConnection::connect(&server).await.expect("admin");
    let away = |allow: bool| format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS {allow}");
    sqlx::query(sqlx::AssertSqlSafe(away(false)))
        .execute(&mut admin)
        .await
        .expect("refuse connections");
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&name)
        .execute(&mut admin)
        .await
        .expect("drop the gateway's connections");
    let went_away = Instant::now();
    while readyz().await != StatusCode::SERVICE_UNAVAILABLE {
        assert!(
            went_away.elapsed() < Duration::from_secs(10),
            "still ready without a database"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sqlx::query(sqlx::AssertSqlSafe(away(true)))
        .execute(&mut admin)
        .await
        .expect("accept connections");
    let back = Instant::now();
    while readyz().await != StatusCode::OK {
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "not ready again with the database back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
