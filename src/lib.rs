//! nexus-gateway: an OAuth 2.1 authorization server and bearer-guarded MCP endpoint that puts a
//! homelab agent on the public internet safely.
//!
//! Layout, in reading order (ARCHITECTURE.md has the full map):
//! - `config`: the typed, validated configuration (TOML + `NEXUS_*` env).
//! - `clock`: the time seam.
//! - `store`: SQLite; the only module with SQL.
//! - `oauth`: authorization-server rules: clients, PKCE, codes, grants, JWTs, owner approval.
//! - `http`: axum routers, the middleware stack, error responses, the bearer guard.
//! - `app`: the composition root (`App::build`, `App::serve`).
//! - `cli`: the command-line declarations; `admin`: what the operator's commands do.
//! - `telemetry`: log output.

pub mod admin;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod http;
pub mod oauth;
pub mod store;
pub mod telemetry;
