//! Replicas failing: one of two killed with SIGKILL under load, the Telegram bot's poller
//! stopping and another taking over, the lease that decides who polls, and nginx moving a
//! client to the other replica when its own stops. Ignored unless run
//! with `--ignored postgres_` and `POSTGRES_TEST_URL` (scripts/test starts a throwaway server).

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::dmz::{PROXY_ADDRESS, free_port, port_of, start_nginx_for, token_through};
use crate::replicas::two_replicas;
use crate::support::postgres::{database_for, postgres_server};
use crate::support::{Lifecycle, McpUser, TestApp, spawn_in};

#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/test runs it"]
async fn postgres_replicas_one_polls_the_bot_and_the_other_takes_over_when_it_stops() {
    use crate::fake_telegram::{AGENT_USER, FakeTelegram, TASK_CHAT, bot_target};
    let fake = FakeTelegram::start().await;
    let with_bot = {
        let fake = fake.clone();
        move |config: &mut nexus_gateway::config::Config| bot_target(config, &fake, |_| {})
    };
    let (a, b) = two_replicas(with_bot.clone()).await;
    let token = a.access_token("tasks:read tasks:write").await;
    let public_url = a.base_url.clone();
    let mut replicas = vec![a, b];
    // Stop both first replicas in turn (one of them held the bot), each replaced by a new one:
    // before, between and after, tasks are posted once and replies heard.
    for round in 0..3 {
        let client = replicas[0].mcp_client(&token, Lifecycle::Initialize).await;
        let task = client.send_task(&format!("round {round}")).await;
        fake.wait_for("the task is posted", |fake| {
            fake.sent()
                .iter()
                .any(|sent| sent.text.contains(&format!("round {round}")))
        })
        .await;
        let posted = fake
            .sent()
            .into_iter()
            .find(|sent| sent.text.contains(&format!("round {round}")))
            .expect("posted");
        fake.user_says(
            TASK_CHAT,
            AGENT_USER,
            "/done all good",
            Some(posted.message_id),
        );
        wait_for_status(
            &replicas[1],
            &token,
            task["id"].as_str().expect("id"),
            "complete",
        )
        .await;
        if round == 2 {
            break;
        }

        let stopped = replicas.remove(0);
        let database = stopped.config.database_url.clone();
        stopped.stop().await;
        let fake = fake.clone();
        let restarted = spawn_in(
            Arc::new(TempDir::new().expect("dir")),
            Some(&public_url),
            move |config| {
                config.database_url = database;
                bot_target(config, &fake, |_| {});
            },
        )
        .await;
        replicas.push(restarted);
    }
    let posts: Vec<String> = fake.sent().into_iter().map(|sent| sent.text).collect();
    for round in 0..3 {
        let tag = format!("round {round}");
        assert_eq!(
            posts.iter().filter(|text| text.contains(&tag)).count(),
            1,
            "each task is posted once: {posts:?}"
        );
    }
    assert_eq!(fake.overlapping_polls(), 0, "never two pollers at once");
}

