//! Password-mode approval, driven over HTTP as a browser would: the login form, the session
//! cookie, the consent page, Approve and Deny, and the protections around them.

use nexus_gateway::config::ApprovalMode;
use reqwest::StatusCode;

use crate::support::{Pkce, TestApp, TestClient, hidden_field, redirect_params, spawn_app_with};

async fn password_app() -> TestApp {
    spawn_app_with(|config| config.approval = ApprovalMode::Password).await
}

/// A browser: its cookies (name, value) go with every request it makes.
pub(crate) struct Browser<'a> {
    app: &'a TestApp,
    pub(crate) cookies: Vec<(String, String)>,
    /// The address the trusted proxy reports for this browser, if any.
    pub(crate) address: Option<String>,
}

impl<'a> Browser<'a> {
    pub(crate) fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            cookies: Vec::new(),
            address: None,
        }
    }

    /// A browser behind the trusted proxy at `address`.
    pub(crate) fn at(app: &'a TestApp, address: &str) -> Self {
        Self {
            address: Some(address.to_owned()),
            ..Self::new(app)
        }
    }

    /// A request to `path` carrying this browser's cookies.
    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = self.app.http.request(method, self.app.url(path));
        if let Some(address) = &self.address {
            request = request.header("x-forwarded-for", address);
        }
        if self.cookies.is_empty() {
            return request;
        }
        let header = self
            .cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        request.header("cookie", header)
    }

    /// Keeps the cookies a response sets.
    fn remember(&mut self, response: &reqwest::Response) {
        for set_cookie in response.headers().get_all("set-cookie") {
            let set_cookie = set_cookie.to_str().expect("ascii");
            let pair = set_cookie.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies.retain(|(kept, _)| kept != name);
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    pub(crate) async fn open_authorize(
        &self,
        client: &TestClient,
        pkce: &Pkce,
        state: &str,
    ) -> reqwest::Response {
        let query = self.app.authorize_query(client, pkce, state);
        self.request(reqwest::Method::GET, "/authorize")
            .query(&query)
            .send()
            .await
            .expect("authorize")
    }

    /// Opens `/authorize` and returns the page (the login page, without a session).
    pub(crate) async fn login_page(&self, client: &TestClient, pkce: &Pkce, state: &str) -> String {
        self.open_authorize(client, pkce, state)
            .await
            .text()
            .await
            .expect("html")
    }

    pub(crate) async fn log_in(&mut self, page: &str, passphrase: &str) -> reqwest::Response {
        let form = [
            ("request_id", hidden_field(page, "request_id")),
            ("csrf", hidden_field(page, "csrf")),
            ("passphrase", passphrase.into()),
        ];
        let response = self
            .request(reqwest::Method::POST, "/authorize/login")
            .form(&form)
            .send()
            .await
            .expect("login");
        self.remember(&response);
        response
    }

    pub(crate) async fn get(&self, location: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, location)
            .send()
            .await
            .expect("get")
    }

    pub(crate) async fn decide(
        &self,
        request_id: &str,
        csrf: &str,
        decision: &str,
    ) -> reqwest::Response {
        self.request(reqwest::Method::POST, "/authorize/decision")
            .form(&[
                ("request_id", request_id),
                ("csrf", csrf),
                ("decision", decision),
            ])
            .send()
            .await
            .expect("decision")
    }

    /// Logs in from a fresh /authorize and returns the consent page's HTML.
    pub(crate) async fn reach_consent(
        &mut self,
        client: &TestClient,
        pkce: &Pkce,
        state: &str,
    ) -> String {
        let login_page = self.login_page(client, pkce, state).await;
        let passphrase = self
            .app
            .owner_passphrase
            .clone()
            .expect("generated passphrase");
        let response = self.log_in(&login_page, &passphrase).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let location = response.headers()["location"]
            .to_str()
            .expect("ascii")
            .to_owned();
        let consent = self.get(&location).await;
        assert_eq!(consent.status(), StatusCode::OK);
        consent.text().await.expect("html")
    }
}

