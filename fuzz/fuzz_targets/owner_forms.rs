//! The owner's cookies and forms: the first byte picks the login form, the consent page or the
//! decision form; up to the first newline is the `Cookie` header, the rest the form (or query).
//! `$S`, `$R`, `$C` and `$P` are a real session cookie, request id, CSRF token and passphrase.
#![no_main]
use axum::body::Body;
use axum::http::{HeaderValue, Request, header};
use libfuzzer_sys::fuzz_target;
use nexus_gateway_fuzz::{harness, raw_post};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let harness = harness();
    let input = harness.substitute(rest);
    let (cookie, form) = match input.iter().position(|&byte| byte == b'\n') {
        Some(at) => (&input[..at], input[at + 1..].to_vec()),
        None => (&input[..0], input.clone()),
    };
    let mut request = match selector % 3 {
        0 => raw_post(
            "/authorize/login",
            "application/x-www-form-urlencoded",
            form,
        ),
        1 => raw_post(
            "/authorize/decision",
            "application/x-www-form-urlencoded",
            form,
        ),
        _ => {
            let Ok(query) = String::from_utf8(form) else {
                return;
            };
            let Ok(request) =
                Request::get(format!("/authorize/consent?{query}")).body(Body::empty())
            else {
                return;
            };
            request
        }
    };
    if let Ok(cookie) = HeaderValue::from_bytes(cookie) {
        request.headers_mut().insert(header::COOKIE, cookie);
    }
    harness.expect_no_server_error("an owner form", request);
});
