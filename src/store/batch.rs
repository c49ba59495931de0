//! Group commit for new messages: sends that arrive together share one write transaction of
//! four statements (insert the messages, find the duplicates, insert their first updates,
//! commit) instead of four statements each. SQLite has one writer; each statement is a hand-off
//! to sqlx's worker thread, and that hand-off, not the disk, is what limited durable sends.
//! Dedup is exactly as before: the unique partial index decides, inside the transaction.

use std::collections::{HashMap, HashSet};

use sqlx::{AnyPool, AssertSqlSafe, Row};
use tokio::sync::{mpsc, oneshot};

use crate::queue::message::MessageStatus;
use crate::store::{Engine, InsertOutcome, NewMessage, StoreError};

/// The `source` of a message's first update.
const UPDATE_SOURCE: &str = "gateway";

/// Insert passes in one transaction at most (see `insert_batch`).
const MAX_PASSES: usize = 3;
/// Messages in one transaction at most (8 bound values each, far below either engine's limit).
const MAX_BATCH: usize = 64;

/// A send waiting for its batch.
struct Pending {
    message: NewMessage,
    update_text: String,
    outcome: oneshot::Sender<Result<InsertOutcome, StoreError>>,
}

/// The handle sends go through; the batch writer runs until every handle is gone.
#[derive(Debug, Clone)]
pub(super) struct MessageBatcher {
    pending: mpsc::Sender<Pending>,
}

impl MessageBatcher {
    /// Starts the batch writer on `writer` (on SQLite the store's one writing connection).
    ///
    /// On SQLite it runs on a thread of its own, and beside it the WAL checkpoints
    /// (`checkpoint.rs`, on a connection of `readers`). A batch is four statements, each a
    /// round trip to sqlx's connection thread; as a task among the request handlers, each
    /// return from that thread waited its turn in a busy run queue. On PostgreSQL it stays a
    /// task: its connections' sockets belong to the process runtime.
    pub(super) async fn spawn(
        engine: Engine,
        writer: AnyPool,
        readers: AnyPool,
    ) -> std::io::Result<Self> {
        let (pending, queue) = mpsc::channel(4 * MAX_BATCH);
        match engine {
            Engine::Sqlite => {
                let (started, start) = oneshot::channel();
                std::thread::Builder::new()
                    .name("nexus-sqlite-writer".into())
                    .spawn(move || run_sqlite_writer(started, writer, readers, queue))?;
                start.await.map_err(|_| {
                    std::io::Error::other("the SQLite writer thread stopped at start")
                })??;
            }
            Engine::Postgres => {
                tokio::spawn(write_batches(engine, writer, queue));
            }
        }
        Ok(Self { pending })
    }

    /// Queues `message` (with its first update's text) in the next batch and waits for it.
    pub(super) async fn insert(
        &self,
        message: &NewMessage,
        update_text: &str,
    ) -> Result<InsertOutcome, StoreError> {
        let (outcome, answer) = oneshot::channel();
        let pending = Pending {
            message: message.clone(),
            update_text: update_text.to_owned(),
            outcome,
        };
        self.pending
            .send(pending)
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// Whether the batch writer still takes sends. Its channel closes when the writer is
    /// gone (on SQLite, if its thread died), after which every send would fail.
    pub(super) fn is_running(&self) -> bool {
        !self.pending.is_closed()
    }

    /// Resolves once the batch writer is gone.
    pub(super) async fn stopped(&self) {
        self.pending.closed().await;
    }

    /// A handle whose writer is gone, as a dead writer thread leaves it.
    #[cfg(test)]
    pub(super) fn without_writer() -> Self {
        let (pending, _queue) = mpsc::channel(1);
        Self { pending }
    }
}

/// The SQLite writer thread: its runtime, built here (a runtime must not be dropped inside
/// another, as it would be in the caller if the thread failed to start), then the batches and,
/// beside them, the checkpoints, until the last handle (and so the channel) is gone.
fn run_sqlite_writer(
    started: oneshot::Sender<std::io::Result<()>>,
    writer: AnyPool,
    readers: AnyPool,
    queue: mpsc::Receiver<Pending>,
) {
    // Timers only: SQLite's connections are threads reached through channels, so the runtime
    // parks on a futex instead of polling sockets (and an eventfd) it never has.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = started.send(Err(error));
            return;
        }
    };
    let _ = started.send(Ok(()));
    runtime.spawn(super::checkpoint::fold_wal(readers, writer.clone()));
    runtime.block_on(write_batches(Engine::Sqlite, writer, queue));
}