#[tokio::test]
async fn the_owner_logs_in_approves_and_the_client_gets_tokens() {
    let app = password_app().await;
    assert!(
        app.owner_passphrase.is_some(),
        "a passphrase is generated on first start"
    );
    let client = app.register_client("none").await;
    let pkce = Pkce::new();
    let mut browser = Browser::new(&app);

    let login = browser.open_authorize(&client, &pkce, "st").await;
    assert_eq!(login.status(), StatusCode::OK);
    let csp = login.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let login_page = login.text().await.expect("html");
    assert!(login_page.contains("Test Client") && login_page.contains("client.example"));

    let passphrase = app.owner_passphrase.clone().expect("passphrase");
    let logged_in = browser.log_in(&login_page, &passphrase).await;
    assert_eq!(logged_in.status(), StatusCode::SEE_OTHER);
    let cookie = logged_in.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax")
            && !cookie.contains("Secure"),
        "{cookie}"
    );
    let consent = browser
        .get(logged_in.headers()["location"].to_str().expect("ascii"))
        .await;
    let consent_page = consent.text().await.expect("html");
    for expected in [
        "Allow Test Client?",
        "client.example",
        "Send tasks to your agent",
        "Read your agent",
        "Approve",
        "Deny",
    ] {
        assert!(
            consent_page.contains(expected),
            "consent page lacks {expected}"
        );
    }

    let approved = browser
        .decide(
            &hidden_field(&consent_page, "request_id"),
            &hidden_field(&consent_page, "csrf"),
            "approve",
        )
        .await;
    assert_eq!(
        approved.status(),
        StatusCode::SEE_OTHER,
        "303 after a form POST, never 307"
    );
    let params = redirect_params(&approved);
    assert_eq!(params.get("state").map(String::as_str), Some("st"));
    assert_eq!(params.get("iss"), Some(&app.base_url));
    let tokens = app.exchange(&client, &params["code"], &pkce).await;
    assert_eq!(tokens.status(), StatusCode::OK);

    // One session, one decision: the next request asks for the passphrase again, so a click
    // lured from another site cannot ride a session still open (DoubleClickjacking).
    let second = browser.login_page(&client, &Pkce::new(), "again").await;
    assert!(!second.contains("Allow Test Client?"));
    assert!(second.contains("name=\"passphrase\""));
}

#[tokio::test]
async fn a_cross_site_navigation_asks_for_the_passphrase_even_with_a_session() {
    let app = password_app().await;
    let client = app.register_client("none").await;
    let mut browser = Browser::new(&app);
    // Logged in, consent not yet given: the session is live.
    browser.reach_consent(&client, &Pkce::new(), "a").await;
    let pkce = Pkce::new();
    let query = app.authorize_query(&client, &pkce, "b");
    let open = |site: &'static str| {
        browser
            .request(reqwest::Method::GET, "/authorize")
            .query(&query)
            .header("sec-fetch-site", site)
    };
    let cross = open("cross-site").send().await.expect("authorize");
    let cross = cross.text().await.expect("html");
    assert!(cross.contains("name=\"passphrase\"") && !cross.contains("Allow Test Client?"));
    let same = open("same-origin").send().await.expect("authorize");
    assert!(
        same.text()
            .await
            .expect("html")
            .contains("Allow Test Client?")
    );
}

#[tokio::test]
async fn denial_redirects_with_access_denied_and_answers_cannot_be_replayed() {
    let app = password_app().await;
    let client = app.register_client("none").await;
    let mut browser = Browser::new(&app);
    let consent = browser.reach_consent(&client, &Pkce::new(), "st").await;
    let (request_id, csrf) = (
        hidden_field(&consent, "request_id"),
        hidden_field(&consent, "csrf"),
    );
    let denied = browser.decide(&request_id, &csrf, "deny").await;
    assert_eq!(denied.status(), StatusCode::SEE_OTHER);
    let params = redirect_params(&denied);
    assert_eq!(
        params.get("error").map(String::as_str),
        Some("access_denied")
    );
    assert_eq!(params.get("state").map(String::as_str), Some("st"));
    assert!(!params.contains_key("code"));
    // The decision ended the session, so a replayed form is refused before it is looked at.
    let replay = browser.decide(&request_id, &csrf, "approve").await;
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    assert!(replay.headers().get("location").is_none());
}

