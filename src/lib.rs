//! nexus-gateway: an OAuth 2.1 authorization server and bearer-guarded MCP endpoint that puts a
//! homelab agent on the public internet safely.
//!
//! Layout, in reading order (ARCHITECTURE.md has the full map):
//! - `config`: the typed, validated configuration (TOML + `NEXUS_*` env).
//! - `clock`: the time seam.
//! - `store`: SQLite; the only module with SQL.
//! - `secrets`: random tokens, the hashes we store, constant-time comparison.
//! - `oauth`: authorization-server rules: clients, PKCE, codes, grants, JWTs, owner approval.
//! - `cimd_fetch`: fetching a client's metadata document, with the SSRF guards (off by default).
//! - `queue`: the task domain: messages, statuses, dedup, updates, cursors, agents.
//! - `mcp`: the rmcp server and its tools, over `queue`.
//! - `http`: axum routers, the middleware stack, error responses, the bearer guard, `/mcp`
//!   and the agent API.
//! - `transport`: delivery to agents outside the gateway (the Telegram bot).
//! - `upstream`: federated tools of upstream MCP servers (stdio or HTTP), supervised and pinned.
//! - `app`: the composition root (`App::build`, `App::serve`).
//! - `cli`: the command-line declarations; `admin`: what the operator's commands do.
//! - `telemetry`: log output.

pub mod admin;
pub mod app;
pub mod cimd_fetch;
pub mod cli;
pub mod clock;
pub mod config;
pub mod http;
pub mod mcp;
pub mod metrics;
pub mod oauth;
pub mod queue;
pub mod secrets;
pub mod store;
pub mod telemetry;
pub mod transport;
pub mod upstream;
