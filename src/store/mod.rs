//! The only module with SQL. `Store` is a cheap, cloneable handle over a SQLite pool (WAL mode)
//! with its migrations applied at open; methods are named in domain words, and every secret
//! arrives here already hashed.

mod agents;
mod approvals;
mod batch;
mod clients;
mod grants;
mod keys;
mod owner;
mod queue;
mod revocations;
mod tokens;
mod transport;
mod updates;
mod upstreams;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use crate::clock::UnixSeconds;

use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, SqlitePool, Transaction};

/// The page cache of each reading connection, in KiB (SQLite's default is 2,000): 32 pages,
/// enough for the upper levels of the B-trees a lookup by key walks.
const READER_CACHE_KIB: u32 = 128;
/// The writer's page cache, in KiB: inserts under random (UUID) keys touch index pages all
/// over the file, so it fills whatever it is given.
const WRITER_CACHE_KIB: u32 = 512;

pub use agents::AgentRecord;
pub use clients::{ClientRecord, NewClient};
pub use grants::{AuthorizationRequestRecord, BearerGrantRecord, GrantKind, GrantRecord, NewGrant};
pub use keys::SigningKeyRecord;
pub use queue::{InsertOutcome, MessageRecord, NewMessage, StatusCounts, TransitionOutcome};
pub use revocations::{RevocationsSince, Revoked};
pub use tokens::{CodeRecord, RefreshRecord, Rotation};
pub use transport::{Receipt, Sighting};
pub use updates::{UpdateFilter, UpdateRecord};
pub use upstreams::PinnedToolRecord;

/// A failure of the store; callers treat all of them as internal errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed an operation.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// A migration failed at open.
    #[error("database migration failed")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A stored value could not be read back.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The data directory could not be prepared.
    #[error("cannot prepare the data directory {path}")]
    DataDir {
        /// The directory.
        path: String,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
}

/// A handle to the gateway's SQLite store.
#[derive(Debug, Clone)]
pub struct Store {
    // Readers: WAL lets them run beside the writer.
    pool: SqlitePool,
    // The one writing connection. SQLite has one writer at a time, and a second connection
    // that finds the lock taken sleeps in its busy handler (1 ms, then 2, 5, 10, ...): queueing
    // writers here, in order, instead took durable sends from under 1,000 to thousands a second.
    writer: SqlitePool,
    // New messages, committed in groups on the writer.
    new_messages: batch::MessageBatcher,
    // Revocations committed through this handle (and its clones): see `local_revocations`.
    local_revocations: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Store {
    /// Opens (creating when missing) the database file and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            create_private_dir(parent)?;
        }
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .auto_vacuum(SqliteAutoVacuum::Incremental)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            // The CLI writes while the server runs; wait for the other writer instead of failing.
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                options
                    .clone()
                    .pragma("cache_size", format!("-{WRITER_CACHE_KIB}")),
            )
            .await?;
        sqlx::migrate!("./migrations").run(&writer).await?;
        // Each connection keeps its own page cache (2 MiB by default), filled as the file
        // grows: nine connections held 17 MiB more after ten minutes of the soak than after
        // one. Readers mostly look up single rows by key and the file's pages stay in the OS
        // page cache, so small caches cost little and keep resident memory flat.
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options.pragma("cache_size", format!("-{READER_CACHE_KIB}")))
            .await?;
        // Incremental auto-vacuum lets the sweep give space back. A file made before it was
        // set switches over with one VACUUM.
        let mut connection = writer.acquire().await?;
        let auto_vacuum: i64 = sqlx::query_scalar("PRAGMA auto_vacuum")
            .fetch_one(&mut *connection)
            .await?;
        if auto_vacuum != 2 {
            sqlx::query("PRAGMA auto_vacuum = INCREMENTAL")
                .execute(&mut *connection)
                .await?;
            sqlx::query("VACUUM").execute(&mut *connection).await?;
        }
        drop(connection);
        Ok(Self {
            pool,
            new_messages: batch::MessageBatcher::spawn(writer.clone()),
            writer,
            local_revocations: std::sync::Arc::default(),
        })
    }

    /// The bytes the database holds (its pages, after folding the write-ahead log in).
    pub async fn size_bytes(&self) -> Result<u64, StoreError> {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.writer)
            .await?;
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&self.pool)
            .await?;
        let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(pages * page_size).unwrap_or(0))
    }

    /// Whether the database answers; for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Deletes what has expired: pending requests, codes, refresh tokens, revocation entries,
    /// owner sessions and devices, clients never approved since `client_cutoff` (or never
    /// started an authorization since `unstarted_client_cutoff`), then returns free pages.
    pub async fn sweep_expired(
        &self,
        now: UnixSeconds,
        client_cutoff: UnixSeconds,
        unstarted_client_cutoff: UnixSeconds,
    ) -> Result<u64, StoreError> {
        let mut removed = 0;
        for statement in [
            "DELETE FROM authorization_requests WHERE expires_at <= ?",
            "DELETE FROM authorization_codes WHERE expires_at <= ? - 86400",
            "DELETE FROM refresh_tokens WHERE expires_at <= ?",
            "DELETE FROM revoked_tokens WHERE expires_at <= ?",
            "DELETE FROM owner_sessions WHERE expires_at <= ?",
            "DELETE FROM owner_devices WHERE expires_at <= ?",
            // Telegram keeps updates for 24 hours; two days of memory covers any redelivery.
            "DELETE FROM transport_seen WHERE seen_at <= ? - 172800",
            // Servers read the log every second; a day is room for any pause. A server that
            // still finds a hole drops its whole token cache.
            "DELETE FROM revocation_log WHERE logged_at <= ? - 86400",
        ] {
            removed += sqlx::query(statement)
                .bind(now)
                .execute(&self.writer)
                .await?
                .rows_affected();
        }
        removed += self
            .delete_unapproved_clients(client_cutoff, unstarted_client_cutoff)
            .await?;
        // Give the freed pages back to the file system: open registration must not leave a
        // file that only grows.
        sqlx::query("PRAGMA incremental_vacuum")
            .execute(&self.writer)
            .await?;
        Ok(removed)
    }

    /// Starts a write transaction that takes the write lock at once, so two writers never
    /// deadlock upgrading a read lock.
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

fn create_private_dir(path: &Path) -> Result<(), StoreError> {
    let fail = |source| StoreError::DataDir {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(path).map_err(fail)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // The directory holds signing keys: readable by the service user only.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(fail)?;
    }
    Ok(())
}
