//! Every endpoint path, in one place: the routers and the metadata documents both read these,
//! so what we advertise is always what we serve. External clients depend on them.

/// The MCP endpoint (exactly this path; no trailing-slash variant).
pub const MCP: &str = "/mcp";
/// RFC 9728 protected-resource metadata, path-inserted form for `/mcp` (§3.1).
pub const PROTECTED_RESOURCE_METADATA_MCP: &str = "/.well-known/oauth-protected-resource/mcp";
/// RFC 9728 protected-resource metadata at the root, for clients that look there.
pub const PROTECTED_RESOURCE_METADATA: &str = "/.well-known/oauth-protected-resource";
/// RFC 8414 authorization-server metadata.
pub const AUTHORIZATION_SERVER_METADATA: &str = "/.well-known/oauth-authorization-server";
/// The same document for clients that insert the MCP path.
pub const AUTHORIZATION_SERVER_METADATA_MCP: &str = "/.well-known/oauth-authorization-server/mcp";
/// The published signing keys.
pub const JWKS: &str = "/.well-known/jwks.json";
/// RFC 7591 dynamic client registration.
pub const REGISTER: &str = "/register";
/// The authorization endpoint.
pub const AUTHORIZE: &str = "/authorize";
/// The owner login form's target.
pub const AUTHORIZE_LOGIN: &str = "/authorize/login";
/// The consent page, shown after login.
pub const AUTHORIZE_CONSENT: &str = "/authorize/consent";
/// The consent form's target.
pub const AUTHORIZE_DECISION: &str = "/authorize/decision";
/// The token endpoint.
pub const TOKEN: &str = "/token";
/// RFC 7009 revocation.
pub const REVOKE: &str = "/revoke";
/// Stylesheet of the owner's pages.
pub const STYLESHEET: &str = "/assets/nexus.css";
/// The agent API: claim the next task (long poll).
pub const AGENT_NEXT_TASK: &str = "/agent/v1/tasks/next";
/// The agent API: read one task.
pub const AGENT_TASK: &str = "/agent/v1/tasks/{id}";
/// The agent API: post an update or status change.
pub const AGENT_TASK_UPDATES: &str = "/agent/v1/tasks/{id}/updates";
/// Prometheus metrics (internal listener only).
pub const METRICS: &str = "/metrics";
/// The upstreams' live state, for `upstreams list` (internal listener only).
pub const UPSTREAMS: &str = "/upstreams";
/// Liveness: the process answers.
pub const HEALTHZ: &str = "/healthz";
/// Readiness: the store answers and a key is loaded.
pub const READYZ: &str = "/readyz";

/// Telegram's webhook calls for one target.
pub const TELEGRAM_WEBHOOK: &str = "/telegram/webhook/{target}";

/// The webhook path of `target`.
pub fn telegram_webhook(target: &str) -> String {
    TELEGRAM_WEBHOOK.replace("{target}", target)
}

/// Asks the owner to approve in Telegram instead of logging in here.
pub const AUTHORIZE_TELEGRAM: &str = "/authorize/telegram";
/// The page that waits for the owner's answer in Telegram.
pub const AUTHORIZE_TELEGRAM_WAIT: &str = "/authorize/telegram/wait";
