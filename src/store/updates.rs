//! Updates (agent replies and status changes, in sequence order) and the read cursors clients
//! pull them by.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::clock::UnixSeconds;
use crate::queue::message::MessageStatus;
use crate::store::queue::parse_status;
use crate::store::{Store, StoreError, names_nothing};

/// A stored update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateRecord {
    /// Monotonic sequence number: the cursor.
    pub seq: i64,
    /// The message it is about, if any.
    pub message_id: Option<String>,
    /// The target it came from.
    pub target: String,
    /// What was said or what happened.
    pub content: String,
    /// The status it moved the message to, if it did.
    pub status: Option<MessageStatus>,
    /// Who wrote it (`gateway`, `agent:<name>`, ...).
    pub source: String,
    /// When.
    pub created_at: UnixSeconds,
}

/// Which updates to read.
#[derive(Debug, Clone, Default)]
pub struct UpdateFilter {
    /// Only after this sequence number.
    pub after_seq: Option<i64>,
    /// Only created after this time.
    pub after_time: Option<UnixSeconds>,
    /// Only about this message.
    pub message_id: Option<String>,
    /// Only from this target.
    pub target: Option<String>,
    /// At most this many.
    pub limit: i64,
}

impl Store {
    /// Reads updates in sequence order.
    pub async fn list_updates(
        &self,
        filter: &UpdateFilter,
    ) -> Result<Vec<UpdateRecord>, StoreError> {
        if [&filter.message_id, &filter.target]
            .into_iter()
            .flatten()
            .any(|key| names_nothing(key))
        {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT * FROM updates
             WHERE seq > COALESCE($1, 0)
               AND created_at > COALESCE($2, -9223372036854775807)
               AND ($3 IS NULL OR message_id = $4)
               AND ($5 IS NULL OR target = $6)
             ORDER BY seq LIMIT $7",
        )
        .bind(filter.after_seq)
        .bind(filter.after_time)
        .bind(&filter.message_id)
        .bind(&filter.message_id)
        .bind(&filter.target)
        .bind(&filter.target)
        .bind(filter.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(update_from_row).collect()
    }

    /// The highest update sequence number (0 when there are none).
    pub async fn last_update_seq(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) AS seq FROM updates")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("seq")?)
    }

    /// How many updates exist.
    pub async fn count_updates(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS total FROM updates")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("total")?)
    }

    /// A client's read cursor.
    pub async fn client_cursor(&self, client_id: &str) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT seq FROM client_cursors WHERE client_id = $1")
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| row.try_get("seq")).transpose()?)
    }

    /// Moves a client's read cursor forward (never back).
    pub async fn advance_client_cursor(&self, client_id: &str, seq: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO client_cursors (client_id, seq) VALUES ($1, $2)
             ON CONFLICT (client_id) DO UPDATE SET seq = excluded.seq
             WHERE excluded.seq > client_cursors.seq",
        )
        .bind(client_id)
        .bind(seq)
        .execute(&self.writer)
        .await?;
        Ok(())
    }
}

pub(crate) async fn insert_update(
    connection: &mut sqlx::AnyConnection,
    message_id: Option<&str>,
    target: &str,
    content: &str,
    status: Option<MessageStatus>,
    source: &str,
    now: UnixSeconds,
) -> Result<UpdateRecord, StoreError> {
    let row = sqlx::query(
        "INSERT INTO updates (message_id, target, content, status, source, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
    )
    .bind(message_id)
    .bind(target)
    .bind(content)
    .bind(status.map(MessageStatus::as_str))
    .bind(source)
    .bind(now)
    .fetch_one(connection)
    .await?;
    update_from_row(&row)
}

fn update_from_row(row: &AnyRow) -> Result<UpdateRecord, StoreError> {
    Ok(UpdateRecord {
        seq: row.try_get("seq")?,
        message_id: row.try_get("message_id")?,
        target: row.try_get("target")?,
        content: row.try_get("content")?,
        status: row
            .try_get::<Option<String>, _>("status")?
            .map(|text| parse_status(&text))
            .transpose()?,
        source: row.try_get("source")?,
        created_at: row.try_get("created_at")?,
    })
}
