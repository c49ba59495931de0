//! The refresh grace window: a rotated refresh token answers with the same pair for 10 s by
//! default, and each such answer is logged, as an error when it goes to another address; a
//! rotation also records the client's last use.

use reqwest::StatusCode;
use serde_json::Value;

use crate::log_capture::LogCapture;
use crate::support::{TestApp, TestClient, assert_oauth_error, spawn_app, spawn_app_with};

/// A public client's refresh from `address` (believed: the tests trust loopback as a proxy).
async fn refresh_from(
    app: &TestApp,
    client: &TestClient,
    refresh_token: &str,
    address: &str,
) -> reqwest::Response {
    app.http
        .post(app.url("/token"))
        .header("x-forwarded-for", address)
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client.client_id.as_str()),
        ])
        .send()
        .await
        .expect("token request")
}

#[tokio::test]
async fn a_retry_within_ten_seconds_gets_the_same_pair() {
    let app = spawn_app().await;
    let (client, tokens) = app.tokens_for_new_client().await;
    let first = tokens["refresh_token"].as_str().expect("refresh");
    let once: Value = app
        .refresh(&client, first)
        .await
        .json()
        .await
        .expect("json");
    app.clock.advance(9);
    let again = app.refresh(&client, first).await;
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await.expect("json");
    assert_eq!(once["refresh_token"], again["refresh_token"]);
}

#[tokio::test]
async fn a_retry_after_ten_seconds_is_a_replay() {
    let app = spawn_app().await;
    let (client, tokens) = app.tokens_for_new_client().await;
    let first = tokens["refresh_token"].as_str().expect("refresh");
    assert_eq!(app.refresh(&client, first).await.status(), StatusCode::OK);
    app.clock.advance(11);
    assert_oauth_error(
        app.refresh(&client, first).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
}

#[tokio::test]
async fn a_retry_is_logged_and_one_from_another_address_as_possible_theft() {
    let logs = LogCapture::start();
    let app = spawn_app_with(|config| {
        config.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")];
    })
    .await;
    let (client, tokens) = app.tokens_for_new_client().await;
    let first = tokens["refresh_token"].as_str().expect("refresh");
    let rotated = refresh_from(&app, &client, first, "198.51.100.7").await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let rotated: Value = rotated.json().await.expect("json");

    let same_place = refresh_from(&app, &client, first, "198.51.100.7").await;
    assert_eq!(same_place.status(), StatusCode::OK);
    let text = logs.text();
    let warned: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("within the grace window"))
        .collect();
    assert_eq!(warned.len(), 1, "{text}");
    assert!(warned[0].contains(" WARN "), "{}", warned[0]);
    assert!(warned[0].contains(&client.client_id), "{}", warned[0]);
    assert!(warned[0].contains("198.51.100.7"), "{}", warned[0]);
    assert!(!text.contains("possible refresh token theft"), "{text}");

    // The same pair still comes back (a client may change networks), but loudly.
    let elsewhere = refresh_from(&app, &client, first, "203.0.113.9").await;
    assert_eq!(elsewhere.status(), StatusCode::OK);
    let elsewhere: Value = elsewhere.json().await.expect("json");
    assert_eq!(elsewhere["refresh_token"], rotated["refresh_token"]);
    let text = logs.text();
    let theft: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("possible refresh token theft"))
        .collect();
    assert_eq!(theft.len(), 1, "{text}");
    for expected in [
        " ERROR ",
        client.client_id.as_str(),
        "203.0.113.9",
        "198.51.100.7",
    ] {
        assert!(theft[0].contains(expected), "{expected} in {}", theft[0]);
    }
    for secret in [first, rotated["refresh_token"].as_str().expect("r")] {
        assert!(!text.contains(secret), "a token was logged");
    }
}

#[tokio::test]
async fn a_rotation_shows_in_the_clients_last_use() {
    let app = spawn_app().await;
    let (client, tokens) = app.tokens_for_new_client().await;
    let last_used = || async {
        let listed = nexus_gateway::admin::list_clients(&app.config)
            .await
            .expect("clients list");
        listed
            .lines()
            .find(|line| line.starts_with(&client.client_id))
            .and_then(|line| line.split("last used: ").nth(1))
            .and_then(|rest| rest.split('\t').next())
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no last use in:\n{listed}"))
    };
    let at_exchange = last_used().await;
    app.clock.advance(120);
    let first = tokens["refresh_token"].as_str().expect("refresh");
    assert_eq!(app.refresh(&client, first).await.status(), StatusCode::OK);
    let at_rotation = last_used().await;
    assert_ne!(at_rotation, at_exchange, "the rotation moved it");
    assert_ne!(at_rotation, "-");
}
