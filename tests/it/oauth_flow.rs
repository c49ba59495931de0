//! The happy paths, driven by the `oauth2` crate as a real client: discovery, registration,
//! authorization, exchange, the guarded route, refresh with rotation, and revocation.

use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    RedirectUrl, RevocationUrl, Scope as OAuthScope, TokenResponse, TokenUrl,
};
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{
    PROTECTED, PROTECTED_WRITE, Pkce, REDIRECT_URI, TestApp, redirect_params, spawn_app,
};

/// Adapts our reqwest client to the `oauth2` crate's HTTP interface (no redirects followed).
async fn send(
    http: reqwest::Client,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, reqwest::Error> {
    let response = http.execute(reqwest::Request::try_from(request)?).await?;
    let mut builder = http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    let body = response.bytes().await?.to_vec();
    Ok(builder.body(body).unwrap_or_default())
}

async fn discover(app: &TestApp) -> (Value, Value) {
    let prm: Value = app
        .get_json("/.well-known/oauth-protected-resource/mcp")
        .await;
    let as_url = format!(
        "{}/.well-known/oauth-authorization-server",
        prm["authorization_servers"][0].as_str().expect("issuer")
    );
    let metadata: Value = app
        .http
        .get(as_url)
        .send()
        .await
        .expect("as metadata")
        .json()
        .await
        .expect("json");
    (prm, metadata)
}

#[tokio::test]
async fn confidential_client_completes_the_whole_flow_with_the_oauth2_crate() {
    let app = spawn_app().await;
    let (prm, metadata) = discover(&app).await;
    assert_eq!(prm["resource"], app.resource());
    assert_eq!(metadata["issuer"], app.base_url);

    let registered = app.register_client("client_secret_post").await;
    let client = BasicClient::new(ClientId::new(registered.client_id.clone()))
        .set_client_secret(ClientSecret::new(
            registered.client_secret.clone().expect("secret issued"),
        ))
        .set_auth_type(AuthType::RequestBody)
        .set_auth_uri(
            AuthUrl::new(
                metadata["authorization_endpoint"]
                    .as_str()
                    .expect("url")
                    .into(),
            )
            .expect("url"),
        )
        .set_token_uri(
            TokenUrl::new(metadata["token_endpoint"].as_str().expect("url").into()).expect("url"),
        )
        .set_revocation_url(
            RevocationUrl::new(
                metadata["revocation_endpoint"]
                    .as_str()
                    .expect("url")
                    .into(),
            )
            .expect("url"),
        )
        .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.into()).expect("url"));
    let http_client = |request| send(app.http.clone(), request);

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (authorize_url, csrf) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(OAuthScope::new("tasks:read".into()))
        .add_scope(OAuthScope::new("tasks:write".into()))
        .add_extra_param("resource", app.resource())
        .set_pkce_challenge(challenge)
        .url();
    let response = app.http.get(authorize_url).send().await.expect("authorize");
    assert_eq!(response.status(), StatusCode::FOUND);
    let params = redirect_params(&response);
    assert_eq!(params.get("state"), Some(csrf.secret()));
    assert_eq!(params.get("iss"), Some(&app.base_url));

    let tokens = client
        .exchange_code(AuthorizationCode::new(params["code"].clone()))
        .set_pkce_verifier(verifier)
        .add_extra_param("resource", app.resource())
        .request_async(&http_client)
        .await
        .expect("code exchange");
    let access_token = tokens.access_token().secret().clone();
    assert_eq!(tokens.scopes().map(|scopes| scopes.len()), Some(2));
    let claims: Value = app
        .call_protected(PROTECTED, &access_token)
        .await
        .json()
        .await
        .expect("claims");
    assert_eq!(claims["aud"], app.resource());
    assert_eq!(claims["client_id"], registered.client_id.as_str());
    assert_eq!(
        app.call_protected(PROTECTED_WRITE, &access_token)
            .await
            .status(),
        StatusCode::OK
    );

    let refresh_token = tokens
        .refresh_token()
        .expect("refresh token issued")
        .clone();
    let refreshed = client
        .exchange_refresh_token(&refresh_token)
        .request_async(&http_client)
        .await
        .expect("refresh");
    let rotated = refreshed
        .refresh_token()
        .expect("rotated refresh token")
        .clone();
    assert_ne!(rotated.secret(), refresh_token.secret());
    assert_eq!(
        app.call_protected(PROTECTED, refreshed.access_token().secret())
            .await
            .status(),
        StatusCode::OK
    );

    // The oauth2 crate (rightly) refuses to revoke over plain http, so post the RFC 7009 form
    // ourselves, as a confidential client with its secret.
    let revoked = app
        .http
        .post(app.url("/revoke"))
        .form(&[
            ("token", rotated.secret().as_str()),
            ("token_type_hint", "refresh_token"),
            ("client_id", registered.client_id.as_str()),
            (
                "client_secret",
                registered.client_secret.as_deref().expect("secret"),
            ),
        ])
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), StatusCode::OK);
    // Revoking the refresh token revokes the grant: its access tokens die with it.
    assert_eq!(
        app.call_protected(PROTECTED, refreshed.access_token().secret())
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert!(
        client
            .exchange_refresh_token(&rotated)
            .request_async(&http_client)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn basic_auth_without_client_id_in_the_body_works() {
    let app = spawn_app().await;
    let client = app.register_client("client_secret_basic").await;
    let pkce = Pkce::new();
    let code = app.obtain_code(&client, &pkce).await;
    let secret = client.client_secret.clone().expect("secret");
    let response = app
        .token_basic(
            &client.client_id,
            &secret,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", &pkce.verifier),
                ("redirect_uri", REDIRECT_URI),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    for field in [
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "scope",
    ] {
        assert!(!body[field].is_null(), "{field} missing in {body}");
    }
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
}

#[tokio::test]
async fn public_client_flow_and_the_access_token_format() {
    let app = spawn_app().await;
    let (_, tokens) = app.tokens_for_new_client().await;
    let access = tokens["access_token"].as_str().expect("token");
    let header = jsonwebtoken::decode_header(access).expect("jwt header");
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(format!("{:?}", header.alg), "ES256");
    let jwks: Value = app.get_json("/.well-known/jwks.json").await;
    assert_eq!(jwks["keys"][0]["kid"].as_str(), header.kid.as_deref());
    assert!(
        jwks["keys"][0].get("d").is_none(),
        "the private key must never be published"
    );
    let claims: Value = app
        .call_protected(PROTECTED, access)
        .await
        .json()
        .await
        .expect("claims");
    for claim in [
        "iss",
        "sub",
        "aud",
        "client_id",
        "scope",
        "iat",
        "exp",
        "jti",
    ] {
        assert!(!claims[claim].is_null(), "{claim} missing");
    }
    assert_eq!(claims["iss"], app.base_url);
}

#[tokio::test]
async fn a_retried_refresh_within_the_grace_window_gets_the_same_pair() {
    let app = spawn_app().await;
    let (client, tokens) = app.tokens_for_new_client().await;
    let first = tokens["refresh_token"].as_str().expect("refresh");
    let once: Value = app
        .refresh(&client, first)
        .await
        .json()
        .await
        .expect("json");
    let twice: Value = app
        .refresh(&client, first)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(once["access_token"], twice["access_token"]);
    assert_eq!(once["refresh_token"], twice["refresh_token"]);
    // The grace ends when the new token is used; the old one is then a replay.
    let next = once["refresh_token"].as_str().expect("refresh");
    assert_eq!(app.refresh(&client, next).await.status(), StatusCode::OK);
    crate::support::assert_oauth_error(
        app.refresh(&client, first).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
}

#[tokio::test]
async fn revoking_an_access_token_stops_it_but_not_its_grant() {
    let app = spawn_app().await;
    let (client, tokens) = app.tokens_for_new_client().await;
    let access = tokens["access_token"].as_str().expect("access");
    // Used once first, so the gateway holds it as verified: revoking must still stop it on
    // the very next request.
    assert_eq!(
        app.call_protected(PROTECTED, access).await.status(),
        StatusCode::OK
    );
    let response = app
        .http
        .post(app.url("/revoke"))
        .form(&[
            ("token", access),
            ("token_type_hint", "access_token"),
            ("client_id", client.client_id.as_str()),
        ])
        .send()
        .await
        .expect("revoke");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        app.call_protected(PROTECTED, access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let refreshed = app
        .refresh(&client, tokens["refresh_token"].as_str().expect("refresh"))
        .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    // RFC 7009 §2.2: unknown tokens are answered 200 too.
    let unknown = app
        .http
        .post(app.url("/revoke"))
        .form(&[
            ("token", "nonsense"),
            ("client_id", client.client_id.as_str()),
        ])
        .send()
        .await
        .expect("revoke");
    assert_eq!(unknown.status(), StatusCode::OK);
}

#[tokio::test]
async fn bearer_only_tokens_from_the_cli_work_until_revoked() {
    let app = spawn_app().await;
    let output =
        nexus_gateway::admin::issue_token(&app.config, "home-assistant", "tasks:read", "30d")
            .await
            .expect("issued");
    let token = output.lines().next().expect("token line").to_owned();
    let claims: Value = app
        .call_protected(PROTECTED, &token)
        .await
        .json()
        .await
        .expect("claims");
    assert_eq!(claims["scope"], "tasks:read");
    assert_eq!(claims["client_id"], "token:home-assistant");
    // Read-only: a write route is refused with a scope challenge.
    let denied = app.call_protected(PROTECTED_WRITE, &token).await;
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    let challenge = denied.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"tasks:write\""),
        "{challenge}"
    );

    let listed = nexus_gateway::admin::list_tokens(&app.config)
        .await
        .expect("listed");
    assert!(listed.contains("home-assistant") && !listed.contains(&token));
    assert!(
        nexus_gateway::admin::issue_token(&app.config, "home-assistant", "tasks:read", "1d")
            .await
            .is_err(),
        "names are unique"
    );
    nexus_gateway::admin::revoke_token(&app.config, "home-assistant")
        .await
        .expect("revoked");
    refused_within_a_second(&app, &token).await;
    assert!(
        nexus_gateway::admin::issue_token(&app.config, "x", "tasks:admin", "1d")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn removing_a_client_kills_its_tokens() {
    let app = spawn_app().await;
    let (client, tokens) = app.tokens_for_new_client().await;
    let listed = nexus_gateway::admin::list_clients(&app.config)
        .await
        .expect("listed");
    assert!(listed.contains(&client.client_id));
    let access = tokens["access_token"].as_str().expect("t");
    assert_eq!(
        app.call_protected(PROTECTED, access).await.status(),
        StatusCode::OK
    );
    nexus_gateway::admin::revoke_client(&app.config, &client.client_id)
        .await
        .expect("removed");
    refused_within_a_second(&app, access).await;
    assert_eq!(
        app.refresh(&client, tokens["refresh_token"].as_str().expect("r"))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn key_rotation_keeps_old_tokens_valid_and_publishes_both_keys() {
    let app = spawn_app().await;
    let (_, before) = app.tokens_for_new_client().await;
    let kid = app.auth.rotate_signing_key().await.expect("rotated");
    let (_, after) = app.tokens_for_new_client().await;
    let new_header =
        jsonwebtoken::decode_header(after["access_token"].as_str().expect("t")).expect("header");
    assert_eq!(new_header.kid.as_deref(), Some(kid.as_str()));
    let jwks: Value = app.get_json("/.well-known/jwks.json").await;
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(2));
    for tokens in [&before, &after] {
        assert_eq!(
            app.call_protected(PROTECTED, tokens["access_token"].as_str().expect("t"))
                .await
                .status(),
            StatusCode::OK
        );
    }
    // Once the old key's last token has expired, it leaves the JWKS.
    app.clock.advance(3600 + 120);
    app.auth.run_maintenance().await.expect("maintenance");
    let jwks: Value = app.get_json("/.well-known/jwks.json").await;
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn metadata_documents_match_what_clients_check() {
    let app = spawn_app().await;
    let (prm, metadata) = discover(&app).await;
    let root_prm: Value = app.get_json("/.well-known/oauth-protected-resource").await;
    assert_eq!(prm, root_prm);
    assert_eq!(prm["authorization_servers"][0], metadata["issuer"]);
    assert_eq!(
        prm["scopes_supported"],
        serde_json::json!(["tasks:read", "tasks:write"])
    );
    assert_eq!(
        metadata["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        metadata["authorization_response_iss_parameter_supported"],
        true
    );
    assert_eq!(
        metadata["token_endpoint_auth_methods_supported"],
        serde_json::json!(["none", "client_secret_post", "client_secret_basic"])
    );
    assert_eq!(
        metadata["scopes_supported"],
        serde_json::json!(["tasks:read", "tasks:write", "offline_access"])
    );
    let mcp_copy: Value = app
        .get_json("/.well-known/oauth-authorization-server/mcp")
        .await;
    assert_eq!(metadata, mcp_copy);
    let oidc = app
        .http
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .expect("oidc");
    assert_eq!(
        oidc.status(),
        StatusCode::NOT_FOUND,
        "we are not an OpenID provider"
    );
    // CORS for browser-based clients on the JSON endpoints, not on /authorize.
    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/token"))
        .header("origin", "http://localhost:6274")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .expect("preflight");
    assert_eq!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .map(|value| value.to_str().ok()),
        Some(Some("*"))
    );
    let page = app
        .http
        .get(app.url("/authorize"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .expect("authorize");
    assert!(page.headers().get("access-control-allow-origin").is_none());
    for path in ["/mcp/", "/token/", "/register/"] {
        let response = app.http.post(app.url(path)).send().await.expect("request");
        assert_eq!(
            response.status(),
            StatusCode::NOT_FOUND,
            "{path} must not redirect"
        );
    }
}

#[tokio::test]
async fn a_key_rotated_by_the_cli_is_picked_up_by_the_running_gateway() {
    let app = spawn_app().await;
    let (_, before) = app.tokens_for_new_client().await;
    let old_kid = jsonwebtoken::decode_header(before["access_token"].as_str().expect("t"))
        .expect("header")
        .kid;
    // `keys rotate` and `tokens issue` run in their own process, on the same SQLite file.
    nexus_gateway::admin::rotate_keys(&app.config)
        .await
        .expect("rotated");
    let output =
        nexus_gateway::admin::issue_token(&app.config, "after-rotation", "tasks:read", "1d")
            .await
            .expect("issued");
    let cli_token = output.lines().next().expect("token").to_owned();
    let new_kid = jsonwebtoken::decode_header(&cli_token).expect("header").kid;
    assert_ne!(old_kid, new_kid);
    // The server learns an unknown kid from the store (at most every 10 s, so random kids
    // cannot make every request a database read).
    app.clock.advance(11);
    assert_eq!(
        app.call_protected(PROTECTED, &cli_token).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.call_protected(PROTECTED, before["access_token"].as_str().expect("t"))
            .await
            .status(),
        StatusCode::OK
    );
    // And its own periodic maintenance makes it sign with the new key.
    app.auth.run_maintenance().await.expect("maintenance");
    let (_, after) = app.tokens_for_new_client().await;
    assert_eq!(
        jsonwebtoken::decode_header(after["access_token"].as_str().expect("t"))
            .expect("header")
            .kid,
        new_kid
    );
}

/// Waits for `token` to be refused after a revocation made by the CLI. The CLI is another
/// process: the server learns of it from the revocation log, which it reads every second.
async fn refused_within_a_second(app: &crate::support::TestApp, token: &str) {
    let revoked_at = std::time::Instant::now();
    while app.call_protected(PROTECTED, token).await.status() != StatusCode::UNAUTHORIZED {
        assert!(
            revoked_at.elapsed() < std::time::Duration::from_millis(1500),
            "a token revoked by the CLI is refused within a second"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
