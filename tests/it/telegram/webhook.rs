//! The webhook: Telegram's calls need the secret, and a redelivered update is handled once.

use super::*;

#[tokio::test]
async fn webhook_calls_need_the_secret_and_a_redelivery_is_handled_once() {
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
    // The webhook answers once the update is recorded: no need to wait for it.
    let pulled = client.pull(json!({"since": "0"})).await;
    let seen: Vec<Value> = pulled["updates"]
        .as_array()
        .expect("updates")
        .iter()
        .map(|update| update["content"].clone())
        .collect();
    assert_eq!(
        seen,
        [json!("via the webhook")],
        "handled once despite the redelivery"
    );
}
