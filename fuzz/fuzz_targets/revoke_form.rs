//! `POST /revoke` bodies (RFC 7009 forms).
#![no_main]
use libfuzzer_sys::fuzz_target;
use nexus_gateway_fuzz::harness;

fuzz_target!(|data: &[u8]| harness().fuzz_form("/revoke", data));
