//! Log output: a `tracing` subscriber, pretty for a terminal or JSON for journald, filtered by
//! `RUST_LOG` (default `info`). What may never be logged is enforced at the call sites and in
//! `http`'s stack (see ARCHITECTURE.md, "Secrets and logs").

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber; later calls are ignored.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
