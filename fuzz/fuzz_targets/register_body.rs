//! `POST /register` bodies (RFC 7591 JSON).
#![no_main]
use libfuzzer_sys::fuzz_target;
use nexus_gateway_fuzz::{harness, raw_post};

fuzz_target!(|data: &[u8]| {
    let harness = harness();
    harness.expect_no_server_error(
        "/register",
        raw_post("/register", "application/json", data.to_vec()),
    );
});
