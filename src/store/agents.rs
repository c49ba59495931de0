//! Agent identities for the agent API: a name, the targets it serves, and its token's hash.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::clock::UnixSeconds;
use crate::store::{Store, StoreError, names_nothing};

/// A stored agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRecord {
    /// Agent id.
    pub id: String,
    /// The operator's name for it.
    pub name: String,
    /// Targets it may claim tasks from.
    pub targets: Vec<String>,
    /// When it was added.
    pub created_at: UnixSeconds,
    /// When it was revoked.
    pub revoked_at: Option<UnixSeconds>,
}

impl Store {
    /// Stores a new agent.
    pub async fn insert_agent(
        &self,
        agent: &AgentRecord,
        token_hash: &str,
    ) -> Result<(), StoreError> {
        let targets = serde_json::to_string(&agent.targets)
            .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        sqlx::query(
            "INSERT INTO agents (id, name, token_hash, targets, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&agent.id)
        .bind(&agent.name)
        .bind(token_hash)
        .bind(targets)
        .bind(agent.created_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// The live agent holding the token with this hash.
    pub async fn find_agent_by_token_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<AgentRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM agents WHERE token_hash = $1 AND revoked_at IS NULL")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| agent_from_row(&row)).transpose()
    }

    /// The live agent with this name.
    pub async fn find_live_agent(&self, name: &str) -> Result<Option<AgentRecord>, StoreError> {
        if names_nothing(name) {
            return Ok(None);
        }
        let row = sqlx::query("SELECT * FROM agents WHERE name = $1 AND revoked_at IS NULL")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| agent_from_row(&row)).transpose()
    }

    /// Every agent, newest first.
    pub async fn list_agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM agents ORDER BY created_at DESC")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(agent_from_row).collect()
    }

    /// Revokes the live agent with this name.
    pub async fn revoke_agent(&self, name: &str, now: UnixSeconds) -> Result<bool, StoreError> {
        let result =
            sqlx::query("UPDATE agents SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(name)
                .execute(&self.writer)
                .await?;
        Ok(result.rows_affected() == 1)
    }
}

fn agent_from_row(row: &AnyRow) -> Result<AgentRecord, StoreError> {
    let targets: String = row.try_get("targets")?;
    Ok(AgentRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        targets: serde_json::from_str(&targets)
            .map_err(|error| StoreError::Corrupt(format!("agent targets: {error}")))?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}
