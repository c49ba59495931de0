//! Capturing what one test's gateway logs. One process-wide subscriber (at INFO) writes each
//! event to a buffer of the thread that emitted it, when that thread is capturing: a
//! `#[tokio::test]` runs on one thread, and so does the gateway it spawns, so a test sees its
//! own requests' events and none of the other tests'. (A per-thread default subscriber would
//! be simpler, but tracing caches per call site whether anyone listens, and with other tests
//! starting and stopping their own that cache missed events.)

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

type Buffer = Arc<Mutex<Vec<u8>>>;

thread_local! {
    static CAPTURING: RefCell<Option<Buffer>> = const { RefCell::new(None) };
}

static INSTALLED: OnceLock<()> = OnceLock::new();

/// The log lines this thread writes while it lives (keep it alive for the whole test).
pub struct LogCapture {
    lines: Buffer,
}

struct ThreadWriter;

impl Write for ThreadWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        CAPTURING.with(|capturing| {
            if let Some(buffer) = capturing.borrow().as_ref() {
                buffer.lock().expect("log buffer").extend_from_slice(bytes);
            }
        });
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    /// Starts capturing this thread's events at INFO and above.
    pub fn start() -> Self {
        INSTALLED.get_or_init(|| {
            let subscriber = tracing_subscriber::fmt()
                .with_env_filter(nexus_gateway::telemetry::env_filter("info"))
                .with_writer(|| ThreadWriter)
                .with_ansi(false)
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("the only global subscriber of the suite");
        });
        let lines = Buffer::default();
        CAPTURING.with(|capturing| *capturing.borrow_mut() = Some(lines.clone()));
        Self { lines }
    }

    /// What was logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.lines.lock().expect("log buffer")).into_owned()
    }
}

impl Drop for LogCapture {
    fn drop(&mut self) {
        CAPTURING.with(|capturing| *capturing.borrow_mut() = None);
    }
}
