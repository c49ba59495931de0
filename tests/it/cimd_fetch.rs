//! Fetched Client ID Metadata Documents (`oauth.cimd_fetch`), against a local https server the
//! test starts for `docs.example.test`. The test trusts its certificate authority
//! (`tests/fixtures/cimd/`) and resolves that name to the server's loopback address: two
//! loosenings only a test can ask for. Without them the fetcher refuses loopback and private
//! addresses on what a name resolves to.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cimd::{assert_error_page, authorize, document_client};
use crate::support::{Pkce, TestApp, TestClient, spawn_app};
use nexus_gateway::cimd_fetch::{FetchPolicy, fetcher};

const HOST: &str = "docs.example.test";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cimd");

/// What the document server answers for a path: a status line's code, headers, body; or a
/// wait longer than the fetch timeout.
#[derive(Clone)]
enum Answer {
    Document(u16, Vec<(&'static str, String)>, String),
    Hang,
}

/// A tiny https server: one answer per path, and how often each path was asked for.
#[derive(Clone)]
struct DocumentServer {
    address: SocketAddr,
    answers: Arc<Mutex<HashMap<String, Answer>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl DocumentServer {
    async fn start() -> Self {
        let certs = CertificateDer::pem_file_iter(format!("{FIXTURES}/docs.pem"))
            .expect("certificate")
            .collect::<Result<Vec<_>, _>>()
            .expect("certificate");
        let key = PrivateKeyDer::from_pem_file(format!("{FIXTURES}/docs.key")).expect("key");
        let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let server = DocumentServer {
            address: listener.local_addr().expect("address"),
            answers: Arc::default(),
            hits: Arc::default(),
        };
        let serving = server.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, serving) = (acceptor.clone(), serving.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                        match tls.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(read) => request.extend_from_slice(&buffer[..read]),
                        }
                    }
                    let head = String::from_utf8_lossy(&request);
                    let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                    *serving
                        .hits
                        .lock()
                        .unwrap()
                        .entry(path.clone())
                        .or_default() += 1;
                    let answer = serving.answers.lock().unwrap().get(&path).cloned();
                    let (status, headers, body) = match answer {
                        Some(Answer::Document(status, headers, body)) => (status, headers, body),
                        Some(Answer::Hang) => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            return;
                        }
                        None => (404, Vec::new(), String::new()),
                    };
                    let mut response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                        body.len()
                    );
                    for (name, value) in headers {
                        response.push_str(&format!("{name}: {value}\r\n"));
                    }
                    response.push_str("\r\n");
                    response.push_str(&body);
                    let _ = tls.write_all(response.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        server
    }

    /// Serves `answer` at `path`; returns the document URL (the client id).
    fn serve(&self, path: &str, answer: Answer) -> String {
        self.answers.lock().unwrap().insert(path.to_owned(), answer);
        format!("https://{HOST}{path}")
    }

