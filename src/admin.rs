//! What the operator's commands do, as library calls: each opens the store the server uses
//! (SQLite allows both at once) and returns text to print. Values of secrets are printed only
//! where the command exists to show them once.

use std::fmt::Write as _;
use std::sync::Arc;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::clock::{SystemClock, UnixSeconds};
use crate::config::Config;
use crate::oauth::error::OAuthError;
use crate::oauth::scope::ScopeSet;
use crate::oauth::{AuthServer, AuthSettings};
use crate::store::Store;

/// A failed admin command, with a message for the operator.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The operator's input is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error("cannot open the store")]
    Store(#[from] crate::store::StoreError),
    /// The authorization server refused or failed.
    #[error("{0}")]
    OAuth(#[from] OAuthError),
}

async fn open(config: &Config) -> Result<AuthServer, AdminError> {
    let store = Store::open(&config.database_path()).await?;
    Ok(AuthServer::open(
        store,
        Arc::new(SystemClock),
        AuthSettings::from_config(config),
    )
    .await?)
}

/// `owner set-password`.
pub async fn set_owner_password(config: &Config, passphrase: &str) -> Result<String, AdminError> {
    open(config).await?.set_owner_passphrase(passphrase).await?;
    Ok("owner passphrase updated; open owner sessions were ended\n".into())
}

/// `keys rotate`.
pub async fn rotate_keys(config: &Config) -> Result<String, AdminError> {
    let kid = open(config).await?.rotate_signing_key().await?;
    Ok(format!(
        "new signing key {kid}; a running gateway starts using it within a minute\n"
    ))
}

/// `tokens issue`.
pub async fn issue_token(
    config: &Config,
    name: &str,
    scope: &str,
    ttl: &str,
) -> Result<String, AdminError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(AdminError::Invalid(
            "--name must be 1 to 100 printable characters".into(),
        ));
    }
    let scope = ScopeSet::parse_strict(scope)
        .map_err(|error| AdminError::Invalid(format!("--scope: {error}")))?;
    let ttl = humantime::parse_duration(ttl)
        .map_err(|error| AdminError::Invalid(format!("--ttl: {error}")))?;
    let ttl_seconds = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
    if !(60..=366 * 24 * 3600).contains(&ttl_seconds) {
        return Err(AdminError::Invalid(
            "--ttl must be between 1 minute and 366 days".into(),
        ));
    }
    let issued = open(config)
        .await?
        .issue_bearer_token(name, &scope, ttl_seconds)
        .await?;
    Ok(format!(
        "{}\n\n# bearer token `{name}` (grant {}), scope \"{scope}\", expires {}.\n# It is shown only now. Use it as: Authorization: Bearer <token>\n",
        issued.token,
        issued.grant_id,
        rfc3339(issued.expires_at)
    ))
}

/// `tokens list`.
pub async fn list_tokens(config: &Config) -> Result<String, AdminError> {
    let tokens = open(config).await?.list_bearer_tokens().await?;
    let mut out = String::new();
    if tokens.is_empty() {
        out.push_str("no bearer tokens\n");
    }
    for token in tokens {
        let status = match token.revoked_at {
            Some(at) => format!("revoked {}", rfc3339(at)),
            None => format!(
                "expires {}",
                token
                    .expires_at
                    .map(rfc3339)
                    .unwrap_or_else(|| "never".into())
            ),
        };
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{status}",
            token.name, token.id, token.scope
        );
    }
    Ok(out)
}

/// `tokens revoke`.
pub async fn revoke_token(config: &Config, name: &str) -> Result<String, AdminError> {
    if open(config).await?.revoke_bearer_token(name).await? {
        Ok(format!("bearer token `{name}` revoked\n"))
    } else {
        Err(AdminError::Invalid(format!(
            "no live bearer token named `{name}`"
        )))
    }
}

/// `clients list`.
pub async fn list_clients(config: &Config) -> Result<String, AdminError> {
    let clients = open(config).await?.list_clients().await?;
    let mut out = String::new();
    if clients.is_empty() {
        out.push_str("no registered clients\n");
    }
    for client in clients {
        let approved = client
            .authorized_at
            .map(rfc3339)
            .unwrap_or_else(|| "never approved".into());
        let used = client
            .last_used_at
            .map(rfc3339)
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{}\t{}\t{}\tapproved: {approved}\tlast used: {used}\t{}",
            client.id,
            client.name,
            client.auth_method,
            client.redirect_uris.join(" ")
        );
    }
    Ok(out)
}

/// `clients revoke`.
pub async fn revoke_client(config: &Config, client_id: &str) -> Result<String, AdminError> {
    if open(config).await?.revoke_client(client_id).await? {
        Ok(format!(
            "client {client_id} removed with all its grants and tokens\n"
        ))
    } else {
        Err(AdminError::Invalid(format!(
            "no client with id {client_id}"
        )))
    }
}

/// `config check`.
pub fn describe_config(config: &Config) -> String {
    format!(
        "configuration is valid\n  listen      {}\n  public_url  {}\n  mcp         {}\n  data_dir    {}\n  approval    {}\n",
        config.listen,
        config.public_url,
        config.mcp_resource(),
        config.data_dir.display(),
        config.approval.as_str()
    )
}

fn rfc3339(at: UnixSeconds) -> String {
    OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|time| time.format(&Rfc3339).ok())
        .unwrap_or_else(|| at.to_string())
}
