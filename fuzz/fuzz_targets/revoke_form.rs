//! `POST /revoke` bodies (RFC 7009 forms).
#![no_main]
use libfuzzer_sys::fuzz_target;
use nexus_gateway_fuzz::{harness, raw_post};

fuzz_target!(|data: &[u8]| {
    let harness = harness();
    let body = harness.substitute(data);
    harness.expect_no_server_error(
        "/revoke",
        raw_post("/revoke", "application/x-www-form-urlencoded", body),
    );
});
