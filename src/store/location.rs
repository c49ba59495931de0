//! Which engine holds the store and where: a SQLite file in the data directory (the default)
//! or a PostgreSQL database named by URL, for several replicas sharing one store.

use std::path::PathBuf;

/// The two engines the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// An embedded SQLite file: one process writes.
    Sqlite,
    /// A PostgreSQL database: any number of replicas (and the CLI) write at once.
    Postgres,
}

impl Engine {
    /// The name operators see in logs and `/metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }

    /// What a statement that reads a row to decide how to change it appends, so a concurrent
    /// writer waits: PostgreSQL needs the row lock; SQLite's write transaction already holds
    /// the whole database (and does not know the clause).
    pub(super) fn lock_row(self) -> &'static str {
        match self {
            Engine::Sqlite => "",
            Engine::Postgres => " FOR UPDATE",
        }
    }

    /// What a statement that picks one row of many to take appends: on PostgreSQL, a row
    /// another transaction holds is passed over for the next, so concurrent takers never get
    /// the same one (or wait on each other); SQLite's write transaction is alone anyway.
    pub(super) fn skip_locked(self) -> &'static str {
        match self {
            Engine::Sqlite => "",
            Engine::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }
}

/// Where the store lives. (`Debug` shows a URL without its password.)
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A SQLite database file.
    Sqlite(PathBuf),
    /// A `postgres://` (or `postgresql://`) URL.
    Postgres(String),
}

impl StoreLocation {
    /// The engine at this location.
    pub fn engine(&self) -> Engine {
        match self {
            StoreLocation::Sqlite(_) => Engine::Sqlite,
            StoreLocation::Postgres(_) => Engine::Postgres,
        }
    }

    /// The location as an operator may see it in a log line: a URL loses its password.
    pub fn describe(&self) -> String {
        match self {
            StoreLocation::Sqlite(path) => path.display().to_string(),
            StoreLocation::Postgres(url) => redacted(url),
        }
    }
}

impl std::fmt::Debug for StoreLocation {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Sqlite(path) => formatter.debug_tuple("Sqlite").field(path).finish(),
            StoreLocation::Postgres(_) => formatter
                .debug_tuple("Postgres")
                .field(&self.describe())
                .finish(),
        }
    }
}

/// `url` without the password it may carry, before the host or as a `password` parameter
/// (both of which PostgreSQL's URLs allow); a URL that does not parse is not shown at all.
pub(super) fn redacted(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "(an unparseable URL)".to_owned();
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(name, value)| {
                let value = if name.eq_ignore_ascii_case("password") {
                    "***".to_owned()
                } else {
                    value.into_owned()
                };
                (name.into_owned(), value)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_described_url_never_shows_its_password() {
        let location = StoreLocation::Postgres("postgres://nexus:hunter2@db:5432/nexus".into());
        assert_eq!(location.describe(), "postgres://nexus:***@db:5432/nexus");
        assert!(!location.describe().contains("hunter2"));
        assert_eq!(
            redacted("postgres://db/nexus?sslmode=require"),
            "postgres://db/nexus?sslmode=require"
        );
        assert_eq!(redacted("not a url"), "(an unparseable URL)");
        let in_query = redacted("postgres://nexus@db/nexus?password=hunter2&sslmode=require");
        assert!(!in_query.contains("hunter2"), "{in_query}");
        assert!(in_query.contains("sslmode=require"), "{in_query}");
        assert!(!format!("{location:?}").contains("hunter2"));
    }
}
