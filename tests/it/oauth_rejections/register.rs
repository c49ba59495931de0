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
