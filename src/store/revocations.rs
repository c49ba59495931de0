//! The revocation log (written by triggers, see migration 0008): what the in-memory cache of
//! verified access tokens must forget, read in order by sequence number.

use std::sync::atomic::Ordering;

use sqlx::Row;

use super::{Store, StoreError};

/// One logged revocation: a grant (revoked or deleted) or a single access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// Every token of this grant.
    Grant(String),
    /// The access token with this `jti`.
    Token(String),
}

/// The log's entries after a point, and whether entries between were already pruned.
#[derive(Debug, Default)]
pub struct RevocationsSince {
    /// The entries, oldest first.
    pub entries: Vec<Revoked>,
    /// The sequence number to read after next time.
    pub last_seq: i64,
    /// True when the log no longer holds every entry after the point asked for.
    pub gap: bool,
    /// True when more entries follow (the read is bounded): read again from `last_seq`.
    pub more: bool,
}

/// Log entries read at once at most.
const MAX_READ: usize = 10_000;

impl Store {
    /// The newest sequence number in the log (0 when empty).
    pub async fn latest_revocation_seq(&self) -> Result<i64, StoreError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM revocation_log")
            .fetch_one(&self.pool)
            .await?;
        Ok(seq.unwrap_or(0))
    }

    /// The revocations logged after `after`.
    pub async fn revocations_since(&self, after: i64) -> Result<RevocationsSince, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, grant_id, jti FROM revocation_log WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(i64::try_from(MAX_READ).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        let mut since = RevocationsSince {
            last_seq: after,
            ..RevocationsSince::default()
        };
        let first_seq: Option<i64> = rows.first().map(|row| row.try_get("seq")).transpose()?;
        // A hole right after `after` means pruned rows (SQLite's AUTOINCREMENT never reuses a
        // number) or, on PostgreSQL, a revoking transaction that rolled back: either way the
        // cache is dropped once, which costs each live token one more full check.
        since.gap = first_seq.is_some_and(|first| first > after + 1) && after > 0;
        since.more = rows.len() == MAX_READ;
        for row in &rows {
            since.last_seq = row.try_get("seq")?;
            let grant: Option<String> = row.try_get("grant_id")?;
            let jti: Option<String> = row.try_get("jti")?;
            since.entries.extend(grant.map(Revoked::Grant));
            since.entries.extend(jti.map(Revoked::Token));
        }
        Ok(since)
    }

    /// How many revocations this process has committed; the token cache reads the log again
    /// when this moves, so a revocation here is in force on the very next request.
    pub fn local_revocations(&self) -> u64 {
        self.local_revocations.load(Ordering::Acquire)
    }

    /// Counts a committed revocation (called by the store's own revoking writes).
    pub(super) fn note_revocation(&self) {
        self.local_revocations.fetch_add(1, Ordering::AcqRel);
    }
}
