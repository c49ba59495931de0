//! Approval in Telegram instead of a login here: the browser asks, the owner answers in the
//! chat, and the waiting page refreshes until the decision is made.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::{
    authorize_error, check_login_form, encode, error_page, expired_page, form_fields, redirect,
    too_many_requests,
};
use crate::app::AppState;
use crate::http::client_ip::ClientIp;
use crate::http::pages::{WaitingPage, render};
use crate::http::paths;
use crate::http::rate_limit::Limit;
use crate::oauth::ConsentView;
use crate::oauth::remote_approval::RemoteDecision;

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
