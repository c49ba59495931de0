//! Owner approval in Telegram, and `telegram check`.

use super::*;

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
