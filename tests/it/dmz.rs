//! Through a real nginx running the repository's own site config (nginx/nexus-gateway.conf),
//! rendered for test ports and a self-signed certificate: the OAuth flow and MCP tools over
//! HTTPS, a streamed `/mcp` answer arriving before it ends, the agent API and metrics absent
//! from the public side, and `X-Forwarded-For` believed only from the trusted proxy.
//!
//! These need the `nginx` and `openssl` binaries, so they are ignored by a plain `cargo test`
//! and run by `scripts/test`, which installs them (`cargo test --test it -- --ignored dmz`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::{McpUser, Pkce, TestApp, redirect_params, spawn_app_with};

/// The address nginx connects to the gateway from; the gateway trusts only it.
pub(crate) const PROXY_ADDRESS: &str = "127.0.0.2";

pub(crate) struct Nginx {
    child: Child,
    https_port: u16,
    internal_port: u16,
    dir: TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.https_port)
    }

    fn internal_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.internal_port)
    }

    fn certificate(&self) -> reqwest::Certificate {
        let pem = std::fs::read(self.dir.path().join("cert.pem")).expect("certificate");
        reqwest::Certificate::from_pem(&pem).expect("pem")
    }

    /// An HTTPS client trusting only the test certificate, connecting from `source`.
    pub(crate) fn client(&self, source: &str) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_certs_only([self.certificate()])
            .local_address(source.parse::<IpAddr>().expect("ip"))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    }
}

/// The port of a `http://host:port` URL.
pub(crate) fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .expect("port")
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

/// Renders the repository's site config for this test and starts nginx in the foreground.
fn start_nginx(gateway_port: u16, gateway_internal_port: u16, https_port: u16) -> Nginx {
    start_nginx_for(&[gateway_port], gateway_internal_port, https_port)
}

