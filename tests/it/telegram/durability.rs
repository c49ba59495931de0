//! Durability: when the store fails to record a reply, nothing of the update is kept, so
//! Telegram's redelivery (by polling or by webhook) records it instead of taking it for a
//! duplicate.

use super::*;

#[tokio::test]
async fn a_polled_reply_the_store_failed_to_record_is_recorded_when_it_comes_again() {
    let fake = FakeTelegram::start().await;
    let (app, dir) = built_with_bot(&fake).await;
    let target = &app.state().telegram[0];
    let id = queue_task(&app, "restart the backup job", false).await;
    let mut progress = DeliveryProgress::default();
    deliver_one(target, &mut progress).await.expect("posted");
    let task_message = fake.sent()[0].message_id;
    fake.user_says(TASK_CHAT, AGENT_USER, "/working on it", Some(task_message));

    refuse_replies(dir.path()).await;
    let outcome = poll_once(target).await;
    assert!(matches!(outcome, Err(PollError::Queue(_))), "{outcome:?}");
    allow_replies(dir.path()).await;
    let queue = &app.state().queue;
    let detail = queue.message(&id, Default::default()).await.expect("task");
    assert_eq!(
        detail.message.status,
        MessageStatus::Pending,
        "nothing of it was kept"
    );

    // The offset was not moved past it, so Telegram hands it out again.
    assert_eq!(poll_once(target).await.expect("poll"), 1);
    let detail = queue.message(&id, Default::default()).await.expect("task");
    assert_eq!(detail.message.status, MessageStatus::InProgress);
    let contents: Vec<&str> = detail
        .updates
        .iter()
        .map(|update| update.content.as_str())
        .collect();
    assert_eq!(contents, ["queued", "on it"]);
    assert_eq!(poll_once(target).await.expect("poll"), 0, "and confirmed");
    assert!(fake.all_updates_confirmed());
}

#[tokio::test]
async fn the_webhook_answers_after_handling_so_a_failure_makes_telegram_send_it_again() {
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
    let (_, secret) = fake.webhook().expect("webhook");
    let update = json!({"update_id": 7, "message": {"message_id": 3, "from": {"id": AGENT_USER, "is_bot": false, "first_name": "Agent"},
        "chat": {"id": TASK_CHAT, "type": "supergroup"}, "date": 1, "text": "disk 3 is failing"}});
    let deliver = || {
        app.http
            .post(app.url("/telegram/webhook/homelab"))
            .header("x-telegram-bot-api-secret-token", &secret)
            .json(&update)
            .send()
    };

    refuse_replies(app.data_dir.path()).await;
    let refused = deliver().await.expect("post").status();
    assert!(refused.is_server_error(), "{refused}");
    allow_replies(app.data_dir.path()).await;
    // Telegram retries what was not answered 2xx; the retry, and a later duplicate, are
    // recorded once, before the answer.
    assert_eq!(deliver().await.expect("post").status(), StatusCode::OK);
    assert_eq!(deliver().await.expect("post").status(), StatusCode::OK);
    let pulled = client(&app).await.pull(json!({"since": "0"})).await;
    let seen: Vec<Value> = pulled["updates"]
        .as_array()
        .expect("updates")
        .iter()
        .map(|update| update["content"].clone())
        .collect();
    assert_eq!(seen, [json!("disk 3 is failing")]);
}
