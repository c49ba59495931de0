//! `migrate-store`, through the real binary: a SQLite store a gateway used is copied into an empty
//! PostgreSQL database, and a gateway on the copy logs nobody out (access and refresh tokens,
//! signing keys, messages, update cursors, agents and revocations all carry over). It refuses a
//! database that holds data, and what it cannot copy from or to. The copy needs PostgreSQL
//! (`POSTGRES_TEST_URL`); the refusals that stop before connecting do not.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use nexus_gateway::secrets::Secret;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;
use tempfile::TempDir;

use crate::support::postgres::{database_for, postgres_server};
use crate::support::{
    Lifecycle, McpUser, PROTECTED, TestApp, call_tool_ok, database_file, spawn_in,
};

/// Every table of the store, as the report lists them.
const TABLES: [&str; 21] = [
    "clients",
    "authorization_requests",
    "grants",
    "authorization_codes",
    "refresh_tokens",
    "signing_keys",
    "revoked_tokens",
    "owner",
    "owner_sessions",
    "owner_devices",
    "messages",
    "updates",
    "client_cursors",
    "agents",
    "transport_refs",
    "transport_state",
    "transport_seen",
    "remote_approvals",
    "upstream_tools",
    "revocation_log",
    "leases",
];

fn server() -> String {
    postgres_server().unwrap_or_else(|| {
        panic!(
            "POSTGRES_TEST_URL must name a PostgreSQL server (superuser URL): scripts/test starts one, or run D=$(mktemp -d -u) && URL=$(scripts/postgres start $D) && POSTGRES_TEST_URL=$URL cargo test --test it -- --ignored postgres_ ; scripts/postgres stop $D"
        )
    })
}

/// Runs `nexus-gateway --config <config_dir>/gateway.toml migrate-store --to <to>` with no
/// `NEXUS_*` variable of the test's own environment.
fn migrate(config_dir: &Path, to: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nexus-gateway"));
    command
        .args(["--config", "gateway.toml", "migrate-store", "--to", to])
        .current_dir(config_dir)
        .env_remove("RUST_LOG");
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("NEXUS_")) {
        command.env_remove(name);
    }
    command.output().expect("the binary runs")
}

fn write_config(config_dir: &Path, body: &str) {
    std::fs::write(config_dir.join("gateway.toml"), body).expect("config");
}

fn data_dir_line(data_dir: &Path) -> String {
    format!("data_dir = {:?}\n", data_dir.to_str().expect("utf-8"))
}

/// Rows per table, in `TABLES` order, of the database at `url` (a `sqlite://` file or a
/// `postgres://` database).
async fn table_counts(url: &str) -> Vec<i64> {
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(url)
        .await
        .expect("the database opens");
    let mut counts = Vec::new();
    for table in TABLES {
        let count: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&mut connection)
                .await
                .expect("count");
        counts.push(count);
    }
    counts
}

/// Every table has the same columns in both schemas, but for PostgreSQL's `rowid`.
async fn assert_same_columns(file: &Path, url: &str) {
    let mut sqlite = sqlx::SqliteConnection::connect_with(
        &sqlx::sqlite::SqliteConnectOptions::new()
            .filename(file)
            .read_only(true),
    )
    .await
    .expect("sqlite");
    let mut postgres = sqlx::PgConnection::connect(url).await.expect("postgres");
    for table in TABLES {
        let mut in_sqlite: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
                .bind(table)
                .fetch_all(&mut sqlite)
                .await
                .expect("sqlite columns");
        let mut in_postgres: Vec<String> = sqlx::query_scalar(
            "SELECT column_name::TEXT FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1 AND column_name <> 'rowid'",
        )
        .bind(table)
        .fetch_all(&mut postgres)
        .await
        .expect("postgres columns");
        in_sqlite.sort();
        in_postgres.sort();
        assert_eq!(in_sqlite, in_postgres, "the columns of {table}");
    }
}

