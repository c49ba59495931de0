//! `GET /authorize` query strings (`$I` is the registered client, `$S` a logged-in session).
#![no_main]
use axum::body::Body;
use axum::http::{HeaderValue, Request, header};
use libfuzzer_sys::fuzz_target;
use nexus_gateway_fuzz::harness;

fuzz_target!(|data: &[u8]| {
    let harness = harness();
    let query = harness.substitute(data);
    let Ok(query) = std::str::from_utf8(&query) else {
        return; // a URI cannot carry it: the HTTP layer refuses it before the gateway
    };
    let Ok(mut request) = Request::get(format!("/authorize?{query}")).body(Body::empty()) else {
        return;
    };
    if let Ok(cookie) = HeaderValue::from_str(&harness.session_cookie) {
        request.headers_mut().insert(header::COOKIE, cookie);
    }
    harness.expect_no_server_error("/authorize", request);
});