#[tokio::test]
async fn consent_needs_the_session_and_its_own_csrf_token() {
    let app = password_app().await;
    let client = app.register_client("none").await;
    let mut owner = Browser::new(&app);
    let first = owner.reach_consent(&client, &Pkce::new(), "a").await;
    let second_page = owner.login_page(&client, &Pkce::new(), "b").await;
    let (first_id, first_csrf) = (
        hidden_field(&first, "request_id"),
        hidden_field(&first, "csrf"),
    );
    let second_id = hidden_field(&second_page, "request_id");

    // An attacker's page can make the owner's browser post, but cannot know the CSRF token.
    assert_eq!(
        owner.decide(&first_id, "guessed", "approve").await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        owner
            .decide(&second_id, &first_csrf, "approve")
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    // Without the session cookie nothing can be approved, whatever the token.
    let stranger = Browser::new(&app);
    assert_eq!(
        stranger
            .decide(&first_id, &first_csrf, "approve")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        stranger
            .get(&format!("/authorize/consent?request_id={first_id}"))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    // The real answer still works.
    assert_eq!(
        owner
            .decide(&first_id, &first_csrf, "approve")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn wrong_passphrases_are_refused_then_locked_out() {
    let app = password_app().await;
    let client = app.register_client("none").await;
    let pkce = Pkce::new();
    let mut browser = Browser::new(&app);
    let page = browser.login_page(&client, &pkce, "s").await;
    let wrong = browser.log_in(&page, "not the passphrase").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get("set-cookie").is_none());
    assert!(
        wrong
            .text()
            .await
            .expect("html")
            .contains("That passphrase is not right.")
    );
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(browser.log_in(&page, "still wrong").await.status());
    }
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // Locked out: even the right passphrase waits.
    let passphrase = app.owner_passphrase.clone().expect("passphrase");
    assert_eq!(
        browser.log_in(&page, &passphrase).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // The lock-out (and the per-minute budget) end with time, not with more tries.
    app.clock.advance(60);
    assert_eq!(
        browser.log_in(&page, &passphrase).await.status(),
        StatusCode::SEE_OTHER
    );
    // A forged login form (no valid CSRF token for the request) never reaches the check.
    let forged = app
        .http
        .post(app.url("/authorize/login"))
        .form(&[
            ("request_id", hidden_field(&page, "request_id").as_str()),
            ("csrf", "forged"),
            ("passphrase", passphrase.as_str()),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_operator_can_change_the_passphrase() {
    let app = password_app().await;
    let old = app.owner_passphrase.clone().expect("passphrase");
    assert!(
        nexus_gateway::admin::set_owner_password(&app.config, "short")
            .await
            .is_err()
    );
    nexus_gateway::admin::set_owner_password(&app.config, "correct horse battery staple")
        .await
        .expect("set");
    let client = app.register_client("none").await;
    let pkce = Pkce::new();
    let mut browser = Browser::new(&app);
    let page = browser.login_page(&client, &pkce, "s").await;
    assert_eq!(
        browser.log_in(&page, &old).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        browser
            .log_in(&page, "correct horse battery staple")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    if app.config.database_url.is_none() {
        let stored = std::fs::read(crate::support::database_file(app.data_dir.path()))
            .expect("database file");
        assert!(
            !String::from_utf8_lossy(&stored).contains("correct horse battery staple"),
            "only the argon2id hash is stored"
        );
    }
    let store = nexus_gateway::store::Store::open_at(&app.config.store_location())
        .await
        .expect("store");
    let stored = store
        .owner_password_hash()
        .await
        .expect("read")
        .expect("set");
    assert!(
        stored.starts_with("$argon2id$"),
        "only the argon2id hash is stored"
    );
}

#[tokio::test]
async fn the_owners_pages_show_a_client_name_without_hidden_characters() {
    let app = password_app().await;
    // U+202E makes "moc.elgoog" display as "google.com"; U+2028 breaks the line.
    let response = app
        .register(serde_json::json!({
            "redirect_uris": [crate::support::REDIRECT_URI],
            "token_endpoint_auth_method": "none",
            "client_name": "Evil\u{202E}moc.elgoog\u{2028}\u{200B}Client",
        }))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let registered: serde_json::Value = response.json().await.expect("json");
    assert_eq!(registered["client_name"], "Evilmoc.elgoog Client");
    let client = TestClient {
        client_id: registered["client_id"].as_str().expect("id").to_owned(),
        client_secret: None,
        redirect_uri: crate::support::REDIRECT_URI.to_owned(),
    };
    let mut browser = Browser::new(&app);
    let login = browser.login_page(&client, &Pkce::new(), "s").await;
    let consent = browser.reach_consent(&client, &Pkce::new(), "s").await;
    for page in [&login, &consent] {
        for hidden in ['\u{202E}', '\u{2028}', '\u{200B}'] {
            assert!(!page.contains(hidden), "page shows U+{:04X}", hidden as u32);
        }
        assert!(page.contains("Evilmoc.elgoog Client"), "{page}");
    }
}

#[tokio::test]
async fn a_custom_scheme_redirect_is_shown_as_the_app_not_as_a_host() {
    let app = spawn_app_with(|config| {
        config.approval = ApprovalMode::Password;
        config.oauth.custom_redirect_schemes = vec!["cursor".into()];
    })
    .await;
    // Any app can claim `cursor:`; the "claude.ai" in the URI proves nothing.
    let redirect_uri = "cursor://claude.ai/cb";
    let response = app
        .register(serde_json::json!({
            "redirect_uris": [redirect_uri],
            "token_endpoint_auth_method": "none",
            "client_name": "Editor",
        }))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let registered: serde_json::Value = response.json().await.expect("json");
    let client = TestClient {
        client_id: registered["client_id"].as_str().expect("id").to_owned(),
        client_secret: None,
        redirect_uri: redirect_uri.to_owned(),
    };
    let mut browser = Browser::new(&app);
    let login = browser.login_page(&client, &Pkce::new(), "s").await;
    let consent = browser.reach_consent(&client, &Pkce::new(), "s").await;
    for page in [&login, &consent] {
        assert!(page.contains("the app that opens cursor: links"), "{page}");
        assert!(!page.contains("claude.ai"), "{page}");
    }
}
