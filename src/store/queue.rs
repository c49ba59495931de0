//! Messages and their status changes. A status change happens inside one write transaction
//! that reads the current status, checks the transition with `MessageStatus::can_move_to`,
//! stamps the time, and writes the update that reports it (`updates.rs`).

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use crate::clock::UnixSeconds;
use crate::queue::message::MessageStatus;
use crate::store::updates::insert_update;
use crate::store::{Store, StoreError, UpdateRecord, engine_of, names_nothing};

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    /// Message id.
    pub id: String,
    /// The target it is for.
    pub target: String,
    /// Its text.
    pub content: String,
    /// Urgent messages are claimed first.
    pub urgent: bool,
    /// Current status.
    pub status: MessageStatus,
    /// The client that sent it.
    pub sender: String,
    /// Status timestamps.
    pub created_at: UnixSeconds,
    /// When an agent acknowledged it.
    pub acknowledged_at: Option<UnixSeconds>,
    /// When work started.
    pub started_at: Option<UnixSeconds>,
    /// When it reached a terminal status.
    pub finished_at: Option<UnixSeconds>,
    /// The agent that claimed it.
    pub claimed_by: Option<String>,
}

/// A message about to be queued.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Message id.
    pub id: String,
    /// Target.
    pub target: String,
    /// Text.
    pub content: String,
    /// Its dedup key.
    pub content_hash: String,
    /// Urgency.
    pub urgent: bool,
    /// Sending client.
    pub sender: String,
    /// Now.
    pub created_at: UnixSeconds,
}

/// What inserting a message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Queued, with its first update.
    Queued,
    /// An identical open message already exists: its id.
    Duplicate(String),
}

/// What a requested status change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransitionOutcome {
    /// Applied (or the same status again, with the update recorded); the message after it.
    Applied(Box<(MessageRecord, UpdateRecord)>),
    /// No such message.
    NotFound,
    /// Refused: the message's current status.
    Refused(MessageStatus),
    /// Refused: another agent claimed the message; its name.
    ClaimedByAnother(String),
}

/// Counts for `queue_status`, per target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusCounts {
    /// Target name.
    pub target: String,
    /// Pending messages.
    pub pending: i64,
    /// Acknowledged messages.
    pub acknowledged: i64,
    /// Messages in progress.
    pub in_progress: i64,
}

impl Store {
    /// Queues a message and its first update, unless an identical open one exists (then its
    /// id). Concurrent sends are committed together (`batch.rs`).
    pub async fn insert_message(
        &self,
        message: &NewMessage,
        update_text: &str,
    ) -> Result<InsertOutcome, StoreError> {
        self.new_messages.insert(message, update_text).await
    }

    /// Finds a message.
    pub async fn find_message(&self, id: &str) -> Result<Option<MessageRecord>, StoreError> {
        if names_nothing(id) {
            return Ok(None);
        }
        let row = sqlx::query("SELECT * FROM messages WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| message_from_row(&row)).transpose()
    }

    /// Moves a message to `next` (when allowed) and records an update saying so. With
    /// `next == None` only the update is recorded, unless the message is finished. With
    /// `claimed_by`, the report is an agent's: refused when another agent claimed the message,
    /// and a status change claims it for this one.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_update(
        &self,
        message_id: &str,
        next: Option<MessageStatus>,
        content: &str,
        source: &str,
        claimed_by: Option<&str>,
        now: UnixSeconds,
    ) -> Result<TransitionOutcome, StoreError> {
        let mut transaction = self.begin_write().await?;
        let outcome = apply_update(
            &mut transaction,
            message_id,
            next,
            content,
            source,
            claimed_by,
            now,
        )
        .await?;
        // Anything refused wrote nothing; dropping the transaction rolls it back.
        if matches!(outcome, TransitionOutcome::Applied(_)) {
            transaction.commit().await?;
        }
        Ok(outcome)
    }

    /// Atomically claims the oldest pending message of `targets` (urgent ones first) for an
    /// agent, moving it to acknowledged and recording the update.
    pub async fn claim_next_message(
        &self,
        targets: &[String],
        agent: &str,
        now: UnixSeconds,
    ) -> Result<Option<MessageRecord>, StoreError> {
        if targets.is_empty() {
            return Ok(None);
        }
        let mut transaction = self.begin_write().await?;
        let numbers: Vec<String> = (1..=targets.len()).map(|n| format!("${n}")).collect();
        // Agents long-polling other replicas claim at the same moment: each takes the first
        // row no one else has locked, so two never get the same task.
        let oldest = format!(
            "SELECT id FROM messages WHERE status = 'pending' AND target IN ({})
             ORDER BY urgent DESC, created_at, rowid LIMIT 1{}",
            numbers.join(", "),
            self.engine.skip_locked()
        );
        let mut query = sqlx::query(AssertSqlSafe(oldest));
        for target in targets {
            query = query.bind(target);
        }
        let Some(row) = query.fetch_optional(&mut *transaction).await? else {
            return Ok(None);
        };
        let id: String = row.try_get("id")?;
        sqlx::query("UPDATE messages SET status = 'acknowledged', acknowledged_at = $1, claimed_by = $2 WHERE id = $3")
            .bind(now)
            .bind(agent)
            .bind(&id)
            .execute(&mut *transaction)
            .await?;
        let row = sqlx::query("SELECT * FROM messages WHERE id = $1")
            .bind(&id)
            .fetch_one(&mut *transaction)
            .await?;
        let message = message_from_row(&row)?;
        let text = format!("claimed by agent {agent}");
        insert_update(
            &mut transaction,
            Some(&id),
            &message.target,
            &text,
            Some(MessageStatus::Acknowledged),
            &format!("agent:{agent}"),
            now,
        )
        .await?;
        transaction.commit().await?;
        Ok(Some(message))
    }

