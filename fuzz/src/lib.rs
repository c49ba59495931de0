//! The fuzz targets' shared harness: one real gateway per fuzzing process (its own SQLite file
//! in a temporary directory, password approval, a Telegram target in webhook mode), driven
//! in-process through its complete router, as a client on the internet would reach it. Every
//! target asserts the one property the issue asks of every endpoint: malformed input gets its
//! documented error, never a panic and never a 5xx.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use nexus_gateway::app::App;
use tower::ServiceExt;

/// The public host the fuzzed gateway is configured for.
pub const HOST: &str = "fuzz.example";
/// Its public URL (https, so cookies are `__Host-` ones and webhook mode is allowed).
pub const BASE: &str = "https://fuzz.example";
/// The redirect URI of the client the harness registers.
pub const REDIRECT_URI: &str = "https://client.example/callback";
/// The PKCE pair the harness signs in with: a verifier and its S256 challenge.
pub const PKCE_VERIFIER: &str = "fuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzz";
pub const PKCE_CHALLENGE: &str = "ecDeBFz6A6OrTaGQ_dWKe6JZwq9DLadUyJsv7Ea5ck4";
/// The webhook target's name.
pub const TELEGRAM_TARGET: &str = "homelab";

/// What a target can substitute into its input: real values from the running gateway, so the
/// fuzzer explores past the first "unknown client" or "bad session" check.
pub struct Harness {
    runtime: tokio::runtime::Runtime,
    router: Router,
    /// A bearer token with every scope.
    pub access_token: String,
    /// A refresh token of the registered client.
    pub refresh_token: String,
    /// The registered public client.
    pub client_id: String,
    /// The owner's passphrase.
    pub passphrase: String,
    /// `name=value` of a logged-in owner session cookie.
    pub session_cookie: String,
    /// A pending authorization request shown on the consent page, and its CSRF token.
    pub request_id: String,
    pub csrf: String,
    /// The Telegram webhook secret.
    pub webhook_secret: String,
    _data: tempfile::TempDir,
}

/// An answer: status, headers, body.
pub struct Answer {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The process's harness, built on first use.
pub fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(Harness::build)
}

