//! Copying a SQLite store into an empty PostgreSQL one (`migrate-store`): every row of every
//! table, read from one SQLite snapshot and written in one PostgreSQL transaction, so a homelab
//! moves to a shared database without logging anybody out.

use sqlx::{AnyConnection, AssertSqlSafe, Row};

use crate::store::{Engine, Store, StoreError};

/// Rows per INSERT: 500 rows of the widest table (`messages`, 14 columns) bind 7,000 values,
/// well under PostgreSQL's 65,535 per statement.
const BATCH_ROWS: usize = 500;

/// How a column's values travel: SQLite TEXT to TEXT, INTEGER to BIGINT, BLOB to BYTEA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Integer,
    Blob,
}

use Kind::{Blob, Integer, Text};

/// A table and every one of its columns, as both schemas have them (PostgreSQL's `rowid`
/// identity columns left out: it numbers the copied rows itself, in the order they arrive).
struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
}

/// Every table, parents before children (foreign keys).
const TABLES: &[Table] = &[
    Table {
        name: "clients",
        columns: &[
            ("id", Text),
            ("secret_hash", Text),
            ("name", Text),
            ("redirect_uris", Text),
            ("auth_method", Text),
            ("metadata", Text),
            ("created_at", Integer),
            ("authorized_at", Integer),
            ("last_used_at", Integer),
            ("first_authorize_at", Integer),
        ],
    },
    Table {
        name: "authorization_requests",
        columns: &[
            ("id", Text),
            ("client_id", Text),
            ("redirect_uri", Text),
            ("state", Text),
            ("code_challenge", Text),
            ("scope", Text),
            ("resource", Text),
            ("csrf_hash", Text),
            ("created_at", Integer),
            ("expires_at", Integer),
        ],
    },
    Table {
        name: "grants",
        columns: &[
            ("id", Text),
            ("kind", Text),
            ("client_id", Text),
            ("name", Text),
            ("subject", Text),
            ("scope", Text),
            ("resource", Text),
            ("created_at", Integer),
            ("expires_at", Integer),
            ("revoked_at", Integer),
        ],
    },
    Table {
        name: "authorization_codes",
        columns: &[
            ("hash", Text),
            ("grant_id", Text),
            ("client_id", Text),
            ("redirect_uri", Text),
            ("code_challenge", Text),
            ("expires_at", Integer),
            ("used_at", Integer),
        ],
    },
    Table {
        name: "refresh_tokens",
        columns: &[
            ("hash", Text),
            ("grant_id", Text),
            ("created_at", Integer),
            ("expires_at", Integer),
            ("rotated_at", Integer),
            ("successor_hash", Text),
            ("grace_until", Integer),
            ("grace_sealed", Blob),
            ("rotated_from_ip", Text),
        ],
    },
    Table {
        name: "signing_keys",
        columns: &[
            ("kid", Text),
            ("alg", Text),
            ("private_pkcs8", Blob),
            ("created_at", Integer),
            ("retired_at", Integer),
            ("tokens_valid_until", Integer),
        ],
    },
    Table {
        name: "revoked_tokens",
        columns: &[("jti", Text), ("expires_at", Integer)],
    },
    Table {
        name: "owner",
        columns: &[
            ("id", Integer),
            ("password_hash", Text),
            ("updated_at", Integer),
        ],
    },
    Table {
        name: "owner_sessions",
        columns: &[
            ("hash", Text),
            ("created_at", Integer),
            ("expires_at", Integer),
        ],
    },
    Table {
        name: "owner_devices",
        columns: &[
            ("hash", Text),
            ("created_at", Integer),
            ("expires_at", Integer),
        ],
    },
    Table {
        name: "messages",
        columns: &[
            ("id", Text),
            ("target", Text),
            ("content", Text),
            ("content_hash", Text),
            ("urgent", Integer),
            ("status", Text),
            ("sender", Text),
            ("created_at", Integer),
            ("acknowledged_at", Integer),
            ("started_at", Integer),
            ("finished_at", Integer),
            ("claimed_by", Text),
            ("transport_ref", Text),
            ("delivered_at", Integer),
        ],
    },
    Table {
        name: "updates",
        columns: &[
            ("seq", Integer),
            ("message_id", Text),
            ("target", Text),
            ("content", Text),
            ("status", Text),
            ("source", Text),
            ("created_at", Integer),
        ],
    },
    Table {
        name: "client_cursors",
        columns: &[("client_id", Text), ("seq", Integer)],
    },
    Table {
        name: "agents",
        columns: &[
            ("id", Text),
            ("name", Text),
            ("token_hash", Text),
            ("targets", Text),
            ("created_at", Integer),
            ("revoked_at", Integer),
        ],
    },
    Table {
        name: "transport_refs",
        columns: &[
            ("target", Text),
            ("external_ref", Text),
            ("message_id", Text),
            ("created_at", Integer),
        ],
    },
    Table {
        name: "transport_state",
        columns: &[("key", Text), ("value", Text), ("updated_at", Integer)],
    },
    Table {
        name: "transport_seen",
        columns: &[("target", Text), ("event_id", Text), ("seen_at", Integer)],
    },
    Table {
        name: "remote_approvals",
        columns: &[
            ("request_id", Text),
            ("token_hash", Text),
            ("decision", Text),
            ("expires_at", Integer),
            ("code_hash", Text),
        ],
    },
    Table {
        name: "upstream_tools",
        columns: &[
            ("upstream", Text),
            ("name", Text),
            ("definition", Text),
            ("pinned_at", Integer),
            ("drift", Text),
        ],
    },
    Table {
        name: "revocation_log",
        columns: &[
            ("seq", Integer),
            ("grant_id", Text),
            ("jti", Text),
            ("logged_at", Integer),
        ],
    },
    Table {
        name: "leases",
        columns: &[("name", Text), ("holder", Text), ("expires_at", Integer)],
    },
];

