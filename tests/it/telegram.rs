//! The Telegram transport against the fake Bot API: delivery (text, parts, buttons, faults),
//! receiving (correlation, commands, buttons, strangers, restarts, conflicts, the webhook),
//! owner approval in Telegram, and `telegram check`.

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

use crate::fake_telegram::{AGENT_USER, BOT_TOKEN, FakeTelegram, Fault, OWNER_USER, TASK_CHAT};
use crate::support::{
    Lifecycle, McpClient, Pkce, TestApp, bot_target, call_tool_ok, hidden_field, redirect_params,
    spawn_app_with, spawn_in,
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
    call_tool_ok(client, "send_message", json!({"message": text})).await["id"]
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

fn tag(task_id: &str) -> String {
    format!("#{}", &task_id[..8])
}

#[tokio::test]
async fn tasks_are_posted_once_as_plain_text_with_tag_sender_urgency_and_buttons() {
    let fake = FakeTelegram::start().await;
    let app = spawn_with_bot(&fake, |_| {}).await;
    let client = client(&app).await;
    let sent = call_tool_ok(
        &client,
        "send_message",
        json!({"message": "check the *backups* of file_name.txt", "urgent": true}),
    )
    .await;
    let id = sent["id"].as_str().expect("id").to_owned();
    fake.wait_for("the task is posted", |fake| fake.sent().len() == 1)
        .await;
    let posted = &fake.sent()[0];
    assert_eq!(posted.chat_id, TASK_CHAT);
    assert!(
        posted
            .text
            .starts_with(&format!("URGENT · Task {} from c_", tag(&id))),
        "{}",
        posted.text
    );
    assert!(
        posted.text.contains("check the *backups* of file_name.txt"),
        "sent verbatim, as plain text"
    );
    assert!(posted.request.get("parse_mode").is_none());
    let buttons: Vec<&str> = posted.request["reply_markup"]["inline_keyboard"]
        .as_array()
        .expect("keyboard")
        .iter()
        .flat_map(|row| row.as_array().expect("row"))
        .map(|button| button["text"].as_str().expect("label"))
        .collect();
    assert_eq!(buttons, ["Ack", "Working", "Done", "Failed"]);
    // Delivered is not acknowledged: the agent says when it has seen it.
    assert_eq!(
        call_tool_ok(&client, "get_message", json!({"id": id})).await["message"]["status"],
        "pending"
    );
    // Sent once: another task goes out, the first is not repeated.
    send(&client, "second").await;
    fake.wait_for("the second task is posted", |fake| fake.sent().len() == 2)
        .await;
    assert!(fake.sent()[1].text.contains("second"));
}

#[tokio::test]
async fn long_tasks_go_out_in_numbered_parts_within_telegrams_limit() {
    let fake = FakeTelegram::start().await;
    let app = spawn_with_bot(&fake, |_| {}).await;
    let client = client(&app).await;
    // 2000 emoji are 4000 UTF-16 units (8000 bytes, within the 16 KiB task limit).
    let text = format!(
        "{}\n{}",
        "status report line\n".repeat(300),
        "😀".repeat(2000)
    );
    send(&client, &text).await;
    fake.wait_for("all parts are posted", |fake| fake.sent().len() >= 3)
        .await;
    let parts = fake.sent();
    let total = parts.len();
    for (index, part) in parts.iter().enumerate() {
        assert!(
            part.text.starts_with(&format!("({}/{total}) ", index + 1)),
            "{}",
            &part.text[..20]
        );
        assert!(part.text.encode_utf16().count() <= 4096);
    }
    assert!(
        parts.last().expect("last").request["reply_markup"].is_object(),
        "buttons under the last part"
    );
    assert!(parts[0].request.get("reply_markup").is_none());
}

#[tokio::test]
async fn replies_find_their_task_by_reply_by_tag_or_as_the_single_open_task() {
    let fake = FakeTelegram::start().await;
    let app = spawn_with_bot(&fake, |_| {}).await;
    let client = client(&app).await;
    let first = send(&client, "task A").await;
    fake.wait_for("A is posted", |fake| fake.sent().len() == 1)
        .await;
    fake.user_says(TASK_CHAT, AGENT_USER, "looking now", None);
    fake.wait_for("the reply is handled", FakeTelegram::all_updates_confirmed)
        .await;

    let second = send(&client, "task B").await;
    fake.wait_for("B is posted", |fake| fake.sent().len() == 2)
        .await;
    let b_message = fake.sent()[1].message_id;
    fake.user_says(TASK_CHAT, AGENT_USER, "which one do you mean?", None);
    fake.user_says(TASK_CHAT, AGENT_USER, "B is fine", Some(b_message));
    fake.user_says(
        TASK_CHAT,
        AGENT_USER,
        &format!("{} all good with A", tag(&first).to_uppercase()),
        None,
    );
    fake.wait_for(
        "the replies are handled",
        FakeTelegram::all_updates_confirmed,
    )
    .await;

    let a_updates = task_updates(&client, &first).await;
    assert_eq!(
        a_updates
            .iter()
            .map(|(_, content)| content.clone())
            .collect::<Vec<_>>(),
        [
            json!("queued"),
            json!("looking now"),
            json!(format!("{} all good with A", tag(&first).to_uppercase()))
        ]
    );
    let b_updates = task_updates(&client, &second).await;
    assert_eq!(
        b_updates
            .iter()
            .map(|(_, content)| content.clone())
            .collect::<Vec<_>>(),
        [json!("queued"), json!("B is fine")]
    );
    // With two tasks open, a plain message is kept as an update with no task.
    let pulled = call_tool_ok(&client, "pull_updates", json!({"since": "0"})).await;
    let unattached: Vec<&Value> = pulled["updates"]
        .as_array()
        .expect("updates")
        .iter()
        .filter(|update| update.get("message_id").is_none())
        .collect();
    assert_eq!(unattached.len(), 1);
    assert_eq!(unattached[0]["content"], "which one do you mean?");
    assert_eq!(
        unattached[0]["source"],
        format!("telegram:@user{AGENT_USER}")
    );
}

#[tokio::test]
async fn commands_and_buttons_move_the_status_and_refusals_are_explained() {
    let fake = FakeTelegram::start().await;
    let app = spawn_with_bot(&fake, |_| {}).await;
    let client = client(&app).await;
    let id = send(&client, "rotate the logs").await;
    fake.wait_for("the task is posted", |fake| fake.sent().len() == 1)
        .await;
    let task_message = fake.sent()[0].message_id;
    fake.user_says(
        TASK_CHAT,
        AGENT_USER,
        "/working@nexus_test_bot on it",
        Some(task_message),
    );
    fake.wait_for(
        "the command is handled",
        FakeTelegram::all_updates_confirmed,
    )
    .await;
    assert_eq!(
        call_tool_ok(&client, "get_message", json!({"id": id})).await["message"]["status"],
        "in_progress"
    );

    fake.user_taps(
        TASK_CHAT,
        AGENT_USER,
        task_message,
        &format!("s:complete:{id}"),
    );
    fake.wait_for("the tap is answered", |fake| {
        !fake.callback_answers().is_empty()
    })
    .await;
    assert_eq!(
        fake.callback_answers()[0].1,
        format!("Task {} is now complete", tag(&id))
    );
    let updates = task_updates(&client, &id).await;
    assert_eq!(updates.last(), Some(&(json!("complete"), json!("done"))));
    assert_eq!(updates[1], (json!("in_progress"), json!("on it")));

    // Too late: the bot says why in the chat and nothing changes.
    fake.user_says(TASK_CHAT, AGENT_USER, "/ack", Some(task_message));
    fake.wait_for("the refusal is sent", |fake| fake.sent().len() == 2)
        .await;
    assert!(
        fake.sent()[1]
            .text
            .contains("is complete: the message is already finished"),
        "{}",
        fake.sent()[1].text
    );
    assert_eq!(task_updates(&client, &id).await.len(), updates.len());
    // A command that names no task (two open) asks which one.
    send(&client, "one").await;
    send(&client, "two").await;
    fake.wait_for("both posted", |fake| fake.sent().len() == 4)
        .await;
    fake.user_says(TASK_CHAT, AGENT_USER, "/done", None);
    fake.wait_for("the question is sent", |fake| fake.sent().len() == 5)
        .await;
    assert!(fake.sent()[4].text.starts_with("Which task?"));
}

#[tokio::test]
async fn strangers_bots_other_chats_and_edits_change_nothing() {
    let fake = FakeTelegram::start().await;
    let app = spawn_with_bot(&fake, |telegram| {
        telegram.allowed_user_ids = vec![AGENT_USER]
    })
    .await;
    let client = client(&app).await;
    let id = send(&client, "the only task").await;
    fake.wait_for("the task is posted", |fake| fake.sent().len() == 1)
        .await;
    let task_message = fake.sent()[0].message_id;
    fake.user_says(-100_999, AGENT_USER, "/done from another chat", None);
    fake.user_says(TASK_CHAT, 5555, "/done from a stranger", Some(task_message));
    fake.user_taps(TASK_CHAT, 5555, task_message, &format!("s:complete:{id}"));
    fake.push_update(
        "message",
        json!({"message_id": 90, "from": {"id": 31337, "is_bot": true, "first_name": "OtherBot"}, "chat": {"id": TASK_CHAT, "type": "supergroup"}, "date": 1, "text": "/done"}),
    );
    fake.push_update(
        "edited_message",
        json!({"message_id": 91, "from": {"id": AGENT_USER, "is_bot": false, "first_name": "Agent"}, "chat": {"id": TASK_CHAT, "type": "supergroup"}, "date": 1, "edit_date": 2, "text": "/done edited"}),
    );
    fake.wait_for("everything is read", FakeTelegram::all_updates_confirmed)
        .await;
    assert_eq!(
        task_updates(&client, &id).await,
        [(json!("pending"), json!("queued"))]
    );
    assert_eq!(fake.sent().len(), 1, "strangers get no answer");
    assert!(fake.callback_answers().is_empty());
    // The allowed user still gets through.
    fake.user_says(TASK_CHAT, AGENT_USER, "/ack", Some(task_message));
    fake.wait_for("the ack is read", FakeTelegram::all_updates_confirmed)
        .await;
    assert_eq!(task_updates(&client, &id).await.len(), 2);
}

#[tokio::test]
async fn a_429_waits_exactly_the_retry_after_telegram_asked_for() {
    let fake = FakeTelegram::start().await;
    let (app, _dir) = built_with_bot(&fake).await;
    let target = &app.state().telegram[0];
    let id = queue_task(&app, "throttled", false).await;
    fake.fail_next("sendMessage", &[Fault::RetryAfter(7)]);
    let mut progress = DeliveryProgress::default();
    assert_eq!(
        deliver_one(target, &mut progress).await.expect("step"),
        Delivery::RetryAfter(Duration::from_secs(7))
    );
    assert!(fake.sent().is_empty());
    assert_eq!(
        deliver_one(target, &mut progress).await.expect("step"),
        Delivery::Sent {
            message_id: id,
            parts: 1
        }
    );
    assert_eq!(
        deliver_one(target, &mut progress).await.expect("step"),
        Delivery::Idle
    );
}

#[tokio::test]
async fn outages_and_dropped_connections_delay_tasks_in_order_and_never_lose_them() {
    let fake = FakeTelegram::start().await;
    let (app, _dir) = built_with_bot(&fake).await;
    let target = &app.state().telegram[0];
    let first = queue_task(&app, "first", false).await;
    let second = queue_task(&app, "second", false).await;
    let urgent = queue_task(&app, "urgent one", true).await;
    fake.fail_next(
        "sendMessage",
        &[
            Fault::BadGatewayHtml,
            Fault::Drop,
            Fault::Error(500, "Internal Server Error: restart"),
        ],
    );
    let mut progress = DeliveryProgress::default();
    for _ in 0..3 {
        assert!(matches!(
            deliver_one(target, &mut progress).await.expect("step"),
            Delivery::Transient(_)
        ));
    }
    let mut delivered = Vec::new();
    while let Delivery::Sent { message_id, .. } =
        deliver_one(target, &mut progress).await.expect("step")
    {
        delivered.push(message_id);
    }
    assert_eq!(
        delivered,
        [urgent, first, second],
        "urgent first, then in order, none lost"
    );
    assert_eq!(fake.sent().len(), 3, "nothing posted twice");
}

#[tokio::test]
async fn a_failure_in_the_middle_of_a_long_task_resumes_without_reposting() {
    let fake = FakeTelegram::start().await;
    let (app, _dir) = built_with_bot(&fake).await;
    let target = &app.state().telegram[0];
    queue_task(&app, &"x".repeat(9000), false).await;
    // Part 1 goes out, the connection drops on part 2.
    fake.fail_next("sendMessage", &[Fault::Pass, Fault::Drop]);
    let mut progress = DeliveryProgress::default();
    let outcome = deliver_one(target, &mut progress).await.expect("step");
    assert!(matches!(outcome, Delivery::Transient(_)), "{outcome:?}");
    assert_eq!(fake.sent().len(), 1);
    let outcome = deliver_one(target, &mut progress).await.expect("step");
    assert!(
        matches!(outcome, Delivery::Sent { parts: 3, .. }),
        "{outcome:?}"
    );
    let markers: Vec<String> = fake
        .sent()
        .iter()
        .map(|sent| sent.text[..6].to_owned())
        .collect();
    assert_eq!(
        markers,
        ["(1/3) ", "(2/3) ", "(3/3) "],
        "each part exactly once"
    );
}

#[tokio::test]
async fn a_slow_answer_is_waited_for_and_the_task_is_posted_once() {
    let fake = FakeTelegram::start().await;
    let (app, _dir) = built_with_bot(&fake).await;
    let target = &app.state().telegram[0];
    let id = queue_task(&app, "patience", false).await;
    fake.fail_next("sendMessage", &[Fault::Slow(Duration::from_millis(1500))]);
    let mut progress = DeliveryProgress::default();
    let started = std::time::Instant::now();
    assert_eq!(
        deliver_one(target, &mut progress).await.expect("step"),
        Delivery::Sent {
            message_id: id,
            parts: 1
        }
    );
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert_eq!(
        deliver_one(target, &mut progress).await.expect("step"),
        Delivery::Idle
    );
    assert_eq!(fake.sent().len(), 1);
}

#[tokio::test]
async fn permanent_refusals_mark_the_task_as_error_with_the_reason() {
    let fake = FakeTelegram::start().await;
    let (app, _dir) = built_with_bot(&fake).await;
    let target = &app.state().telegram[0];
    let id = queue_task(&app, "to a blocked chat", false).await;
    fake.block_chat(TASK_CHAT);
    let mut progress = DeliveryProgress::default();
    let outcome = deliver_one(target, &mut progress).await.expect("step");
    assert!(
        matches!(&outcome, Delivery::Failed { reason, .. } if reason.contains("bot was blocked by the user")),
        "{outcome:?}"
    );
    let detail = app.state().queue.message(&id).await.expect("task");
    assert_eq!(detail.message.status, MessageStatus::Error);
    assert!(detail.updates.last().is_some_and(|update| {
        update
            .content
            .contains("delivery failed: sendMessage: Forbidden: bot was blocked")
    }));
    assert_eq!(
        deliver_one(target, &mut progress).await.expect("step"),
        Delivery::Idle,
        "not retried"
    );
}

#[tokio::test]
async fn a_restart_neither_replays_nor_skips_updates() {
    let fake = FakeTelegram::start().await;
    let app = spawn_with_bot(&fake, |_| {}).await;
    let public_url = app.base_url.clone();
    let client = client(&app).await;
    let id = send(&client, "survive a restart").await;
    fake.wait_for("posted", |fake| fake.sent().len() == 1).await;
    let task_message = fake.sent()[0].message_id;
    fake.user_says(TASK_CHAT, AGENT_USER, "first reply", Some(task_message));
    fake.wait_for("read", FakeTelegram::all_updates_confirmed)
        .await;
    let token = app.access_token("tasks:read").await;
    let last_offset = *fake.offsets_seen().last().expect("polled");
    let data_dir = app.stop().await;

    // While the gateway is down the agent answers; after the restart it is read exactly once.
    fake.user_says(
        TASK_CHAT,
        AGENT_USER,
        "reply while down",
        Some(task_message),
    );
    let calls_before = fake.offsets_seen().len();
    let app = spawn_in(data_dir, Some(&public_url), |config| {
        bot_target(config, &fake, |_| {})
    })
    .await;
    fake.wait_for("polled again and read", |fake| {
        fake.offsets_seen().len() > calls_before + 1 && fake.all_updates_confirmed()
    })
    .await;
    assert_eq!(
        fake.offsets_seen()[calls_before],
        last_offset,
        "the offset was persisted"
    );
    let client = app.mcp_client(&token, Lifecycle::Initialize).await;
    let contents: Vec<Value> = task_updates(&client, &id)
        .await
        .into_iter()
        .map(|(_, content)| content)
        .collect();
    assert_eq!(
        contents,
        [
            json!("queued"),
            json!("first reply"),
            json!("reply while down")
        ]
    );
    assert_eq!(
        fake.sent().len(),
        1,
        "the delivered task is not posted again"
    );
}

#[tokio::test]
async fn conflicts_are_reported_and_polling_resumes_after_them() {
    let fake = FakeTelegram::start().await;
    let (app, _dir) = built_with_bot(&fake).await;
    let target = &app.state().telegram[0];
    fake.set_conflict(true);
    let outcome = poll_once(target).await;
    assert!(
        matches!(outcome, Err(PollError::Telegram(TelegramError::Conflict(ref text))) if text.contains("only one bot instance")),
        "{outcome:?}"
    );
    fake.set_conflict(false);
    fake.user_says(TASK_CHAT, AGENT_USER, "hello after the conflict", None);
    assert_eq!(poll_once(target).await.expect("poll"), 1);
    let pulled = app
        .state()
        .queue
        .pull_updates("c_test", Default::default())
        .await
        .expect("pulled");
    assert_eq!(
        pulled.updates.last().map(|update| update.content.as_str()),
        Some("hello after the conflict")
    );
    // The update was confirmed by the next poll's offset and is not handled again.
    assert_eq!(poll_once(target).await.expect("poll"), 0);
}

#[tokio::test]
async fn webhook_calls_need_the_secret_in_constant_time() {
    let fake = FakeTelegram::start().await;
    let app = spawn_in(
        Arc::new(TempDir::new().expect("dir")),
        Some("https://gateway.test"),
        |config| {
            bot_target(config, &fake, |telegram| {
                telegram.mode = TelegramMode::Webhook
            });
        },
    )
    .await;
    fake.wait_for("the webhook is registered", |fake| fake.webhook().is_some())
        .await;
    let (url, secret) = fake.webhook().expect("webhook");
    assert_eq!(url, "https://gateway.test/telegram/webhook/homelab");
    assert!(
        !fake.calls().contains(&"getUpdates".to_owned()),
        "no polling in webhook mode"
    );
    let update = json!({"update_id": 5, "message": {"message_id": 1, "from": {"id": AGENT_USER, "is_bot": false, "first_name": "Agent"},
        "chat": {"id": TASK_CHAT, "type": "supergroup"}, "date": 1, "text": "via the webhook"}});
    let post = |secret: Option<&str>| {
        let mut request = app
            .http
            .post(app.url("/telegram/webhook/homelab"))
            .json(&update);
        if let Some(secret) = secret {
            request = request.header("x-telegram-bot-api-secret-token", secret);
        }
        request.send()
    };
    assert_eq!(
        post(None).await.expect("post").status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(Some("wrong")).await.expect("post").status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(Some(&secret)).await.expect("post").status(),
        StatusCode::OK
    );
    assert_eq!(
        post(Some(&secret)).await.expect("post").status(),
        StatusCode::OK,
        "a redelivery is accepted"
    );
    let bad = app
        .http
        .post(app.url("/telegram/webhook/homelab"))
        .header("x-telegram-bot-api-secret-token", &secret)
        .body("{oops")
        .send()
        .await
        .expect("post");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        app.http
            .post(app.url("/telegram/webhook/nowhere"))
            .json(&update)
            .send()
            .await
            .expect("post")
            .status(),
        StatusCode::NOT_FOUND
    );
    let client = client(&app).await;
    let mut seen = Vec::new();
    for _ in 0..100 {
        let pulled = call_tool_ok(&client, "pull_updates", json!({"since": "0"})).await;
        seen = pulled["updates"]
            .as_array()
            .expect("updates")
            .iter()
            .map(|update| update["content"].clone())
            .collect();
        if !seen.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        seen,
        [json!("via the webhook")],
        "handled once despite the redelivery"
    );
}

