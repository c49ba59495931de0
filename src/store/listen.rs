//! Changes committed by other processes, as PostgreSQL's LISTEN/NOTIFY reports them: the
//! schema's triggers notify at commit (migrations/postgres), and each replica wakes what waits
//! in memory (long polls, cached queue counts, cached tokens, signing keys) as it does for its
//! own writes. On SQLite one process writes, and it wakes its own waiters, so nothing listens.

use std::time::Duration;

use sqlx::Executor;
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::secrets::Secret;
use crate::store::Store;

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

/// How long to wait before listening again after the connection was lost, at first.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);
/// The longest wait between attempts while the database stays away.
const MAX_RECONNECT_PAUSE: Duration = Duration::from_secs(30);
/// A listening connection quiet this long is asked whether it still answers.
const HEARTBEAT: Duration = Duration::from_secs(30);
/// How long that answer may take.
const HEARTBEAT_ANSWER: Duration = Duration::from_secs(5);

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
    /// announced on; `None` on SQLite. The listening connection is (re)made in the background:
    /// a database that is away at start, or goes away later, is waited for, and each time
    /// listening resumes the feed announces `Anything` (what was notified meanwhile is lost).
    /// Revocations are also applied here: they move the counter the token cache checks on
    /// every request, so a revocation on any replica is in force on the next request after its
    /// notification arrives.
    pub fn watch_changes(&self, shutdown: CancellationToken) -> Option<ChangeFeed> {
        let url = self.postgres_url.clone()?;
        let (sender, _) = broadcast::channel(256);
        let feed = ChangeFeed {
            sender: sender.clone(),
        };
        let store = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = store.relay(&url, sender) => {}
            }
        });
        Some(feed)
    }

    async fn relay(&self, url: &Secret, sender: broadcast::Sender<Change>) {
        let mut listener = listen(url).await;
        self.announce(&sender, Change::Anything);
        loop {
            // A connection that died without a word (a NAT or a load balancer dropping idle
            // connections) would leave `try_recv` waiting forever: after a quiet spell, make
            // sure the connection still answers.
            match tokio::time::timeout(HEARTBEAT, listener.try_recv()).await {
                Ok(Ok(Some(notification))) => {
                    let change = match (notification.channel(), notification.payload()) {
                        ("nexus_queue", "messages") => Change::Messages,
                        ("nexus_queue", _) => Change::Updates,
                        ("nexus_revocations", _) => Change::Revocations,
                        ("nexus_keys", _) => Change::Keys,
                        _ => Change::Anything,
                    };
                    self.announce(&sender, change);
                    continue;
                }
                Err(_quiet) => {
                    let answered =
                        tokio::time::timeout(HEARTBEAT_ANSWER, listener.execute("SELECT 1")).await;
                    if matches!(answered, Ok(Ok(_))) {
                        continue;
                    }
                    tracing::warn!(
                        "the connection that listens for other replicas' changes stopped answering; listening again"
                    );
                }
                Ok(Ok(None)) => {
                    tracing::warn!(
                        "lost the connection that listens for other replicas' changes; listening again"
                    );
                }
                Ok(Err(error)) => {
                    tracing::warn!(error = %error, "lost the connection that listens for other replicas' changes; listening again");
                }
            }
            tokio::time::sleep(RECONNECT_PAUSE).await;
            listener = listen(url).await;
            self.announce(&sender, Change::Anything);
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

/// A new listening connection, waiting (and retrying) until the database answers.
async fn listen(url: &Secret) -> PgListener {
    let mut pause = RECONNECT_PAUSE;
    loop {
        let listening = async {
            let mut listener = PgListener::connect(url.expose()).await?;
            listener.listen_all(CHANNELS).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match listening.await {
            Ok(listener) => return listener,
            Err(error) => {
                tracing::warn!(error = %error, database = %super::location::redacted(url.expose()), retry_in = ?pause, "cannot listen for other replicas' changes");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_RECONNECT_PAUSE);
            }
        }
    }
}
