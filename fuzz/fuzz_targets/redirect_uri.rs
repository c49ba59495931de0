//! Redirect URIs: any string registered as a client's redirect URI, then presented at
//! `/authorize` for the harness's client (which must never redirect anywhere but its own).
#![no_main]
use axum::http::header;
use libfuzzer_sys::fuzz_target;
use nexus_gateway_fuzz::{PKCE_CHALLENGE, REDIRECT_URI, encode, get, harness, json_post};

fuzz_target!(|data: &[u8]| {
    let harness = harness();
    let Ok(uri) = std::str::from_utf8(data) else {
        return;
    };
    let registration = serde_json::json!({
        "redirect_uris": [uri],
        "token_endpoint_auth_method": "none",
        "client_name": "fuzz",
    });
    harness.expect_no_server_error(
        "/register",
        json_post("/register", &registration.to_string()),
    );
    let query = harness.authorize_query(PKCE_CHALLENGE).replace(
        &format!("redirect_uri={}", encode(REDIRECT_URI)),
        &format!("redirect_uri={}", encode(uri)),
    );
    let answer = harness.expect_no_server_error("/authorize", get(&query));
    if uri != REDIRECT_URI
        && let Some(location) = answer.headers.get(header::LOCATION)
    {
        panic!(
            "/authorize redirected to {location:?} for a redirect URI the client never registered: {uri:?}"
        );
    }
});