/// A gateway in password mode whose bot asks the owner to approve.
async fn spawn_with_owner_bot(fake: &FakeTelegram) -> TestApp {
    spawn_app_with(|config| {
        config.approval = ApprovalMode::Password;
        bot_target(config, fake, |telegram| {
            telegram.owner_user_id = Some(OWNER_USER)
        });
    })
    .await
}

/// What choosing "Approve in Telegram" produced.
struct AskedOwner {
    registered: crate::support::TestClient,
    pkce: Pkce,
    /// The message the owner was sent.
    asked: crate::fake_telegram::Sent,
    /// The page the browser refreshes while it waits.
    wait_url: String,
}

impl crate::fake_telegram::Sent {
    /// The callback data of the `index`-th button of the first row.
    fn button(&self, index: usize) -> String {
        self.request["reply_markup"]["inline_keyboard"][0][index]["callback_data"]
            .as_str()
            .expect("data")
            .to_owned()
    }
}

/// Starts an authorization as a browser would and chooses "Approve in Telegram instead".
async fn ask_owner_in_telegram(app: &TestApp, fake: &FakeTelegram) -> AskedOwner {
    let registered = app.register_client("none").await;
    let pkce = Pkce::new();
    let query = app.authorize_query(&registered, &pkce, "st");
    let login = app
        .http
        .get(app.url("/authorize"))
        .query(&query)
        .send()
        .await
        .expect("authorize")
        .text()
        .await
        .expect("html");
    assert!(login.contains("Approve in Telegram instead"));
    let form = [
        ("request_id", hidden_field(&login, "request_id")),
        ("csrf", hidden_field(&login, "csrf")),
    ];
    let waiting = app
        .http
        .post(app.url("/authorize/telegram"))
        .form(&form)
        .send()
        .await
        .expect("ask");
    assert_eq!(waiting.status(), StatusCode::OK);
    let waiting = waiting.text().await.expect("html");
    assert!(waiting.contains("Check Telegram") && waiting.contains("http-equiv=\"refresh\""));
    let asked = fake
        .sent()
        .into_iter()
        .rfind(|sent| sent.chat_id == OWNER_USER)
        .expect("the owner was asked");
    let wait_url = format!(
        "/authorize/telegram/wait?request_id={}&csrf={}",
        form[0].1, form[1].1
    );
    AskedOwner {
        registered,
        pkce,
        asked,
        wait_url,
    }
}

