//! `/token`: codes, verifiers, refresh replays, client authentication and malformed requests.

use super::*;

#[tokio::test]
async fn wrong_verifier_is_invalid_grant_and_a_missing_one_is_invalid_request() {
    let app = spawn_app().await;
    let client = app.register_client("none").await;
    let pkce = Pkce::new();
    let code = app.obtain_code(&client, &pkce).await;
    assert_oauth_error(
        app.exchange(&client, &code, &Pkce::new()).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let missing = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &client.client_id),
        ])
        .await;
    assert_oauth_error(missing, StatusCode::BAD_REQUEST, "invalid_request").await;
    // A failed attempt does not burn the code for its rightful holder.
    assert_eq!(
        app.exchange(&client, &code, &pkce).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn code_reuse_is_refused_and_revokes_what_the_code_issued() {
    let app = spawn_app().await;
    let (client, pkce, code, first) = app.redeemed_code().await;
    assert_oauth_error(
        app.exchange(&client, &code, &pkce).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        app.call_protected(PROTECTED, first["access_token"].as_str().expect("t"))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_oauth_error(
        app.refresh(&client, first["refresh_token"].as_str().expect("r"))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
}

#[tokio::test]
async fn a_leaked_code_without_its_verifier_cannot_revoke_the_grant() {
    let app = spawn_app().await;
    let (client, _, code, first) = app.redeemed_code().await;
    // Someone who saw the code in a log replays it, but has no verifier.
    assert_oauth_error(
        app.exchange(&client, &code, &Pkce::new()).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let access = first["access_token"].as_str().expect("token");
    assert_eq!(
        app.call_protected(PROTECTED, access).await.status(),
        StatusCode::OK,
        "the owner's grant survives"
    );
}

#[tokio::test]
async fn codes_expire_after_a_minute_and_are_bound_to_client_redirect_and_resource() {
    let app = spawn_app().await;
    let client = app.register_client("none").await;
    let other = app.register_client("none").await;
    let pkce = Pkce::new();
    let code = app.obtain_code(&client, &pkce).await;
    assert_oauth_error(
        app.exchange(&other, &code, &pkce).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let wrong_redirect = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &pkce.verifier),
            ("redirect_uri", "https://client.example/other"),
            ("client_id", &client.client_id),
        ])
        .await;
    assert_oauth_error(wrong_redirect, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let wrong_resource = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &pkce.verifier),
            ("client_id", &client.client_id),
            ("resource", "https://other.example/mcp"),
        ])
        .await;
    assert_oauth_error(wrong_resource, StatusCode::BAD_REQUEST, "invalid_target").await;
    app.clock.advance(61);
    assert_oauth_error(
        app.exchange(&client, &code, &pkce).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
}

#[tokio::test]
async fn refresh_replay_after_the_grace_window_revokes_the_whole_grant() {
    let app = spawn_app().await;
    let (client, tokens) = app.tokens_for_new_client().await;
    let first = tokens["refresh_token"].as_str().expect("refresh");
    let rotated: Value = app
        .refresh(&client, first)
        .await
        .json()
        .await
        .expect("json");
    app.clock.advance(61);
    assert_oauth_error(
        app.refresh(&client, first).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    // The thief's replay killed the legitimate holder's tokens too: that is the point.
    assert_oauth_error(
        app.refresh(&client, rotated["refresh_token"].as_str().expect("r"))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        app.call_protected(PROTECTED, rotated["access_token"].as_str().expect("t"))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let other = app.register_client("none").await;
    let (_, fresh) = app.tokens_for_new_client().await;
    assert_oauth_error(
        app.refresh(&other, fresh["refresh_token"].as_str().expect("r"))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
}

#[tokio::test]
async fn client_authentication_failures_are_invalid_client() {
    let app = spawn_app().await;
    let confidential = app.register_client("client_secret_basic").await;
    let form = [("grant_type", "refresh_token"), ("refresh_token", "rt_x")];
    let wrong_secret = app
        .token_basic(&confidential.client_id, "wrong", &form)
        .await;
    assert_eq!(
        wrong_secret
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().ok()),
        Some(Some("Basic realm=\"nexus-gateway\""))
    );
    assert_oauth_error(wrong_secret, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let no_secret = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "rt_x"),
            ("client_id", &confidential.client_id),
        ])
        .await;
    assert_oauth_error(no_secret, StatusCode::UNAUTHORIZED, "invalid_client").await;
    assert_oauth_error(
        app.token(&form).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
    let unknown = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "x"),
            ("client_id", "c_nope"),
        ])
        .await;
    assert_oauth_error(unknown, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let secret = confidential.client_secret.clone().expect("secret");
    let two_methods = app
        .token_basic(
            &confidential.client_id,
            &secret,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", "x"),
                ("client_secret", &secret),
            ],
        )
        .await;
    assert_oauth_error(two_methods, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn malformed_token_requests_get_the_rfc_error() {
    let app = spawn_app().await;
    let client = app.register_client("none").await;
    let id = client.client_id.as_str();
    assert_oauth_error(
        app.token(&[("client_id", id)]).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    assert_oauth_error(
        app.token(&[("grant_type", "password"), ("client_id", id)])
            .await,
        StatusCode::BAD_REQUEST,
        "unsupported_grant_type",
    )
    .await;
    assert_oauth_error(
        app.token(&[("grant_type", "refresh_token"), ("client_id", id)])
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    let empty_then_repeated = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", ""),
            ("refresh_token", "rt_x"),
            ("client_id", id),
        ])
        .await;
    assert_oauth_error(
        empty_then_repeated,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    let repeated = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("grant_type", "refresh_token"),
            ("client_id", id),
        ])
        .await;
    assert_oauth_error(repeated, StatusCode::BAD_REQUEST, "invalid_request").await;
    let json_body = app
        .http
        .post(app.url("/token"))
        .json(&json!({"grant_type": "refresh_token"}))
        .send()
        .await
        .expect("token");
    assert_oauth_error(json_body, StatusCode::BAD_REQUEST, "invalid_request").await;
    let huge = app
        .http
        .post(app.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("a=".repeat(70_000))
        .send()
        .await
        .expect("token");
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
}