    /// A valid document for `path` whose only redirect URI is `redirect_uri`.
    fn serve_document(
        &self,
        path: &str,
        redirect_uri: &str,
        headers: Vec<(&'static str, String)>,
    ) -> String {
        let url = format!("https://{HOST}{path}");
        let body = serde_json::json!({
            "client_id": url,
            "client_name": "Fetched App",
            "redirect_uris": [redirect_uri],
            "token_endpoint_auth_method": "none",
        });
        self.serve(path, Answer::Document(200, headers, body.to_string()))
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

/// A gateway with fetching on, trusting the test CA and resolving `HOST` to `server`.
async fn fetching_app(server: &DocumentServer) -> TestApp {
    let app = spawn_app().await;
    let policy = FetchPolicy {
        extra_roots_pem: vec![std::fs::read(format!("{FIXTURES}/ca.pem")).expect("ca")],
        fixed_addresses: vec![(HOST.to_owned(), server.address)],
    };
    app.auth
        .set_document_fetcher(fetcher(policy).expect("fetcher"));
    app
}

/// `/authorize` for `client` answers the page that says its document could not be had.
async fn assert_refused(app: &TestApp, client: &TestClient) {
    assert_error_page(
        authorize(app, client).await,
        "could not be fetched or is not valid",
    )
    .await;
}

#[tokio::test]
async fn a_fetched_document_signs_in_and_is_reused_while_its_cache_headers_allow() {
    let server = DocumentServer::start().await;
    let app = fetching_app(&server).await;
    let url = server.serve_document(
        "/oauth/client.json",
        "https://app.example.org/callback",
        vec![("cache-control", "max-age=600".into())],
    );
    let fetched = document_client(&url, "https://app.example.org/callback");
    let pkce = Pkce::new();
    let code = app.obtain_code(&fetched, &pkce).await;
    assert_eq!(
        app.exchange(&fetched, &code, &pkce).await.status(),
        StatusCode::OK
    );
    app.obtain_code(&fetched, &Pkce::new()).await;
    assert_eq!(
        server.hits("/oauth/client.json"),
        1,
        "the second sign-in uses the cached document"
    );

    // A redirect URI the document does not list is a page, as for a pinned one.
    let elsewhere = document_client(&url, "https://evil.example/callback");
    assert_error_page(
        authorize(&app, &elsewhere).await,
        "redirect_uri is not one this application registered",
    )
    .await;

    // no-store: fetched every time.
    let fresh = server.serve_document(
        "/fresh.json",
        "https://app.example.org/callback",
        vec![("cache-control", "no-store".into())],
    );
    let fresh = document_client(&fresh, "https://app.example.org/callback");
    app.obtain_code(&fresh, &Pkce::new()).await;
    app.obtain_code(&fresh, &Pkce::new()).await;
    assert_eq!(server.hits("/fresh.json"), 2);
}

#[tokio::test]
async fn bad_documents_and_bad_answers_are_refused_with_a_page() {
    let server = DocumentServer::start().await;
    let app = fetching_app(&server).await;
    let redirect = "https://app.example.org/callback";
    let other_id = serde_json::json!({
        "client_id": "https://docs.example.test/someone-else.json",
        "client_name": "Impostor",
        "redirect_uris": [redirect],
    });
    let huge = serde_json::json!({
        "client_id": format!("https://{HOST}/huge.json"),
        "client_name": "x".repeat(6000),
        "redirect_uris": [redirect],
    });
    for (path, answer) in [
        (
            "/other-id.json",
            Answer::Document(200, Vec::new(), other_id.to_string()),
        ),
        (
            "/huge.json",
            Answer::Document(200, Vec::new(), huge.to_string()),
        ),
        (
            "/not-json.json",
            Answer::Document(200, Vec::new(), "<html>".into()),
        ),
        (
            "/moved.json",
            Answer::Document(
                302,
                vec![("location", format!("https://{HOST}/other-id.json"))],
                String::new(),
            ),
        ),
        (
            "/missing.json",
            Answer::Document(404, Vec::new(), String::new()),
        ),
    ] {
        let url = server.serve(path, answer);
        assert_refused(&app, &document_client(&url, redirect)).await;
    }
    assert_eq!(
        server.hits("/other-id.json"),
        1,
        "the redirect was not followed"
    );
}

#[tokio::test]
async fn a_document_server_that_hangs_is_given_up_after_five_seconds() {
    let server = DocumentServer::start().await;
    let app = fetching_app(&server).await;
    let url = server.serve("/slow.json", Answer::Hang);
    let started = std::time::Instant::now();
    assert_refused(
        &app,
        &document_client(&url, "https://app.example.org/callback"),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_shipped_fetcher_refuses_names_that_resolve_to_internal_addresses() {
    // No test loosening: `localhost` resolves to loopback, which the resolver refuses before
    // any connection is made (the client_id rules would refuse the name itself earlier still).
    let fetch = fetcher(FetchPolicy::default()).expect("fetcher");
    let refused = fetch(url::Url::parse("https://localhost/client.json").expect("url"))
        .await
        .expect_err("loopback");
    assert!(
        refused.contains("localhost resolves to no public address"),
        "{refused}"
    );
}

#[tokio::test]
async fn with_fetching_on_in_the_configuration_an_unreachable_document_is_a_page() {
    let app = crate::support::spawn_app_with(|config| config.oauth.cimd_fetch = true).await;
    let unreachable = document_client(
        "https://nowhere.invalid/oauth/client.json",
        "https://app.example.org/callback",
    );
    assert_refused(&app, &unreachable).await;
}
