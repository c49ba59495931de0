//! `POST /authorize/login`: the owner's passphrase, under the per-IP limit and lock-out and a
//! global budget of passphrase checks (which browsers the owner logged in from before skip);
//! success sets the owner session cookie (and remembers the browser) and moves on to consent.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{
    OwnerCookie, authorize_error, check_login_form, encode, expired_page, form_fields,
    form_request, login_page, owner_cookie, redirect, set_owner_cookie,
};
use crate::app::AppState;
use crate::http::client_ip::ClientIp;
use crate::http::error::with_retry_after;
use crate::http::paths;
use crate::http::rate_limit::Limit;

/// `POST /authorize/login`.
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = form_fields(&body);
    let (request_id, csrf) = match form_request(&state, &form) {
        Ok(fields) => fields,
        Err(refused) => return refused.into_response(),
    };
    let view = match state.auth.consent_view(request_id).await {
        Ok(Some(view)) => view,
        Ok(None) => return expired_page(&state),
        Err(error) => return authorize_error(&state, error),
    };
    if let Err(refused) = check_login_form(&state, request_id, csrf).await {
        return refused;
    }
    let too_many = |wait| {
        let page = login_page(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            &view,
            csrf,
            Some("Too many attempts. Wait a moment and try again."),
        );
        with_retry_after(page, wait)
    };
    if let Err(wait) = state.limits.check(Limit::Login, ip) {
        return too_many(wait);
    }
    // The global budget is for passphrase checks that run, and a browser the owner logged in
    // from before skips it: a flood of wrong guesses from elsewhere cannot lock the owner out.
    let known_device = match owner_cookie(&headers, OwnerCookie::Device, &state) {
        Some(device) => state.auth.is_owner_device(&device).await.unwrap_or(false),
        None => false,
    };
    if !known_device && let Err(wait) = state.limits.check_passphrase_budget() {
        return too_many(wait);
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
            set_owner_cookie(
                &mut response,
                &state,
                OwnerCookie::Session,
                session.token.expose(),
                session.max_age,
            );
            if !known_device {
                match state.auth.remember_owner_device().await {
                    Ok((device, max_age)) => set_owner_cookie(
                        &mut response,
                        &state,
                        OwnerCookie::Device,
                        &device,
                        max_age,
                    ),
                    Err(error) => {
                        tracing::warn!(error = %error, "cannot remember the owner's browser")
                    }
                }
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
