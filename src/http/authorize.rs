//! `/authorize` and the owner's pages: the login form, the consent page and the decision.
//! Pages forbid framing and caching; the session cookie is HttpOnly, SameSite=Lax and
//! Secure on https; the consent form's CSRF token is bound to the session. Success is a 302
//! (303 after a form POST), never a 307 (OAuth 2.1 §7.5.2).

use std::collections::HashSet;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::app::AppState;
use crate::config::ApprovalMode;
use crate::http::client_ip::ClientIp;
use crate::http::paths;
use crate::http::rate_limit::Limit;
use crate::oauth::error::AuthorizeError;
use crate::oauth::remote_approval::RemoteDecision;
use crate::oauth::{AuthorizationRequest, ConsentView};

/// The owner session cookie over plain http (local use).
const SESSION_COOKIE: &str = "nexus_owner";
/// The owner session cookie over https: `__Host-` forbids a `Domain` and requires `Secure` and
/// `Path=/`, so a sibling subdomain cannot plant a cookie that shadows it.
const SECURE_SESSION_COOKIE: &str = "__Host-nexus_owner";

fn session_cookie_name(state: &AppState) -> &'static str {
    if state.config.public_url.is_https() {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    issuer: &'a str,
    heading: &'a str,
    message: &'a str,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    issuer: &'a str,
    client_name: &'a str,
    redirect_host: &'a str,
    request_id: &'a str,
    csrf: &'a str,
    problem: Option<&'a str>,
    telegram_approval: bool,
}

#[derive(Template)]
#[template(path = "waiting.html")]
struct WaitingPage<'a> {
    issuer: &'a str,
    client_name: &'a str,
    redirect_host: &'a str,
    refresh_url: &'a str,
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    issuer: &'a str,
    client_name: &'a str,
    client_id: &'a str,
    redirect_host: &'a str,
    permissions: Vec<&'static str>,
    request_id: &'a str,
    csrf: &'a str,
}

/// `GET /authorize`.
pub async fn authorize(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    // Each request parks a row in the store; registration is open, so bound the rate.
    if let Err(wait) = state.limits.check(Limit::Authorize, ip) {
        return too_many_requests(&state, wait);
    }
    // Belt and braces for `auto`: the configuration already insists on a local-only gateway.
    if state.config.approval == ApprovalMode::Auto && !ip.is_loopback() {
        return error_page(
            &state,
            StatusCode::FORBIDDEN,
            "Approval needed",
            "This gateway approves automatically only for requests from this machine.",
        );
    }
    let request = match parse_query(query.as_deref().unwrap_or_default()) {
        Ok(request) => request,
        Err(message) => {
            return error_page(
                &state,
                StatusCode::BAD_REQUEST,
                "This request cannot be processed",
                message,
            );
        }
    };
    let pending = match state.auth.begin_authorization(request).await {
        Ok(pending) => pending,
        Err(error) => return authorize_error(&state, error),
    };
    if state.config.approval == ApprovalMode::Auto {
        return match state.auth.decide(&pending.request_id, true).await {
            Ok(location) => redirect(StatusCode::FOUND, &location),
            Err(error) => authorize_error(&state, error),
        };
    }
    let view = pending.view;
    match live_session(&state, &headers).await {
        Some(session) => consent_page(&state, &view, &session),
        None => login_page(&state, StatusCode::OK, &view, &pending.login_csrf, None),
    }
}

