//! `/register` (RFC 7591): dangerous or malformed metadata, echoes, and its rate limit.

use super::*;

#[tokio::test]
async fn registration_refuses_dangerous_or_malformed_metadata() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"redirect_uris": ["http://evil.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["javascript:alert(1)"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["data:text/html,x"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb#frag"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["cursor://anysphere.cursor-mcp/oauth/callback"]}),
            "invalid_redirect_uri",
        ),
        (json!({"redirect_uris": []}), "invalid_redirect_uri"),
        (
            json!({"client_name": "no redirect"}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": "https://a.example/cb"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": [REDIRECT_URI], "grant_types": ["client_credentials"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
        (json!(["not", "an", "object"]), "invalid_client_metadata"),
    ];
    for (body, expected) in cases {
        assert_oauth_error(
            app.register(body.clone()).await,
            StatusCode::BAD_REQUEST,
            expected,
        )
        .await;
    }
    let not_json = app
        .http
        .post(app.url("/register"))
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .expect("register");
    assert_oauth_error(not_json, StatusCode::BAD_REQUEST, "invalid_client_metadata").await;
    let oversized = json!({"redirect_uris": [REDIRECT_URI], "client_name": "x".repeat(20_000)});
    let response = app.register(oversized).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        response.json::<Value>().await.expect("json")["error"],
        "invalid_client_metadata"
    );
}

#[tokio::test]
async fn registration_echoes_every_field_and_custom_schemes_need_the_operator() {
    let app =
        spawn_app_with(|config| config.oauth.custom_redirect_schemes = vec!["cursor".into()]).await;
    let request = json!({
        "redirect_uris": ["cursor://anysphere.cursor-mcp/oauth/callback", "https://www.cursor.com/agents/mcp/oauth/callback", "http://localhost:8787/callback"],
        "token_endpoint_auth_method": "none",
        "client_name": "Cursor",
        "software_id": "cursor",
        "unknown_member": "ignored",
    });
    let response = app.register(request).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["client_name"], "Cursor");
    assert_eq!(body["software_id"], "cursor");
    assert_eq!(body["token_endpoint_auth_method"], "none");
    assert_eq!(body["redirect_uris"].as_array().map(Vec::len), Some(3));
    assert!(body.get("client_secret").is_none() && body.get("unknown_member").is_none());
    assert!(
        body.as_object()
            .expect("object")
            .values()
            .all(|value| !value.is_null()),
        "no nulls: {body}"
    );
    let confidential: Value = app
        .register(json!({"redirect_uris": [REDIRECT_URI]}))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        confidential["token_endpoint_auth_method"],
        "client_secret_basic"
    );
    assert_eq!(confidential["client_secret_expires_at"], 0);
}