    /// Open-message counts per target.
    pub async fn open_counts(&self) -> Result<Vec<StatusCounts>, StoreError> {
        let rows = sqlx::query(
            "SELECT target,
                    COUNT(*) FILTER (WHERE status = 'pending') AS pending,
                    COUNT(*) FILTER (WHERE status = 'acknowledged') AS acknowledged,
                    COUNT(*) FILTER (WHERE status = 'in_progress') AS in_progress
             FROM messages WHERE status IN ('pending', 'acknowledged', 'in_progress')
             GROUP BY target ORDER BY target",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StatusCounts {
                    target: row.try_get("target")?,
                    pending: row.try_get("pending")?,
                    acknowledged: row.try_get("acknowledged")?,
                    in_progress: row.try_get("in_progress")?,
                })
            })
            .collect()
    }

    /// The longest-running message in progress, optionally for one target (one indexed row,
    /// however deep the queue).
    pub async fn current_in_progress(
        &self,
        target: Option<&str>,
    ) -> Result<Option<MessageRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT * FROM messages WHERE status = 'in_progress' AND ($1 IS NULL OR target = $2)
             ORDER BY started_at, rowid LIMIT 1",
        )
        .bind(target)
        .bind(target)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| message_from_row(&row)).transpose()
    }

    /// Open messages, oldest first, optionally for one target.
    pub async fn open_messages(
        &self,
        target: Option<&str>,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM messages WHERE status IN ('pending', 'acknowledged', 'in_progress')
               AND ($1 IS NULL OR target = $2)
             ORDER BY created_at, rowid",
        )
        .bind(target)
        .bind(target)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(message_from_row).collect()
    }
}

/// A status change and its update (see `Store::record_update`), inside the caller's write
/// transaction; nothing is committed, and a refusal writes nothing.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn apply_update(
    connection: &mut sqlx::AnyConnection,
    message_id: &str,
    next: Option<MessageStatus>,
    content: &str,
    source: &str,
    claimed_by: Option<&str>,
    now: UnixSeconds,
) -> Result<TransitionOutcome, StoreError> {
    let current = format!(
        "SELECT * FROM messages WHERE id = $1{}",
        engine_of(connection).lock_row()
    );
    let Some(row) = sqlx::query(AssertSqlSafe(current))
        .bind(message_id)
        .fetch_optional(&mut *connection)
        .await?
    else {
        return Ok(TransitionOutcome::NotFound);
    };
    let current = message_from_row(&row)?;
    // Checked here, in the write transaction, not by the caller beforehand: two agents
    // reporting at once (or one claiming while another reports) would both pass an
    // earlier look and the later write would take the task from the first.
    if let (Some(agent), Some(owner)) = (claimed_by, current.claimed_by.as_deref())
        && agent != owner
    {
        return Ok(TransitionOutcome::ClaimedByAnother(owner.to_owned()));
    }
    let changes_status = next.is_some_and(|next| next != current.status);
    if let Some(next) = next.filter(|_| changes_status)
        && !current.status.can_move_to(next)
    {
        return Ok(TransitionOutcome::Refused(current.status));
    }
    if !changes_status && current.status.is_terminal() {
        return Ok(TransitionOutcome::Refused(current.status));
    }
    if let Some(next) = next.filter(|_| changes_status) {
        // Each status stamps its own time; skipping ahead also stamps the skipped
        // `acknowledged_at`, so every time before the current status is set.
        sqlx::query(
            "UPDATE messages SET
               status = $1,
               acknowledged_at = CASE WHEN $1 IN ('acknowledged', 'in_progress', 'complete', 'error')
                                      THEN COALESCE(acknowledged_at, $2) ELSE acknowledged_at END,
               started_at = CASE WHEN $1 = 'in_progress' THEN $2 ELSE started_at END,
               finished_at = CASE WHEN $1 IN ('complete', 'error', 'cancelled') THEN $2 ELSE finished_at END,
               claimed_by = COALESCE($3, claimed_by)
             WHERE id = $4",
        )
        .bind(next.as_str())
        .bind(now)
        .bind(claimed_by)
        .bind(message_id)
        .execute(&mut *connection)
        .await?;
    }
    let recorded_status = next.filter(|_| changes_status);
    let update = insert_update(
        &mut *connection,
        Some(message_id),
        &current.target,
        content,
        recorded_status,
        source,
        now,
    )
    .await?;
    let row = sqlx::query("SELECT * FROM messages WHERE id = $1")
        .bind(message_id)
        .fetch_one(&mut *connection)
        .await?;
    let message = message_from_row(&row)?;
    Ok(TransitionOutcome::Applied(Box::new((message, update))))
}

pub(crate) fn parse_status(text: &str) -> Result<MessageStatus, StoreError> {
    text.parse().map_err(StoreError::Corrupt)
}

pub(crate) fn message_from_row(row: &AnyRow) -> Result<MessageRecord, StoreError> {
    Ok(MessageRecord {
        id: row.try_get("id")?,
        target: row.try_get("target")?,
        content: row.try_get("content")?,
        urgent: row.try_get::<i64, _>("urgent")? != 0,
        status: parse_status(&row.try_get::<String, _>("status")?)?,
        sender: row.try_get("sender")?,
        created_at: row.try_get("created_at")?,
        acknowledged_at: row.try_get("acknowledged_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        claimed_by: row.try_get("claimed_by")?,
    })
}