/// The tables whose `seq` is an identity in PostgreSQL: after the copy it continues past the
/// copied numbers, so cursors clients and servers hold stay valid.
const SEQUENCED: [&str; 2] = ["updates", "revocation_log"];

/// How many rows of one table were copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopiedTable {
    /// The table.
    pub table: &'static str,
    /// Its rows, all of them.
    pub rows: u64,
}

/// Why a copy was refused or failed; nothing was written to the target either way.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The source is not a SQLite store or the target not a PostgreSQL one.
    #[error("a store is copied from SQLite into PostgreSQL only")]
    Engines,
    /// The target already holds data.
    #[error(
        "the target database is not empty (table {0} has rows): migrate-store copies into an empty database only"
    )]
    NotEmpty(&'static str),
    /// The target's user may not turn triggers off for the copy (what the database said).
    #[error(
        "cannot turn off the target's triggers for the copy (SET session_replication_role = replica: {0}): connect as a superuser, or on PostgreSQL 15 and later as a user granted it (GRANT SET ON PARAMETER session_replication_role TO <user>)"
    )]
    Triggers(String),
    /// Rows of one table could not be read or written.
    #[error("cannot copy the table {table}")]
    Table {
        /// The table.
        table: &'static str,
        /// What went wrong.
        #[source]
        source: sqlx::Error,
    },
    /// The store failed otherwise.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for CopyError {
    fn from(error: sqlx::Error) -> Self {
        CopyError::Store(StoreError::Database(error))
    }
}

impl Store {
    /// Copies every row of this SQLite store into `target`, an empty PostgreSQL store, in one
    /// transaction: all of it or nothing. Rows keep their order (and `updates` and
    /// `revocation_log` their sequence numbers, which then continue after the copied ones).
    pub async fn copy_into_empty(&self, target: &Store) -> Result<Vec<CopiedTable>, CopyError> {
        if self.engine != Engine::Sqlite || target.engine != Engine::Postgres {
            return Err(CopyError::Engines);
        }
        let mut into = target.writer.begin().await?;
        // A gateway started on the target too early waits for the copy instead of mixing in.
        let names: Vec<&str> = TABLES.iter().map(|table| table.name).collect();
        sqlx::query(AssertSqlSafe(format!(
            "LOCK TABLE {} IN EXCLUSIVE MODE",
            names.join(", ")
        )))
        .execute(&mut *into)
        .await?;
        for table in TABLES {
            let found = sqlx::query(AssertSqlSafe(format!(
                "SELECT 1 FROM {} LIMIT 1",
                table.name
            )))
            .fetch_optional(&mut *into)
            .await?;
            if found.is_some() {
                return Err(CopyError::NotEmpty(table.name));
            }
        }
        // The rows arrive as they are: the triggers must not log the copied revocations again
        // (nor take advisory locks, nor notify anyone) while they do.
        sqlx::query("SET LOCAL session_replication_role = replica")
            .execute(&mut *into)
            .await
            .map_err(|error| {
                CopyError::Triggers(match error.as_database_error() {
                    Some(refused) => refused.message().to_owned(),
                    None => error.to_string(),
                })
            })?;
        // One read transaction: every table is read from the same snapshot.
        let mut from = self.pool.begin().await?;
        let mut copied = Vec::with_capacity(TABLES.len());
        for table in TABLES {
            let rows = copy_table(table, &mut from, &mut into)
                .await
                .map_err(|source| CopyError::Table {
                    table: table.name,
                    source,
                })?;
            copied.push(CopiedTable {
                table: table.name,
                rows,
            });
        }
        for table in SEQUENCED {
            sqlx::query(AssertSqlSafe(format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'seq'),
                               GREATEST((SELECT MAX(seq) FROM {table}), 1),
                               (SELECT MAX(seq) FROM {table}) IS NOT NULL)"
            )))
            .execute(&mut *into)
            .await?;
        }
        into.commit().await?;
        from.rollback().await?;
        Ok(copied)
    }
}