impl Harness {
    fn build() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let data = tempfile::TempDir::new().expect("temp dir");
        let token_file = data.path().join("bot-token");
        std::fs::write(&token_file, "123456789:FUZZ-token\n").expect("token file");
        let toml = format!(
            r#"listen = "127.0.0.1:0"
public_url = "{BASE}"
data_dir = "{data}"
approval = "password"
access_log = "off"

[limits]
register_per_minute = 1000000000
authorize_per_minute = 1000000000
token_per_minute = 1000000000
login_per_minute = 1000000000

[[targets]]
name = "{TELEGRAM_TARGET}"
transport = "telegram"
[targets.telegram]
bot_token_file = "{token}"
chat_id = -100555
owner_user_id = 7777
mode = "webhook"
# Nothing listens here: a call to the Bot API fails at once, as it would with no network.
api_base = "http://127.0.0.1:9"
"#,
            data = data.path().display(),
            token = token_file.display(),
        );
        let config = nexus_gateway::config::Config::from_toml(&toml).expect("fuzz config");
        let app = runtime.block_on(App::build(config)).expect("app");
        let passphrase = app
            .generated_owner_passphrase()
            .expect("a generated passphrase")
            .to_owned();
        let webhook_secret = app
            .state()
            .telegram
            .iter()
            .find_map(|target| target.webhook_secret.as_ref())
            .expect("a webhook secret")
            .expose()
            .to_owned();
        let router = app.router();
        let mut harness = Harness {
            runtime,
            router,
            access_token: String::new(),
            refresh_token: String::new(),
            client_id: String::new(),
            passphrase,
            session_cookie: String::new(),
            request_id: String::new(),
            csrf: String::new(),
            webhook_secret,
            _data: data,
        };
        harness.sign_in();
        harness
    }

    /// The real flow once: register, authorize, log in, approve, exchange; then a second
    /// authorization left pending on the consent page for the form targets.
    fn sign_in(&mut self) {
        let registered = self.send(json_post(
            "/register",
            &format!(
                r#"{{"redirect_uris":["{REDIRECT_URI}"],"token_endpoint_auth_method":"none","client_name":"fuzz"}}"#
            ),
        ));
        let registered: serde_json::Value =
            serde_json::from_slice(&registered.body).expect("registration");
        self.client_id = registered["client_id"].as_str().expect("client_id").into();

        let (verifier, challenge) = (PKCE_VERIFIER, PKCE_CHALLENGE);
        let login = self.send(get(&self.authorize_query(challenge)));
        let (request_id, csrf) = hidden_fields(&login.text());
        let consent = self.send(form_post(
            "/authorize/login",
            None,
            &format!(
                "request_id={request_id}&csrf={csrf}&passphrase={}",
                encode(&self.passphrase)
            ),
        ));
        self.session_cookie = consent
            .headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find(|value| value.starts_with("__Host-nexus_owner="))
            .and_then(|value| value.split(';').next())
            .unwrap_or_else(|| panic!("no session cookie after logging in: {}", consent.text()))
            .to_owned();
        let page = self.send(get_with_cookie(
            &format!("/authorize/consent?request_id={request_id}"),
            &self.session_cookie,
        ));
        let (request_id, csrf) = hidden_fields(&page.text());
        let approved = self.send(form_post(
            "/authorize/decision",
            Some(&self.session_cookie),
            &format!("request_id={request_id}&csrf={csrf}&decision=approve"),
        ));
        let location = approved
            .headers
            .get(header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .expect("a redirect with the code");
        let code = url::Url::parse(location)
            .expect("location")
            .query_pairs()
            .find(|(name, _)| name == "code")
            .map(|(_, value)| value.into_owned())
            .expect("code");
        let tokens = self.send(form_post(
            "/token",
            None,
            &format!(
                "grant_type=authorization_code&code={code}&code_verifier={verifier}&redirect_uri={}&client_id={}&resource={}",
                encode(REDIRECT_URI),
                self.client_id,
                encode(&format!("{BASE}/mcp"))
            ),
        ));
        let tokens: serde_json::Value = serde_json::from_slice(&tokens.body).expect("tokens");
        self.access_token = tokens["access_token"].as_str().expect("access").into();
        self.refresh_token = tokens["refresh_token"].as_str().expect("refresh").into();

        let login = self.send(get_with_cookie(
            &self.authorize_query(challenge),
            &self.session_cookie,
        ));
        let (request_id, csrf) = hidden_fields(&login.text());
        self.request_id = request_id;
        self.csrf = csrf;
    }

    /// `/authorize` for the registered client with `challenge`.
    pub fn authorize_query(&self, challenge: &str) -> String {
        format!(
            "/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256&state=s&scope=tasks%3Aread%20tasks%3Awrite&resource={}",
            self.client_id,
            encode(REDIRECT_URI),
            encode(&format!("{BASE}/mcp"))
        )
    }

    /// Replaces `$T` (access token), `$F` (refresh token), `$I` (client id), `$P` (passphrase),
    /// `$S` (session cookie), `$R` (request id) and `$C` (CSRF token) in `input`.
    pub fn substitute(&self, input: &[u8]) -> Vec<u8> {
        let pairs: [(&[u8], &str); 7] = [
            (b"$T", &self.access_token),
            (b"$F", &self.refresh_token),
            (b"$I", &self.client_id),
            (b"$P", &self.passphrase),
            (b"$S", &self.session_cookie),
            (b"$R", &self.request_id),
            (b"$C", &self.csrf),
        ];
        let mut out = Vec::with_capacity(input.len());
        let mut rest = input;
        'outer: while !rest.is_empty() {
            for (marker, value) in &pairs {
                if let Some(after) = rest.strip_prefix(*marker) {
                    out.extend_from_slice(value.as_bytes());
                    rest = after;
                    continue 'outer;
                }
            }
            out.push(rest[0]);
            rest = &rest[1..];
        }
        out
    }

    /// Sends `request` through the whole router, as from 203.0.113.7.
    pub fn send(&self, mut request: Request<Body>) -> Answer {
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([203, 0, 113, 7], 40000))));
        request
            .headers_mut()
            .insert(header::HOST, HeaderValue::from_static(HOST));
        let router = self.router.clone();
        self.runtime.block_on(async move {
            // A `pull_updates` wait is a legitimate long answer, not a hang: give up on it.
            let answered =
                tokio::time::timeout(Duration::from_secs(2), router.oneshot(request)).await;
            let Ok(Ok(response)) = answered else {
                return Answer {
                    status: StatusCode::REQUEST_TIMEOUT,
                    headers: axum::http::HeaderMap::new(),
                    body: Bytes::new(),
                };
            };
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map(|collected| collected.to_bytes())
                .unwrap_or_default();
            Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            }
        })
    }

    /// POSTs `data`, with the live values substituted, as a form to `path`; fails on a 5xx.
    pub fn fuzz_form(&self, path: &str, data: &[u8]) {
        let body = self.substitute(data);
        self.expect_no_server_error(
            path,
            raw_post(path, "application/x-www-form-urlencoded", body),
        );
    }

    /// Sends `request` and fails (a crash, for the fuzzer) on a 5xx.
    pub fn expect_no_server_error(&self, what: &str, request: Request<Body>) -> Answer {
        let answer = self.send(request);
        assert!(
            !answer.status.is_server_error(),
            "{what} answered {}: {}",
            answer.status,
            answer.text()
        );
        answer
    }
}

