//! Registered OAuth clients (RFC 7591).

use sqlx::Row;

use crate::clock::UnixSeconds;
use crate::store::{Store, StoreError, names_nothing};

/// A client as stored.
#[derive(Debug, Clone)]
pub struct ClientRecord {
    /// The public client identifier.
    pub id: String,
    /// SHA-256 hash of the client secret, for confidential clients.
    pub secret_hash: Option<String>,
    /// The display name shown on the consent page.
    pub name: String,
    /// The exact redirect URIs registered.
    pub redirect_uris: Vec<String>,
    /// `none`, `client_secret_post` or `client_secret_basic`.
    pub auth_method: String,
    /// When it registered.
    pub created_at: UnixSeconds,
    /// When the owner first approved it.
    pub authorized_at: Option<UnixSeconds>,
    /// When it last obtained a token.
    pub last_used_at: Option<UnixSeconds>,
}

/// A client about to be stored.
#[derive(Debug, Clone)]
pub struct NewClient {
    /// The public client identifier.
    pub id: String,
    /// SHA-256 hash of the client secret, for confidential clients.
    pub secret_hash: Option<String>,
    /// The display name.
    pub name: String,
    /// The exact redirect URIs.
    pub redirect_uris: Vec<String>,
    /// The token endpoint authentication method.
    pub auth_method: String,
    /// The registered metadata.
    pub metadata: serde_json::Value,
    /// The registration time.
    pub created_at: UnixSeconds,
}

impl Store {
    /// Stores a newly registered client; then, past `max_unapproved` clients the owner never
    /// approved, removes the oldest of them (those that never started an authorization first).
    /// Returns how many were evicted.
    pub async fn insert_client(
        &self,
        client: &NewClient,
        max_unapproved: u32,
    ) -> Result<u64, StoreError> {
        let redirect_uris = serde_json::to_string(&client.redirect_uris)
            .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        let mut transaction = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO clients (id, secret_hash, name, redirect_uris, auth_method, metadata, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&client.id)
        .bind(&client.secret_hash)
        .bind(&client.name)
        .bind(redirect_uris)
        .bind(&client.auth_method)
        .bind(client.metadata.to_string())
        .bind(client.created_at)
        .execute(&mut *transaction)
        .await?;
        let unapproved: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM clients WHERE authorized_at IS NULL")
                .fetch_one(&mut *transaction)
                .await?;
        let excess = unapproved - i64::from(max_unapproved);
        let mut evicted = 0;
        if excess > 0 {
            evicted = sqlx::query(
                "DELETE FROM clients WHERE id IN (
                   SELECT id FROM clients WHERE authorized_at IS NULL AND id != $1
                   ORDER BY first_authorize_at IS NOT NULL, created_at, rowid LIMIT $2)",
            )
            .bind(&client.id)
            .bind(excess)
            .execute(&mut *transaction)
            .await?
            .rows_affected();
        }
        transaction.commit().await?;
        Ok(evicted)
    }

    /// Stores a client described by a metadata document (its id is the document's URL), or
    /// brings the stored copy's name and redirect URIs up to date with the document; the
    /// approval and usage history of an existing row are kept.
    pub async fn upsert_document_client(&self, client: &NewClient) -> Result<(), StoreError> {
        let redirect_uris = serde_json::to_string(&client.redirect_uris)
            .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        sqlx::query(
            "INSERT INTO clients (id, secret_hash, name, redirect_uris, auth_method, metadata, created_at)
             VALUES ($1, NULL, $2, $3, $4, $5, $6)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name,
               redirect_uris = excluded.redirect_uris, metadata = excluded.metadata
             WHERE clients.name != excluded.name OR clients.redirect_uris != excluded.redirect_uris",
        )
        .bind(&client.id)
        .bind(&client.name)
        .bind(redirect_uris)
        .bind(&client.auth_method)
        .bind(client.metadata.to_string())
        .bind(client.created_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Finds a client by its identifier.
    pub async fn find_client(&self, id: &str) -> Result<Option<ClientRecord>, StoreError> {
        if names_nothing(id) {
            return Ok(None);
        }
        let row = sqlx::query("SELECT * FROM clients WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| client_from_row(&row)).transpose()
    }

    /// All clients, newest first.
    pub async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM clients ORDER BY created_at DESC")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(client_from_row).collect()
    }

    /// Deletes a client and, through the foreign keys, every grant and token it holds.
    pub async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM clients WHERE id = $1")
            .bind(id)
            .execute(&self.writer)
            .await?;
        let removed = result.rows_affected() == 1;
        if removed {
            self.note_revocation();
        }
        Ok(removed)
    }

    /// Removes clients the owner never approved: those registered before `cutoff`, and those
    /// registered before `unstarted_cutoff` that never started an authorization.
    pub async fn delete_unapproved_clients(
        &self,
        cutoff: UnixSeconds,
        unstarted_cutoff: UnixSeconds,
    ) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "DELETE FROM clients WHERE authorized_at IS NULL
               AND (created_at < $1 OR (first_authorize_at IS NULL AND created_at < $2))",
        )
        .bind(cutoff)
        .bind(unstarted_cutoff)
        .execute(&self.writer)
        .await?;
        // A client never approved holds no grant, so no token dies here: no revocation to note.
        Ok(result.rows_affected())
    }
}

fn client_from_row(row: &sqlx::any::AnyRow) -> Result<ClientRecord, StoreError> {
    let corrupt = |error: serde_json::Error| StoreError::Corrupt(format!("client row: {error}"));
    let redirect_uris: String = row.try_get("redirect_uris")?;

    Ok(ClientRecord {
        id: row.try_get("id")?,
        secret_hash: row.try_get("secret_hash")?,
        name: row.try_get("name")?,
        redirect_uris: serde_json::from_str(&redirect_uris).map_err(corrupt)?,
        auth_method: row.try_get("auth_method")?,

        created_at: row.try_get("created_at")?,
        authorized_at: row.try_get("authorized_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}