async fn write_batches(engine: Engine, writer: AnyPool, mut queue: mpsc::Receiver<Pending>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let entries: Vec<(&NewMessage, &str)> = batch
            .iter()
            .map(|pending| (&pending.message, pending.update_text.as_str()))
            .collect();
        match insert_batch(engine, &writer, &entries).await {
            Ok(outcomes) => {
                for (pending, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = pending.outcome.send(Ok(outcome));
                }
            }
            // A failed batch is retried one by one, so each send gets its own answer (and one
            // bad message cannot fail the others).
            Err(error) if batch.len() == 1 => {
                if let Some(pending) = batch.pop() {
                    let _ = pending.outcome.send(Err(error));
                }
            }
            Err(_) => {
                for pending in batch {
                    let outcome =
                        insert_batch(engine, &writer, &[(&pending.message, &pending.update_text)])
                            .await
                            .and_then(|mut outcomes| {
                                outcomes.pop().ok_or_else(|| {
                                    StoreError::Corrupt("an empty batch answer".into())
                                })
                            });
                    let _ = pending.outcome.send(outcome);
                }
            }
        }
    }
}

/// Inserts `entries` in one transaction; each is queued, or names the identical open message
/// (which may be an earlier entry of the same batch).
async fn insert_batch(
    engine: Engine,
    writer: &AnyPool,
    entries: &[(&NewMessage, &str)],
) -> Result<Vec<InsertOutcome>, StoreError> {
    let mut transaction = match engine {
        Engine::Sqlite => writer.begin_with("BEGIN IMMEDIATE").await?,
        Engine::Postgres => writer.begin().await?,
    };
    // Rows go in in dedup-key order: two replicas inserting overlapping batches then wait on
    // each other's index entries in the same order, and cannot deadlock.
    let mut in_key_order: Vec<&NewMessage> = entries.iter().map(|(message, _)| *message).collect();
    in_key_order.sort_by(|a, b| (&a.target, &a.content_hash).cmp(&(&b.target, &b.content_hash)));
    let mut queued: HashSet<String> = HashSet::new();
    let mut open_ids: HashMap<(String, String), String> = HashMap::new();
    let mut to_insert = in_key_order;
    // On PostgreSQL (read committed), the open message a row collided with can finish between
    // the insert and the look that finds it: such a row is no duplicate any more, and goes in
    // on the next pass. On SQLite the write lock makes the first pass the only one.
    for _ in 0..MAX_PASSES {
        let inserted = insert_messages(&mut transaction, &to_insert).await?;
        let skipped: Vec<&NewMessage> = to_insert
            .iter()
            .copied()
            .filter(|message| !inserted.contains(&message.id))
            .collect();
        queued.extend(inserted);
        open_ids.extend(open_duplicates(&mut transaction, &skipped).await?);
        to_insert = skipped
            .into_iter()
            .filter(|message| {
                !open_ids.contains_key(&(message.target.clone(), message.content_hash.clone()))
            })
            .collect();
        if to_insert.is_empty() {
            break;
        }
    }

    let firsts: Vec<&(&NewMessage, &str)> = entries
        .iter()
        .filter(|(message, _)| queued.contains(&message.id))
        .collect();
    if !firsts.is_empty() {
        let updates = format!(
            "INSERT INTO updates (message_id, target, content, status, source, created_at) VALUES {}",
            placeholders(firsts.len(), 6)
        );
        let mut query = sqlx::query(AssertSqlSafe(updates));
        for (message, text) in &firsts {
            query = query
                .bind(&message.id)
                .bind(&message.target)
                .bind(*text)
                .bind(MessageStatus::Pending.as_str())
                .bind(UPDATE_SOURCE)
                .bind(message.created_at);
        }
        query.execute(&mut *transaction).await?;
    }
    transaction.commit().await?;

    entries
        .iter()
        .map(|(message, _)| {
            if queued.contains(&message.id) {
                return Ok(InsertOutcome::Queued);
            }
            open_ids
                .get(&(message.target.clone(), message.content_hash.clone()))
                .map(|id| InsertOutcome::Duplicate(id.clone()))
                .ok_or_else(|| {
                    StoreError::Corrupt("a message was refused as a duplicate of none".into())
                })
        })
        .collect()
}

/// Inserts `messages`, skipping (not failing on) those the dedup index refuses; the ids of
/// those inserted.
async fn insert_messages(
    transaction: &mut sqlx::AnyConnection,
    messages: &[&NewMessage],
) -> Result<HashSet<String>, StoreError> {
    let insert = format!(
        "INSERT INTO messages (id, target, content, content_hash, urgent, status, sender, created_at)
         VALUES {} ON CONFLICT DO NOTHING RETURNING id",
        placeholders(messages.len(), 8)
    );
    let mut query = sqlx::query(AssertSqlSafe(insert));
    for message in messages {
        query = query
            .bind(&message.id)
            .bind(&message.target)
            .bind(&message.content)
            .bind(&message.content_hash)
            .bind(i64::from(message.urgent))
            .bind(MessageStatus::Pending.as_str())
            .bind(&message.sender)
            .bind(message.created_at);
    }
    Ok(query
        .fetch_all(&mut *transaction)
        .await?
        .iter()
        .map(|row| row.try_get("id"))
        .collect::<Result<_, _>>()?)
}

