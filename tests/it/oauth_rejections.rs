//! One test per rule the authorization server enforces: each sends what an attacker or a
//! broken client would, and checks the exact error the RFC prescribes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use nexus_gateway::store::Store;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{
    PROTECTED, Pkce, REDIRECT_URI, TestApp, assert_oauth_error, database_file, redirect_params,
    spawn_app, spawn_app_with,
};

/// Runs /authorize with one parameter replaced (or removed with `None`) and returns the response.
async fn authorize_with(app: &TestApp, change: (&str, Option<&str>)) -> reqwest::Response {
    let client = app.register_client("none").await;
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
    let client = app.register_client("none").await;
    let pkce = Pkce::new();
    let query = app.authorize_query(&client, &pkce, "s1");
    let encoded: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(query.iter().map(|(n, v)| (*n, v.as_str())))
        .finish();
    app.url(&format!("/authorize?{encoded}"))
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

#[tokio::test]
async fn the_guard_challenges_missing_forged_expired_and_foreign_tokens() {
    let app = spawn_app().await;
    let (_, tokens) = app.tokens_for_new_client().await;
    let valid = tokens["access_token"].as_str().expect("token").to_owned();
    let metadata_url = format!("{}/.well-known/oauth-protected-resource/mcp", app.base_url);

    let missing = app
        .http
        .get(app.url(PROTECTED))
        .send()
        .await
        .expect("request");
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    let challenge = missing.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(
        challenge,
        format!("Bearer resource_metadata=\"{metadata_url}\", scope=\"tasks:read tasks:write\"")
    );

    let in_query = app
        .http
        .get(app.url(&format!("{PROTECTED}?access_token={valid}")))
        .send()
        .await
        .expect("request");
    assert_eq!(
        in_query.status(),
        StatusCode::UNAUTHORIZED,
        "tokens in the query string are never read"
    );

    let claims: Value = app
        .call_protected(PROTECTED, &valid)
        .await
        .json()
        .await
        .expect("claims");
    let forged_none = forge(&claims, r#"{"alg":"none","typ":"at+jwt"}"#, "");
    let hs256 = {
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(b"secret")).expect("sign")
    };
    let tampered = {
        let mut parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
        let mut altered = claims.clone();
        altered["scope"] = json!("tasks:read tasks:write admin");
        parts[1] = URL_SAFE_NO_PAD.encode(altered.to_string());
        parts.join(".")
    };
    let wrong_audience =
        sign_with_gateway_key(&app, json!({"aud": "https://other.example/mcp"}), &claims).await;
    let wrong_issuer =
        sign_with_gateway_key(&app, json!({"iss": "https://other.example"}), &claims).await;
    for (name, token) in [
        ("alg none", forged_none),
        ("HS256", hs256),
        ("tampered", tampered),
        ("wrong audience", wrong_audience),
        ("wrong issuer", wrong_issuer),
        ("garbage", "not-a-token".to_owned()),
    ] {
        let response = app.call_protected(PROTECTED, &token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\""),
            "{name}: {challenge}"
        );
        assert!(challenge.contains(&metadata_url), "{name}");
    }
    let basic = app
        .http
        .get(app.url(PROTECTED))
        .basic_auth("user", Some("pass"))
        .send()
        .await
        .expect("request");
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);

    assert_eq!(
        app.call_protected(PROTECTED, &valid).await.status(),
        StatusCode::OK
    );
    app.clock.advance(3600 + 31);
    assert_eq!(
        app.call_protected(PROTECTED, &valid).await.status(),
        StatusCode::UNAUTHORIZED,
        "expired"
    );
}

fn forge(claims: &Value, header: &str, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// Signs `claims` (with `overrides`) with the gateway's own private key, as an insider would:
/// the signature is valid, so only the claim checks can refuse it.
async fn sign_with_gateway_key(app: &TestApp, overrides: Value, claims: &Value) -> String {
    let store = Store::open(&database_file(app.data_dir.path()))
        .await
        .expect("store");
    let keys = store
        .live_signing_keys(app.clock_now())
        .await
        .expect("keys");
    let mut claims = claims.clone();
    for (name, value) in overrides.as_object().expect("object") {
        claims[name] = value.clone();
    }
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("at+jwt".into());
    header.kid = Some(keys[0].kid.clone());
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_ec_der(&keys[0].private_pkcs8),
    )
    .expect("sign")
}

impl TestApp {
    fn clock_now(&self) -> i64 {
        use nexus_gateway::clock::Clock;
        self.clock.now()
    }
}

#[tokio::test]
async fn authorization_requests_are_rate_limited_per_address() {
    let app = spawn_app_with(|config| config.limits.register_per_minute = 3).await;
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

#[tokio::test]
async fn a_refused_request_keeps_the_connection_usable() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let app = spawn_app().await;
    let address = app.base_url.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let mut stream = BufReader::new(stream);
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#;
    let headers = format!(
        "POST /mcp HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    // Headers first, the body a moment later, as clients that stream bodies do: a server that
    // answers before reading the body must still keep the connection.
    stream
        .get_mut()
        .write_all(headers.as_bytes())
        .await
        .expect("write headers");
    stream.get_mut().flush().await.expect("flush");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stream
        .get_mut()
        .write_all(body.as_bytes())
        .await
        .expect("write body");
    // Read the 401 completely (headers, then Content-Length bytes of body).
    let mut status = String::new();
    stream.read_line(&mut status).await.expect("status line");
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");
    let mut length = 0;
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).await.expect("header");
        if line == "\r\n" {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse::<usize>().expect("length");
        }
    }
    let mut unread = vec![0; length];
    stream.read_exact(&mut unread).await.expect("401 body");
    // The same connection serves the next request: a pooled client loses nothing.
    stream
        .get_mut()
        .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut second = String::new();
    stream
        .read_line(&mut second)
        .await
        .expect("second status line");
    assert!(
        second.starts_with("HTTP/1.1 200"),
        "the connection was closed after the 401: {second:?}"
    );
}
