//! Log output: a `tracing` subscriber, pretty for a terminal or JSON for journald, filtered by
//! `RUST_LOG` (default `info`). What may never be logged is enforced at the call sites, in
//! `http`'s stack, and here: rmcp logs whole JSON-RPC messages (tool arguments, so task text)
//! at debug and trace, and three lines per stateless request at info, so it is capped at warn
//! (or lower, if `RUST_LOG` is lower) unless `RUST_LOG` names it explicitly.

use std::io::BufWriter;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{Directive, LevelFilter};

use crate::config::LogFormat;

/// The filter used when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn";

/// Logs an internal failure behind a 5xx or a generic tool error: the one place where such a
/// cause is written down (the answer itself never carries it). `context` says where it happened.
pub fn log_internal(context: &'static str, source: &(dyn std::error::Error + 'static)) {
    tracing::error!(error = %source, cause = ?source.source(), "internal error: {context}");
}

/// Lines waiting for the log thread at most; past this, logging waits instead of dropping one.
/// The queue is allocated whole at start, 32 bytes a line: 65,536 lines took 2 MiB of the
/// 20 MiB resident budget (BENCHMARKS.md), and tracing-appender's default of 128,000 would take
/// 4. This is under a tenth of a second of access lines at the fastest the gateway serves them
/// on 2 cores.
const QUEUED_LINES: usize = 1_024;
/// The most the log thread writes in one system call; it writes out whenever the queue is empty.
const WRITE_BYTES: usize = 64 * 1024;

/// Installs the global subscriber; later calls are ignored. Lines go to standard error from a
/// thread of their own: a request's worker hands its line over instead of making a system call
/// for it (one per request at the default level: 3-4 % of a `tools/call`'s time), and the thread
/// writes whatever queued up meanwhile in one call, as soon as it can. Keep the guard until the
/// process ends: dropping it writes out what is still queued, waiting a second at most for
/// stderr to take it (tracing-appender's bound); lines logged after that are lost.
#[must_use = "dropping the guard stops the log thread"]
pub fn init(format: LogFormat) -> WorkerGuard {
    let spec = std::env::var("RUST_LOG").unwrap_or_else(|_| DEFAULT_FILTER.to_owned());
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("nexus-log")
        .finish(BufWriter::with_capacity(WRITE_BYTES, std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter(&spec))
        .with_writer(writer);
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        // The span chain once (`spans`, outermost first: the request's span with its id, then
        // any inner span), not its innermost span again (`span`): the access line is written for
        // every request, and span serialisation was about a quarter of its cost (half of it the
        // second copy).
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    guard
}

/// The filter for a `RUST_LOG`-style `spec`, with the payload-logging crates capped.
pub fn env_filter(spec: &str) -> EnvFilter {
    let filter = EnvFilter::try_new(spec).unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // Only an explicit mention opts in to rmcp's lines (for protocol debugging).
    if spec.contains("rmcp") {
        return filter;
    }
    // rmcp gets warn, or less when the whole filter asks for less: a cap, never a raise.
    let cap = match filter.max_level_hint() {
        Some(level) if level < LevelFilter::WARN => level,
        _ => LevelFilter::WARN,
    };
    match format!("rmcp={cap}").parse::<Directive>() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    }
}

#[cfg(test)]
mod tests {
    use tracing::Level;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Whether an event at `level` from `target` passes the filter built from `spec`.
    fn passes(spec: &str, target_is_rmcp: bool, level: Level) -> bool {
        let subscriber = tracing_subscriber::registry().with(env_filter(spec));
        tracing::subscriber::with_default(subscriber, || {
            if target_is_rmcp {
                match level {
                    Level::INFO => tracing::enabled!(target: "rmcp", Level::INFO),
                    Level::WARN => tracing::enabled!(target: "rmcp", Level::WARN),
                    _ => tracing::enabled!(target: "rmcp", Level::ERROR),
                }
            } else {
                tracing::enabled!(target: "nexus_gateway::http", Level::INFO)
            }
        })
    }

    #[test]
    fn rmcp_is_capped_at_warn_and_never_raised_above_the_filter() {
        // The default: our info lines, none of rmcp's per-request info lines.
        assert!(passes(DEFAULT_FILTER, false, Level::INFO));
        assert!(!passes(DEFAULT_FILTER, true, Level::INFO));
        assert!(passes(DEFAULT_FILTER, true, Level::WARN));
        assert!(!passes("debug", true, Level::INFO));
        // A lower filter stays lower: the cap does not raise rmcp to warn.
        assert!(!passes("error", true, Level::WARN));
        assert!(passes("error", true, Level::ERROR));
        assert_eq!(
            env_filter("error").max_level_hint(),
            Some(LevelFilter::ERROR)
        );
        // Naming rmcp opts in to its lines.
        assert!(passes("warn,rmcp=info", true, Level::INFO));
    }
}
