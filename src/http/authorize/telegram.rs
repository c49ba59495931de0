//! Approval in Telegram instead of a login here: the browser asks, the owner is prompted in
//! the chat, and approves by sending the bot the pairing code this browser's waiting page
//! shows (a tap alone can only deny). The page refreshes until the decision is made.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{
    authorize_error, check_login_form, encode, error_page, expired_page, form_fields, form_request,
    redirect, too_many_requests,
};
use crate::app::AppState;
use crate::http::client_ip::ClientIp;
use crate::http::pages::{WaitingPage, render};
use crate::http::paths;
use crate::http::rate_limit::Limit;
use crate::oauth::ConsentView;
use crate::oauth::remote_approval::{RemoteAsk, RemoteDecision, pairing_code};
use crate::transport::telegram::approval::{self, Requester};

/// `POST /authorize/telegram`: instead of logging in here, ask the owner in Telegram.
pub async fn approve_in_telegram(
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
    let wait_url = wait_url(request_id, csrf);
    // One ask per request: asking again (after a Deny, say) shows where it stands and sends
    // the owner nothing.
    match state.auth.remote_decision(request_id).await {
        Ok(RemoteDecision::Expired) => {}
        Ok(_) => return redirect(StatusCode::SEE_OTHER, &wait_url),
        Err(error) => return authorize_error(&state, error),
    }
    // Each ask messages the owner: a per-address budget and a global one keep strangers from
    // flooding them (and from spending the owner's login budget).
    if let Err(wait) = state.limits.check(Limit::TelegramAsk, ip) {
        return too_many_requests(&state, wait);
    }
    let (deny_token, view, context) = match state.auth.begin_remote_approval(request_id, csrf).await
    {
        Ok(RemoteAsk::New {
            deny_token,
            view,
            context,
        }) => (deny_token, view, context),
        Ok(RemoteAsk::AlreadyAsked(_)) => return redirect(StatusCode::SEE_OTHER, &wait_url),
        Ok(RemoteAsk::Gone) => return expired_page(&state),
        Err(error) => return authorize_error(&state, error),
    };
    let requester = Requester {
        address: ip.to_string(),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|value| value.to_str().ok()),
    };
    if let Err(error) =
        approval::ask_owner(approver, &view, &deny_token, &context, &requester).await
    {
        tracing::warn!(error = %error, "cannot ask the owner in Telegram");
        return error_page(
            &state,
            StatusCode::BAD_GATEWAY,
            "Telegram could not be reached",
            "Sign in with the owner passphrase instead.",
        );
    }
    waiting_page(&state, &view, csrf)
}

fn wait_url(request_id: &str, csrf: &str) -> String {
    format!(
        "{}?request_id={}&csrf={}",
        paths::AUTHORIZE_TELEGRAM_WAIT,
        encode(request_id),
        encode(csrf)
    )
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
    let refresh_url = wait_url(&view.request_id, csrf);
    let code = pairing_code(csrf, &view.request_id);
    let page = WaitingPage {
        issuer: state.config.public_url.as_str(),
        client_name: &view.client_name,
        redirect_host: &view.redirect_host,
        refresh_url: &refresh_url,
        pairing_code: &format!("{} {}", &code[..3], &code[3..]),
    };
    render(StatusCode::OK, &page, Some(&view.redirect_uri))
}