/// `POST /authorize/login`.
pub async fn login(State(state): State<AppState>, ClientIp(ip): ClientIp, body: Bytes) -> Response {
    let form = form_fields(&body);
    let (Some(request_id), Some(csrf)) = (form.get("request_id"), form.get("csrf")) else {
        return error_page(
            &state,
            StatusCode::BAD_REQUEST,
            "This form is incomplete",
            "Start again from the application.",
        );
    };
    let view = match state.auth.consent_view(request_id).await {
        Ok(Some(view)) => view,
        Ok(None) => return expired_page(&state),
        Err(error) => return authorize_error(&state, error),
    };
    if let Err(refused) = check_login_form(&state, request_id, csrf).await {
        return refused;
    }
    if let Err(wait) = state.limits.check(Limit::Login, ip) {
        let page = login_page(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            &view,
            csrf,
            Some("Too many attempts. Wait a moment and try again."),
        );
        return with_retry_after(page, wait);
    }
    let passphrase = form
        .get("passphrase")
        .map(String::as_str)
        .unwrap_or_default();
    match state.auth.log_in_owner(passphrase).await {
        Ok(Some(session)) => {
            state.limits.record_login_success(ip);
            let mut response = redirect(
                StatusCode::SEE_OTHER,
                &format!(
                    "{}?request_id={}",
                    paths::AUTHORIZE_CONSENT,
                    encode(request_id)
                ),
            );
            let cookie = if state.config.public_url.is_https() {
                format!(
                    "{SECURE_SESSION_COOKIE}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax; Secure",
                    session.token, session.max_age
                )
            } else {
                format!(
                    "{SESSION_COOKIE}={}; Path={}; Max-Age={}; HttpOnly; SameSite=Lax",
                    session.token,
                    paths::AUTHORIZE,
                    session.max_age
                )
            };
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Ok(None) => {
            state.limits.record_login_failure(ip);
            tracing::warn!(client_ip = %ip, "wrong owner passphrase");
            login_page(
                &state,
                StatusCode::UNAUTHORIZED,
                &view,
                csrf,
                Some("That passphrase is not right."),
            )
        }
        Err(error) => authorize_error(&state, error),
    }
}

/// `GET /authorize/consent?request_id=...`: the consent page after a login.
pub async fn consent(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let fields = form_fields(query.as_deref().unwrap_or_default().as_bytes());
    let Some(request_id) = fields.get("request_id") else {
        return expired_page(&state);
    };
    let Some(session) = live_session(&state, &headers).await else {
        return error_page(
            &state,
            StatusCode::UNAUTHORIZED,
            "Your sign-in has expired",
            "Start again from the application to sign in once more.",
        );
    };
    match state.auth.consent_view(request_id).await {
        Ok(Some(view)) => consent_page(&state, &view, &session),
        Ok(None) => expired_page(&state),
        Err(error) => authorize_error(&state, error),
    }
}

/// `POST /authorize/decision`: Approve or Deny.
pub async fn decision(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = form_fields(&body);
    let (Some(request_id), Some(csrf)) = (form.get("request_id"), form.get("csrf")) else {
        return error_page(
            &state,
            StatusCode::BAD_REQUEST,
            "This form is incomplete",
            "Start again from the application.",
        );
    };
    let Some(session) = live_session(&state, &headers).await else {
        return error_page(
            &state,
            StatusCode::UNAUTHORIZED,
            "Your sign-in has expired",
            "Start again from the application to sign in once more.",
        );
    };
    // Bound to the session: a request id alone, even one an attacker created, cannot be
    // approved from another site.
    let expected = state.auth.consent_csrf(&session, request_id);
    if !crate::secrets::constant_time_eq(&expected, csrf) {
        return error_page(
            &state,
            StatusCode::FORBIDDEN,
            "This form has expired",
            "Start again from the application.",
        );
    }
    let approved = match form.get("decision").map(String::as_str) {
        Some("approve") => true,
        Some("deny") => false,
        _ => {
            return error_page(
                &state,
                StatusCode::BAD_REQUEST,
                "No decision was made",
                "Choose Approve or Deny.",
            );
        }
    };
    match state.auth.decide(request_id, approved).await {
        Ok(location) => redirect(StatusCode::SEE_OTHER, &location),
        Err(error) => authorize_error(&state, error),
    }
}

/// `POST /authorize/telegram`: instead of logging in here, ask the owner in Telegram.
pub async fn approve_in_telegram(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    body: Bytes,
) -> Response {
    let form = form_fields(&body);
    let (Some(request_id), Some(csrf)) = (form.get("request_id"), form.get("csrf")) else {
        return error_page(
            &state,
            StatusCode::BAD_REQUEST,
            "This form is incomplete",
            "Start again from the application.",
        );
    };
    let Some(approver) = state.telegram_approver() else {
        return error_page(
            &state,
            StatusCode::NOT_FOUND,
            "Telegram approval is not set up",
            "Sign in with the owner passphrase instead.",
        );
    };
    if let Err(refused) = check_login_form(&state, request_id, csrf).await {
        return refused;
    }
    // Each ask messages the owner: the login limits keep a stranger from spamming them.
    if let Err(wait) = state.limits.check(Limit::Login, ip) {
        return too_many_requests(&state, wait);
    }
    let (token, view) = match state.auth.begin_remote_approval(request_id).await {
        Ok(Some(started)) => started,
        Ok(None) => return expired_page(&state),
        Err(error) => return authorize_error(&state, error),
    };
    if let Err(error) =
        crate::transport::telegram::approval::ask_owner(approver, &view, &token).await
    {
        tracing::warn!(error = %error, "cannot ask the owner in Telegram");
        return error_page(
            &state,
            StatusCode::BAD_GATEWAY,
            "Telegram could not be reached",
            "Sign in with the owner passphrase instead, or try again.",
        );
    }
    waiting_page(&state, &view, csrf)
}

/// `GET /authorize/telegram/wait?request_id=...&csrf=...`: refreshes until the owner answers.
pub async fn wait_for_telegram(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Response {
    let fields = form_fields(query.as_deref().unwrap_or_default().as_bytes());
    let (Some(request_id), Some(csrf)) = (fields.get("request_id"), fields.get("csrf")) else {
        return expired_page(&state);
    };
    // Bound to the browser that asked: only it knows the request's CSRF token.
    match state.auth.check_login_csrf(request_id, csrf).await {
        Ok(true) => {}
        Ok(false) => return expired_page(&state),
        Err(error) => return authorize_error(&state, error),
    }
    let decision = match state.auth.remote_decision(request_id).await {
        Ok(decision) => decision,
        Err(error) => return authorize_error(&state, error),
    };
    let approved = match decision {
        RemoteDecision::Waiting => {
            return match state.auth.consent_view(request_id).await {
                Ok(Some(view)) => waiting_page(&state, &view, csrf),
                Ok(None) => expired_page(&state),
                Err(error) => authorize_error(&state, error),
            };
        }
        RemoteDecision::Expired => return expired_page(&state),
        RemoteDecision::Approved => true,
        RemoteDecision::Denied => false,
    };
    match state.auth.decide(request_id, approved).await {
        Ok(location) => redirect(StatusCode::SEE_OTHER, &location),
        Err(error) => authorize_error(&state, error),
    }
}

fn waiting_page(state: &AppState, view: &ConsentView, csrf: &str) -> Response {
    let refresh_url = format!(
        "{}?request_id={}&csrf={}",
        paths::AUTHORIZE_TELEGRAM_WAIT,
        encode(&view.request_id),
        encode(csrf)
    );
    let page = WaitingPage {
        issuer: state.config.public_url.as_str(),
        client_name: &view.client_name,
        redirect_host: &view.redirect_host,
        refresh_url: &refresh_url,
    };
    render(StatusCode::OK, &page, Some(&view.redirect_uri))
}

/// `GET /assets/nexus.css`.
pub async fn stylesheet() -> impl IntoResponse {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        include_str!("../../assets/nexus.css"),
    )
}

/// Parses the authorization query. Repeated parameters are refused (RFC 6749 §3.1); a
/// repeated `client_id` or `redirect_uri` cannot even be redirected back.
fn parse_query(query: &str) -> Result<AuthorizationRequest, &'static str> {
    let mut request = AuthorizationRequest::default();
    let mut seen = HashSet::new();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if !seen.insert(name.clone().into_owned()) {
            if name == "client_id" || name == "redirect_uri" {
                return Err("The request repeats client_id or redirect_uri.");
            }
            request.has_duplicate_parameter = true;
        }
        let value = Some(value.into_owned()).filter(|value| !value.is_empty());
        match name.as_ref() {
            "response_type" => request.response_type = value,
            "client_id" => request.client_id = value,
            "redirect_uri" => request.redirect_uri = value,
            "state" => request.state = value,
            "code_challenge" => request.code_challenge = value,
            "code_challenge_method" => request.code_challenge_method = value,
            "scope" => request.scope = value,
            "resource" => request.resource = value,
            _ => {}
        }
    }
    Ok(request)
}