#[tokio::test]
async fn the_owner_approves_or_denies_access_in_telegram() {
    let fake = FakeTelegram::start().await;
    let app = spawn_with_owner_bot(&fake).await;
    for (approve, expected) in [(false, "access_denied"), (true, "code")] {
        let AskedOwner {
            registered,
            pkce,
            asked,
            wait_url,
        } = ask_owner_in_telegram(&app, &fake).await;
        assert!(
            asked.text.contains("Test Client") && asked.text.contains("client.example"),
            "{}",
            asked.text
        );
        let data = asked.button(if approve { 0 } else { 1 });

        // Someone else in a chat with the bot cannot answer for the owner.
        let answers = fake.callback_answers().len();
        fake.user_taps(AGENT_USER, AGENT_USER, asked.message_id, &data);
        fake.wait_for("the stranger is answered", |fake| {
            fake.callback_answers().len() == answers + 1
        })
        .await;
        assert_eq!(
            fake.callback_answers()
                .last()
                .map(|answer| answer.1.as_str()),
            Some("Only the owner can answer this")
        );
        assert_eq!(
            app.http
                .get(app.url(&wait_url))
                .send()
                .await
                .expect("wait")
                .status(),
            StatusCode::OK,
            "still waiting"
        );

        fake.user_taps(OWNER_USER, OWNER_USER, asked.message_id, &data);
        fake.wait_for("the owner is answered", |fake| {
            fake.callback_answers().len() == answers + 2
        })
        .await;
        let answer = fake.callback_answers().last().expect("answer").1.clone();
        assert_eq!(
            answer,
            if approve {
                "Approved: Test Client"
            } else {
                "Denied: Test Client"
            }
        );
        let done = app.http.get(app.url(&wait_url)).send().await.expect("wait");
        assert_eq!(done.status(), StatusCode::SEE_OTHER);
        let params = redirect_params(&done);
        assert!(
            params.contains_key(expected)
                || params.get("error").map(String::as_str) == Some(expected),
            "{params:?}"
        );
        if approve {
            assert_eq!(
                app.exchange(&registered, &params["code"], &pkce)
                    .await
                    .status(),
                StatusCode::OK
            );
        }
        // The token is single use.
        fake.user_taps(OWNER_USER, OWNER_USER, asked.message_id, &data);
        fake.wait_for("the replay is answered", |fake| {
            fake.callback_answers().len() == answers + 3
        })
        .await;
        assert_eq!(
            fake.callback_answers()
                .last()
                .map(|answer| answer.1.as_str()),
            Some("This request has expired or was already answered")
        );
    }
}

