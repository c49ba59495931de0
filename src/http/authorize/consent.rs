//! The consent page after a login, and `POST /authorize/decision`: Approve or Deny, with a CSRF
//! token bound to the owner session and the request.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{
    authorize_error, consent_page, error_page, expired_page, form_fields, form_request,
    live_session, redirect,
};
use crate::app::AppState;

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
    let (request_id, csrf) = match form_request(&state, &form) {
        Ok(fields) => fields,
        Err(refused) => return refused.into_response(),
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
    let decided = state.auth.decide(request_id, approved).await;
    // One session, one decision: a second request needs the passphrase again, so a click
    // lured from another site cannot ride a session that is still open.
    if let Err(error) = state.auth.end_owner_session(&session).await {
        tracing::warn!(error = %error, "cannot end the owner session");
    }
    match decided {
        Ok(location) => redirect(StatusCode::SEE_OTHER, &location),
        Err(error) => authorize_error(&state, error),
    }
}
