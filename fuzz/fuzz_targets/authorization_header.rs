//! The `Authorization` header and JWT decoding: any bytes as the header of a `ping` on `/mcp`.
//! `$T` is a valid token, so mutations of a real JWT are explored.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nexus_gateway_fuzz::{harness, mcp_post};

fuzz_target!(|data: &[u8]| {
    let harness = harness();
    let header = harness.substitute(data);
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#.to_vec();
    let answer = harness.expect_no_server_error("/mcp", mcp_post(&header, body));
    // Nothing but the real token (or a header the fuzzer rebuilt into it) gets through.
    if answer.status.is_success() {
        let text = String::from_utf8_lossy(&header);
        assert!(
            text.contains(&harness.access_token),
            "a ping was let through with {text:?}"
        );
    }
});
