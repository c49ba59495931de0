//! `/authorize` and the owner's pages: the login form, the consent page and the decision.
//! Pages forbid framing and caching; the session cookie is HttpOnly, SameSite=Lax and
//! Secure on https; the consent form's CSRF token is bound to the session. Success is a 302
//! (303 after a form POST), never a 307 (OAuth 2.1 §7.5.2).

//!
//! - `mod.rs`: `GET /authorize` and what the owner's forms share (session cookie, CSRF check,
//!   error mapping, redirects).
//! - `login.rs`: the passphrase form; `consent.rs`: the consent page and the decision;
//!   `telegram.rs`: asking the owner in Telegram instead. The pages themselves are `http::pages`.

mod consent;
mod login;
mod telegram;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub use consent::{consent, decision};
pub use login::login;
pub use telegram::{approve_in_telegram, wait_for_telegram};

use crate::app::AppState;
use crate::config::ApprovalMode;
use crate::http::client_ip::ClientIp;
use crate::http::error::PageError;
use crate::http::pages::{ConsentPage, LoginPage, render};
use crate::http::paths;
use crate::http::rate_limit::Limit;
use crate::oauth::error::AuthorizeError;
use crate::oauth::{AuthorizationRequest, ConsentView};

/// The owner's cookies. Over https they are `__Host-` cookies: no `Domain`, `Secure` and
/// `Path=/` are required, so a sibling subdomain cannot plant one that shadows ours.
#[derive(Debug, Clone, Copy)]
enum OwnerCookie {
    /// The login session (minutes; ended at each decision).
    Session,
    /// A browser the owner logged in from (months; skips the global login budget).
    Device,
}

impl OwnerCookie {
    fn name(self, https: bool) -> &'static str {
        match (self, https) {
            (Self::Session, true) => "__Host-nexus_owner",
            (Self::Session, false) => "nexus_owner",
            (Self::Device, true) => "__Host-nexus_device",
            (Self::Device, false) => "nexus_device",
        }
    }
}

/// The value of one of the owner's cookies, if the browser sent it.
fn owner_cookie(headers: &HeaderMap, cookie: OwnerCookie, state: &AppState) -> Option<String> {
    let name = cookie.name(state.config.public_url.is_https());
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(cookie_name, _)| *cookie_name == name)
        .map(|(_, value)| value.to_owned())
}

/// Sets one of the owner's cookies: HttpOnly, SameSite=Lax, and Secure on https.
fn set_owner_cookie(
    response: &mut Response,
    state: &AppState,
    cookie: OwnerCookie,
    value: &str,
    max_age: i64,
) {
    let https = state.config.public_url.is_https();
    let name = cookie.name(https);
    let text = if https {
        format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax; Secure")
    } else {
        format!(
            "{name}={value}; Path={}; Max-Age={max_age}; HttpOnly; SameSite=Lax",
            paths::AUTHORIZE
        )
    };
    if let Ok(value) = HeaderValue::from_str(&text) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
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
    // A navigation from another site (a lure, or a page that double-clicks the owner into
    // Approve) always asks for the passphrase, even with a session open.
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|value| value.as_bytes() == b"cross-site");
    match live_session(&state, &headers).await {
        Some(session) if !cross_site => consent_page(&state, &view, &session),
        _ => login_page(
            &state,
            StatusCode::OK,
            &view,
            pending.login_csrf.expose(),
            None,
        ),
    }
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

fn too_many_requests(state: &AppState, wait: Duration) -> Response {
    PageError::too_many_requests(&state.config.public_url, wait).into_response()
}

/// An `/authorize` failure: a page when the client or its redirect URI is not verified, a
/// redirect back to the client (with `error`, `state` and `iss`) once it is.
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
            PageError::internal(&state.config.public_url, source.as_ref()).into_response()
        }
    }
}

async fn live_session(state: &AppState, headers: &HeaderMap) -> Option<String> {
    let token = owner_cookie(headers, OwnerCookie::Session, state)?;
    match state.auth.owner_session_is_live(&token).await {
        Ok(true) => Some(token),
        _ => None,
    }
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
        document_host: crate::oauth::cimd::document_host(&view.client_id),
        permissions: view
            .scopes
            .iter()
            .map(|scope| state.auth.settings().scopes.describe(scope))
            .collect(),
        request_id: &view.request_id,
        csrf: &csrf,
    };
    render(StatusCode::OK, &page, Some(&view.redirect_uri))
}

/// The request id and CSRF token every owner form carries; a page saying so when one is missing.
fn form_request<'a>(
    state: &AppState,
    form: &'a HashMap<String, String>,
) -> Result<(&'a str, &'a str), PageError> {
    match (form.get("request_id"), form.get("csrf")) {
        (Some(request_id), Some(csrf)) => Ok((request_id, csrf)),
        _ => Err(PageError::new(
            &state.config.public_url,
            StatusCode::BAD_REQUEST,
            "This form is incomplete",
            "Start again from the application.",
        )),
    }
}

fn expired_page(state: &AppState) -> Response {
    error_page(
        state,
        StatusCode::BAD_REQUEST,
        "This request has expired",
        "It was answered already or took too long. Start again from the application.",
    )
}

fn error_page(
    state: &AppState,
    status: StatusCode,
    heading: &'static str,
    message: &'static str,
) -> Response {
    PageError::new(&state.config.public_url, status, heading, message).into_response()
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

fn form_fields(body: &[u8]) -> HashMap<String, String> {
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
}
