//! Telegram updates as the webhook receives them (with the right secret): any bytes as the body.
#![no_main]
use axum::http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use nexus_gateway_fuzz::{TELEGRAM_TARGET, harness, raw_post};

fuzz_target!(|data: &[u8]| {
    let harness = harness();
    let mut request = raw_post(
        &format!("/telegram/webhook/{TELEGRAM_TARGET}"),
        "application/json",
        data.to_vec(),
    );
    request.headers_mut().insert(
        "x-telegram-bot-api-secret-token",
        HeaderValue::from_str(&harness.webhook_secret).expect("secret"),
    );
    harness.expect_no_server_error("the Telegram webhook", request);
});
