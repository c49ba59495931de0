//! SQLite's write-ahead log folded into the database file off the writer's path. SQLite's own
//! automatic checkpoint runs inside the commit that crosses 1,000 log pages, and with
//! `synchronous = NORMAL` that is where both of a checkpoint's fsyncs happen: every batch
//! behind it waited on the disk. So no connection checkpoints by itself (`wal_autocheckpoint =
//! 0`); this loop does it from a reading connection, where a passive checkpoint runs beside new
//! commits.
//!
//! A checkpoint beside a busy writer never quite finishes (the writer appends while it copies),
//! and SQLite starts the log over only after one that did: under sustained writes the log would
//! grow without end. So once it holds `RESTART_FRAMES`, the loop checkpoints once on the
//! writing connection itself, between two batches, where nothing is appended: most frames are
//! already copied, the rest are, and the next commit starts the log over, unless a read that
//! began earlier still uses it; then a later round tries again. (SQLite's own automatic
//! checkpoint is passive too, with the same limit.) The log file keeps its largest size.

use std::time::Duration;

use sqlx::AnyPool;

/// How often the log is folded in.
const INTERVAL: Duration = Duration::from_millis(200);

/// Log frames (pages, 4 KiB each) past which the writer finishes a checkpoint itself, so the
/// log starts over: about 16 MiB, a second or so of sustained sends.
const RESTART_FRAMES: i64 = 4_000;

/// Folds the log into the database every `INTERVAL`, until the task is dropped.
pub(super) async fn fold_wal(readers: AnyPool, writer: AnyPool) {
    let mut failing = false;
    loop {
        tokio::time::sleep(INTERVAL).await;
        let mut folded = passive_checkpoint(&readers).await;
        if let Ok(frames) = folded
            && frames >= RESTART_FRAMES
        {
            folded = passive_checkpoint(&writer).await;
        }
        match folded {
            Ok(_) if failing => {
                failing = false;
                tracing::info!("WAL checkpoints succeed again");
            }
            Ok(_) => {}
            // Said once per failing stretch, not five times a second.
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(%error, "WAL checkpoint failed; the log grows until one succeeds");
            }
            Err(_) => {}
        }
    }
}

/// One passive checkpoint on a connection of `pool`; the frames the log holds.
async fn passive_checkpoint(pool: &AnyPool) -> Result<i64, sqlx::Error> {
    // The answer's columns: busy, frames in the log, frames copied into the database.
    let (_, frames, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(pool)
        .await?;
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::store::{NewMessage, Store};

    /// Queues `count` messages of about 3 KB each (a page apiece), `in_flight` at a time.
    async fn send_many(store: &Store, first: usize, count: usize, in_flight: usize) {
        for chunk_start in (first..first + count).step_by(in_flight) {
            let sends = (chunk_start..(chunk_start + in_flight).min(first + count)).map(|n| {
                let store = store.clone();
                async move {
                    let message = NewMessage {
                        id: format!("m{n}"),
                        target: "homelab".into(),
                        content: format!("{n} {}", "x".repeat(3_000)),
                        content_hash: format!("h{n}"),
                        urgent: false,
                        sender: "client".into(),
                        created_at: 1,
                    };
                    store.insert_message(&message, "queued").await
                }
            });
            for sent in futures_util::future::join_all(sends).await {
                sent.expect("queued");
            }
        }
    }

    fn wal_path(database: &Path) -> std::path::PathBuf {
        let mut wal = database.as_os_str().to_owned();
        wal.push("-wal");
        wal.into()
    }

    fn wal_bytes(database: &Path) -> u64 {
        std::fs::metadata(wal_path(database))
            .map(|meta| meta.len())
            .unwrap_or(0)
    }

    /// How many times the log has started over: its header's checkpoint sequence number
    /// (bytes 12-15, big-endian), which SQLite increments at each restart.
    fn wal_restarts(database: &Path) -> u32 {
        let header = std::fs::read(wal_path(database)).expect("the log");
        u32::from_be_bytes(header[12..16].try_into().expect("four bytes"))
    }

    /// Checkpoints beside a writer that never pauses never finish, and the log starts over
    /// only after one that did: without the writer's own checkpoint past `RESTART_FRAMES`,
    /// this log grew by every page written and never started over (its header counts the
    /// restarts, which does not depend on how fast the disk is).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_stays_bounded_under_writes_that_never_pause() {
        let dir = tempfile::TempDir::new().expect("dir");
        let path = dir.path().join("nexus-gateway.sqlite3");
        let store = Store::open(&path).await.expect("opens");
        let page_with_header: u64 = 4_096 + 24;
        let restart_bytes =
            u64::try_from(super::RESTART_FRAMES).expect("positive") * page_with_header;
        // Five times the restart threshold, written without a pause. The log file keeps its
        // largest size, so one look at the end sees how far it grew.
        let messages = 5 * usize::try_from(super::RESTART_FRAMES).expect("positive");
        let restarts_before = wal_restarts(&path);
        send_many(&store, 0, messages, 64).await;
        let restarts = wal_restarts(&path) - restarts_before;
        let largest = wal_bytes(&path);
        assert!(restarts >= 1, "the log never started over");
        // Room for what the writer appends while a round copies: about 1.5 times the threshold
        // here, but 4.4 with other I/O in the way of a checkpoint's fsyncs (`dd ... conv=fsync`
        // beside the test; the bound used to be 3, and such a run failed it). Without restarts
        // this log grows by every page written: 7.7 times.
        assert!(
            largest < 6 * restart_bytes,
            "the log reached {largest} bytes; it starts over past {restart_bytes}"
        );
    }

    /// The writing connection never checkpoints, so if the loop did not run, the messages
    /// would stay in the log and the database file would not grow.
    #[tokio::test]
    async fn the_log_reaches_the_database_file_while_the_store_is_open() {
        let dir = tempfile::TempDir::new().expect("dir");
        let path = dir.path().join("nexus-gateway.sqlite3");
        let store = Store::open(&path).await.expect("opens");
        tokio::time::sleep(super::INTERVAL * 2).await;
        let before = std::fs::metadata(&path).expect("the file").len();
        // About 1.5 MB of messages.
        send_many(&store, 0, 500, 64).await;
        let grown = async {
            while std::fs::metadata(&path).expect("the file").len() < before + 1_000_000 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), grown)
            .await
            .expect("the messages folded into the database file");
    }
}
