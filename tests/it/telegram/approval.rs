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
    /// The pairing code the asking browser's waiting page shows (digits only).
    code: String,
    /// The page the browser refreshes while it waits.
    wait_url: String,
    /// The form that asked, to post it again.
    form: [(&'static str, String); 2],
}

impl crate::fake_telegram::Sent {
    /// The callback data of the `index`-th button of the first row.
    fn button(&self, index: usize) -> String {
        self.request["reply_markup"]["inline_keyboard"][0][index]["callback_data"]
            .as_str()
            .expect("data")
            .to_owned()
    }

    /// The texts of the buttons of the first row.
    fn button_texts(&self) -> Vec<String> {
        self.request["reply_markup"]["inline_keyboard"][0]
            .as_array()
            .expect("buttons")
            .iter()
            .map(|button| button["text"].as_str().expect("text").to_owned())
            .collect()
    }
}

/// The messages the bot sent to the owner's private chat.
fn sent_to_owner(fake: &FakeTelegram) -> Vec<crate::fake_telegram::Sent> {
    fake.sent()
        .into_iter()
        .filter(|sent| sent.chat_id == OWNER_USER)
        .collect()
}

/// Sends `text` to the bot as `user` in their private chat, and waits for the bot's reply to
/// the owner (or, for a stranger, gives the bot time to ignore it).
async fn owner_says(fake: &FakeTelegram, user: i64, text: &str) -> Option<String> {
    let before = sent_to_owner(fake).len();
    fake.user_says(user, user, text, None);
    if user != OWNER_USER {
        fake.wait_for("the update is taken", |fake| fake.all_updates_confirmed())
            .await;
        return None;
    }
    fake.wait_for("the bot answers the owner", |fake| {
        sent_to_owner(fake).len() > before
    })
    .await;
    sent_to_owner(fake).last().map(|sent| sent.text.clone())
}

/// A new client's authorization opened in a browser: the client, its PKCE pair, the login page.
async fn login_page(app: &TestApp) -> (crate::support::TestClient, Pkce, String) {
    let registered = app.register_client("none").await;
    let pkce = Pkce::new();
    let query = app.authorize_query(&registered, &pkce, "st");
    let pairs: Vec<(&str, &str)> = query
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    let login = app.authorize(&pairs).await.text().await.expect("html");
    (registered, pkce, login)
}

/// Starts an authorization as a browser would and chooses "Approve in Telegram instead".
async fn ask_owner_in_telegram(app: &TestApp, fake: &FakeTelegram) -> AskedOwner {
    let (registered, pkce, login) = login_page(app).await;
    assert!(login.contains("Approve in Telegram instead"));
    let form = [
        ("request_id", hidden_field(&login, "request_id")),
        ("csrf", hidden_field(&login, "csrf")),
    ];
    let asked_before = sent_to_owner(fake).len();
    let waiting = app
        .http
        .post(app.url("/authorize/telegram"))
        .header("user-agent", "Mozilla/5.0 (TestBrowser)")
        .form(&form)
        .send()
        .await
        .expect("ask");
    assert_eq!(waiting.status(), StatusCode::OK);
    let waiting = waiting.text().await.expect("html");
    assert!(waiting.contains("Check Telegram") && waiting.contains("http-equiv=\"refresh\""));
    let code = pairing_code_on(&waiting);
    let asked = sent_to_owner(fake)
        .into_iter()
        .nth(asked_before)
        .expect("the owner was asked");
    let wait_url = format!(
        "/authorize/telegram/wait?request_id={}&csrf={}",
        form[0].1, form[1].1
    );
    AskedOwner {
        registered,
        pkce,
        asked,
        code,
        wait_url,
        form,
    }
}

/// The pairing code a waiting page shows, digits only.
fn pairing_code_on(page: &str) -> String {
    let marker = "aria-label=\"pairing code\">";
    let start = page.find(marker).expect("a pairing code") + marker.len();
    let end = start + page[start..].find('<').expect("end");
    page[start..end]
        .chars()
        .filter(char::is_ascii_digit)
        .collect()
}

/// Where the waiting page stands: 200 (waiting), or the redirect's parameters.
async fn poll_wait(
    app: &TestApp,
    wait_url: &str,
) -> Result<std::collections::HashMap<String, String>, StatusCode> {
    let response = app.http.get(app.url(wait_url)).send().await.expect("wait");
    if response.status() == StatusCode::SEE_OTHER {
        Ok(redirect_params(&response))
    } else {
        Err(response.status())
    }
}

#[tokio::test]
async fn the_owner_approves_with_the_code_only_the_asking_browser_shows() {
    let fake = FakeTelegram::start().await;
    let app = spawn_with_owner_bot(&fake).await;
    let AskedOwner {
        registered,
        pkce,
        asked,
        code,
        wait_url,
        ..
    } = ask_owner_in_telegram(&app, &fake).await;
    // The prompt says who asks, from where, and how to approve; its only button is Deny.
    for expected in [
        "Test Client",
        "client.example",
        "Requested from 127.0.0.1 (Mozilla/5.0 (TestBrowser))",
        "never approved before",
        "send me the 6-digit code shown in the browser that asked",
    ] {
        assert!(asked.text.contains(expected), "{expected}: {}", asked.text);
    }
    assert_eq!(asked.button_texts(), ["Deny"]);
    assert!(
        !asked.text.contains(&code),
        "the prompt never carries the code"
    );

    // A stranger who somehow has the code cannot use it, and a wrong code approves nothing
    // (updates are handled in order, so the owner's answered message proves the stranger's
    // was handled too).
    owner_says(&fake, AGENT_USER, &code).await;
    let wrong = format!(
        "{:06}",
        (code.parse::<u32>().expect("digits") + 1) % 1_000_000
    );
    assert_eq!(
        owner_says(&fake, OWNER_USER, &wrong).await.as_deref(),
        Some("No waiting request shows that code; nothing was approved")
    );
    assert_eq!(poll_wait(&app, &wait_url).await, Err(StatusCode::OK));

    let typed = format!("{} {}", &code[..3], &code[3..]);
    assert_eq!(
        owner_says(&fake, OWNER_USER, &typed).await.as_deref(),
        Some("Approved: Test Client")
    );
    let params = poll_wait(&app, &wait_url).await.expect("redirected");
    assert_eq!(
        app.exchange(&registered, &params["code"], &pkce)
            .await
            .status(),
        StatusCode::OK
    );
    // The code is single use.
    assert_eq!(
        owner_says(&fake, OWNER_USER, &code).await.as_deref(),
        Some("No waiting request shows that code; nothing was approved")
    );
}

#[tokio::test]
async fn a_tap_on_a_prompt_the_owner_did_not_start_can_only_deny() {
    // The attack: a stranger registers "Test Client" with a real callback, starts the request
    // and chooses Telegram; the owner sees a prompt identical to a real one and taps.
    let fake = FakeTelegram::start().await;
    let app = spawn_with_owner_bot(&fake).await;
    let AskedOwner {
        asked, wait_url, ..
    } = ask_owner_in_telegram(&app, &fake).await;
    let deny = asked.button(0);
    // Even a forged "approve" callback carrying the prompt's token approves nothing.
    let token = deny.split_once(':').map(|(_, token)| token).expect("token");
    fake.user_taps(
        OWNER_USER,
        OWNER_USER,
        asked.message_id,
        &format!("a:{token}"),
    );
    fake.wait_for("the forged tap is answered", |fake| {
        !fake.callback_answers().is_empty()
    })
    .await;
    assert_eq!(
        fake.callback_answers()[0].1,
        "Approving needs the code shown in the browser: send it to me"
    );
    assert_eq!(poll_wait(&app, &wait_url).await, Err(StatusCode::OK));

    // Someone else in a chat with the bot cannot answer for the owner.
    fake.user_taps(AGENT_USER, AGENT_USER, asked.message_id, &deny);
    fake.wait_for("the stranger is answered", |fake| {
        fake.callback_answers().len() == 2
    })
    .await;
    assert_eq!(
        fake.callback_answers()[1].1,
        "Only the owner can answer this"
    );
    assert_eq!(poll_wait(&app, &wait_url).await, Err(StatusCode::OK));

    fake.user_taps(OWNER_USER, OWNER_USER, asked.message_id, &deny);
    fake.wait_for("the owner is answered", |fake| {
        fake.callback_answers().len() == 3
    })
    .await;
    assert_eq!(fake.callback_answers()[2].1, "Denied: Test Client");
    let params = poll_wait(&app, &wait_url).await.expect("redirected");
    assert_eq!(
        params.get("error").map(String::as_str),
        Some("access_denied")
    );
    assert!(!params.contains_key("code"));
}

#[tokio::test]
async fn asking_again_after_a_deny_neither_resets_it_nor_prompts_again() {
    let fake = FakeTelegram::start().await;
    let app = spawn_with_owner_bot(&fake).await;
    let AskedOwner {
        asked,
        wait_url,
        form,
        code,
        ..
    } = ask_owner_in_telegram(&app, &fake).await;
    fake.user_taps(OWNER_USER, OWNER_USER, asked.message_id, &asked.button(0));
    fake.wait_for("the deny is answered", |fake| {
        !fake.callback_answers().is_empty()
    })
    .await;
    let prompts = sent_to_owner(&fake).len();
    for _ in 0..5 {
        let again = app
            .http
            .post(app.url("/authorize/telegram"))
            .form(&form)
            .send()
            .await
            .expect("ask again");
        assert_eq!(again.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            again.headers()["location"].to_str().expect("location"),
            wait_url
        );
    }
    assert_eq!(sent_to_owner(&fake).len(), prompts, "no new prompt");
    // The denied request stays denied, even with its code.
    assert_eq!(
        owner_says(&fake, OWNER_USER, &code).await.as_deref(),
        Some("No waiting request shows that code; nothing was approved")
    );
    let params = poll_wait(&app, &wait_url).await.expect("redirected");
    assert_eq!(
        params.get("error").map(String::as_str),
        Some("access_denied")
    );
}

#[tokio::test]
async fn prompts_to_the_owner_are_capped_per_minute() {
    let fake = FakeTelegram::start().await;
    let app = spawn_with_owner_bot(&fake).await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let (_, _, login) = login_page(&app).await;
        let status = app
            .http
            .post(app.url("/authorize/telegram"))
            .form(&[
                ("request_id", hidden_field(&login, "request_id")),
                ("csrf", hidden_field(&login, "csrf")),
            ])
            .send()
            .await
            .expect("ask")
            .status();
        statuses.push(status);
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|status| **status == StatusCode::OK)
            .count(),
        6,
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(sent_to_owner(&fake).len(), 6);
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
    let AskedOwner { code, wait_url, .. } = ask_owner_in_telegram(&app, &fake).await;

    app.clock.advance(5 * 60 + 1);
    assert_eq!(
        owner_says(&fake, OWNER_USER, &code).await.as_deref(),
        Some("No waiting request shows that code; nothing was approved")
    );
    let waited = app.http.get(app.url(&wait_url)).send().await.expect("wait");
    assert_eq!(
        waited.status(),
        StatusCode::BAD_REQUEST,
        "an expired approval never turns into a code"
    );
    assert!(waited.headers().get("location").is_none());
}
