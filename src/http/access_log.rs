//! The access-log line written when a response starts, inside the request's span (which carries
//! method, route template and request ids): status and latency, for every request, for errors
//! only, or never (`access_log`).

use std::time::Duration;

use axum::http::Response;
use tower_http::trace::OnResponse;
use tracing::Span;

use crate::config::AccessLog;

/// The trace layer's response hook, per the `access_log` setting.
#[derive(Debug, Clone, Copy)]
pub struct AccessLine(pub AccessLog);

impl<B> OnResponse<B> for AccessLine {
    fn on_response(self, response: &Response<B>, latency: Duration, _span: &Span) {
        let status = response.status();
        let wanted = match self.0 {
            AccessLog::All => true,
            AccessLog::Errors => status.is_client_error() || status.is_server_error(),
            AccessLog::Off => false,
        };
        if wanted {
            tracing::info!(
                status = status.as_u16(),
                latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
                "served"
            );
        }
    }
}
