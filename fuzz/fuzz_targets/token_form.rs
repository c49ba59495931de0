//! `POST /token` bodies (any bytes as a form; `$I`, `$F` substitute the client and its refresh token).
#![no_main]
use libfuzzer_sys::fuzz_target;
use nexus_gateway_fuzz::{harness, raw_post};

fuzz_target!(|data: &[u8]| {
    let harness = harness();
    let body = harness.substitute(data);
    harness.expect_no_server_error(
        "/token",
        raw_post("/token", "application/x-www-form-urlencoded", body),
    );
});
