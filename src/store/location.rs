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
}

/// Where the store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// `url` without the password it may carry (and unchanged when it does not parse).
pub(super) fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "(an unparseable URL)".to_owned(),
    }
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
    }
}
