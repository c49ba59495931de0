//! Client ID Metadata Documents: claude.ai and Claude Code sign in with their pinned documents
//! and no network at all (nothing in these tests serves claude.ai), an owner-pinned document
//! works the same way, unsafe or unknown `client_id` URLs and redirect URIs outside the
//! document get an error page (never a redirect), and registration can be closed.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::owner_approval::Browser;
use crate::support::{Pkce, TestApp, TestClient, spawn_app, spawn_app_with};
use nexus_gateway::config::{PinnedClientDocument, Registration};
use nexus_gateway::oauth::cimd::{CLAUDE_AI, CLAUDE_CODE};

/// A client that names itself by the document at `client_id`.
pub(crate) fn document_client(client_id: &str, redirect_uri: &str) -> TestClient {
    TestClient {
        client_id: client_id.to_owned(),
        client_secret: None,
        redirect_uri: redirect_uri.to_owned(),
    }
}

/// `/authorize` for `client` with everything else right; the response.
pub(crate) async fn authorize(app: &TestApp, client: &TestClient) -> reqwest::Response {
    let pkce = Pkce::new();
    let query = app.authorize_query(client, &pkce, "s");
    let pairs: Vec<(&str, &str)> = query
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    app.authorize(&pairs).await
}

/// An error page: 400, no redirect, the reason in the text.
pub(crate) async fn assert_error_page(response: reqwest::Response, reason: &str) {
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get("location").is_none());
    let page = response.text().await.expect("page");
    assert!(page.contains(reason), "expected {reason:?} in:\n{page}");
}

#[tokio::test]
async fn claude_ai_signs_in_with_its_pinned_document_through_token_refresh_and_mcp() {
    let app = spawn_app().await;
    let metadata = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(metadata["client_id_metadata_document_supported"], true);
    assert!(
        metadata["token_endpoint_auth_methods_supported"]
            .as_array()
            .expect("methods")
            .contains(&json!("none"))
    );

    let claude = document_client(CLAUDE_AI, "https://claude.ai/api/mcp/auth_callback");
    let pkce = Pkce::new();
    let code = app.obtain_code(&claude, &pkce).await;
    let response = app.exchange(&claude, &code, &pkce).await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.expect("tokens");
    let refreshed = app
        .refresh(&claude, tokens["refresh_token"].as_str().expect("refresh"))
        .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let refreshed: Value = refreshed.json().await.expect("tokens");
    let access = refreshed["access_token"].as_str().expect("access");
    let ping = app
        .mcp_post(Some(access), r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .await;
    assert_eq!(ping.status(), StatusCode::OK);

    // The operator sees it as a client, and removing it ends its access.
    let listed = nexus_gateway::admin::list_clients(&app.config)
        .await
        .expect("clients list");
    assert!(listed.contains(CLAUDE_AI), "{listed}");
    nexus_gateway::admin::revoke_client(&app.config, CLAUDE_AI)
        .await
        .expect("clients revoke");
    let after = app
        .refresh(
            &claude,
            refreshed["refresh_token"].as_str().expect("refresh"),
        )
        .await;
    // The client is gone: its credentials name nobody now.
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    let body: Value = after.json().await.expect("json");
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test]
async fn claude_code_may_come_back_on_any_loopback_port() {
    let app = spawn_app().await;
    let claude_code = document_client(CLAUDE_CODE, "http://127.0.0.1:54321/callback");
    let pkce = Pkce::new();
    let code = app.obtain_code(&claude_code, &pkce).await;
    let response = app.exchange(&claude_code, &code, &pkce).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_redirect_uri_outside_the_document_gets_a_page_not_a_redirect() {
    let app = spawn_app().await;
    let impostor = document_client(CLAUDE_AI, "https://evil.example/api/mcp/auth_callback");
    assert_error_page(
        authorize(&app, &impostor).await,
        "redirect_uri is not one this application registered",
    )
    .await;
}

#[tokio::test]
async fn unsafe_and_unknown_client_id_urls_are_refused_with_a_page() {
    let app = spawn_app().await;
    for (client_id, reason) in [
        (
            "http://claude.ai/oauth/mcp-oauth-client-metadata",
            "must use https",
        ),
        ("https://127.0.0.1/client.json", "not an IP address"),
        ("https://10.1.2.3/client.json", "not an IP address"),
        ("https://localhost/client.json", "public host"),
        ("https://nas.local/client.json", "public host"),
        (
            "https://claude.ai/oauth/mcp-oauth-client-metadata#x",
            "fragment",
        ),
        (
            "https://me:pw@claude.ai/oauth/mcp-oauth-client-metadata",
            "credentials",
        ),
        ("https://claude.ai", "must have a path"),
        (
            "https://CLAUDE.ai/oauth/mcp-oauth-client-metadata",
            "canonical form",
        ),
        (
            "https://app.example.com/oauth/client.json",
            "oauth.cimd_documents",
        ),
    ] {
        let client = document_client(client_id, "https://claude.ai/api/mcp/auth_callback");
        assert_error_page(authorize(&app, &client).await, reason).await;
    }
}

#[tokio::test]
async fn an_owner_pinned_document_signs_in_and_registration_can_be_closed() {
    let app = spawn_app_with(|config| {
        config.oauth.registration = Registration::Off;
        config.oauth.cimd_documents = vec![PinnedClientDocument {
            client_id: "https://tools.example.org/mcp/client.json".into(),
            client_name: "Home tools".into(),
            redirect_uris: vec!["https://tools.example.org/callback".into()],
        }];
    })
    .await;
    let pinned = document_client(
        "https://tools.example.org/mcp/client.json",
        "https://tools.example.org/callback",
    );
    let pkce = Pkce::new();
    let code = app.obtain_code(&pinned, &pkce).await;
    assert_eq!(
        app.exchange(&pinned, &code, &pkce).await.status(),
        StatusCode::OK
    );

    let metadata = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert!(
        metadata.get("registration_endpoint").is_none(),
        "{metadata}"
    );
    let refused = app
        .register(json!({"redirect_uris": ["https://x.example/cb"], "token_endpoint_auth_method": "none"}))
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"], "access_denied");
}

#[tokio::test]
async fn the_consent_page_names_the_document_host_and_the_redirect_host() {
    let app = spawn_app_with(|config| {
        config.approval = nexus_gateway::config::ApprovalMode::Password;
    })
    .await;
    let claude = document_client(CLAUDE_AI, "https://claude.ai/api/mcp/auth_callback");
    let mut browser = Browser::new(&app);
    let consent = browser.reach_consent(&claude, &Pkce::new(), "s").await;
    assert!(
        consent.contains("its metadata document at claude.ai"),
        "{consent}"
    );
    assert!(
        consent.contains(r#"<dd class="host">claude.ai</dd>"#),
        "{consent}"
    );
}
