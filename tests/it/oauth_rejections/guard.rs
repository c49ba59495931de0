//! The bearer guard: missing, forged, expired and foreign tokens, and connections that stay
//! usable after a refusal, and every method on `/mcp`.

use super::*;

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
    let store = Store::open_at(&app.config.store_location())
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

/// The `/mcp` endpoint runs the guard itself (a call, not a route layer): every method, not only
/// the POST the MCP clients use, is challenged without a valid token, and passes with one.
#[tokio::test]
async fn every_method_on_mcp_is_challenged_without_a_valid_token() {
    let app = spawn_app().await;
    let (_, tokens) = app.tokens_for_new_client().await;
    let valid = tokens["access_token"].as_str().expect("token").to_owned();
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        for authorization in [None, Some("Bearer not-a-token")] {
            let mut request = app
                .http
                .request(method.clone(), app.url("/mcp"))
                .header("accept", "application/json, text/event-stream");
            if let Some(value) = authorization {
                request = request.header("authorization", value);
            }
            let refused = request.send().await.expect("request");
            assert_eq!(
                refused.status(),
                StatusCode::UNAUTHORIZED,
                "{method} /mcp with {authorization:?}"
            );
            let challenge = refused.headers()["www-authenticate"]
                .to_str()
                .expect("ascii");
            assert!(
                challenge.starts_with("Bearer ") && challenge.contains("resource_metadata=\""),
                "{challenge}"
            );
        }
        let passed = app
            .http
            .request(method.clone(), app.url("/mcp"))
            .header("accept", "application/json, text/event-stream")
            .bearer_auth(&valid)
            .send()
            .await
            .expect("request");
        assert_ne!(
            passed.status(),
            StatusCode::UNAUTHORIZED,
            "{method} /mcp with a valid token reaches rmcp"
        );
    }
}
