//! Spawning real gateways and acting on them as clients, owners and operators would.

use std::path::Path;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Extension, Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::Response;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nexus_gateway::app::App;
use nexus_gateway::clock::ManualClock;
use nexus_gateway::config::{ApprovalMode, Config, PublicUrl};
use nexus_gateway::http::bearer::{BearerGuard, authenticate};
use nexus_gateway::oauth::jwt::AccessClaims;
use nexus_gateway::oauth::scope::Scope;
use nexus_gateway::oauth::{AuthServer, VerifiedToken};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub mod fixture;
mod mcp;
pub mod postgres;
pub use mcp::*;

/// The redirect URI test clients register.
pub const REDIRECT_URI: &str = "https://client.example/callback";
/// A protected route that needs only a valid token (any scope).
pub const PROTECTED: &str = "/test/protected";
/// A protected route that needs `tasks:write`.
pub const PROTECTED_WRITE: &str = "/test/write";

/// A running gateway.
pub struct TestApp {
    pub base_url: String,
    /// The internal listener (`/metrics`).
    pub internal_url: String,
    pub http: reqwest::Client,
    pub clock: ManualClock,
    pub auth: AuthServer,
    /// The federated upstreams, to wait for one to be ready.
    pub upstreams: nexus_gateway::upstream::Upstreams,
    /// The queue, for tests that set up a state no client could.
    pub queue: nexus_gateway::queue::Queue,
    /// Everything the handlers share (for a `{:?}` of it in the log test, which shares this
    /// file with the `it` binary).
    #[allow(dead_code)]
    pub state: nexus_gateway::app::AppState,
    pub config: Config,
    pub owner_passphrase: Option<String>,
    pub data_dir: Arc<TempDir>,
    shutdown: CancellationToken,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A gateway in `auto` approval mode.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A gateway whose config is adjusted by `adjust` first.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    spawn_in(Arc::new(TempDir::new().expect("temp dir")), None, adjust).await
}

/// A gateway over an existing data dir, optionally with a fixed public URL (to restart one).
pub async fn spawn_in(
    data_dir: Arc<TempDir>,
    public_url: Option<&str>,
    adjust: impl FnOnce(&mut Config),
) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let base_url = format!("http://{address}");
    let mut config = Config {
        listen: address,
        public_url: PublicUrl::parse(public_url.unwrap_or(&base_url)).expect("public url"),
        data_dir: data_dir.path().to_path_buf(),
        approval: ApprovalMode::Auto,
        ..Config::default()
    };
    postgres::use_suite_engine(&mut config).await;
    adjust(&mut config);
    let clock = ManualClock::starting_now();
    let app = App::build_with_clock(config.clone(), Arc::new(clock.clone()))
        .await
        .expect("app builds");
    let auth = app.state().auth.clone();
    let upstreams = app.state().upstreams.clone();
    let queue = app.state().queue.clone();
    let state = app.state().clone();
    let owner_passphrase = app.generated_owner_passphrase().map(str::to_owned);
    let internal = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind internal");
    let internal_url = format!("http://{}", internal.local_addr().expect("address"));
    let app = app
        .merge_routes(protected_routes(&auth))
        .with_internal_listener(internal)
        // In-process, this program is the test binary: stdio upstreams run under the real one.
        .with_upstream_shim(env!("CARGO_BIN_EXE_nexus-gateway").into());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.serve(listener, shutdown.clone()));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    TestApp {
        base_url,
        internal_url,
        http,
        clock,
        auth,
        upstreams,
        queue,
        state,
        config,
        owner_passphrase,
        data_dir,
        shutdown,
        server: Some(server),
    }
}

/// The bearer guard as a route layer, for the test-only routes below.
async fn require_bearer(
    State(guard): State<BearerGuard>,
    request: Request,
    next: Next,
) -> Response {
    match authenticate(&guard, request).await {
        Ok(request) => next.run(request).await,
        Err(answer) => answer,
    }
}

/// Test-only routes behind the bearer guard (`/mcp` runs the same check, `authenticate`).
fn protected_routes(auth: &AuthServer) -> Router {
    async fn echo_claims(Extension(verified): Extension<Arc<VerifiedToken>>) -> Json<AccessClaims> {
        Json(verified.claims().clone())
    }
    Router::new()
        .route(PROTECTED, get(echo_claims))
        .route_layer(from_fn_with_state(
            BearerGuard::new(auth.clone(), &[]),
            require_bearer,
        ))
        .merge(
            Router::new()
                .route(PROTECTED_WRITE, get(echo_claims))
                .route_layer(from_fn_with_state(
                    BearerGuard::new(auth.clone(), &[Scope::TasksWrite]),
                    require_bearer,
                )),
        )
}

/// A registered client as the tests hold it.
#[derive(Debug, Clone)]
pub struct TestClient {
    pub client_id: String,
    pub client_secret: Option<String>,
    pub redirect_uri: String,
}

