//! The only module with SQL. `Store` is a cheap, cloneable handle over one of two engines:
//! an embedded SQLite file (WAL mode; the default) or a PostgreSQL database shared by several
//! replicas. Both run the same query text (sqlx's `Any` driver, `$1` placeholders, SQL both
//! dialects speak); the few places the engines must differ (row locks, vacuuming) ask
//! `Engine`. Migrations for the engine are applied at open; methods are named in domain words,
//! and every secret arrives here already hashed.

mod agents;
mod approvals;
mod batch;
mod checkpoint;
mod clients;
mod grants;
mod keys;
mod leases;
mod listen;
mod location;
mod migrate;
mod owner;
mod queue;
mod revocations;
mod tokens;
mod transport;
mod updates;
mod upstreams;

use std::path::Path;
use std::time::Duration;

use crate::clock::UnixSeconds;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyConnection, AnyPool, AssertSqlSafe, ConnectOptions, Executor, Transaction};

/// The page cache of each reading connection, in KiB (SQLite's default is 2,000): 32 pages,
/// enough for the upper levels of the B-trees a lookup by key walks.
const READER_CACHE_KIB: u32 = 128;
/// The writer's page cache, in KiB: each new message still lands on a random page of the dedup
/// index (its key is a content hash), so it fills whatever it is given.
const WRITER_CACHE_KIB: u32 = 512;

pub use agents::AgentRecord;
pub use clients::{ClientRecord, NewClient};
pub use grants::{AuthorizationRequestRecord, BearerGrantRecord, GrantKind, GrantRecord, NewGrant};
pub use keys::SigningKeyRecord;
pub use listen::{Change, ChangeFeed};
pub use location::{Engine, StoreLocation};
pub use migrate::{CopiedTable, CopyError};
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
    /// The thread that writes new messages (on SQLite) could not start.
    #[error("cannot start the store's writer thread")]
    WriterThread(#[source] std::io::Error),
    /// The writer of new messages is gone (on SQLite, its thread died): no send can succeed.
    #[error("the message writer has stopped")]
    WriterStopped,
    /// A checkpoint could not finish: other connections kept SQLite's log in use.
    #[error("the database's write-ahead log stayed in use")]
    LogBusy,
    /// The PostgreSQL database could not be reached at open.
    #[error("cannot connect to the database at {url}")]
    Connect {
        /// The database URL, without its password.
        url: String,
        /// What went wrong.
        #[source]
        source: sqlx::Error,
    },
}

/// A handle to the gateway's store.
#[derive(Debug, Clone)]
pub struct Store {
    engine: Engine,
    // Readers. On SQLite, WAL lets them run beside the writer.
    pool: AnyPool,
    // Where writes go. On SQLite, the one writing connection: SQLite has one writer at a time,
    // and a second connection that finds the lock taken sleeps in its busy handler (1 ms, then
    // 2, 5, 10, ...): queueing writers here, in order, instead took durable sends from under
    // 1,000 to thousands a second. On PostgreSQL, the same pool as the readers: the database
    // orders concurrent writers itself, with row locks where a read decides a write.
    writer: AnyPool,
    // New messages, committed in groups on the writer.
    new_messages: batch::MessageBatcher,
    // Revocations committed through this handle (and its clones), and on PostgreSQL those
    // other processes announced: see `local_revocations`.
    local_revocations: std::sync::Arc<std::sync::atomic::AtomicU64>,
    // On PostgreSQL, the database URL, for the connection that listens for changes.
    postgres_url: Option<crate::secrets::Secret>,
}

impl Store {
    /// Opens the store `location` names, applying pending migrations.
    pub async fn open_at(location: &StoreLocation) -> Result<Self, StoreError> {
        match location {
            StoreLocation::Sqlite(path) => Self::open(path).await,
            StoreLocation::Postgres(url) => Self::connect_postgres(url).await,
        }
    }