/// Checks the CSRF token a login-page form carries for its parked request.
async fn check_login_form(state: &AppState, request_id: &str, csrf: &str) -> Result<(), Response> {
    match state.auth.check_login_csrf(request_id, csrf).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(error_page(
            state,
            StatusCode::FORBIDDEN,
            "This form has expired",
            "Start again from the application.",
        )),
        Err(error) => Err(authorize_error(state, error)),
    }
}

fn too_many_requests(state: &AppState, wait: std::time::Duration) -> Response {
    with_retry_after(
        error_page(
            state,
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests",
            "Wait a moment and try again.",
        ),
        wait,
    )
}

fn with_retry_after(mut response: Response, wait: std::time::Duration) -> Response {
    if let Ok(value) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn authorize_error(state: &AppState, error: AuthorizeError) -> Response {
    match error {
        AuthorizeError::Page(message) => error_page(
            state,
            StatusCode::BAD_REQUEST,
            "This request cannot be processed",
            message,
        ),
        AuthorizeError::Redirect {
            redirect_uri,
            state: client_state,
            code,
            description,
        } => {
            let location = crate::oauth::redirect_with(
                &redirect_uri,
                &[
                    ("error", Some(code.as_str())),
                    ("error_description", Some(description)),
                    ("state", client_state.as_deref()),
                    ("iss", Some(state.config.public_url.as_str())),
                ],
            );
            redirect(StatusCode::FOUND, &location)
        }
        AuthorizeError::Internal(source) => {
            tracing::error!(error = %source, "internal error at /authorize");
            error_page(
                state,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The gateway could not process this request. Try again in a moment.",
            )
        }
    }
}

async fn live_session(state: &AppState, headers: &HeaderMap) -> Option<String> {
    let token = session_cookie(headers, session_cookie_name(state))?;
    match state.auth.owner_session_is_live(&token).await {
        Ok(true) => Some(token),
        _ => None,
    }
}

fn session_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(cookie_name, _)| *cookie_name == name)
        .map(|(_, value)| value.to_owned())
}

