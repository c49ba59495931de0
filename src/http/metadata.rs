//! Discovery documents: RFC 9728 protected-resource metadata, RFC 8414 authorization-server
//! metadata and the JWKS. All absolute URLs come from `public_url` and `http::paths`, never
//! from the request's `Host`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::config::Registration;
use crate::http::paths;
use crate::oauth::client::AuthMethod;

/// `GET /.well-known/oauth-protected-resource[/mcp]`.
pub async fn protected_resource(State(state): State<AppState>) -> impl IntoResponse {
    cached(Json(protected_resource_document(&state)))
}

/// `GET /.well-known/oauth-authorization-server[/mcp]`.
pub async fn authorization_server(State(state): State<AppState>) -> impl IntoResponse {
    cached(Json(authorization_server_document(&state)))
}

/// `GET /.well-known/jwks.json`.
pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    cached(Json(state.auth.jwks()))
}

/// The RFC 9728 document.
pub fn protected_resource_document(state: &AppState) -> Value {
    let public_url = &state.config.public_url;
    json!({
        "resource": state.config.mcp_resource(),
        "authorization_servers": [public_url.as_str()],
        // offline_access belongs to the AS, not the resource (MCP 2026-07-28 "Refresh Tokens").
        "scopes_supported": scope_names(state),
        "bearer_methods_supported": ["header"],
        "resource_name": "nexus-gateway",
    })
}

/// The RFC 8414 document.
pub fn authorization_server_document(state: &AppState) -> Value {
    let public_url = &state.config.public_url;
    let auth_methods: Vec<&str> = AuthMethod::ALL
        .iter()
        .map(|method| method.as_str())
        .collect();
    let mut scopes = scope_names(state);
    scopes.push("offline_access".to_owned());
    let mut document = json!({
        "issuer": public_url.as_str(),
        "authorization_endpoint": public_url.join(paths::AUTHORIZE),
        "token_endpoint": public_url.join(paths::TOKEN),
        "registration_endpoint": public_url.join(paths::REGISTER),
        "revocation_endpoint": public_url.join(paths::REVOKE),
        "jwks_uri": public_url.join(paths::JWKS),
        "scopes_supported": scopes,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        // Clients that identify themselves by a metadata document the gateway knows (claude.ai
        // and Claude Code built in, more pinned by the owner) need no registration.
        "client_id_metadata_document_supported": true,
    });
    if state.config.oauth.registration == Registration::Off
        && let Some(fields) = document.as_object_mut()
    {
        fields.remove("registration_endpoint");
    }
    document
}

fn scope_names(state: &AppState) -> Vec<String> {
    state
        .auth
        .settings()
        .scopes
        .all()
        .iter()
        .map(|scope| scope.as_str().to_owned())
        .collect()
}

fn cached(body: impl IntoResponse) -> impl IntoResponse {
    (
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        )],
        body,
    )
}
