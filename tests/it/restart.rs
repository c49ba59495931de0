//! A restart loses nothing: clients, grants, refresh tokens and signing keys live in SQLite.

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{PROTECTED, Pkce, spawn_app, spawn_in};

#[tokio::test]
async fn tokens_clients_and_refresh_tokens_survive_a_restart() {
    let app = spawn_app().await;
    let public_url = app.base_url.clone();
    let (client, tokens) = app.tokens_for_new_client().await;
    let jwks_before: Value = app.get_json("/.well-known/jwks.json").await;
    let data_dir = app.stop().await;

    // Same data and the same public URL, a new process-level instance on a new port.
    let app = spawn_in(data_dir, Some(&public_url), |_| {}).await;
    let jwks_after: Value = app.get_json("/.well-known/jwks.json").await;
    assert_eq!(jwks_before, jwks_after, "the signing key persisted");
    assert_eq!(
        app.call_protected(PROTECTED, tokens["access_token"].as_str().expect("t"))
            .await
            .status(),
        StatusCode::OK
    );
    let refreshed = app
        .refresh(&client, tokens["refresh_token"].as_str().expect("r"))
        .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    // The client registered before the restart can still authorize.
    let pkce = Pkce::new();
    let code = app.obtain_code(&client, &pkce).await;
    assert_eq!(
        app.exchange(&client, &code, &pkce).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn clients_never_approved_are_swept_after_a_day() {
    let app = spawn_app().await;
    let abandoned = app.register_client("none").await;
    let (used, _) = app.tokens_for_new_client().await;
    app.clock.advance(24 * 3600 + 1);
    app.auth.run_maintenance().await.expect("maintenance");
    let listed = nexus_gateway::admin::list_clients(&app.config)
        .await
        .expect("listed");
    assert!(
        !listed.contains(&abandoned.client_id),
        "abandoned client removed"
    );
    assert!(listed.contains(&used.client_id), "approved client kept");
}
