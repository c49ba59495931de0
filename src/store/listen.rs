//! Changes committed by other processes, as PostgreSQL's LISTEN/NOTIFY reports them: the
//! schema's triggers notify at commit (migrations/postgres), and each replica wakes what waits
//! in memory (long polls, cached queue counts, cached tokens, signing keys) as it does for its
//! own writes. On SQLite one process writes, and it wakes its own waiters, so nothing listens.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::store::{Store, StoreError};

/// What another process (or this one) committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A message was queued or changed.
    Messages,
    /// An update was recorded.
    Updates,
    /// The revocation log grew.
    Revocations,
    /// A signing key was added or retired.
    Keys,
    /// Notifications may have been lost (the listening connection dropped): anything may have
    /// changed.
    Anything,
}

/// The channels the schema's triggers notify on.
const CHANNELS: [&str; 3] = ["nexus_queue", "nexus_revocations", "nexus_keys"];

/// How long to wait before listening again after the database went away.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

/// Where changes are announced; subscribe once per follower.
#[derive(Debug, Clone)]
pub struct ChangeFeed {
    sender: broadcast::Sender<Change>,
}

impl ChangeFeed {
    /// A new subscription: every change announced from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.sender.subscribe()
    }
}

impl Store {
    /// On PostgreSQL, listens for changes until `shutdown` and returns the feed they are
    /// announced on; `None` on SQLite. Revocations are also applied here: they move the
    /// counter the token cache checks on every request, so a revocation on any replica is in
    /// force on the next request after its notification arrives.
    pub async fn watch_changes(
        &self,
        shutdown: CancellationToken,
    ) -> Result<Option<ChangeFeed>, StoreError> {
        let Some(url) = self.postgres_url.clone() else {
            return Ok(None);
        };
        let mut listener =
            PgListener::connect(url.expose())
                .await
                .map_err(|source| StoreError::Connect {
                    url: super::location::redacted(url.expose()),
                    source,
                })?;
        listener.listen_all(CHANNELS).await?;
        let (sender, _) = broadcast::channel(256);
        let feed = ChangeFeed {
            sender: sender.clone(),
        };
        let store = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = store.relay(listener, sender) => {}
            }
        });
        Ok(Some(feed))
    }

    async fn relay(&self, mut listener: PgListener, sender: broadcast::Sender<Change>) {
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    let change = match (notification.channel(), notification.payload()) {
                        ("nexus_queue", "messages") => Change::Messages,
                        ("nexus_queue", _) => Change::Updates,
                        ("nexus_revocations", _) => Change::Revocations,
                        ("nexus_keys", _) => Change::Keys,
                        _ => Change::Anything,
                    };
                    self.announce(&sender, change);
                }
                // The connection dropped: what was notified meanwhile is lost. Listening
                // resumes on the next call; until then, assume everything changed.
                Ok(None) => self.announce(&sender, Change::Anything),
                Err(error) => {
                    tracing::warn!(error = %error, "lost the database's change notifications; listening again shortly");
                    self.announce(&sender, Change::Anything);
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                }
            }
        }
    }

    fn announce(&self, sender: &broadcast::Sender<Change>, change: Change) {
        if matches!(change, Change::Revocations | Change::Anything) {
            self.note_revocation();
        }
        // No follower yet is not an error: nobody waits.
        let _ = sender.send(change);
    }
}