/// Copies `table` in batches, in SQLite's rowid order (for `updates` and `revocation_log`, their
/// `seq`), and returns how many rows it copied.
async fn copy_table(
    table: &Table,
    from: &mut AnyConnection,
    into: &mut AnyConnection,
) -> Result<u64, sqlx::Error> {
    let columns: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
    let columns = columns.join(", ");
    let select = format!(
        "SELECT rowid, {columns} FROM {} WHERE rowid > $1 ORDER BY rowid LIMIT {BATCH_ROWS}",
        table.name
    );
    let mut after = i64::MIN;
    let mut copied = 0;
    loop {
        let rows = sqlx::query(AssertSqlSafe(select.clone()))
            .bind(after)
            .fetch_all(&mut *from)
            .await?;
        let Some(last) = rows.last() else {
            break;
        };
        after = last.try_get(0)?;
        let insert = format!(
            "INSERT INTO {} ({columns}) VALUES {}",
            table.name,
            super::batch::placeholders(rows.len(), table.columns.len())
        );
        let mut query = sqlx::query(AssertSqlSafe(insert));
        for row in &rows {
            // Column 0 is the rowid.
            for (index, (_, kind)) in table.columns.iter().enumerate() {
                query = match kind {
                    Text => query.bind(row.try_get::<Option<String>, _>(index + 1)?),
                    Integer => query.bind(row.try_get::<Option<i64>, _>(index + 1)?),
                    Blob => query.bind(row.try_get::<Option<Vec<u8>>, _>(index + 1)?),
                };
            }
        }
        query.execute(&mut *into).await?;
        copied += rows.len() as u64;
        if rows.len() < BATCH_ROWS {
            break;
        }
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A migration that adds a table or a column must add it here too, or the copy would
    /// silently leave it behind.
    #[tokio::test]
    async fn the_copy_names_every_table_and_column_of_the_sqlite_schema() {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let store = Store::open(&dir.path().join("store.sqlite3"))
            .await
            .expect("opens");
        let mut tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table'
             AND name NOT IN ('sqlite_sequence', '_sqlx_migrations') ORDER BY name",
        )
        .fetch_all(&store.pool)
        .await
        .expect("tables");
        let mut listed: Vec<String> = TABLES.iter().map(|table| table.name.into()).collect();
        listed.sort();
        tables.sort();
        assert_eq!(listed, tables);
        for table in TABLES {
            let rows = sqlx::query("SELECT name, type FROM pragma_table_info($1) ORDER BY cid")
                .bind(table.name)
                .fetch_all(&store.pool)
                .await
                .expect("columns");
            let mut schema: Vec<(String, Kind)> = rows
                .iter()
                .map(|row| {
                    let name: String = row.try_get(0).expect("name");
                    let kind = match row.try_get::<String, _>(1).expect("type").as_str() {
                        "TEXT" => Text,
                        "INTEGER" => Integer,
                        "BLOB" => Blob,
                        other => panic!("{}.{name} has the type {other}", table.name),
                    };
                    (name, kind)
                })
                .collect();
            let mut ours: Vec<(String, Kind)> = table
                .columns
                .iter()
                .map(|(name, kind)| ((*name).to_owned(), *kind))
                .collect();
            schema.sort_by(|a, b| a.0.cmp(&b.0));
            ours.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(ours, schema, "the columns of {}", table.name);
        }
    }
}
