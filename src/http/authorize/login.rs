//! `POST /authorize/login`: the owner's passphrase, under the per-IP limit and lock-out; success
//! sets the owner session cookie and moves on to the consent page.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use super::{
    SECURE_SESSION_COOKIE, SESSION_COOKIE, authorize_error, check_login_form, encode, error_page,
    expired_page, form_fields, login_page, redirect,
};
use crate::app::AppState;
use crate::http::client_ip::ClientIp;
use crate::http::error::with_retry_after;
use crate::http::paths;
use crate::http::rate_limit::Limit;

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
