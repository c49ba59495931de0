//! Log output: a `tracing` subscriber, pretty for a terminal or JSON for journald, filtered by
//! `RUST_LOG` (default `info`). What may never be logged is enforced at the call sites, in
//! `http`'s stack, and here: rmcp logs whole JSON-RPC messages (tool arguments, so task text)
//! at debug and trace, so it is capped at info unless `RUST_LOG` names it explicitly.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Directive;

use crate::config::LogFormat;

/// The filter used when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn";

/// Logs an internal failure behind a 5xx or a generic tool error: the one place where such a
/// cause is written down (the answer itself never carries it). `context` says where it happened.
pub fn log_internal(context: &'static str, source: &(dyn std::error::Error + 'static)) {
    tracing::error!(error = %source, cause = ?source.source(), "internal error: {context}");
}

/// Installs the global subscriber; later calls are ignored.
pub fn init(format: LogFormat) {
    let spec = std::env::var("RUST_LOG").unwrap_or_else(|_| DEFAULT_FILTER.to_owned());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter(&spec))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The filter for a `RUST_LOG`-style `spec`, with the payload-logging crates capped.
pub fn env_filter(spec: &str) -> EnvFilter {
    let mut filter = EnvFilter::try_new(spec).unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // Only an explicit mention opts in to rmcp's message dumps (for protocol debugging).
    if !spec.contains("rmcp")
        && let Ok(cap) = "rmcp=info".parse::<Directive>()
    {
        filter = filter.add_directive(cap);
    }
    filter
}
