//! Hostile input against every public endpoint: huge, truncated, wrong types, invalid UTF-8,
//! deep nesting, `id: null`, duplicate keys, control characters, overlong headers. Each gets
//! its documented error: never a 5xx, a panic or a hang.

use std::time::Duration;

use reqwest::StatusCode;

use crate::support::spawn_app;

/// (method, path, content type, body) of each nasty request.
fn cases() -> Vec<(&'static str, String, &'static str, Vec<u8>)> {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes();
    let huge = vec![b'a'; 2 * 1024 * 1024];
    let invalid_utf8 = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\xfe\"}".to_vec();
    let control =
        "{\"redirect_uris\":[\"https://a.example/cb\u{0}\"],\"client_name\":\"\u{1b}[31m\"}";
    let mut cases = Vec::new();
    for path in ["/register", "/mcp"] {
        for body in [
            b"{\"truncated\": ".to_vec(),
            deep.clone(),
            huge.clone(),
            invalid_utf8.clone(),
            b"{\"redirect_uris\": 5, \"redirect_uris\": [\"x\"]}".to_vec(),
            b"{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}".to_vec(),
            b"{\"jsonrpc\":\"2.0\",\"id\":{\"a\":1},\"method\":\"tools/list\"}".to_vec(),
            control.as_bytes().to_vec(),
            b"null".to_vec(),
            Vec::new(),
        ] {
            cases.push(("POST", path.to_owned(), "application/json", body));
        }
    }
    for path in [
        "/token",
        "/revoke",
        "/authorize/login",
        "/authorize/decision",
    ] {
        for body in [
            b"grant_type=authorization_code&code=%ZZ&code=x".to_vec(),
            huge.clone(),
            b"\xff\xfe=\xfd".to_vec(),
            b"grant_type=refresh_token&refresh_token=\x00\x01".to_vec(),
            b"a=1&a=2&a=3&request_id=&csrf=".to_vec(),
            Vec::new(),
        ] {
            cases.push((
                "POST",
                path.to_owned(),
                "application/x-www-form-urlencoded",
                body,
            ));
        }
    }
    for query in [
        "response_type=code&client_id=%00&redirect_uri=%ZZ".to_owned(),
        format!("client_id={}", "x".repeat(100_000)),
        "client_id=a&client_id=b&state=%FF%FE".to_owned(),
        "scope=%0d%0aSet-Cookie:%20x=y".to_owned(),
    ] {
        cases.push((
            "GET",
            format!("/authorize?{query}"),
            "text/plain",
            Vec::new(),
        ));
    }
    cases
}

#[tokio::test]
async fn every_endpoint_answers_hostile_input_with_its_error_never_a_5xx_or_a_hang() {
    let app = spawn_app().await;
    let token = app.access_token("tasks:read tasks:write").await;
    for (method, path, content_type, body) in cases() {
        let request = app
            .http
            .request(method.parse().expect("method"), app.url(&path))
            .header("content-type", content_type)
            .header("accept", "application/json, text/event-stream")
            .bearer_auth(&token)
            .body(body.clone());
        let shown: String = path.chars().take(80).collect();
        let response = tokio::time::timeout(Duration::from_secs(20), request.send())
            .await
            .unwrap_or_else(|_| panic!("{method} {shown} hung"));
        let status = match response {
            Ok(response) => response.status(),
            // The HTTP layer may refuse an oversized body or request line by closing the
            // connection instead of answering: that is a refusal, not a failure.
            Err(_) if body.len() > 1024 * 1024 || path.len() > 64 * 1024 => continue,
            Err(error) => panic!("{method} {shown}: {error}"),
        };
        assert!(
            !status.is_server_error(),
            "{method} {shown} ({} bytes) answered {status}",
            body.len()
        );
    }
    // An overlong header is refused by the HTTP layer, not by a panic.
    let response = app
        .http
        .get(app.url("/healthz"))
        .header("x-long", "a".repeat(200_000))
        .send()
        .await;
    if let Ok(response) = response {
        assert!(
            !response.status().is_server_error(),
            "{}",
            response.status()
        );
    }
    // And the gateway is still up.
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .expect("health")
            .status(),
        StatusCode::OK
    );
}
