//! SQLite's write-ahead log folded into the database file off the writer's path. SQLite's own
//! automatic checkpoint runs inside the commit that crosses 1,000 log pages, and with
//! `synchronous = NORMAL` that is where both of a checkpoint's fsyncs happen: every batch
//! behind it waited on the disk. The writing connection therefore checkpoints never, and this
//! loop does it from a reading connection, where a passive checkpoint runs beside new commits.

use std::time::Duration;

use sqlx::AnyPool;

/// How often the log is folded in. At thousands of sends a second the log grows by a few MB
/// between two folds; once folded, the next commit starts it over from its beginning.
pub(super) const INTERVAL: Duration = Duration::from_millis(200);

/// Folds the log into the database every `INTERVAL`, until the task is dropped.
pub(super) async fn fold_wal(readers: AnyPool) {
    let mut failing = false;
    loop {
        tokio::time::sleep(INTERVAL).await;
        match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&readers)
            .await
        {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::store::{NewMessage, Store};

    /// The writing connection never checkpoints, so if the loop did not run, the messages
    /// would stay in the log and the database file would not grow.
    #[tokio::test]
    async fn the_log_reaches_the_database_file_while_the_store_is_open() {
        let dir = tempfile::TempDir::new().expect("dir");
        let path = dir.path().join("nexus-gateway.sqlite3");
        let store = Store::open(&path).await.expect("opens");
        tokio::time::sleep(super::INTERVAL * 2).await;
        let before = std::fs::metadata(&path).expect("the file").len();
        let sends = (0..500).map(|n| {
            let store = store.clone();
            async move {
                let message = NewMessage {
                    id: format!("m{n}"),
                    target: "homelab".into(),
                    content: format!("{n} {}", "x".repeat(2_000)),
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
        let grown = async {
            while std::fs::metadata(&path).expect("the file").len() < before + 500_000 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(super::INTERVAL * 10, grown)
            .await
            .expect("a megabyte of messages folded into the database file");
    }
}
