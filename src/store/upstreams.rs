//! Pinned upstream tool definitions: the copy `/mcp` serves, and the drift found since.

use sqlx::Row;

use crate::clock::UnixSeconds;
use crate::store::{Store, StoreError};

/// One pinned tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedToolRecord {
    /// The tool's name at the upstream.
    pub name: String,
    /// The MCP `Tool` object as JSON.
    pub definition: String,
    /// When it was pinned.
    pub pinned_at: UnixSeconds,
    /// How the live definition differs, if it does.
    pub drift: Option<String>,
}

impl Store {
    /// The pinned tools of `upstream`.
    pub async fn pinned_tools(&self, upstream: &str) -> Result<Vec<PinnedToolRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, definition, pinned_at, drift FROM upstream_tools WHERE upstream = $1 ORDER BY name",
        )
        .bind(upstream)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(PinnedToolRecord {
                    name: row.try_get("name")?,
                    definition: row.try_get("definition")?,
                    pinned_at: row.try_get("pinned_at")?,
                    drift: row.try_get("drift")?,
                })
            })
            .collect()
    }

    /// Pins `definition` for a tool, replacing an earlier pin and clearing its drift.
    pub async fn pin_tool(
        &self,
        upstream: &str,
        name: &str,
        definition: &str,
        now: UnixSeconds,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO upstream_tools (upstream, name, definition, pinned_at, drift) VALUES ($1, $2, $3, $4, NULL)
             ON CONFLICT (upstream, name) DO UPDATE SET definition = excluded.definition,
               pinned_at = excluded.pinned_at, drift = NULL",
        )
        .bind(upstream)
        .bind(name)
        .bind(definition)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Records (or clears, with `None`) how a pinned tool's live definition differs.
    pub async fn set_tool_drift(
        &self,
        upstream: &str,
        name: &str,
        drift: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE upstream_tools SET drift = $1 WHERE upstream = $2 AND name = $3")
            .bind(drift)
            .bind(upstream)
            .bind(name)
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}
