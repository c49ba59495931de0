//! The integration suite: one binary (each extra test binary is another slow link). Every test
//! talks to a real gateway on 127.0.0.1:0 with its own SQLite file.

// Test code fails loudly on purpose: a panic with a message is the report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod agent_api;
mod browser;
mod cimd;
mod cimd_fetch;
mod cli;
mod clients;
mod crash;
mod dmz;
mod fake_telegram;
mod federation;
mod federation_claims;
mod federation_ops;
mod federation_queued;
mod federation_real;
mod log_capture;
mod mcp_direct;
mod mcp_limits;
mod mcp_tools;
mod migrate_store;
mod nasty_inputs;
mod oauth_flow;
mod oauth_rejections;
mod operations;
mod owner_approval;
mod owner_login;
mod refresh_grace;
mod replicas;
mod replicas_failover;
mod restart;
mod serve_process;
mod slow_clients;
mod support;
mod telegram;
mod tidy;