    /// Opens (creating when missing) a SQLite database file and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            create_private_dir(parent)?;
        }
        let options = AnyConnectOptions::from_url(&sqlite_url(path)?)?;
        let writer = sqlite_pool(1, WRITER_CACHE_KIB)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        // Each connection keeps its own page cache (2 MiB by default), filled as the file
        // grows: nine connections held 17 MiB more after ten minutes of the soak than after
        // one. Readers mostly look up single rows by key and the file's pages stay in the OS
        // page cache, so small caches cost little and keep resident memory flat.
        let pool = sqlite_pool(8, READER_CACHE_KIB)
            .connect_with(options)
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
            // VACUUM rebuilds the whole file through a temporary copy: on disk, not in the
            // memory `temp_store` otherwise picks.
            sqlx::query("PRAGMA temp_store = FILE")
                .execute(&mut *connection)
                .await?;
            sqlx::query("VACUUM").execute(&mut *connection).await?;
            sqlx::query("PRAGMA temp_store = MEMORY")
                .execute(&mut *connection)
                .await?;
        }
        drop(connection);
        Self::with_pools(Engine::Sqlite, pool, writer).await
    }

    /// Connects to a PostgreSQL database and applies pending migrations. Replicas starting
    /// together are safe: sqlx's migrator holds an advisory lock while it applies them.
    async fn connect_postgres(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let fail = |source| StoreError::Connect {
            url: location::redacted(url),
            source,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(POSTGRES_CONNECTIONS)
            // A database that went away must fail a request (and `/readyz`), not hang it.
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(fail)?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let mut store = Self::with_pools(Engine::Postgres, pool.clone(), pool).await?;
        store.postgres_url = Some(crate::secrets::Secret::new(url));
        Ok(store)
    }

    async fn with_pools(
        engine: Engine,
        pool: AnyPool,
        writer: AnyPool,
    ) -> Result<Self, StoreError> {
        let new_messages = batch::MessageBatcher::spawn(engine, writer.clone(), pool.clone())
            .await
            .map_err(StoreError::WriterThread)?;
        Ok(Self {
            engine,
            pool,
            new_messages,
            writer,
            local_revocations: std::sync::Arc::default(),
            postgres_url: None,
        })
    }

    /// The engine behind this store.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The bytes the database holds: on SQLite its pages as of the last commit, whether or not
    /// the write-ahead log has been folded into the file yet (SQLite counts the pages the log
    /// adds), so this needs no checkpoint, which a running gateway's own can keep busy.
    pub async fn size_bytes(&self) -> Result<u64, StoreError> {
        if self.engine == Engine::Postgres {
            let bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
                .fetch_one(&self.pool)
                .await?;
            return Ok(u64::try_from(bytes).unwrap_or(0));
        }
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&self.pool)
            .await?;
        let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(pages * page_size).unwrap_or(0))
    }

    /// On SQLite, folds the whole write-ahead log into the database file and empties it. At a
    /// clean stop this is what lets the next start replay nothing (a log left behind took a
    /// restart with 100,000 messages from 15 to 100 ms to be ready). On PostgreSQL, nothing.
    /// SQLite answers "busy" instead of waiting while another checkpoint (`checkpoint.rs`)
    /// holds its lock, so this asks again, for about a second.
    pub async fn fold_log(&self) -> Result<(), StoreError> {
        if self.engine == Engine::Postgres {
            return Ok(());
        }
        for _ in 0..FOLD_ATTEMPTS {
            let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&self.writer)
                .await?;
            if busy == 0 {
                return Ok(());
            }
            tokio::time::sleep(FOLD_RETRY).await;
        }
        Err(StoreError::LogBusy)
    }

    /// Drops this handle's writer of new messages, as a writer thread that died leaves it.
    #[cfg(test)]
    pub(crate) fn lose_message_writer(&mut self) {
        self.new_messages = batch::MessageBatcher::without_writer();
    }

    /// Resolves if the writer of new messages dies (on SQLite, a panic on its thread). Nothing
    /// brings it back, and every send fails from then on: `App::serve` stops the process, so
    /// that the service manager starts a new one.
    pub async fn writer_stopped(&self) {
        self.new_messages.stopped().await;
    }

    /// Whether the database answers within `PING_TIMEOUT` and new messages can still be
    /// written; for readiness checks, which must answer "not ready" while a database that went
    /// away is being waited for (not hang), and once the message writer has died.
    pub async fn ping(&self) -> Result<(), StoreError> {
        if !self.new_messages.is_running() {
            return Err(StoreError::WriterStopped);
        }
        match tokio::time::timeout(PING_TIMEOUT, sqlx::query("SELECT 1").execute(&self.pool)).await
        {
            Ok(answered) => {
                answered?;
                Ok(())
            }
            Err(_) => Err(StoreError::Database(sqlx::Error::PoolTimedOut)),
        }
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
            "DELETE FROM authorization_requests WHERE expires_at <= $1",
            "DELETE FROM authorization_codes WHERE expires_at <= $1 - 86400",
            "DELETE FROM refresh_tokens WHERE expires_at <= $1",
            "DELETE FROM revoked_tokens WHERE expires_at <= $1",
            "DELETE FROM owner_sessions WHERE expires_at <= $1",
            "DELETE FROM owner_devices WHERE expires_at <= $1",
            // Telegram keeps updates for 24 hours; two days of memory covers any redelivery.
            "DELETE FROM transport_seen WHERE seen_at <= $1 - 172800",
            // Servers read the log every second; a day is room for any pause. A server that
            // still finds a hole drops its whole token cache.
            "DELETE FROM revocation_log WHERE logged_at <= $1 - 86400",
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
        // file that only grows. (PostgreSQL's autovacuum does this by itself.)
        if self.engine == Engine::Sqlite {
            sqlx::query("PRAGMA incremental_vacuum")
                .execute(&self.writer)
                .await?;
        }
        Ok(removed)
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once, so two writers
    /// never deadlock upgrading a read lock; on PostgreSQL it is an ordinary (read committed)
    /// transaction, and what reads a row to decide a write locks that row (`Engine::lock_row`).
    async fn begin_write(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(match self.engine {
            Engine::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Engine::Postgres => self.writer.begin().await?,
        })
    }
}