/// Waits (up to a minute: a lease may have to run out) until `id` has `status` as `replica`
/// reports it.
async fn wait_for_status(replica: &TestApp, token: &str, id: &str, status: &str) {
    let client = replica.mcp_client(token, Lifecycle::Initialize).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let detail = crate::support::call_tool_ok(&client, "get_message", json!({"id": id})).await;
        if detail["message"]["status"] == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{id} is still {}",
            detail["message"]["status"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/test runs it"]
async fn postgres_replicas_a_kill_9_of_one_loses_nothing_and_the_other_never_fails() {
    use crate::serve_process::{ServeProcess, call_tool, printed_secret};
    use std::sync::Mutex;

    let server = postgres_server().expect("POSTGRES_TEST_URL names the test PostgreSQL server");
    let dir = TempDir::new().expect("dir");
    let database = database_for(&server, &dir.path().join("shared")).await;
    let ports: Vec<u16> = (0..2)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .expect("a free port")
                .port()
        })
        .collect();
    for (index, port) in ports.iter().enumerate() {
        std::fs::write(
            dir.path().join(format!("replica{index}.toml")),
            format!(
                "listen = \"127.0.0.1:{port}\"\ninternal_listen = \"127.0.0.1:0\"\npublic_url = \"http://127.0.0.1:{}\"\ndata_dir = \"data{index}\"\ndatabase_url = \"{database}\"\nlog_format = \"json\"\n",
                ports[0]
            ),
        )
        .expect("config");
    }
    let token = printed_secret(
        std::path::Path::new(env!("CARGO_BIN_EXE_nexus-gateway")),
        dir.path(),
        "replica0.toml",
        &["tokens", "issue", "--name", "replicas"],
    );
    let doomed = ServeProcess::start(dir.path(), "replica0.toml", false).await;
    let survivor = ServeProcess::start(dir.path(), "replica1.toml", false).await;
    let bases = [
        format!("http://{}", doomed.public),
        format!("http://{}", survivor.public),
    ];
    let http = reqwest::Client::new();
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let survivor_errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let mut senders = Vec::new();
    for sender in 0..12 {
        let replica = sender % 2;
        let (http, base, token, acknowledged, errors, stop) = (
            http.clone(),
            bases[replica].clone(),
            token.clone(),
            acknowledged.clone(),
            survivor_errors.clone(),
            stop.clone(),
        );
        senders.push(tokio::spawn(async move {
            for n in 0.. {
                if stop.is_cancelled() {
                    return;
                }
                let text = format!("replica test {sender}-{n}");
                match call_tool(
                    &http,
                    &base,
                    &token,
                    "send_message",
                    json!({"message": text}),
                )
                .await
                {
                    Ok(result) => acknowledged
                        .lock()
                        .unwrap()
                        .push(result["id"].as_str().expect("an id").to_owned()),
                    // The killed replica's senders stop; the survivor's must never fail.
                    Err(_) if replica == 0 => return,
                    Err(error) => errors.lock().unwrap().push(error),
                }
            }
        }));
    }
    let enough = |count: usize| {
        let acknowledged = acknowledged.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(60), async {
                while acknowledged.lock().unwrap().len() < count {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await
            .expect("sends acknowledged within a minute");
        }
    };
    enough(300).await;
    doomed.kill_9();
    // The survivor goes on serving under load after the kill.
    let at_kill = acknowledged.lock().unwrap().len();
    enough(at_kill + 300).await;
    stop.cancel();
    for sender in senders {
        sender.await.expect("sender");
    }
    let errors = survivor_errors.lock().unwrap().clone();
    assert!(
        errors.is_empty(),
        "the surviving replica failed requests: {errors:?}"
    );
    let acknowledged = acknowledged.lock().unwrap().clone();
    for id in &acknowledged {
        let message = call_tool(&http, &bases[1], &token, "get_message", json!({"id": id}))
            .await
            .unwrap_or_else(|error| panic!("task {id} was acknowledged, and is gone: {error}"));
        assert_eq!(message["message"]["status"], "pending", "{message}");
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/test runs it"]
async fn postgres_replicas_a_lease_is_held_by_one_until_it_lapses() {
    let server = postgres_server().expect("POSTGRES_TEST_URL names the test PostgreSQL server");
    let dir = TempDir::new().expect("dir");
    let location =
        nexus_gateway::store::StoreLocation::Postgres(database_for(&server, dir.path()).await);
    let first = nexus_gateway::store::Store::open_at(&location)
        .await
        .expect("store");
    let second = nexus_gateway::store::Store::open_at(&location)
        .await
        .expect("store");
    let lease = "telegram:1";
    assert!(
        first
            .take_lease(lease, "first", 1000, 1040)
            .await
            .expect("take")
    );
    assert!(
        !second
            .take_lease(lease, "second", 1010, 1050)
            .await
            .expect("ask")
    );
    assert!(
        first
            .take_lease(lease, "first", 1020, 1060)
            .await
            .expect("renew")
    );
    // The holder died without letting go: the lease is taken once it has lapsed.
    assert!(
        !second
            .take_lease(lease, "second", 1059, 1099)
            .await
            .expect("ask")
    );
    assert!(
        second
            .take_lease(lease, "second", 1060, 1100)
            .await
            .expect("take over")
    );
    assert!(
        !first
            .take_lease(lease, "first", 1061, 1101)
            .await
            .expect("too late")
    );
    // Letting go hands it over at once.
    second
        .release_lease(lease, "second")
        .await
        .expect("release");
    assert!(
        first
            .take_lease(lease, "first", 1062, 1102)
            .await
            .expect("take")
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL, nginx and openssl: scripts/test runs it"]
async fn postgres_two_replicas_behind_the_shipped_nginx_upstream_serve_on_when_one_stops() {
    let https_port = free_port();
    let public_url = format!("https://127.0.0.1:{https_port}");
    let (first, second) = two_replicas(move |config| {
        config.public_url = nexus_gateway::config::PublicUrl::parse(&public_url).expect("url");
        config.trusted_proxies = vec![PROXY_ADDRESS.parse().expect("ip")];
    })
    .await;
    let nginx = start_nginx_for(
        &[port_of(&first.base_url), port_of(&second.base_url)],
        port_of(&first.internal_url),
        https_port,
    );
    let http = nginx.client("127.0.0.1");
    let token = token_through(&nginx, &http, &nginx.url("/mcp")).await;
    let send = |text: &'static str| {
        let (http, token, url) = (http.clone(), token.clone(), nginx.url("/mcp"));
        async move {
            let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "send_message", "arguments": {"message": text}}});
            http.post(url)
                .bearer_auth(token)
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", "2025-06-18")
                .json(&body)
                .send()
                .await
                .expect("through nginx")
        }
    };
    let before = send("before the stop").await;
    assert_eq!(before.status(), StatusCode::OK);
    // Stop the replica this address is pinned to: nginx moves it to the other, which serves
    // the same token, task list and all.
    let sent_once = r#"nexus_tool_calls_total{tool="send_message",outcome="ok"} 1"#;
    let (pinned, other) = if first.metrics().await.contains(sent_once) {
        (first, second)
    } else {
        assert!(
            second.metrics().await.contains(sent_once),
            "one replica served it"
        );
        (second, first)
    };
    pinned.stop().await;
    let survivor = other;
    let after = send("after the stop").await;
    assert_eq!(after.status(), StatusCode::OK, "{:?}", after.text().await);
    let body: Value = after.json().await.expect("json");
    assert_eq!(
        body["result"]["structuredContent"]["queued"], true,
        "{body}"
    );
    let store = nexus_gateway::store::Store::open_at(&survivor.config.store_location())
        .await
        .expect("store");
    assert_eq!(
        store.open_messages(None).await.expect("open").len(),
        2,
        "both tasks are in the shared store"
    );
}
