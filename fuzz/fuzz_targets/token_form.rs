//! `POST /token` bodies (any bytes as a form; `$I`, `$F` substitute the client and its refresh token).
#![no_main]
use libfuzzer_sys::fuzz_target;
use nexus_gateway_fuzz::harness;

fuzz_target!(|data: &[u8]| harness().fuzz_form("/token", data));
