//! The Telegram transport against the fake Bot API, one file per concern: `delivery` (text,
//! parts, buttons, faults), `replies` (correlation, commands, buttons, strangers, restarts,
//! conflicts), `webhook`, `durability` (a reply the store failed to record comes back), and
//! `approval` (owner approval in Telegram, `telegram check`). Here: the gateways and steps
//! they share.

mod approval;
mod delivery;
mod durability;
mod replies;
mod webhook;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nexus_gateway::app::App;
use nexus_gateway::clock::SystemClock;
use nexus_gateway::config::{ApprovalMode, Config, PublicUrl, TelegramConfig, TelegramMode};
use nexus_gateway::queue::message::MessageStatus;
use nexus_gateway::queue::{SendRequest, Sent as Queued};
use nexus_gateway::transport::telegram::api::TelegramError;
use nexus_gateway::transport::telegram::delivery::{Delivery, DeliveryProgress, deliver_one};
use nexus_gateway::transport::telegram::receive::{PollError, poll_once};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::fake_telegram::{
    AGENT_USER, BOT_ID, BOT_TOKEN, FakeTelegram, Fault, OWNER_USER, TASK_CHAT, bot_target,
};
use crate::support::{
    Lifecycle, McpClient, McpUser, Pkce, TestApp, call_tool_ok, database_file, hidden_field,
    redirect_params, spawn_app_with, spawn_in,
};

/// A served gateway whose only target is the fake bot, with its workers running.
async fn spawn_with_bot(fake: &FakeTelegram, adjust: impl FnOnce(&mut TelegramConfig)) -> TestApp {
    spawn_app_with(|config| bot_target(config, fake, adjust)).await
}

/// A built but not served gateway: no workers run, so tests drive single steps.
async fn built_with_bot(fake: &FakeTelegram) -> (App, TempDir) {
    let data_dir = TempDir::new().expect("temp dir");
    let mut config = Config {
        data_dir: data_dir.path().to_path_buf(),
        approval: ApprovalMode::Auto,
        public_url: PublicUrl::parse("http://127.0.0.1:9").expect("url"),
        ..Config::default()
    };
    bot_target(&mut config, fake, |_| {});
    crate::support::postgres::use_suite_engine(&mut config).await;
    let app = App::build_with_clock(config, Arc::new(SystemClock))
        .await
        .expect("app builds");
    (app, data_dir)
}

async fn queue_task(app: &App, text: &str, urgent: bool) -> String {
    let request = SendRequest {
        content: text.into(),
        target: None,
        urgent,
        sender: "c_test".into(),
    };
    match app.state().queue.send(request).await.expect("queued") {
        Queued::Queued { id, .. } => id,
        Queued::Duplicate { .. } => panic!("unexpected duplicate"),
    }
}

async fn client(app: &TestApp) -> McpClient {
    app.mcp_client(
        &app.access_token("tasks:read tasks:write").await,
        Lifecycle::Initialize,
    )
    .await
}

async fn send(client: &McpClient, text: &str) -> String {
    client.send_task(text).await["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// The updates of `task_id` as (status, content).
async fn task_updates(client: &McpClient, task_id: &str) -> Vec<(Value, Value)> {
    let detail = call_tool_ok(client, "get_message", json!({"id": task_id})).await;
    detail["updates"]
        .as_array()
        .expect("updates")
        .iter()
        .map(|update| (update["status"].clone(), update["content"].clone()))
        .collect()
}

/// A task's tag as its posts show it: `#` and the last eight hex digits of its id.
fn tag(task_id: &str) -> String {
    format!("#{}", &task_id[task_id.len() - 8..])
}

/// Makes the gateway's database refuse to record anything said in Telegram (a trigger on the
/// real database, as a full disk would), until `allow_replies`.
async fn refuse_replies(data_dir: &Path) {
    on_database(
        data_dir,
        "CREATE TRIGGER refuse_telegram_replies BEFORE INSERT ON updates
         WHEN NEW.source LIKE 'telegram:%'
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
        "CREATE FUNCTION refuse_telegram_replies() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.source LIKE 'telegram:%' THEN RAISE EXCEPTION 'injected failure'; END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER refuse_telegram_replies BEFORE INSERT ON updates
             FOR EACH ROW EXECUTE FUNCTION refuse_telegram_replies();",
    )
    .await;
}

/// Ends `refuse_replies`.
async fn allow_replies(data_dir: &Path) {
    on_database(
        data_dir,
        "DROP TRIGGER refuse_telegram_replies",
        "DROP TRIGGER refuse_telegram_replies ON updates;
         DROP FUNCTION refuse_telegram_replies();",
    )
    .await;
}

/// Runs `sqlite` on the data directory's SQLite file, or `postgres` on its PostgreSQL
/// database when the suite runs there.
async fn on_database(data_dir: &Path, sqlite: &'static str, postgres: &'static str) {
    use sqlx::Connection;
    if let Some(server) = crate::support::postgres::postgres_server() {
        let url = crate::support::postgres::database_for(&server, data_dir).await;
        let mut connection = sqlx::PgConnection::connect(&url).await.expect("database");
        sqlx::raw_sql(postgres)
            .execute(&mut connection)
            .await
            .expect("statement");
        connection.close().await.expect("closed");
        return;
    }
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(database_file(data_dir));
    let mut connection = sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("database");
    sqlx::query(sqlite)
        .execute(&mut connection)
        .await
        .expect("statement");
    connection.close().await.expect("closed");
}

/// Polls until Telegram has nothing more to hand out.
async fn poll_until_idle(target: &nexus_gateway::transport::telegram::TelegramTarget) {
    while poll_once(target).await.expect("poll") > 0 {}
}