/// How long a readiness check waits for the database.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Connections each replica opens to PostgreSQL at most. Ten replicas stay within the server's
/// default `max_connections` of 100 with room for the CLI and maintenance.
const POSTGRES_CONNECTIONS: u32 = 8;

/// The `sqlite://` URL of the file at `path`, creating it when missing. Every byte but the
/// unreserved ones is percent-encoded: sqlx decodes the path, so a `%` (or `?`, `#`) in a
/// directory name must arrive encoded or it names another file.
fn sqlite_url(path: &Path) -> Result<url::Url, StoreError> {
    let encoded: String = path
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .map(|&byte| {
            if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect();
    url::Url::parse(&format!("sqlite://{encoded}?mode=rwc"))
        .map_err(|error| StoreError::Corrupt(format!("the database path as a URL: {error}")))
}

/// A pool of SQLite connections set up as the store needs them, each with a page cache of
/// `cache_kib`. The `Any` driver opens a connection from its URL alone, so the settings a URL
/// cannot carry are pragmas run on each new connection.
fn sqlite_pool(connections: u32, cache_kib: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(connections)
        // No ping before each use: a SQLite connection is a thread of this process, not a peer
        // that can hang up, and the ping was a round trip to that thread on every query (one of
        // six per batch of sends, one of three per lookup). sqlx still pings a connection it
        // takes back, and drops it if that fails, so the next use opens a new one.
        .test_before_acquire(false)
        .after_connect(move |connection, _| {
            Box::pin(async move {
                connection
                    .execute(AssertSqlSafe(format!(
                        // auto_vacuum first: it only takes on a file without tables.
                        // temp_store: a multi-row insert in a transaction keeps a statement
                        // journal, by default in a temporary file (a write per page).
                        // wal_autocheckpoint: no connection checkpoints inside its commits;
                        // `checkpoint.rs` does it, beside the writer.
                        "PRAGMA auto_vacuum = INCREMENTAL;
                         PRAGMA journal_mode = WAL;
                         PRAGMA synchronous = NORMAL;
                         PRAGMA temp_store = MEMORY;
                         PRAGMA foreign_keys = ON;
                         PRAGMA busy_timeout = {BUSY_TIMEOUT_MS};
                         PRAGMA cache_size = -{cache_kib};
                         PRAGMA wal_autocheckpoint = 0;"
                    )))
                    .await?;
                Ok(())
            })
        })
}

/// How often, and how far apart, `fold_log` asks for a checkpoint SQLite answered "busy".
const FOLD_ATTEMPTS: u32 = 50;
const FOLD_RETRY: Duration = Duration::from_millis(20);

/// How long a SQLite connection waits for another writer (the CLI writes while the server
/// runs) before failing.
const BUSY_TIMEOUT_MS: u32 = 10_000;

/// Whether `key` cannot name a stored row: PostgreSQL text holds no NUL character, and asking
/// it for one is an error, not an empty answer. Lookups by what a request carried check first.
fn names_nothing(key: &str) -> bool {
    key.contains('\0')
}

/// The engine a connection belongs to (helpers that run inside a caller's transaction ask it).
fn engine_of(connection: &AnyConnection) -> Engine {
    if connection.backend_name() == "PostgreSQL" {
        Engine::Postgres
    } else {
        Engine::Sqlite
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

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_data_dir_with_url_characters_in_its_name_holds_the_database_itself() {
        let dir = tempfile::TempDir::new().expect("dir");
        let odd = dir.path().join("50%41 off? #1 ü");
        let path = odd.join("nexus-gateway.sqlite3");
        let store = super::Store::open(&path).await.expect("opens");
        store.ping().await.expect("answers");
        assert!(path.exists(), "the file is where the path says");
    }

    /// A writer thread that died (a panic in SQLite's hands, say) leaves every send failing;
    /// readiness must say so, and `writer_stopped` must wake, so that the process stops.
    #[tokio::test]
    async fn a_store_whose_message_writer_stopped_is_not_ready_and_says_so() {
        let dir = tempfile::TempDir::new().expect("dir");
        let mut store = super::Store::open(&dir.path().join("db.sqlite3"))
            .await
            .expect("opens");
        store.ping().await.expect("ready while the writer runs");
        let wait = std::time::Duration::from_millis(50);
        assert!(
            tokio::time::timeout(wait, store.writer_stopped())
                .await
                .is_err(),
            "a running writer is not reported stopped"
        );
        store.lose_message_writer();
        tokio::time::timeout(wait, store.writer_stopped())
            .await
            .expect("a dead writer is reported");
        let refused = store.ping().await.expect_err("not ready without a writer");
        assert!(
            matches!(refused, super::StoreError::WriterStopped),
            "{refused}"
        );
    }
}
