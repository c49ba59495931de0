//! Slow and greedy clients, over real sockets: headers trickled a byte at a time, a keep-alive
//! connection left idle, a body trickled past its deadline, more connections than the cap, and
//! a body still arriving when the gateway is asked to stop.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use serde_json::json;

use crate::support::{Lifecycle, McpUser, TestApp, spawn_app, spawn_app_with};

/// A gateway with one-second header and body deadlines and room for `max_connections`.
async fn strict_app(max_connections: usize) -> TestApp {
    spawn_app_with(|config| {
        config.limits.header_read_timeout = Duration::from_secs(1);
        config.limits.body_read_timeout = Duration::from_secs(1);
        config.limits.max_connections = max_connections;
    })
    .await
}

fn address(app: &TestApp) -> SocketAddr {
    app.base_url
        .trim_start_matches("http://")
        .parse()
        .expect("the test gateway's address")
}

/// Writes `bytes` one at a time, `pause` apart, until the peer closes; how long it took, and
/// what the peer answered before closing (empty when it closed without a word).
async fn trickle_until_closed(
    stream: &mut TcpStream,
    bytes: &[u8],
    pause: Duration,
) -> (Duration, String) {
    let started = Instant::now();
    let mut answer = Vec::new();
    for byte in bytes.iter().cycle() {
        let closed = |answer: &[u8]| {
            (
                started.elapsed(),
                String::from_utf8_lossy(answer).into_owned(),
            )
        };
        if stream.write_all(&[*byte]).await.is_err() {
            return closed(&answer);
        }
        let mut buffer = [0u8; 1024];
        match tokio::time::timeout(pause, stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return closed(&answer),
            Ok(Ok(read)) => answer.extend_from_slice(&buffer[..read]),
            Err(_) => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the trickle was never cut"
        );
    }
    unreachable!("a cycle never ends")
}

/// Reads until the peer closes; how long that took.
async fn wait_closed(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("the connection stayed open"),
        }
    }
}

#[tokio::test]
async fn headers_trickled_a_byte_at_a_time_are_cut_off_at_the_deadline() {
    let app = strict_app(64).await;
    let mut stream = TcpStream::connect(address(&app)).await.expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .expect("request line");
    let (took, _) =
        trickle_until_closed(&mut stream, b"X-Slow: a\r\n", Duration::from_millis(200)).await;
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_but_a_prompt_one_is_served() {
    let app = strict_app(64).await;
    let mut stream = TcpStream::connect(address(&app)).await.expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("request");
    let mut buffer = [0u8; 1024];
    let read = stream.read(&mut buffer).await.expect("answer");
    assert!(String::from_utf8_lossy(&buffer[..read]).starts_with("HTTP/1.1 200"));
    // A second request sent promptly on the same connection is served: only idleness ends it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("second request");
    let read = stream.read(&mut buffer).await.expect("second answer");
    assert!(String::from_utf8_lossy(&buffer[..read]).starts_with("HTTP/1.1 200"));
    let idle = wait_closed(&mut stream).await;
    assert!(idle < Duration::from_secs(3), "idle for {idle:?}");
}

#[tokio::test]
async fn a_body_trickled_past_its_deadline_is_refused_and_the_connection_ends() {
    let app = strict_app(64).await;
    let mut stream = TcpStream::connect(address(&app)).await.expect("connect");
    stream
        .write_all(
            b"POST /register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{",
        )
        .await
        .expect("headers");
    let (took, answer) = trickle_until_closed(&mut stream, b" ", Duration::from_millis(200)).await;
    assert!(took < Duration::from_secs(4), "closed after {took:?}");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}

#[tokio::test]
async fn connections_past_the_cap_are_closed_at_once_and_counted() {
    let app = spawn_app_with(|config| config.limits.max_connections = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(address(&app)).await.expect("connect"));
    }
    // Accepted by the kernel, then closed by the gateway without a byte.
    let mut over = TcpStream::connect(address(&app)).await.expect("connect");
    let closed_after = wait_closed(&mut over).await;
    assert!(closed_after < Duration::from_secs(2), "{closed_after:?}");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("nexus_connections_refused_total 1"),
        "{metrics}"
    );
    // A freed slot is usable again.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let answer = app
        .http
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert!(answer.status().is_success());
}

#[tokio::test]
async fn a_tool_call_whose_body_is_too_slow_gets_408() {
    let app = strict_app(64).await;
    let token = app.access_token("tasks:read").await;
    let mut stream = TcpStream::connect(address(&app)).await.expect("connect");
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 400\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.expect("headers");
    let (_, answer) = trickle_until_closed(&mut stream, b" ", Duration::from_millis(200)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

/// Stopping drains the internal listener as it drains the public one: an agent's report whose
/// body is still arriving when the stop comes is answered, and the stop waits for it.
#[tokio::test]
async fn a_stop_waits_for_an_agent_report_still_arriving() {
    let app = spawn_app().await;
    let token = app.access_token("tasks:read tasks:write").await;
    let client = app.mcp_client(&token, Lifecycle::Initialize).await;
    let sent = client.send_task("report while we stop").await;
    let id = sent["id"].as_str().expect("id").to_owned();
    let agent = app.add_agent("late", &["homelab"]).await;
    assert!(app.agent_next(&agent, 0).await.status().is_success());

    let internal = app.internal_url.trim_start_matches("http://").to_owned();
    let body = json!({"content": "done", "status": "complete"}).to_string();
    let (first, rest) = body.split_at(10);
    let mut stream = TcpStream::connect(&internal).await.expect("connect");
    let head = format!(
        "POST /agent/v1/tasks/{id}/updates HTTP/1.1\r\nHost: {internal}\r\nAuthorization: Bearer {agent}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{first}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    // Let the gateway start on the request before the stop comes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(client);
    let stopping = tokio::spawn(app.stop());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !stopping.is_finished(),
        "the stop did not wait for the report in flight"
    );
    stream.write_all(rest.as_bytes()).await.expect("rest");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("answer");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    tokio::time::timeout(Duration::from_secs(30), stopping)
        .await
        .expect("the stop ends once the report is answered")
        .expect("stop task");
}
