//! Pulling updates: by a cursor (`next_cursor` of an earlier pull), by an RFC 3339 time, or with
//! neither, what this client has not pulled yet (a cursor stored per client).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::clock::UnixSeconds;
use crate::queue::error::QueueError;
use crate::queue::{DEFAULT_PULL_LIMIT, MAX_PULL_LIMIT, Queue};
use crate::store::{UpdateFilter, UpdateRecord};

/// Which updates a client wants.
#[derive(Debug, Clone, Default)]
pub struct PullQuery {
    /// A cursor (`next_cursor` of an earlier pull) or an RFC 3339 time; absent means "what
    /// this client has not pulled yet".
    pub since: Option<String>,
    /// Only updates about this message.
    pub message_id: Option<String>,
    /// Only updates from this target.
    pub target: Option<String>,
    /// At most this many (default 50, at most 200).
    pub limit: Option<i64>,
}

/// The answer to a pull.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// Updates in sequence order.
    pub updates: Vec<UpdateRecord>,
    /// Pass this as `since` to continue after them.
    pub next_cursor: String,
}

impl Queue {
    /// Reads updates after a cursor or time, or, with no `since`, what this client has not
    /// pulled yet. Unfiltered pulls move the client's stored cursor forward.
    pub async fn pull_updates(
        &self,
        client_id: &str,
        query: PullQuery,
    ) -> Result<Pulled, QueueError> {
        let limit = query
            .limit
            .unwrap_or(DEFAULT_PULL_LIMIT)
            .clamp(1, MAX_PULL_LIMIT);
        let mut filter = UpdateFilter {
            message_id: query.message_id.clone(),
            target: query.target.clone(),
            limit,
            ..Default::default()
        };
        match query
            .since
            .as_deref()
            .map(str::trim)
            .filter(|since| !since.is_empty())
        {
            Some(since) => match parse_since(since)? {
                Since::Cursor(seq) => filter.after_seq = Some(seq),
                Since::Time(time) => filter.after_time = Some(time),
            },
            None => {
                filter.after_seq = Some(
                    self.inner
                        .store
                        .client_cursor(client_id)
                        .await?
                        .unwrap_or(0),
                )
            }
        }
        let updates = self.inner.store.list_updates(&filter).await?;
        let next_seq = match updates.last() {
            Some(last) => last.seq,
            // Nothing new: continue from where this pull started (or the newest update when
            // the pull was by time), so the cursor never moves backwards.
            None => match filter.after_seq {
                Some(seq) => seq,
                None => self.inner.store.last_update_seq().await?,
            },
        };
        if query.message_id.is_none() && query.target.is_none() {
            self.inner
                .store
                .advance_client_cursor(client_id, next_seq)
                .await?;
        }
        Ok(Pulled {
            updates,
            next_cursor: next_seq.to_string(),
        })
    }
}

enum Since {
    Cursor(i64),
    Time(UnixSeconds),
}

fn parse_since(since: &str) -> Result<Since, QueueError> {
    if since.bytes().all(|byte| byte.is_ascii_digit()) {
        return since
            .parse()
            .map(Since::Cursor)
            .map_err(|_| QueueError::BadCursor);
    }
    OffsetDateTime::parse(since, &Rfc3339)
        .map(|time| Since::Time(time.unix_timestamp()))
        .map_err(|_| QueueError::BadCursor)
}

/// Formats a stored time as RFC 3339 (UTC).
pub fn rfc3339(at: UnixSeconds) -> String {
    OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|time| time.format(&Rfc3339).ok())
        .unwrap_or_else(|| at.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_cursor_or_a_time() {
        assert!(matches!(parse_since("42"), Ok(Since::Cursor(42))));
        assert!(matches!(
            parse_since("2026-11-21T10:00:00Z"),
            Ok(Since::Time(1_795_255_200))
        ));
        assert!(matches!(
            parse_since("2026-11-21T11:00:00+01:00"),
            Ok(Since::Time(1_795_255_200))
        ));
        assert!(parse_since("yesterday").is_err());
        assert!(parse_since("99999999999999999999999").is_err());
        assert_eq!(rfc3339(1_795_255_200), "2026-11-21T10:00:00Z");
    }
}