/// The row counts a report lists, in its order.
fn reported_counts(stdout: &str) -> Vec<i64> {
    TABLES
        .iter()
        .map(|table| {
            stdout
                .lines()
                .map(str::split_whitespace)
                .find_map(|mut words| {
                    (words.next() == Some(table))
                        .then(|| words.next()?.parse().ok())
                        .flatten()
                })
                .unwrap_or_else(|| panic!("no count for {table} in:\n{stdout}"))
        })
        .collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn seqs(pulled: &Value) -> Vec<i64> {
    pulled["updates"]
        .as_array()
        .expect("updates")
        .iter()
        .map(|update| update["seq"].as_i64().expect("seq"))
        .collect()
}

async fn revoke_access_token(app: &TestApp, token: &str, client_id: &str) {
    let response = app
        .http
        .post(app.url("/revoke"))
        .form(&[
            ("token", token),
            ("token_type_hint", "access_token"),
            ("client_id", client_id),
        ])
        .send()
        .await
        .expect("revoke");
    assert_eq!(response.status(), StatusCode::OK);
}

/// `tokens issue --name NAME`: the token it printed.
async fn issue_bearer(app: &TestApp, name: &str) -> String {
    let output = nexus_gateway::admin::issue_token(&app.config, name, "tasks:read", "30d")
        .await
        .expect("issued");
    output.lines().next().expect("token line").to_owned()
}

/// What the source gateway left behind, as its users hold it.
struct Before {
    public_url: String,
    jwks: Value,
    client: crate::support::TestClient,
    access: String,
    refresh: String,
    sent: Vec<String>,
    cursor: String,
    revoked_access: String,
    revoked_bearer: String,
    kept_bearer: String,
    agent: String,
}

/// A gateway on SQLite used as people would: an OAuth client with tokens, tasks with replies and
/// a read cursor, an agent, bearer tokens, revocations. Stopped at the end.
async fn use_a_sqlite_gateway(dir: Arc<TempDir>) -> Before {
    // The suite may run on PostgreSQL: this gateway must be on its SQLite file.
    let app = spawn_in(dir, None, |config| config.database_url = None).await;
    let jwks = app.get_json("/.well-known/jwks.json").await;
    let (client, tokens) = app.tokens_for_new_client().await;
    let access = tokens["access_token"].as_str().expect("access").to_owned();
    let refresh = tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let mcp = app.mcp_client(&access, Lifecycle::Initialize).await;
    let mut sent = Vec::new();
    for task in ["one", "two", "three"] {
        let queued = mcp.send_task(task).await;
        sent.push(queued["id"].as_str().expect("id").to_owned());
    }
    let agent = app.add_agent("worker", &["homelab"]).await;
    let claimed: Value = app.agent_next(&agent, 0).await.json().await.expect("task");
    assert_eq!(claimed["task"]["id"], sent[0].as_str());
    let reported = app
        .agent_update(
            &agent,
            &sent[0],
            json!({"content": "on it", "status": "in_progress"}),
        )
        .await;
    assert!(reported.status().is_success(), "{}", reported.status());
    let pulled = mcp.pull(json!({})).await;
    assert!(seqs(&pulled).len() >= 4, "{pulled}");
    let cursor = pulled["next_cursor"].as_str().expect("cursor").to_owned();
    mcp.cancel().await.expect("close");

    let (other, other_tokens) = app.tokens_for_new_client().await;
    let revoked_access = other_tokens["access_token"].as_str().expect("a").to_owned();
    revoke_access_token(&app, &revoked_access, &other.client_id).await;
    let revoked_bearer = issue_bearer(&app, "doomed").await;
    let kept_bearer = issue_bearer(&app, "kept").await;
    nexus_gateway::admin::revoke_token(&app.config, "doomed")
        .await
        .expect("revoked");
    let public_url = app.base_url.clone();
    app.stop().await;
    Before {
        public_url,
        jwks,
        client,
        access,
        refresh,
        sent,
        cursor,
        revoked_access,
        revoked_bearer,
        kept_bearer,
        agent,
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/test runs it"]
async fn postgres_migrate_store_copies_everything_and_logs_nobody_out() {
    let server = server();
    let dir = Arc::new(TempDir::new().expect("data dir"));
    let before = use_a_sqlite_gateway(dir.clone()).await;
    let sqlite_file = database_file(dir.path());
    let source_counts = table_counts(&format!("sqlite://{}?mode=ro", sqlite_file.display())).await;
    for table in ["revoked_tokens", "revocation_log", "messages", "agents"] {
        let index = TABLES.iter().position(|name| *name == table).expect("t");
        assert!(source_counts[index] > 0, "{table} has rows to copy");
    }
    let target = database_for(&server, &dir.path().join("target-db")).await;
    let work = TempDir::new().expect("work dir");
    write_config(work.path(), &data_dir_line(dir.path()));

    // The copy: every row, as the report says.
    let output = migrate(work.path(), &target);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stdout}{stderr}");
    assert_eq!(reported_counts(&stdout), source_counts, "{stdout}");
    assert!(
        stdout.contains("NEXUS_DATABASE_URL") && stdout.contains("backup"),
        "{stdout}"
    );
    assert_eq!(table_counts(&target).await, source_counts);
    assert_same_columns(&sqlite_file, &target).await;

    // A gateway on the copy, at the same public URL (tokens are bound to it).
    let target_url = target.clone();
    let app = spawn_in(dir.clone(), Some(&before.public_url), move |config| {
        config.database_url = Some(Secret::new(target_url));
    })
    .await;
    assert_eq!(app.get_json("/.well-known/jwks.json").await, before.jwks);
    assert_eq!(
        app.call_protected(PROTECTED, &before.access).await.status(),
        StatusCode::OK
    );
    let mcp = app.mcp_client(&before.access, Lifecycle::Initialize).await;
    for id in &before.sent {
        let found = call_tool_ok(&mcp, "get_message", json!({"id": id})).await;
        assert_eq!(found["message"]["id"], id.as_str(), "{found}");
    }
    // The stored cursor carried over: nothing is delivered twice.
    let again = mcp.pull(json!({})).await;
    assert!(seqs(&again).is_empty(), "{again}");
    assert_eq!(again["next_cursor"], before.cursor.as_str());
    let copied_max: i64 = before.cursor.parse().expect("numeric cursor");
    let fresh = mcp.send_task("four").await;
    let next = mcp.pull(json!({"since": before.cursor})).await;
    let new_seqs = seqs(&next);
    assert_eq!(new_seqs.len(), 1, "{next}");
    assert!(new_seqs[0] > copied_max, "{new_seqs:?} after {copied_max}");
    assert_eq!(next["updates"][0]["message_id"], fresh["id"]);
    mcp.cancel().await.expect("close");

    let refreshed = app.refresh(&before.client, &before.refresh).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    for (token, status) in [
        (&before.revoked_access, StatusCode::UNAUTHORIZED),
        (&before.revoked_bearer, StatusCode::UNAUTHORIZED),
        (&before.kept_bearer, StatusCode::OK),
    ] {
        assert_eq!(app.call_protected(PROTECTED, token).await.status(), status);
    }
    let claimed: Value = app
        .agent_next(&before.agent, 0)
        .await
        .json()
        .await
        .expect("the agent's token works");
    assert_eq!(claimed["task"]["id"], before.sent[1].as_str());
    app.stop().await;

    // Again, into the database now in use: refused, and nothing changes.
    let counts = table_counts(&target).await;
    let output = migrate(work.path(), &target);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stdout));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("is not empty"), "{stderr}");
    assert_eq!(table_counts(&target).await, counts);
}

