//! What the operator's commands do, as library calls: each opens the store the server uses
//! (SQLite allows both at once) and returns text to print. Values of secrets are printed only
//! where the command exists to show them once.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::clock::SystemClock;
use crate::config::Config;
use crate::oauth::error::OAuthError;
use crate::oauth::scope::{ScopeCatalog, ScopeSet};
use crate::oauth::{AuthServer, AuthSettings};
use crate::queue::agents::Agents;
use crate::queue::error::QueueError;
use crate::queue::rfc3339;
use crate::store::{Store, StoreLocation};

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
    /// The queue refused or failed.
    #[error("{0}")]
    Queue(#[from] QueueError),
    /// An upstream command failed.
    #[error("{0}")]
    Upstream(String),
    /// Copying the store was refused or failed.
    #[error(transparent)]
    Copy(#[from] crate::store::CopyError),
}

async fn open(config: &Config) -> Result<AuthServer, AdminError> {
    let store = Store::open_at(&config.store_location()).await?;
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
    let scope = ScopeSet::parse_strict(scope, &ScopeCatalog::from_config(config))
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
        issued.token.expose(),
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

async fn open_agents(config: &Config) -> Result<Agents, AdminError> {
    let store = Store::open_at(&config.store_location()).await?;
    let targets = config
        .targets
        .iter()
        .map(|target| target.name.clone())
        .collect();
    Ok(Agents::new(store, Arc::new(SystemClock), targets))
}

/// `agents add`.
pub async fn add_agent(
    config: &Config,
    name: &str,
    targets: &[String],
) -> Result<String, AdminError> {
    let targets: Vec<String> = targets
        .iter()
        .map(|target| target.trim().to_owned())
        .filter(|target| !target.is_empty())
        .collect();
    let (agent, token) = open_agents(config).await?.add(name, &targets).await?;
    Ok(format!(
        "{token}\n\n# agent `{}` serving {}. The token is shown only now.\n# The agent calls {}/agent/v1/... with: Authorization: Bearer <token>\n",
        agent.name,
        agent.targets.join(", "),
        config.public_url
    ))
}

/// `agents list`.
pub async fn list_agents(config: &Config) -> Result<String, AdminError> {
    let agents = open_agents(config).await?.list().await?;
    let mut out = String::new();
    if agents.is_empty() {
        out.push_str("no agents\n");
    }
    for agent in agents {
        let status = match agent.revoked_at {
            Some(at) => format!("revoked {}", rfc3339(at)),
            None => "active".into(),
        };
        let _ = writeln!(
            out,
            "{}\t{}\tadded {}\t{status}",
            agent.name,
            agent.targets.join(","),
            rfc3339(agent.created_at)
        );
    }
    Ok(out)
}

/// `agents revoke`.
pub async fn revoke_agent(config: &Config, name: &str) -> Result<String, AdminError> {
    if open_agents(config).await?.revoke(name).await? {
        Ok(format!("agent `{name}` revoked\n"))
    } else {
        Err(AdminError::Invalid(format!(
            "no active agent named `{name}`"
        )))
    }
}

/// `telegram check`: for every Telegram target, who the bot is, whether it can reach the
/// chat, and how updates arrive. Fails when any target is not usable.
pub async fn telegram_check(config: &Config) -> Result<String, AdminError> {
    let mut out = String::new();
    let mut broken = 0;
    for (target, telegram) in config.telegram_targets() {
        let _ = writeln!(
            out,
            "target `{}` (chat {}, {:?} mode)",
            target.name, telegram.chat_id, telegram.mode
        );
        let api = match crate::transport::telegram::bot_api(&target.name, telegram) {
            Ok(api) => api,
            Err(error) => {
                broken += 1;
                let _ = writeln!(out, "  token:   FAILED: {error}");
                continue;
            }
        };
        match api.get_me().await {
            Ok(bot) => {
                let _ = writeln!(
                    out,
                    "  bot:     @{} ({}), id {}",
                    bot.username.unwrap_or_default(),
                    bot.first_name,
                    bot.id
                );
            }
            Err(error) => {
                broken += 1;
                let _ = writeln!(out, "  bot:     FAILED: {error}");
                continue;
            }
        }
        match api.get_chat(telegram.chat_id).await {
            Ok(chat) => {
                let name = chat.title.or(chat.first_name).unwrap_or_default();
                let _ = writeln!(out, "  chat:    {} \"{name}\" reachable", chat.kind);
            }
            Err(error) => {
                broken += 1;
                let _ = writeln!(
                    out,
                    "  chat:    FAILED: {error} (has someone pressed Start in the bot's chat, or added the bot to the group?)"
                );
            }
        }
        match api.get_webhook_info().await {
            Ok(info) if info.url.is_empty() => {
                let _ = writeln!(
                    out,
                    "  updates: no webhook set; long polling will work ({} pending)",
                    info.pending_update_count
                );
            }
            Ok(info) => {
                let error = info
                    .last_error_message
                    .map(|message| format!(", last error: {message}"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  updates: webhook set ({} pending{error})",
                    info.pending_update_count
                );
            }
            Err(error) => {
                let _ = writeln!(out, "  updates: cannot read the webhook state: {error}");
            }
        }
    }
    if out.is_empty() {
        return Err(AdminError::Invalid(
            "no target uses transport = \"telegram\"".into(),
        ));
    }
    if broken > 0 {
        return Err(AdminError::Invalid(format!(
            "{out}{broken} problem(s) found"
        )));
    }
    Ok(out)
}

/// `config check`.
pub fn describe_config(config: &Config) -> String {
    format!(
        "configuration is valid\n  listen      {}\n  public_url  {}\n  mcp         {}\n  data_dir    {}\n  store       {} {}\n  approval    {}\n",
        config.listen,
        config.public_url,
        config.mcp_resource(),
        config.data_dir.display(),
        config.store_location().engine().as_str(),
        config.store_location().describe(),
        config.approval.as_str()
    )
}

/// `upstreams list`.
pub async fn list_upstreams(config: &Config) -> Result<String, AdminError> {
    let store = Store::open_at(&config.store_location()).await?;
    let live = match config.internal_listen {
        Some(address) => crate::upstream::http::fetch_live_state(address).await,
        None => None,
    };
    crate::upstream::operator::list(&config.upstreams, &store, live)
        .await
        .map_err(AdminError::Upstream)
}

/// `upstreams approve NAME`.
pub async fn approve_upstream(config: &Config, name: &str) -> Result<String, AdminError> {
    let upstream = config
        .upstreams
        .iter()
        .find(|upstream| upstream.name == name)
        .ok_or_else(|| {
            AdminError::Upstream(format!("no upstream named {name} in the configuration"))
        })?;
    let store = Store::open_at(&config.store_location()).await?;
    let shim = std::env::current_exe().map_err(|error| AdminError::Upstream(error.to_string()))?;
    crate::upstream::operator::approve(
        upstream,
        &store,
        &shim,
        crate::clock::Clock::now(&SystemClock),
    )
    .await
    .map_err(AdminError::Upstream)
}

/// `upstreams import FILE`.
pub async fn import_upstreams(file: &std::path::Path) -> Result<String, AdminError> {
    let shim = std::env::current_exe().map_err(|error| AdminError::Upstream(error.to_string()))?;
    crate::upstream::operator::import(file, &shim)
        .await
        .map_err(AdminError::Upstream)
}

/// `migrate-store --to URL`: copies the SQLite store in `data_dir` into the empty PostgreSQL
/// database `to` names, all or nothing. The URL is never printed with its password.
pub async fn migrate_store(config: &Config, to: &str) -> Result<String, AdminError> {
    match url::Url::parse(to) {
        Ok(url) if matches!(url.scheme(), "postgres" | "postgresql") => {}
        Ok(url) => {
            return Err(AdminError::Invalid(format!(
                "--to must be a postgres:// URL, not {}://",
                url.scheme()
            )));
        }
        Err(error) => {
            return Err(AdminError::Invalid(format!(
                "--to must be a postgres:// URL ({error})"
            )));
        }
    }
    if config.database_url.is_some() {
        return Err(AdminError::Invalid(
            "database_url is set, so this gateway's store is already PostgreSQL: migrate-store copies the SQLite file in data_dir (unset database_url and NEXUS_DATABASE_URL to run it)".into(),
        ));
    }
    let path = config.database_path();
    if !path.is_file() {
        return Err(AdminError::Invalid(format!(
            "no SQLite store at {}: nothing to copy (is data_dir right?)",
            path.display()
        )));
    }
    let source = Store::open(&path).await?;
    let location = StoreLocation::Postgres(to.to_owned());
    let target = Store::open_at(&location).await?;
    let copied = source.copy_into_empty(&target).await?;
    let mut out = format!("copied {} into {}:\n", path.display(), location.describe());
    for table in &copied {
        let _ = writeln!(out, "  {:<24}{:>10} rows", table.table, table.rows);
    }
    let _ = writeln!(
        out,
        "next: set database_url (or NEXUS_DATABASE_URL) to that database, start the gateway(s), and keep {} as a backup",
        path.display()
    );
    Ok(out)
}