fn login_page(
    state: &AppState,
    status: StatusCode,
    view: &ConsentView,
    csrf: &str,
    problem: Option<&str>,
) -> Response {
    let page = LoginPage {
        issuer: state.config.public_url.as_str(),
        client_name: &view.client_name,
        redirect_host: &view.redirect_host,
        request_id: &view.request_id,
        csrf,
        problem,
        telegram_approval: state.telegram_approver().is_some(),
    };
    render(status, &page, None)
}

fn consent_page(state: &AppState, view: &ConsentView, session: &str) -> Response {
    let csrf = state.auth.consent_csrf(session, &view.request_id);
    let page = ConsentPage {
        issuer: state.config.public_url.as_str(),
        client_name: &view.client_name,
        client_id: &view.client_id,
        redirect_host: &view.redirect_host,
        permissions: view.scopes.iter().map(|scope| scope.describe()).collect(),
        request_id: &view.request_id,
        csrf: &csrf,
    };
    render(StatusCode::OK, &page, Some(&view.redirect_uri))
}

fn expired_page(state: &AppState) -> Response {
    error_page(
        state,
        StatusCode::BAD_REQUEST,
        "This request has expired",
        "It was answered already or took too long. Start again from the application.",
    )
}

fn error_page(state: &AppState, status: StatusCode, heading: &str, message: &str) -> Response {
    render(
        status,
        &ErrorPage {
            issuer: state.config.public_url.as_str(),
            heading,
            message,
        },
        None,
    )
}

/// Renders a page with headers that forbid framing, caching and referrers. `form_target`
/// is where the page's form may end up: the consent form's 303 goes to the client.
fn render(status: StatusCode, page: &impl Template, form_target: Option<&str>) -> Response {
    let body = match page.render() {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(error = %error, "page rendering failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
        }
    };
    let form_action = match form_target.and_then(form_action_source) {
        Some(source) => format!("'self' {source}"),
        None => "'self'".into(),
    };
    let policy = format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    );
    let mut response = (status, Html(body)).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The CSP source for a redirect URI: its origin, or its scheme for custom schemes.
fn form_action_source(redirect_uri: &str) -> Option<String> {
    let url = url::Url::parse(redirect_uri).ok()?;
    match url.scheme() {
        "http" | "https" => Some(url.origin().ascii_serialization()),
        scheme => Some(format!("{scheme}:")),
    }
}

fn redirect(status: StatusCode, location: &str) -> Response {
    let mut response = (
        status,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
    )
        .into_response();
    match HeaderValue::from_str(location) {
        Ok(value) => {
            response.headers_mut().insert(header::LOCATION, value);
            response
        }
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response(),
    }
}

fn form_fields(body: &[u8]) -> std::collections::HashMap<String, String> {
    url::form_urlencoded::parse(body)
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}

fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_parameters_are_caught() {
        assert!(parse_query("client_id=a&client_id=b").is_err());
        assert!(
            parse_query("client_id=a&scope=x&scope=y")
                .is_ok_and(|request| request.has_duplicate_parameter)
        );
        assert!(
            parse_query("client_id=a&scope=x")
                .is_ok_and(|request| !request.has_duplicate_parameter)
        );
    }

    #[test]
    fn form_action_names_the_client_origin() {
        assert_eq!(
            form_action_source("https://claude.ai/api/mcp/auth_callback").as_deref(),
            Some("https://claude.ai")
        );
        assert_eq!(
            form_action_source("http://127.0.0.1:3000/cb").as_deref(),
            Some("http://127.0.0.1:3000")
        );
        assert_eq!(
            form_action_source("cursor://anysphere.cursor-mcp/cb").as_deref(),
            Some("cursor:")
        );
    }
}
