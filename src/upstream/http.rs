//! Streamable HTTP upstreams: rmcp's client over a reqwest client of our own. It carries only the
//! upstream's configured credential (never a client's token or headers: the MCP specification
//! forbids token passthrough), refuses redirects to another origin, and re-initialises a session
//! the server has forgotten.

use std::time::Duration;

use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

use crate::config::upstreams::UpstreamConfig;

/// Time to establish a connection to an HTTP upstream.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Redirects followed within one origin, at most.
const MAX_REDIRECTS: usize = 5;

/// Asks a running gateway's internal listener for its upstreams' live state (`upstreams
/// list`); `None` when no gateway answers there.
pub async fn fetch_live_state(internal_listen: std::net::SocketAddr) -> Option<serde_json::Value> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .ok()?;
    let response = client
        .get(format!("http://{internal_listen}/upstreams"))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

/// The transport for `config`'s server at `url`.
pub fn transport(
    config: &UpstreamConfig,
    url: &str,
) -> Result<StreamableHttpClientTransport<reqwest::Client>, String> {
    let origin = url::Url::parse(url)
        .map_err(|error| format!("bad url: {error}"))?
        .origin();
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.url().origin() != origin {
            attempt.error("redirect to another origin refused")
        } else if attempt.previous().len() >= MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else {
            attempt.follow()
        }
    });
    let client = reqwest::Client::builder()
        .redirect(policy)
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .map_err(|error| format!("cannot build the HTTP client: {error}"))?;
    let mut transport_config = StreamableHttpClientTransportConfig::with_uri(url.to_owned())
        .reinit_on_expired_session(true);
    if let Some(variable) = &config.bearer_token_env {
        let token = std::env::var(variable).map_err(|_| {
            format!("the environment variable {variable} (bearer_token_env) is not set")
        })?;
        transport_config = transport_config.auth_header(token);
    }
    Ok(StreamableHttpClientTransport::with_client(
        client,
        transport_config,
    ))
}
