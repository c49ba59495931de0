//! What the README promises of federation that only the real gateway, over real sockets, with
//! the fixture as its upstream can show: one audit line per call and never its arguments, the
//! upstream told when the client goes away, no redirect followed to another origin, no
//! sampling, elicitation or roots, and the child's stderr logged with its length and rate capped.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nexus_gateway::upstream::Status;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::log_capture::LogCapture;
use crate::support::fixture::{
    answers_without_a_restart, client, gateway_with_fixture, http_fixture, ready, toml_upstream,
    until_status, wait_for_event,
};
use crate::support::{Lifecycle, TestApp, call_tool, spawn_app_with, tool_text};

/// The value of `name=` in a log line (quotes removed), if it has one.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {name}="))? + name.len() + 2;
    let value = line[start..].split(' ').next()?;
    Some(value.trim_matches('"'))
}

/// The log lines that contain `needle`.
fn lines_with<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    text.lines().filter(|line| line.contains(needle)).collect()
}

/// Waits (bounded) until the captured log satisfies `done`; returns the log.
async fn wait_for_log(logs: &LogCapture, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = logs.text();
        if done(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "never logged {what}:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `client_id` claim of an access token (the gateway signed it; no need to verify here).
fn client_id_of(token: &str) -> String {
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64")).expect("json");
    claims["client_id"].as_str().expect("client_id").to_owned()
}

#[tokio::test]
async fn each_federated_call_logs_one_audit_line_and_never_its_arguments() {
    let logs = LogCapture::start();
    let (app, _state) =
        gateway_with_fixture(&[("echo", None, None), ("add", None, None)], |_| {}).await;
    let token = app.access_token("upstream:fx").await;
    let client_id = client_id_of(&token);
    let client = app.mcp_client(&token, Lifecycle::Initialize).await;
    let secret = format!("sk-live-{}", uuid::Uuid::new_v4().simple());
    let echoed = call_tool(&client, "fx_echo", json!({"text": secret})).await;
    // The argument did travel through the gateway, and back in the answer.
    assert_eq!(tool_text(&echoed), format!("echo: {secret}"));
    let overflow = call_tool(&client, "fx_add", json!({"a": i64::MAX, "b": 7_654_321})).await;
    assert_eq!(overflow.is_error, Some(true));

    let text = logs.text();
    let audit = lines_with(&text, "upstream tool call");
    assert_eq!(audit.len(), 2, "one line per call:\n{text}");
    for (line, tool, outcome) in [
        (audit[0], "fx_echo", "ok"),
        (audit[1], "fx_add", "tool_error"),
    ] {
        assert_eq!(field(line, "client_id"), Some(client_id.as_str()), "{line}");
        assert_eq!(field(line, "upstream"), Some("fx"), "{line}");
        assert_eq!(field(line, "tool"), Some(tool), "{line}");
        assert_eq!(field(line, "outcome"), Some(outcome), "{line}");
        assert!(
            field(line, "duration_ms").is_some_and(|ms| ms.parse::<u64>().is_ok()),
            "{line}"
        );
    }
    assert!(!text.contains(&secret), "an argument was logged:\n{text}");
    assert!(!text.contains("7654321"), "an argument was logged:\n{text}");
}

/// A raw `tools/call` POST to `/mcp`, as a 2025-06-18 client sends it (no session needed).
fn raw_call(app: &TestApp, token: &str, tool: &str, arguments: Value) -> reqwest::RequestBuilder {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": tool, "arguments": arguments}});
    app.mcp_request().bearer_auth(token).body(body.to_string())
}

#[tokio::test]
async fn a_client_that_goes_away_mid_call_gets_the_call_cancelled_upstream() {
    let logs = LogCapture::start();
    let (app, state) =
        gateway_with_fixture(&[("slow", None, None), ("echo", None, None)], |upstream| {
            upstream.call_timeout = Duration::from_secs(300);
        })
        .await;
    let token = app.access_token("upstream:fx").await;
    // The same raw request is answered when its client waits for it.
    let answered: Value = raw_call(&app, &token, "fx_echo", json!({"text": "raw"}))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    assert_eq!(
        answered["result"]["content"][0]["text"], "echo: raw",
        "{answered}"
    );

    let request = raw_call(&app, &token, "fx_slow", json!({"seconds": 250})).send();
    let call = tokio::spawn(request);
    wait_for_event(state.path(), "began slow").await;
    // The client goes away: its request future, and with it the connection, is dropped.
    call.abort();
    assert!(call.await.expect_err("aborted").is_cancelled());
    // Within the wait's 10 s: long before the upstream's 300 s call timeout could cancel it.
    wait_for_event(state.path(), "cancelled slow").await;
    let text = logs.text();
    let audit = lines_with(&text, "upstream tool call");
    assert!(
        audit
            .iter()
            .any(|line| field(line, "tool") == Some("fx_slow")
                && field(line, "outcome") == Some("cancelled")),
        "{text}"
    );
    // The upstream was not restarted, and answers the next call.
    answers_without_a_restart(&app, &client(&app, "upstream:fx").await).await;
}

#[tokio::test]
async fn an_http_upstream_redirecting_to_another_origin_is_never_followed() {
    let state = TempDir::new().expect("state");
    let (_fixture, address) = http_fixture(state.path()).await;
    // Another origin (another port) that sends every request on to the fixture.
    let hits = Arc::new(AtomicUsize::new(0));
    let target = format!("http://{address}/mcp");
    let redirector = axum::Router::new().route(
        "/mcp",
        axum::routing::any({
            let hits = hits.clone();
            move || async move {
                hits.fetch_add(1, Ordering::Relaxed);
                (
                    axum::http::StatusCode::TEMPORARY_REDIRECT,
                    [(axum::http::header::LOCATION, target)],
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let redirecting = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, redirector).await });

    let upstream = toml_upstream(&format!(
        "name = \"web\"\nurl = \"http://{redirecting}/mcp\"\ntools = [{{ name = \"echo\" }}]\n"
    ));
    let app = spawn_app_with(|config| config.upstreams = vec![upstream]).await;
    until_status(&app, "web", "refused", |status| {
        matches!(status, Status::Backoff { .. })
    })
    .await;
    let web = app.upstreams.get("web").expect("web");
    assert!(
        matches!(web.status(), Status::Backoff { reason, .. } if reason.contains("redirect")),
        "{:?}",
        web.status()
    );
    assert!(
        hits.load(Ordering::Relaxed) >= 1,
        "the gateway tried the upstream"
    );
    let events = std::fs::read_to_string(state.path().join("events.log")).expect("events");
    assert!(events.contains("started"), "{events}");
    assert!(
        !events.contains("request "),
        "a request reached the other origin: {events}"
    );
    // Its tools were never seen; a call says the upstream is not there instead of hanging.
    let client = client(&app, "upstream:web").await;
    let refused = call_tool(&client, "web_echo", json!({"text": "hi"})).await;
    assert_eq!(refused.is_error, Some(true));
    assert!(
        tool_text(&refused).contains("upstream web"),
        "{}",
        tool_text(&refused)
    );
    assert!(
        !std::fs::read_to_string(state.path().join("events.log"))
            .expect("events")
            .contains("request ")
    );
}

#[tokio::test]
async fn an_http_upstream_redirecting_within_its_origin_is_followed() {
    let state = TempDir::new().expect("state");
    let (_fixture, address) = http_fixture(state.path()).await;
    let upstream = toml_upstream(&format!(
        "name = \"web\"\nurl = \"http://{address}/moved\"\ntools = [{{ name = \"echo\" }}]\n"
    ));
    let app = spawn_app_with(|config| config.upstreams = vec![upstream]).await;
    ready(&app, "web").await;
    let client = client(&app, "upstream:web").await;
    assert_eq!(
        tool_text(&call_tool(&client, "web_echo", json!({"text": "moved"})).await),
        "echo: moved"
    );
    let events = std::fs::read_to_string(state.path().join("events.log")).expect("events");
    assert!(
        events.contains("request POST /moved") && events.contains("request POST /mcp"),
        "{events}"
    );
}

#[tokio::test]
async fn an_upstream_asking_for_sampling_elicitation_or_roots_is_refused() {
    let (app, _state) = gateway_with_fixture(&[("ask", None, None)], |_| {}).await;
    let client = client(&app, "upstream:fx").await;
    for what in ["sampling", "elicitation", "roots"] {
        let asked = call_tool(&client, "fx_ask", json!({"what": what})).await;
        assert_ne!(asked.is_error, Some(true), "{}", tool_text(&asked));
        let report = asked.structured_content.expect("structured");
        // What the gateway declared when it initialised the session.
        let capabilities = &report["capabilities"];
        assert!(capabilities.is_object(), "{report}");
        for capability in ["sampling", "elicitation", "roots"] {
            assert!(capabilities.get(capability).is_none(), "{report}");
        }
        assert_eq!(report["refused"], true, "{report}");
        // Refused by the gateway (its answer, not a local refusal of the upstream's SDK).
        assert_eq!(report["code"], -32601, "{report}");
    }
}

#[tokio::test]
async fn upstream_stderr_is_logged_with_long_lines_cut_and_a_flood_counted() {
    const LONG: usize = 3000;
    const BURST: usize = 100;
    const BURST_LENGTH: usize = 40;
    let logs = LogCapture::start();
    let (app, _state) =
        gateway_with_fixture(&[("shout", None, None), ("echo", None, None)], |_| {}).await;
    let client = client(&app, "upstream:fx").await;
    // What the log kept of each stderr line: the message up to its fields.
    let stderr_lines = |text: &str| -> Vec<(String, bool)> {
        lines_with(text, "upstream stderr: ")
            .into_iter()
            .filter_map(|line| {
                let (_, rest) = line.split_once("upstream stderr: ")?;
                let kept = rest.split(' ').next()?.to_owned();
                Some((kept, field(line, "truncated") == Some("true")))
            })
            .collect()
    };

    call_tool(&client, "fx_shout", json!({"lines": 1, "length": LONG})).await;
    let text = wait_for_log(&logs, "the long line", |text| {
        stderr_lines(text).iter().any(|(kept, _)| kept.len() > 100)
    })
    .await;
    let long: Vec<(String, bool)> = stderr_lines(&text)
        .into_iter()
        .filter(|(kept, _)| kept.starts_with("000000y"))
        .collect();
    assert_eq!(long.len(), 1, "{text}");
    assert_eq!(long[0].0.len(), 1024, "cut to 1 KiB:\n{text}");
    assert!(long[0].1, "marked truncated:\n{text}");

    // A flood: 20 lines a second are logged, the rest counted in a warning.
    call_tool(
        &client,
        "fx_shout",
        json!({"lines": BURST, "length": BURST_LENGTH}),
    )
    .await;
    let counted = |text: &str| {
        let logged = stderr_lines(text)
            .iter()
            .filter(|(kept, _)| kept.len() == BURST_LENGTH)
            .count();
        let dropped: usize = lines_with(text, "upstream stderr lines dropped (rate cap)")
            .iter()
            .map(|line| {
                field(line, "dropped")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0)
            })
            .sum();
        (logged, dropped)
    };
    let text = wait_for_log(&logs, "every line of the flood, or its count", |text| {
        let (logged, dropped) = counted(text);
        logged + dropped >= BURST
    })
    .await;
    let (logged, dropped) = counted(&text);
    assert_eq!(logged + dropped, BURST, "{text}");
    // The flood takes milliseconds: it spans one or two one-second windows.
    assert!((1..=40).contains(&logged), "{logged} logged:\n{text}");
    // The gateway goes on answering.
    assert_eq!(
        tool_text(&call_tool(&client, "fx_echo", json!({"text": "calm"})).await),
        "echo: calm"
    );
}

#[tokio::test]
async fn an_upstreams_last_stderr_line_before_it_dies_is_logged_without_its_newline() {
    const LENGTH: usize = 33;
    let logs = LogCapture::start();
    let (app, _state) =
        gateway_with_fixture(&[("shout", None, None), ("crash", None, None)], |_| {}).await;
    let client = client(&app, "upstream:fx").await;
    call_tool(
        &client,
        "fx_shout",
        json!({"lines": 1, "length": LENGTH, "unterminated": true}),
    )
    .await;
    // Nothing ends the line until the process does.
    let _ = call_tool(&client, "fx_crash", json!({})).await;
    let last_words = format!("000000{}", "y".repeat(LENGTH - 6));
    let text = wait_for_log(&logs, "the unterminated line", |text| {
        text.contains(&last_words)
    })
    .await;
    let line = lines_with(&text, "upstream stderr: ")
        .into_iter()
        .find(|line| line.contains(&last_words))
        .unwrap_or_default();
    assert_eq!(field(line, "truncated"), Some("false"), "{text}");
}