/// A PKCE pair.
#[derive(Debug, Clone)]
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Self {
        let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        Self {
            verifier,
            challenge,
        }
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// An absolute URL on the internal listener (the agent API, metrics).
    pub fn internal(&self, path: &str) -> String {
        format!("{}{path}", self.internal_url)
    }

    pub fn resource(&self) -> String {
        self.config.mcp_resource()
    }

    /// Stops the server and waits until it has let go of the port and the store.
    pub async fn stop(mut self) -> Arc<TempDir> {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server ran");
        }
        self.data_dir.clone()
    }

    /// GETs `path` and parses the JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json body")
    }

    pub async fn register(&self, body: Value) -> reqwest::Response {
        self.http
            .post(self.url("/register"))
            .json(&body)
            .send()
            .await
            .expect("register request")
    }

    /// Registers a client with `auth_method` and the test redirect URI.
    pub async fn register_client(&self, auth_method: &str) -> TestClient {
        let response = self
            .register(json!({
                "redirect_uris": [REDIRECT_URI],
                "token_endpoint_auth_method": auth_method,
                "grant_types": ["authorization_code", "refresh_token"],
                "client_name": "Test Client",
            }))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.expect("json");
        TestClient {
            client_id: body["client_id"].as_str().expect("client_id").to_owned(),
            client_secret: body["client_secret"].as_str().map(str::to_owned),
            redirect_uri: REDIRECT_URI.to_owned(),
        }
    }

    pub async fn authorize(&self, query: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .get(self.url("/authorize"))
            .query(query)
            .send()
            .await
            .expect("authorize request")
    }

    /// A well-formed authorization query for `client`.
    pub fn authorize_query<'a>(
        &'a self,
        client: &'a TestClient,
        pkce: &'a Pkce,
        state: &'a str,
    ) -> Vec<(&'a str, String)> {
        vec![
            ("response_type", "code".into()),
            ("client_id", client.client_id.clone()),
            ("redirect_uri", client.redirect_uri.clone()),
            ("code_challenge", pkce.challenge.clone()),
            ("code_challenge_method", "S256".into()),
            ("state", state.into()),
            ("scope", "tasks:read tasks:write".into()),
            ("resource", self.resource()),
        ]
    }

    /// In auto mode: runs /authorize and returns the code from the redirect.
    pub async fn obtain_code(&self, client: &TestClient, pkce: &Pkce) -> String {
        let query = self.authorize_query(client, pkce, "xyz");
        let pairs: Vec<(&str, &str)> = query
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        let response = self.authorize(&pairs).await;
        assert_eq!(response.status(), StatusCode::FOUND);
        let location = redirect_params(&response);
        assert_eq!(location.get("state").map(String::as_str), Some("xyz"));
        location.get("code").expect("code in redirect").clone()
    }

    pub async fn token(&self, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.url("/token"))
            .form(form)
            .send()
            .await
            .expect("token request")
    }

    pub async fn token_basic(
        &self,
        id: &str,
        secret: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        self.http
            .post(self.url("/token"))
            .basic_auth(id, Some(secret))
            .form(form)
            .send()
            .await
            .expect("token request")
    }

    /// Exchanges a code as a public client.
    pub async fn exchange(
        &self,
        client: &TestClient,
        code: &str,
        pkce: &Pkce,
    ) -> reqwest::Response {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", &pkce.verifier),
            ("redirect_uri", &client.redirect_uri),
            ("client_id", &client.client_id),
            ("resource", &self.resource()),
        ])
        .await
    }

    /// A public client, its PKCE pair, a code it redeemed, and the tokens the code gave.
    pub async fn redeemed_code(&self) -> (TestClient, Pkce, String, Value) {
        let client = self.register_client("none").await;
        let pkce = Pkce::new();
        let code = self.obtain_code(&client, &pkce).await;
        let response = self.exchange(&client, &code, &pkce).await;
        assert_eq!(response.status(), StatusCode::OK);
        let tokens = response.json().await.expect("token json");
        (client, pkce, code, tokens)
    }

    /// The whole public-client dance: register, authorize, exchange.
    pub async fn tokens_for_new_client(&self) -> (TestClient, Value) {
        let client = self.register_client("none").await;
        let pkce = Pkce::new();
        let code = self.obtain_code(&client, &pkce).await;
        let response = self.exchange(&client, &code, &pkce).await;
        assert_eq!(response.status(), StatusCode::OK);
        (client, response.json().await.expect("token json"))
    }

    pub async fn refresh(&self, client: &TestClient, refresh_token: &str) -> reqwest::Response {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", &client.client_id),
        ])
        .await
    }

    /// The Prometheus text of the internal listener's `/metrics`.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.internal("/metrics"))
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("metrics text")
    }

    pub async fn call_protected(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("protected request")
    }
}

/// The query parameters of a redirect's `Location`.
#[track_caller]
pub fn redirect_params(response: &reqwest::Response) -> std::collections::HashMap<String, String> {
    let location = response
        .headers()
        .get("location")
        .expect("location header")
        .to_str()
        .expect("ascii");
    let url = url::Url::parse(location).expect("absolute location");
    url.query_pairs()
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}

/// Asserts an OAuth JSON error with `code`, and returns the body.
pub async fn assert_oauth_error(
    response: reqwest::Response,
    status: StatusCode,
    code: &str,
) -> Value {
    assert_eq!(response.status(), status, "status for expected {code}");
    assert_eq!(
        response
            .headers()
            .get("cache-control")
            .map(|value| value.to_str().ok()),
        Some(Some("no-store"))
    );
    let body: Value = response.json().await.expect("json error body");
    assert_eq!(body["error"], code, "body: {body}");
    assert!(body["error_description"].is_string(), "body: {body}");
    body
}

/// Reads a hidden form field from one of the owner's pages.
#[track_caller]
pub fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in page"))
        + marker.len();
    let end = html[start..].find('"').expect("closing quote") + start;
    html[start..end].to_owned()
}

/// The data directory's database file, for tests that look at what is stored.
pub fn database_file(data_dir: &Path) -> std::path::PathBuf {
    Config {
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    }
    .database_path()
}