#[tokio::test]
async fn registration_is_rate_limited_per_address() {
    let app = spawn_app_with(|config| config.limits.register_per_minute = 2).await;
    for _ in 0..2 {
        assert_eq!(
            app.register(json!({"redirect_uris": [REDIRECT_URI]}))
                .await
                .status(),
            StatusCode::CREATED
        );
    }
    let limited = app.register(json!({"redirect_uris": [REDIRECT_URI]})).await;
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// The largest registration the rules accept: five 512-byte redirect URIs, a 200-character
/// name and 2 KiB of optional metadata.
fn maximal_registration(index: usize) -> Value {
    let uri = |n: usize| {
        let prefix = format!("https://client.example/{index}/{n}/");
        format!("{prefix}{}", "a".repeat(512 - prefix.len()))
    };
    json!({
        "redirect_uris": (0..5).map(uri).collect::<Vec<_>>(),
        "client_name": "n".repeat(200),
        "token_endpoint_auth_method": "none",
        "client_uri": format!("https://client.example/{}", "c".repeat(489)),
        "logo_uri": format!("https://client.example/{}", "l".repeat(489)),
        "tos_uri": format!("https://client.example/{}", "t".repeat(489)),
        "policy_uri": format!("https://client.example/{}", "p".repeat(489)),
    })
}

#[tokio::test]
async fn a_minute_of_maximal_registrations_stores_well_under_a_megabyte() {
    let app = spawn_app().await;
    let store = Store::open_at(&app.config.store_location())
        .await
        .expect("store");
    let before = store.size_bytes().await.expect("size");
    // A minute's worth from one address: the registration limit's whole budget.
    for index in 0..60 {
        let response = app.register(maximal_registration(index)).await;
        assert_eq!(response.status(), StatusCode::CREATED, "{index}");
    }
    let grown = store.size_bytes().await.expect("size") - before;
    println!("60 maximal registrations grew the store by {grown} bytes");
    assert!(grown < 512 * 1024, "grew by {grown} bytes");
    // One more URI, or a longer one, is refused.
    let mut too_many = maximal_registration(99);
    too_many["redirect_uris"]
        .as_array_mut()
        .expect("uris")
        .push(json!("https://client.example/six"));
    let mut too_long = maximal_registration(98);
    too_long["redirect_uris"][0] = json!(format!("https://client.example/{}", "x".repeat(500)));
    let mut too_much = maximal_registration(97);
    too_much["software_id"] = json!("s".repeat(100));
    app.clock.advance(60);
    for body in [too_many, too_long] {
        assert_oauth_error(
            app.register(body).await,
            StatusCode::BAD_REQUEST,
            "invalid_redirect_uri",
        )
        .await;
    }
    assert_oauth_error(
        app.register(too_much).await,
        StatusCode::BAD_REQUEST,
        "invalid_client_metadata",
    )
    .await;
}

#[tokio::test]
async fn clients_that_never_start_an_authorization_are_gone_within_minutes() {
    let app = spawn_app_with(|config| {
        config.approval = nexus_gateway::config::ApprovalMode::Password;
    })
    .await;
    let idle = app.register_client("none").await;
    let started = app.register_client("none").await;
    // The owner is asked (the login page), and nobody answers.
    let pkce = Pkce::new();
    let query = app.authorize_query(&started, &pkce, "s");
    let pairs: Vec<(&str, &str)> = query.iter().map(|(n, v)| (*n, v.as_str())).collect();
    assert_eq!(app.authorize(&pairs).await.status(), StatusCode::OK);
    let store = Store::open_at(&app.config.store_location())
        .await
        .expect("store");
    app.clock.advance(10 * 60 + 1);
    app.auth.run_maintenance().await.expect("maintenance");
    assert!(
        store
            .find_client(&idle.client_id)
            .await
            .expect("find")
            .is_none()
    );
    assert!(
        store
            .find_client(&started.client_id)
            .await
            .expect("find")
            .is_some()
    );
    // Never approved, it goes after a day all the same.
    app.clock.advance(24 * 3600);
    app.auth.run_maintenance().await.expect("maintenance");
    assert!(
        store
            .find_client(&started.client_id)
            .await
            .expect("find")
            .is_none()
    );
}

#[tokio::test]
async fn past_the_cap_the_oldest_unapproved_clients_are_evicted() {
    let app = spawn_app_with(|config| config.limits.register_per_minute = 1000).await;
    let approved = app.register_client("none").await;
    app.obtain_code(&approved, &Pkce::new()).await;
    let mut ids = Vec::new();
    for _ in 0..503 {
        ids.push(app.register_client("none").await.client_id);
    }
    let store = Store::open_at(&app.config.store_location())
        .await
        .expect("store");
    for (index, id) in ids.iter().enumerate() {
        let kept = store.find_client(id).await.expect("find").is_some();
        assert_eq!(kept, index >= 3, "client {index}");
    }
    assert!(
        store
            .find_client(&approved.client_id)
            .await
            .expect("find")
            .is_some(),
        "approved clients are never evicted"
    );
}
