//! `/authorize`: what is redirected back to the client, what gets a page, and its limits.

use super::*;

/// A client the owner has approved once (the test gateway approves automatically): only such a
/// client's errors are redirected back to it.
async fn approved_client(app: &TestApp) -> crate::support::TestClient {
    let client = app.register_client("none").await;
    app.obtain_code(&client, &Pkce::new()).await;
    client
}

/// Runs /authorize with one parameter replaced (or removed with `None`) and returns the response.
async fn authorize_with(app: &TestApp, change: (&str, Option<&str>)) -> reqwest::Response {
    let client = approved_client(app).await;
    let pkce = Pkce::new();
    let mut query = app.authorize_query(&client, &pkce, "s1");
    query.retain(|(name, _)| *name != change.0);
    if let Some(value) = change.1 {
        query.push((change.0, value.to_owned()));
    }
    let pairs: Vec<(&str, &str)> = query
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    app.authorize(&pairs).await
}

#[tokio::test]
async fn authorization_errors_after_the_client_is_known_go_back_to_the_client() {
    let app = spawn_app().await;
    let cases: [((&str, Option<&str>), &str); 7] = [
        (("code_challenge", None), "invalid_request"),
        (("code_challenge_method", Some("plain")), "invalid_request"),
        (("code_challenge_method", None), "invalid_request"),
        (("code_challenge", Some("too-short")), "invalid_request"),
        (
            ("response_type", Some("token")),
            "unsupported_response_type",
        ),
        (
            ("resource", Some("https://other.example/mcp")),
            "invalid_target",
        ),
        (("response_type", None), "invalid_request"),
    ];
    for (change, expected) in cases {
        let response = authorize_with(&app, change).await;
        assert_eq!(response.status(), StatusCode::FOUND, "{change:?}");
        let params = redirect_params(&response);
        assert_eq!(
            params.get("error").map(String::as_str),
            Some(expected),
            "{change:?}"
        );
        assert_eq!(
            params.get("state").map(String::as_str),
            Some("s1"),
            "{change:?}"
        );
        assert_eq!(params.get("iss"), Some(&app.base_url), "{change:?}");
        assert!(!params.contains_key("code"));
    }
    let repeated = app
        .http
        .get(format!("{}&scope=tasks:read", authorize_url(&app).await))
        .send()
        .await
        .expect("authorize");
    assert_eq!(
        redirect_params(&repeated).get("error").map(String::as_str),
        Some("invalid_request")
    );
}

async fn authorize_url(app: &TestApp) -> String {
    let client = approved_client(app).await;
    let pkce = Pkce::new();
    let query = app.authorize_query(&client, &pkce, "s1");
    let encoded: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(query.iter().map(|(n, v)| (*n, v.as_str())))
        .finish();
    app.url(&format!("/authorize?{encoded}"))
}

#[tokio::test]
async fn a_client_nobody_approved_gets_its_errors_on_a_page_not_a_redirect() {
    // Registration is open: redirecting its errors would make /authorize an open redirector
    // to any URI a stranger registers (RFC 9700 §4.11.2).
    let app = spawn_app().await;
    let client = app.register_client("none").await;
    let pkce = Pkce::new();
    let mut query = app.authorize_query(&client, &pkce, "s1");
    query.retain(|(name, _)| *name != "code_challenge");
    let pairs: Vec<(&str, &str)> = query
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    let response = app.authorize(&pairs).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get("location").is_none());
    assert!(
        response
            .text()
            .await
            .expect("html")
            .contains("PKCE is required")
    );
}

#[tokio::test]
async fn unknown_clients_and_foreign_redirect_uris_get_a_page_never_a_redirect() {
    let app = spawn_app().await;
    for change in [
        ("client_id", Some("c_unknown")),
        ("client_id", None),
        ("redirect_uri", Some("https://evil.example/callback")),
        ("redirect_uri", Some("https://client.example/callback/")),
        ("redirect_uri", Some("https://client.example/callback?x=1")),
    ] {
        let response = authorize_with(&app, change).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{change:?}");
        assert!(
            response.headers().get("location").is_none(),
            "{change:?} must not redirect"
        );
        assert!(
            response.headers()["content-type"]
                .to_str()
                .expect("ascii")
                .starts_with("text/html")
        );
        assert_eq!(response.headers()["x-frame-options"], "DENY");
    }
}

#[tokio::test]
async fn loopback_redirect_uris_may_change_port_and_a_single_uri_may_be_omitted() {
    let app = spawn_app().await;
    let registered: Value = app
        .register(json!({"redirect_uris": ["http://127.0.0.1/callback"], "token_endpoint_auth_method": "none"}))
        .await
        .json()
        .await
        .expect("json");
    let client_id = registered["client_id"].as_str().expect("id");
    let pkce = Pkce::new();
    let base = [
        ("response_type", "code"),
        ("client_id", client_id),
        ("code_challenge", pkce.challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let with_port = [
        &base[..],
        &[("redirect_uri", "http://127.0.0.1:49152/callback")],
    ]
    .concat();
    let response = app.authorize(&with_port).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert!(
        response.headers()["location"]
            .to_str()
            .expect("ascii")
            .starts_with("http://127.0.0.1:49152/callback?code=")
    );
    let omitted = app.authorize(&base).await;
    assert_eq!(omitted.status(), StatusCode::FOUND);
    let other_path = [
        &base[..],
        &[("redirect_uri", "http://127.0.0.1:49152/other")],
    ]
    .concat();
    assert_eq!(
        app.authorize(&other_path).await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn unknown_scopes_are_ignored_and_the_default_is_everything() {
    let app = spawn_app().await;
    let client = app.register_client("none").await;
    let pkce = Pkce::new();
    let mut query = app.authorize_query(&client, &pkce, "s");
    query.retain(|(name, _)| *name != "scope");
    query.push(("scope", "claudeai offline_access".into()));
    let pairs: Vec<(&str, &str)> = query.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let code = redirect_params(&app.authorize(&pairs).await)["code"].clone();
    let tokens: Value = app
        .exchange(&client, &code, &pkce)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(tokens["scope"], "tasks:read tasks:write");
}

#[tokio::test]
async fn authorization_requests_are_rate_limited_per_address() {
    let app = spawn_app_with(|config| config.limits.authorize_per_minute = 3).await;
    let client = app.register_client("none").await;
    let pkce = Pkce::new();
    let query = app.authorize_query(&client, &pkce, "s");
    let pairs: Vec<(&str, &str)> = query
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    for _ in 0..3 {
        assert_eq!(app.authorize(&pairs).await.status(), StatusCode::FOUND);
    }
    let limited = app.authorize(&pairs).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key("retry-after"));
    assert!(limited.headers().get("location").is_none());
}

#[tokio::test]
async fn auto_approval_refuses_a_client_that_is_not_on_this_machine() {
    // A misconfiguration the config check refuses; the request check holds even so.
    let app =
        spawn_app_with(|config| config.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")])
            .await;
    let client = app.register_client("none").await;
    let pkce = Pkce::new();
    let query = app.authorize_query(&client, &pkce, "s");
    let remote = app
        .http
        .get(app.url("/authorize"))
        .query(&query)
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .expect("authorize");
    assert_eq!(remote.status(), StatusCode::FORBIDDEN);
    assert!(
        remote.headers().get("location").is_none(),
        "no code for a remote client"
    );
    let local = app
        .http
        .get(app.url("/authorize"))
        .query(&query)
        .send()
        .await
        .expect("authorize");
    assert_eq!(local.status(), StatusCode::FOUND);
}