/// `start_nginx` in front of one gateway, or of several replicas through the config's own
/// commented replica block (uncommented, with the replicas' ports).
pub(crate) fn start_nginx_for(
    gateway_ports: &[u16],
    gateway_internal_port: u16,
    https_port: u16,
) -> Nginx {
    let dir = TempDir::new().expect("temp dir");
    let path = dir.path();
    // World-writable temp dirs: nginx's workers drop root privileges.
    let temp = path.join("temp");
    std::fs::create_dir(&temp).expect("temp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ]) // An end-entity certificate: rustls refuses a CA certificate used as a server's.
        .args([
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .args([
            "-addext",
            "keyUsage=critical,digitalSignature",
            "-addext",
            "extendedKeyUsage=serverAuth",
            "-keyout",
        ])
        .arg(path.join("key.pem"))
        .arg("-out")
        .arg(path.join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl could not make a certificate");

    let internal_port = free_port();
    let http_port = free_port();
    let site = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("nginx/nexus-gateway.conf"),
    )
    .expect("site config");
    let (single, replicas) = match gateway_ports {
        [only] => (
            format!("server 127.0.0.1:{only};"),
            [String::new(), String::new(), String::new()],
        ),
        [first, second] => (
            String::new(),
            [
                "hash $binary_remote_addr consistent;".to_owned(),
                format!("server 127.0.0.1:{first} max_fails=2 fail_timeout=10s;"),
                format!("server 127.0.0.1:{second} max_fails=2 fail_timeout=10s;"),
            ],
        ),
        _ => panic!("one gateway or two replicas"),
    };
    let [hash, first_replica, second_replica] = replicas;
    let replacements = [
        ("server 127.0.0.1:8080;", single),
        ("#   hash $binary_remote_addr consistent;", hash),
        (
            "#   server 10.0.0.11:8080 max_fails=2 fail_timeout=10s;",
            first_replica,
        ),
        (
            "#   server 10.0.0.12:8080 max_fails=2 fail_timeout=10s;",
            second_replica,
        ),
        (
            "server 127.0.0.1:9464;",
            format!("server 127.0.0.1:{gateway_internal_port};"),
        ),
        (
            "/etc/letsencrypt/live/mcp.example.com/fullchain.pem",
            path.join("cert.pem").display().to_string(),
        ),
        (
            "/etc/letsencrypt/live/mcp.example.com/privkey.pem",
            path.join("key.pem").display().to_string(),
        ),
        ("/var/log/nginx/", format!("{}/", path.display())),
        (
            "listen 443 ssl http2;",
            format!("listen 127.0.0.1:{https_port} ssl http2;"),
        ),
        ("listen [::]:443 ssl http2;", String::new()),
        ("listen 80;", format!("listen 127.0.0.1:{http_port};")),
        ("listen [::]:80;", String::new()),
        (
            "listen 10.0.0.1:8081;",
            format!("listen 127.0.0.1:{internal_port};"),
        ),
        // The test's only addition: connect to the gateway from the trusted proxy address.
        (
            "proxy_http_version 1.1;",
            format!("proxy_http_version 1.1;\n    proxy_bind {PROXY_ADDRESS};"),
        ),
    ];
    let mut rendered = site;
    for (from, to) in &replacements {
        assert!(
            rendered.contains(from),
            "the site config no longer contains {from}"
        );
        rendered = rendered.replace(from, to);
    }
    std::fs::write(path.join("site.conf"), rendered).expect("site");
    let temp_paths: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
        .iter()
        .map(|kind| format!("{kind}_temp_path {};\n", temp.display()))
        .collect();
    let main = format!(
        "worker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log;\nevents {{}}\nhttp {{\n{temp_paths}include {dir}/site.conf;\n}}\n",
        dir = path.display()
    );
    std::fs::write(path.join("nginx.conf"), main).expect("nginx.conf");
    let child = Command::new(nginx_binary())
        .args(["-g", "daemon off;", "-c"])
        .arg(path.join("nginx.conf"))
        .arg("-p")
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("nginx starts (is it installed? scripts/test installs it)");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", https_port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nginx did not start listening"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Nginx {
        child,
        https_port,
        internal_port,
        dir,
    }
}

fn nginx_binary() -> PathBuf {
    std::env::var_os("NGINX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("nginx"))
}

/// A gateway configured as in the DMZ: its public URL is nginx's, it trusts only the proxy.
async fn gateway_behind_nginx(
    adjust: impl FnOnce(&mut nexus_gateway::config::Config),
) -> (TestApp, Nginx) {
    let https_port = free_port();
    let public_url = format!("https://127.0.0.1:{https_port}");
    let app = spawn_app_with(|config| {
        config.public_url = nexus_gateway::config::PublicUrl::parse(&public_url).expect("url");
        config.trusted_proxies = vec![PROXY_ADDRESS.parse().expect("ip")];
        adjust(config);
    })
    .await;
    let nginx = start_nginx(
        port_of(&app.base_url),
        port_of(&app.internal_url),
        https_port,
    );
    (app, nginx)
}

/// The whole OAuth flow through nginx; returns an access token.
pub(crate) async fn token_through(nginx: &Nginx, http: &reqwest::Client, resource: &str) -> String {
    let registered: Value = http
        .post(nginx.url("/register"))
        .json(&json!({"redirect_uris": ["https://client.example/callback"], "token_endpoint_auth_method": "none", "client_name": "Via nginx"}))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    let client_id = registered["client_id"].as_str().expect("client id");
    let pkce = Pkce::new();
    let authorize = http
        .get(nginx.url("/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", "https://client.example/callback"),
            ("code_challenge", pkce.challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("state", "via-nginx"),
            ("resource", resource),
        ])
        .send()
        .await
        .expect("authorize");
    assert_eq!(
        authorize.status(),
        StatusCode::FOUND,
        "302 passes through nginx untouched"
    );
    let params = redirect_params(&authorize);
    assert_eq!(
        params.get("iss").map(String::as_str),
        Some(nginx.url("").as_str())
    );
    let tokens: Value = http
        .post(nginx.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", params["code"].as_str()),
            ("code_verifier", pkce.verifier.as_str()),
            ("client_id", client_id),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    tokens["access_token"]
        .as_str()
        .expect("access token")
        .to_owned()
}

#[tokio::test]
#[ignore = "needs nginx and openssl; run by scripts/test"]
async fn dmz_the_oauth_flow_and_mcp_tools_work_through_nginx() {
    let (app, nginx) = gateway_behind_nginx(|_| {}).await;
    let http = nginx.client("127.0.0.1");
    let prm: Value = http
        .get(nginx.url("/.well-known/oauth-protected-resource/mcp"))
        .send()
        .await
        .expect("prm")
        .json()
        .await
        .expect("json");
    assert_eq!(prm["resource"], nginx.url("/mcp"));
    let token = token_through(&nginx, &http, &nginx.url("/mcp")).await;

    // rmcp's own client, over HTTPS through nginx.
    use rmcp::ServiceExt;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let config =
        StreamableHttpClientTransportConfig::with_uri(nginx.url("/mcp")).auth_header(token.clone());
    let client = ()
        .serve(StreamableHttpClientTransport::with_client(
            http.clone(),
            config,
        ))
        .await
        .expect("initialize through nginx");
    let sent = client.send_task("through the DMZ").await;
    assert_eq!(sent["queued"], true);
    let status = crate::support::call_tool_ok(&client, "queue_status", json!({})).await;
    assert_eq!(status["pending"], 1);
    // No trailing-slash variant and no redirect that would turn a POST into a GET.
    assert_eq!(
        http.post(nginx.url("/mcp/"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("post")
            .status(),
        StatusCode::NOT_FOUND
    );
    let unauthenticated = http
        .post(nginx.url("/mcp"))
        .json(&json!({}))
        .send()
        .await
        .expect("post");
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
    assert!(
        unauthenticated.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .contains(&nginx.url("/.well-known/oauth-protected-resource/mcp"))
    );
    drop(app);
}

#[tokio::test]
#[ignore = "needs nginx and openssl; run by scripts/test"]
async fn dmz_a_streamed_mcp_answer_arrives_through_nginx_before_it_ends() {
    let (_app, nginx) = gateway_behind_nginx(|_| {}).await;
    let http = nginx.client("127.0.0.1");
    let token = token_through(&nginx, &http, &nginx.url("/mcp")).await;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "pull_updates", "arguments": {"wait": 4}, "_meta": {"progressToken": "stream-test"}}});
    let started = Instant::now();
    let response = http
        .post(nginx.url("/mcp"))
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&body)
        .send()
        .await
        .expect("post");
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = response.bytes_stream();
    let mut received = String::new();
    let mut first_progress_at = None;
    while let Some(chunk) = stream.next().await {
        received.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
        if first_progress_at.is_none() && received.contains("notifications/progress") {
            first_progress_at = Some(started.elapsed());
        }
    }
    let ended_at = started.elapsed();
    let first_progress_at = first_progress_at.expect("a progress event");
    assert!(received.contains("\"result\""), "{received}");
    // A buffering proxy would hold the progress until the answer ends, four seconds later.
    assert!(
        first_progress_at < Duration::from_millis(1500),
        "progress arrived only after {first_progress_at:?}"
    );
    assert!(
        ended_at >= Duration::from_millis(3500),
        "the answer ended after {ended_at:?}"
    );
}

#[tokio::test]
#[ignore = "needs nginx and openssl; run by scripts/test"]
async fn dmz_the_agent_api_and_metrics_are_not_reachable_from_the_public_side() {
    let (app, nginx) = gateway_behind_nginx(|_| {}).await;
    let http = nginx.client("127.0.0.1");
    let agent = app.add_agent("mesh", &["homelab"]).await;
    for path in [
        "/agent/v1/tasks/next",
        "/metrics",
        "/readyz",
        "/anything-else",
    ] {
        let response = http
            .get(nginx.url(path))
            .bearer_auth(&agent)
            .send()
            .await
            .expect("get");
        assert_eq!(
            response.status(),
            StatusCode::NOT_FOUND,
            "{path} must not be public"
        );
    }
    assert_eq!(
        http.get(nginx.url("/healthz"))
            .send()
            .await
            .expect("health")
            .status(),
        StatusCode::OK
    );
    // Encoded slashes match nginx's /healthz location on the decoded path, but reach the
    // gateway raw: it refuses them, and the public listener has no agent API to reach anyway.
    for (path, expected) in [
        (
            "/agent/v1/tasks/x%2f..%2f..%2f..%2f..%2fhealthz",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/agent/v1/tasks/x%2F..%2F..%2F..%2F..%2Fhealthz",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/mcp/..%2f..%2fagent/v1/tasks/next",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let response = http
            .get(nginx.url(path))
            .bearer_auth(&agent)
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), expected, "{path}");
    }
    let direct = reqwest::Client::new()
        .get(app.url("/agent/v1/tasks/next"))
        .bearer_auth(&agent)
        .send()
        .await
        .expect("direct");
    assert_eq!(
        direct.status(),
        StatusCode::NOT_FOUND,
        "the public listener serves no agent API"
    );
    // The mesh side serves the agent API (and nothing else).
    let mesh = reqwest::Client::new();
    let next = mesh
        .get(nginx.internal_url("/agent/v1/tasks/next"))
        .bearer_auth(&agent)
        .send()
        .await
        .expect("next");
    assert_eq!(next.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        mesh.get(nginx.internal_url("/mcp"))
            .send()
            .await
            .expect("mcp")
            .status(),
        StatusCode::NOT_FOUND
    );
    // Plain HTTP on the public side only redirects.
    assert!(
        std::fs::read_to_string(nginx.dir.path().join("site.conf"))
            .expect("site")
            .contains("return 301 https://")
    );
}

#[tokio::test]
#[ignore = "needs nginx and openssl; run by scripts/test"]
async fn dmz_forwarded_for_is_believed_only_from_the_trusted_proxy() {
    // Two registrations per minute per client address; nginx's own limit is looser.
    let (app, nginx) = gateway_behind_nginx(|config| config.limits.register_per_minute = 2).await;
    let register = |http: reqwest::Client, url: String, spoofed: Option<&'static str>| async move {
        let mut request = http
            .post(url)
            .json(&json!({"redirect_uris": ["https://client.example/callback"]}));
        if let Some(spoofed) = spoofed {
            request = request.header("x-forwarded-for", spoofed);
        }
        request.send().await.expect("register").status()
    };
    // Through nginx, each client address gets its own budget: the gateway believes nginx.
    let first = nginx.client("127.0.0.3");
    let second = nginx.client("127.0.0.4");
    for _ in 0..2 {
        assert_eq!(
            register(first.clone(), nginx.url("/register"), None).await,
            StatusCode::CREATED
        );
    }
    assert_eq!(
        register(first.clone(), nginx.url("/register"), None).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // A client cannot buy a new budget with its own X-Forwarded-For: nginx overwrites it.
    assert_eq!(
        register(second.clone(), nginx.url("/register"), Some("198.51.100.1")).await,
        StatusCode::CREATED
    );
    assert_eq!(
        register(second.clone(), nginx.url("/register"), Some("198.51.100.2")).await,
        StatusCode::CREATED
    );
    assert_eq!(
        register(second.clone(), nginx.url("/register"), Some("198.51.100.3")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Straight to the gateway, from an address that is not the proxy, the header is ignored.
    let direct = reqwest::Client::builder()
        .local_address("127.0.0.5".parse::<IpAddr>().expect("ip"))
        .build()
        .expect("client");
    let url = app.url("/register");
    for spoofed in ["203.0.113.1", "203.0.113.2"] {
        assert_eq!(
            register(direct.clone(), url.clone(), Some(spoofed)).await,
            StatusCode::CREATED
        );
    }
    assert_eq!(
        register(direct.clone(), url.clone(), Some("203.0.113.3")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}
