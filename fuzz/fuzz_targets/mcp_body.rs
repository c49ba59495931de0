//! JSON-RPC bodies on `/mcp`, with a valid bearer token (`$T` and friends are substituted).
#![no_main]
use libfuzzer_sys::fuzz_target;
use nexus_gateway_fuzz::{harness, mcp_post};

fuzz_target!(|data: &[u8]| {
    let harness = harness();
    let body = harness.substitute(data);
    let authorization = format!("Bearer {}", harness.access_token);
    harness.expect_no_server_error("/mcp", mcp_post(authorization.as_bytes(), body));
});