#[test]
fn migrate_store_refuses_what_it_cannot_copy() {
    let work = TempDir::new().expect("work dir");
    let data = work.path().join("data");
    write_config(work.path(), &data_dir_line(&data));
    let not_postgres = migrate(work.path(), "sqlite://x");
    assert_eq!(not_postgres.status.code(), Some(1));
    let stderr = text(&not_postgres.stderr);
    assert!(
        stderr.contains("--to must be a postgres:// URL, not sqlite://"),
        "{stderr}"
    );
    // No SQLite store to copy: refused before connecting, and never created.
    let nothing = migrate(work.path(), "postgres://nexus:hunter2@127.0.0.1:1/nexus");
    assert_eq!(nothing.status.code(), Some(1));
    let stderr = text(&nothing.stderr);
    assert!(stderr.contains("no SQLite store at"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(!database_file(&data).exists());
    // A gateway already on PostgreSQL has no SQLite store to copy.
    write_config(
        work.path(),
        &format!(
            "{}database_url = \"postgres://db.example/nexus\"\n",
            data_dir_line(&data)
        ),
    );
    let already = migrate(work.path(), "postgres://db.example/other");
    assert_eq!(already.status.code(), Some(1));
    let stderr = text(&already.stderr);
    assert!(stderr.contains("already PostgreSQL"), "{stderr}");
}