/// The open messages `skipped` collided with: (target, content hash) to id.
async fn open_duplicates(
    transaction: &mut sqlx::AnyConnection,
    skipped: &[&NewMessage],
) -> Result<HashMap<(String, String), String>, StoreError> {
    let mut open_ids = HashMap::new();
    if skipped.is_empty() {
        return Ok(open_ids);
    }
    let find = format!(
        "SELECT id, target, content_hash FROM messages
         WHERE status IN ('pending', 'acknowledged', 'in_progress') AND (target, content_hash) IN ({})",
        placeholders(skipped.len(), 2)
    );
    let mut query = sqlx::query(AssertSqlSafe(find));
    for message in skipped {
        query = query.bind(&message.target).bind(&message.content_hash);
    }
    for row in query.fetch_all(&mut *transaction).await? {
        open_ids.insert(
            (row.try_get("target")?, row.try_get("content_hash")?),
            row.try_get("id")?,
        );
    }
    Ok(open_ids)
}

/// `($1, $2), ($3, $4)`: `rows` tuples of `width` numbered placeholders, the form both engines
/// read (sqlx's query builder writes `?`, which PostgreSQL does not).
pub(super) fn placeholders(rows: usize, width: usize) -> String {
    let tuples: Vec<String> = (0..rows)
        .map(|row| {
            let numbers: Vec<String> = (1..=width)
                .map(|column| format!("${}", row * width + column))
                .collect();
            format!("({})", numbers.join(", "))
        })
        .collect();
    tuples.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, UpdateFilter};

    #[test]
    fn placeholders_are_numbered_across_tuples() {
        assert_eq!(super::placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(super::placeholders(1, 1), "($1)");
    }

    fn message(id: &str, key: &str) -> NewMessage {
        NewMessage {
            id: id.into(),
            target: "homelab".into(),
            content: format!("text of {key}"),
            content_hash: key.into(),
            urgent: false,
            sender: "client".into(),
            created_at: 7,
        }
    }

    /// (message id, text, source) of every update, in order.
    async fn updates(store: &Store) -> Vec<(String, String, String)> {
        let filter = UpdateFilter {
            limit: 100,
            ..UpdateFilter::default()
        };
        let updates = store.list_updates(&filter).await.expect("updates");
        updates
            .into_iter()
            .map(|update| {
                (
                    update.message_id.unwrap_or_default(),
                    update.content,
                    update.source,
                )
            })
            .collect()
    }

    /// A batch that mixes new messages, a copy of an open message, a copy of an earlier entry
    /// of the same batch, and a copy of a finished message: each gets its own answer, and only
    /// the queued ones get a first update.
    #[tokio::test]
    async fn a_mixed_batch_queues_the_new_and_names_the_open_duplicates() {
        let dir = tempfile::TempDir::new().expect("dir");
        let store = Store::open(&dir.path().join("db.sqlite3"))
            .await
            .expect("opens");
        let insert = async |entries: &[(NewMessage, &str)]| {
            let entries: Vec<(&NewMessage, &str)> = entries
                .iter()
                .map(|(message, text)| (message, *text))
                .collect();
            insert_batch(Engine::Sqlite, &store.writer, &entries).await
        };
        let first = insert(&[
            (message("a", "key-a"), "queued"),
            (message("done", "key-done"), "queued"),
        ])
        .await;
        assert_eq!(
            first.expect("first batch"),
            [InsertOutcome::Queued, InsertOutcome::Queued]
        );
        sqlx::query("UPDATE messages SET status = 'complete' WHERE id = 'done'")
            .execute(&store.writer)
            .await
            .expect("finish one");

        let outcomes = insert(&[
            (message("b", "key-b"), "queued (urgent)"),
            (message("a2", "key-a"), "queued"),
            (message("b2", "key-b"), "queued"),
            (message("done2", "key-done"), "queued"),
        ])
        .await
        .expect("mixed batch");
        assert_eq!(
            outcomes,
            [
                InsertOutcome::Queued,
                InsertOutcome::Duplicate("a".into()),
                InsertOutcome::Duplicate("b".into()),
                InsertOutcome::Queued,
            ]
        );
        let updates = updates(&store).await;
        let ids: Vec<&str> = updates.iter().map(|(id, _, _)| id.as_str()).collect();
        assert_eq!(ids, ["a", "done", "b", "done2"]);
        assert!(updates.contains(&("b".into(), "queued (urgent)".into(), UPDATE_SOURCE.into())));
    }
}
