//! No token, code, secret or passphrase ever reaches the logs, even at TRACE.
//!
//! This is its own test binary (the one exception to the single `it` binary): it installs a
//! process-wide subscriber, which is the only way to capture every thread's events exactly.

// Test code fails loudly on purpose: a panic with a message is the report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "it/fake_telegram.rs"]
#[allow(dead_code)]
mod fake_telegram;
#[path = "it/support/mod.rs"]
#[allow(dead_code, unused_imports)]
mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use nexus_gateway::config::ApprovalMode;
use reqwest::StatusCode;
use serde_json::Value;

use support::{PROTECTED, Pkce, hidden_field, redirect_params, spawn_app_with};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_appears_in_the_logs_of_a_complete_flow() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        // The production filter policy at its most verbose setting.
        .with_env_filter(nexus_gateway::telemetry::env_filter("trace"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber)
        .expect("the only subscriber of this binary");

    // A Telegram bot too: its token sits in every Bot API URL, and reqwest errors name URLs.
    let fake = fake_telegram::FakeTelegram::start().await;
    fake.fail_next(
        "sendMessage",
        &[
            fake_telegram::Fault::BadGatewayHtml,
            fake_telegram::Fault::Drop,
        ],
    );
    let app = spawn_app_with(|config| {
        config.approval = ApprovalMode::Password;
        fake_telegram::bot_target(config, &fake, |_| {});
    })
    .await;
    let passphrase = app.owner_passphrase.clone().expect("passphrase");
    let client = app.register_client("client_secret_post").await;
    let secret = client.client_secret.clone().expect("secret");
    let pkce = Pkce::new();

    let query = app.authorize_query(&client, &pkce, "state-value-123");
    let login_page = app
        .http
        .get(app.url("/authorize"))
        .query(&query)
        .send()
        .await
        .expect("authorize")
        .text()
        .await
        .expect("html");
    let csrf = hidden_field(&login_page, "csrf");
    let request_id = hidden_field(&login_page, "request_id");
    let logged_in = app
        .http
        .post(app.url("/authorize/login"))
        .form(&[
            ("request_id", request_id.as_str()),
            ("csrf", csrf.as_str()),
            ("passphrase", passphrase.as_str()),
        ])
        .send()
        .await
        .expect("login");
    let cookie = logged_in.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .expect("cookie")
        .to_owned();
    let session = cookie.split_once('=').expect("name=value").1.to_owned();
    let consent = app
        .http
        .get(app.url(logged_in.headers()["location"].to_str().expect("ascii")))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("consent")
        .text()
        .await
        .expect("html");
    let consent_csrf = hidden_field(&consent, "csrf");
    let approved = app
        .http
        .post(app.url("/authorize/decision"))
        .header("cookie", &cookie)
        .form(&[
            ("request_id", request_id.as_str()),
            ("csrf", consent_csrf.as_str()),
            ("decision", "approve"),
        ])
        .send()
        .await
        .expect("decision");
    let code = redirect_params(&approved)["code"].clone();
    let tokens: Value = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &pkce.verifier),
            ("client_id", &client.client_id),
            ("client_secret", &secret),
        ])
        .await
        .json()
        .await
        .expect("tokens");
    let access = tokens["access_token"].as_str().expect("access").to_owned();
    let refresh = tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    assert_eq!(
        app.call_protected(PROTECTED, &access).await.status(),
        StatusCode::OK
    );
    let rotated: Value = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &client.client_id),
            ("client_secret", &secret),
        ])
        .await
        .json()
        .await
        .expect("refresh");
    // Failures log too: a wrong secret and a replayed code.
    let _ = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &client.client_id),
            ("client_secret", "wrong"),
        ])
        .await;
    let _ = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &pkce.verifier),
            ("client_id", &client.client_id),
            ("client_secret", &secret),
        ])
        .await;
    let bearer =
        nexus_gateway::admin::issue_token(&app.config, "logged", "tasks:read tasks:write", "1d")
            .await
            .expect("issued");
    let bearer = bearer.lines().next().expect("token").to_owned();
    // A task and the agent's reply travel through the logs' field of view too.
    let mcp_call = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "send_message", "arguments": {"message": "private task text 7f3a"}}});
    let sent: Value = app
        .mcp_post(Some(&bearer), &mcp_call.to_string())
        .await
        .json()
        .await
        .expect("sent");
    let task_id = sent["result"]["structuredContent"]["id"]
        .as_str()
        .expect("queued")
        .to_owned();
    // The bot posts the task after a 502 and a dropped connection, then the agent replies.
    fake.wait_for("the task is posted", |fake| !fake.sent().is_empty())
        .await;
    let posted = fake.sent()[0].message_id;
    fake.user_says(
        fake_telegram::TASK_CHAT,
        fake_telegram::AGENT_USER,
        "private reply text 9c1b",
        Some(posted),
    );
    fake.wait_for(
        "the reply is read",
        fake_telegram::FakeTelegram::all_updates_confirmed,
    )
    .await;
    let _ = task_id;
    let agent = app.add_agent("logger", &["homelab"]).await;
    // A careless `{:?}` of what holds secrets must not leak them either: the whole state (the
    // bot, the auth server, the limits), an issued token, a token response.
    let issued = app
        .auth
        .issue_bearer_token("debug-check", &app.auth.settings().scopes.all(), 60)
        .await
        .expect("issued");
    let response: nexus_gateway::oauth::TokenResponse =
        serde_json::from_value(rotated.clone()).expect("a token response");
    tracing::info!(state = ?app.state, issued = ?issued, response = ?response, "debug of secret-bearing values");
    drop(app);

    let logs = String::from_utf8(captured.0.lock().expect("buffer").clone()).expect("utf-8");
    assert!(
        logs.contains("owner approved an authorization request"),
        "the flow was logged at all"
    );
    assert!(
        logs.contains("Telegram delivery failed; will retry"),
        "the Telegram failures were logged"
    );
    assert!(
        logs.lines().count() > 50,
        "trace logging captured the requests"
    );
    let secrets = [
        ("passphrase", passphrase.as_str()),
        ("client secret", secret.as_str()),
        ("login csrf", csrf.as_str()),
        ("session cookie", session.as_str()),
        ("consent csrf", consent_csrf.as_str()),
        ("authorization code", code.as_str()),
        ("code verifier", pkce.verifier.as_str()),
        ("access token", access.as_str()),
        ("refresh token", refresh.as_str()),
        (
            "rotated access token",
            rotated["access_token"].as_str().expect("t"),
        ),
        (
            "rotated refresh token",
            rotated["refresh_token"].as_str().expect("r"),
        ),
        ("bearer token", bearer.as_str()),
        ("issued token", issued.token.expose()),
        ("agent token", agent.as_str()),
        ("bot token", fake_telegram::BOT_TOKEN),
        ("bot token secret part", "TEST-token_abcdef"),
        ("task text", "private task text 7f3a"),
        ("agent reply", "private reply text 9c1b"),
        ("state", "state-value-123"),
    ];
    for (name, value) in secrets {
        let leaks: Vec<&str> = logs
            .lines()
            .filter(|line| line.contains(value))
            .take(3)
            .collect();
        assert!(
            leaks.is_empty(),
            "the {name} appears in the logs: {leaks:#?}"
        );
    }
}
