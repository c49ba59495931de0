//! The command line: `serve` and the operator's admin commands. Declarations only; `main`
//! dispatches each command to one `admin` or `app` call.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// nexus-gateway: an OAuth 2.1 fronted MCP gateway for a homelab agent.
#[derive(Debug, Parser)]
#[command(name = "nexus-gateway", version, about)]
pub struct Cli {
    /// TOML configuration file; every key has a default, and NEXUS_* variables override it.
    #[arg(long, short, global = true, env = "NEXUS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve,
    /// Manage the owner's credential.
    #[command(subcommand)]
    Owner(OwnerCommand),
    /// Manage the token signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage bearer-only tokens for MCP clients that cannot do OAuth.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Manage registered OAuth clients.
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Manage agents, the programs that claim tasks through the agent API.
    #[command(subcommand)]
    Agents(AgentsCommand),
    /// Check the Telegram targets: the bot token, the chat, the webhook.
    #[command(subcommand)]
    Telegram(TelegramCommand),
    /// Check the configuration and print what is in force.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage the upstream MCP servers whose tools are published.
    #[command(subcommand)]
    Upstreams(UpstreamsCommand),
    /// Copy the SQLite store in data_dir into an empty PostgreSQL database.
    ///
    /// Everything moves: clients, grants, refresh tokens, signing keys, the owner, the queue,
    /// updates and cursors, agents, transport state, so nobody has to log in again. Stop the
    /// gateway first (what it writes during the copy stays behind). The copy is one
    /// transaction: all of it or nothing. It refuses a database that holds any data. The
    /// target's user must be allowed to `SET session_replication_role` (a superuser, or on
    /// PostgreSQL 15 and later a user granted it), which turns the triggers off while rows are
    /// copied. Then set database_url (or NEXUS_DATABASE_URL) to the target and start the
    /// gateway(s); keep the SQLite file as a backup.
    MigrateStore {
        /// The empty PostgreSQL database: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE.
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

/// `upstreams ...`
#[derive(Debug, Subcommand)]
pub enum UpstreamsCommand {
    /// List each upstream, its allowed tools, their pinned definitions and drift.
    List,
    /// Pin the definitions the upstream offers now (after checking what changed).
    Approve {
        /// The upstream's name.
        name: String,
    },
    /// Print `[[upstreams]]` TOML for a Claude-Desktop-style `mcpServers` JSON file, with
    /// empty allow-lists and the tools each server offers.
    Import {
        /// The JSON file.
        file: PathBuf,
    },
}

/// `owner ...`
#[derive(Debug, Subcommand)]
pub enum OwnerCommand {
    /// Set the owner's passphrase (asked twice at a prompt, or read from standard input).
    SetPassword {
        /// Read the passphrase from the first line of standard input, for scripts.
        #[arg(long)]
        stdin: bool,
    },
}

/// `keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Start signing with a new key; the old one stays published until its tokens expire.
    Rotate,
}

/// `tokens ...`
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Issue a bearer access token and print it once.
    Issue {
        /// A name to recognise and revoke it by.
        #[arg(long)]
        name: String,
        /// Scopes, space- or comma-separated.
        #[arg(long, default_value = "tasks:read tasks:write")]
        scope: String,
        /// Lifetime, such as `30d` or `12h`.
        #[arg(long, default_value = "30d")]
        ttl: String,
    },
    /// List bearer tokens (never their values).
    List,
    /// Revoke a bearer token by name or grant id.
    Revoke {
        /// The token's name or grant id.
        name: String,
    },
}

/// `clients ...`
#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// List registered clients.
    List,
    /// Remove a client and revoke everything it holds.
    Revoke {
        /// The client id.
        client_id: String,
    },
}

/// `agents ...`
#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// Add an agent and print its token once.
    Add {
        /// The agent's name.
        name: String,
        /// Targets it serves, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        targets: Vec<String>,
    },
    /// List agents (never their tokens).
    List,
    /// Revoke an agent's token.
    Revoke {
        /// The agent's name.
        name: String,
    },
}

/// `telegram ...`
#[derive(Debug, Subcommand)]
pub enum TelegramCommand {
    /// Call getMe, check the chat can be reached, and print what was found.
    Check,
}

/// `config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print the effective values.
    Check,
}