#[tokio::test]
async fn telegram_check_reports_the_bot_the_chat_and_problems() {
    let fake = FakeTelegram::start().await;
    let app = spawn_with_bot(&fake, |_| {}).await;
    let report = nexus_gateway::admin::telegram_check(&app.config)
        .await
        .expect("check passes");
    assert!(
        report.contains("@nexus_test_bot") && report.contains("supergroup \"Homelab\" reachable"),
        "{report}"
    );
    let mut wrong_chat = app.config.clone();
    if let Some(telegram) = wrong_chat.targets[0].telegram.as_mut() {
        telegram.chat_id = 1234;
    }
    let error = nexus_gateway::admin::telegram_check(&wrong_chat)
        .await
        .expect_err("chat not found")
        .to_string();
    assert!(
        error.contains("chat not found") && error.contains("pressed Start"),
        "{error}"
    );
    assert!(
        !error.contains(BOT_TOKEN) && !report.contains(BOT_TOKEN),
        "the token is never printed"
    );
}

#[tokio::test]
async fn an_approval_in_telegram_expires_after_five_minutes() {
    let fake = FakeTelegram::start().await;
    let app = spawn_with_owner_bot(&fake).await;
    let AskedOwner {
        asked, wait_url, ..
    } = ask_owner_in_telegram(&app, &fake).await;
    let approve = asked.button(0);

    app.clock.advance(5 * 60 + 1);
    fake.user_taps(OWNER_USER, OWNER_USER, asked.message_id, &approve);
    fake.wait_for("the late tap is answered", |fake| {
        !fake.callback_answers().is_empty()
    })
    .await;
    assert_eq!(
        fake.callback_answers()[0].1,
        "This request has expired or was already answered"
    );
    let waited = app.http.get(app.url(&wait_url)).send().await.expect("wait");
    assert_eq!(
        waited.status(),
        StatusCode::BAD_REQUEST,
        "an expired approval never turns into a code"
    );
    assert!(waited.headers().get("location").is_none());
}