/// A GET of `path_and_query`.
pub fn get(path_and_query: &str) -> Request<Body> {
    Request::get(path_and_query)
        .body(Body::empty())
        .unwrap_or_else(|_| Request::get("/").body(Body::empty()).expect("request"))
}

fn get_with_cookie(path_and_query: &str, cookie: &str) -> Request<Body> {
    let mut request = get(path_and_query);
    if let Ok(value) = HeaderValue::from_str(cookie) {
        request.headers_mut().insert(header::COOKIE, value);
    }
    request
}

/// A POST of a JSON body.
pub fn json_post(path: &str, body: &str) -> Request<Body> {
    raw_post(path, "application/json", body.as_bytes().to_vec())
}

/// A POST of `body` with `content_type`.
pub fn raw_post(path: &str, content_type: &str, body: Vec<u8>) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .expect("request")
}

/// A form POST, with the session cookie when given.
pub fn form_post(path: &str, cookie: Option<&str>, body: &str) -> Request<Body> {
    let mut request = raw_post(
        path,
        "application/x-www-form-urlencoded",
        body.as_bytes().to_vec(),
    );
    if let Some(value) = cookie.and_then(|cookie| HeaderValue::from_str(cookie).ok()) {
        request.headers_mut().insert(header::COOKIE, value);
    }
    request
}

/// A POST to `/mcp` with `authorization` as the header and `body` as the JSON-RPC body.
pub fn mcp_post(authorization: &[u8], body: Vec<u8>) -> Request<Body> {
    let mut request = raw_post("/mcp", "application/json", body);
    let headers = request.headers_mut();
    headers.insert(
        header::ACCEPT,
        HeaderValue::from_static("application/json, text/event-stream"),
    );
    headers.insert(
        "mcp-protocol-version",
        HeaderValue::from_static("2025-06-18"),
    );
    if let Ok(value) = HeaderValue::from_bytes(authorization) {
        headers.insert(header::AUTHORIZATION, value);
    }
    request
}

/// Percent-encodes `text` for a query or form.
pub fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The `request_id` and `csrf` hidden fields of an owner page.
fn hidden_fields(page: &str) -> (String, String) {
    let field = |name: &str| {
        let marker = format!("name=\"{name}\" value=\"");
        let start = page.find(&marker).map(|at| at + marker.len());
        start
            .and_then(|start| page[start..].find('"').map(|end| &page[start..start + end]))
            .unwrap_or_else(|| panic!("no {name} field in the page: {page}"))
            .to_owned()
    };
    (field("request_id"), field("csrf"))
}
