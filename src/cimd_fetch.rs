//! Fetching a Client ID Metadata Document that is not pinned (`oauth.cimd_fetch = true`), as
//! an SSRF-safe client must: https only, no redirects, at most 5 KiB within 5 s, and only to
//! public addresses. The address check is made by the client's own resolver on what the name
//! resolves to, which is what the connection then uses: a name that resolves to 10.0.0.1 or
//! 127.0.0.1 is refused, however public it looks. How long a document is reused follows the
//! response's `Cache-Control`, within bounds.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::config::PinnedClientDocument;
use crate::oauth::cimd::{DocumentFetcher, Fetched};

/// Largest document accepted.
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024;
/// Longest a fetch may take, connection included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a document is reused when its response says nothing about caching.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
/// The longest a document is reused, whatever its response says.
const LONGEST_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// What a test may loosen: a certificate authority to trust besides the system's, and names to
/// resolve to fixed (even loopback) addresses. The default configuration never sets either.
#[derive(Debug, Default)]
pub struct FetchPolicy {
    /// Extra trusted roots, PEM.
    pub extra_roots_pem: Vec<Vec<u8>>,
    /// Names answered with these addresses, bypassing the public-address check.
    pub fixed_addresses: Vec<(String, SocketAddr)>,
}

/// The fetcher the authorization server is given when fetching is on.
pub fn fetcher(policy: FetchPolicy) -> Result<DocumentFetcher, String> {
    let mut builder = reqwest::Client::builder()
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(FETCH_TIMEOUT)
        .user_agent(concat!("nexus-gateway/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(PublicAddressesOnly));
    for pem in &policy.extra_roots_pem {
        let root = reqwest::Certificate::from_pem(pem).map_err(|error| error.to_string())?;
        builder = builder.add_root_certificate(root);
    }
    for (name, address) in &policy.fixed_addresses {
        builder = builder.resolve(name, *address);
    }
    let client = builder.build().map_err(|error| error.to_string())?;
    Ok(Arc::new(move |url| {
        let client = client.clone();
        Box::pin(async move { fetch(&client, url).await })
    }))
}

async fn fetch(client: &reqwest::Client, url: url::Url) -> Result<Fetched, String> {
    let mut response = client
        .get(url.as_str())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|error| format!("cannot fetch the document: {}", with_causes(error)))?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(format!(
            "the document's URL answered {} (redirects are not followed)",
            response.status()
        ));
    }
    if response
        .content_length()
        .is_some_and(|length| length > MAX_DOCUMENT_BYTES as u64)
    {
        return Err(format!(
            "the document is larger than {MAX_DOCUMENT_BYTES} bytes"
        ));
    }
    let max_age = max_age(response.headers());
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| format!("cannot read the document: {}", with_causes(error)))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err(format!(
                "the document is larger than {MAX_DOCUMENT_BYTES} bytes"
            ));
        }
    }
    Ok(Fetched {
        document: parse_document(&body)?,
        max_age,
    })
}

/// An error and what caused it, without its URL (the log line names the client already).
fn with_causes(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(&error);
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// The fields the gateway uses, from a document's JSON. Only public clients are accepted.
fn parse_document(body: &[u8]) -> Result<PinnedClientDocument, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| "the document is not valid JSON".to_owned())?;
    let text = |name: &str| value.get(name).and_then(serde_json::Value::as_str);
    if let Some(method) = text("token_endpoint_auth_method")
        && method != "none"
    {
        return Err(format!(
            "the document asks for token_endpoint_auth_method {method}; only public clients (none) are accepted"
        ));
    }
    let redirect_uris = value
        .get("redirect_uris")
        .and_then(serde_json::Value::as_array)
        .map(|uris| {
            uris.iter()
                .map(|uri| uri.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or("the document has no redirect_uris list")?
        .ok_or("the document's redirect_uris are not all strings")?;
    Ok(PinnedClientDocument {
        client_id: text("client_id")
            .ok_or("the document has no client_id")?
            .to_owned(),
        client_name: text("client_name")
            .ok_or("the document has no client_name")?
            .to_owned(),
        redirect_uris,
    })
}

/// How long a response may be reused: `no-store`/`no-cache` not at all, `max-age` within
/// bounds, five minutes when it says nothing.
fn max_age(headers: &reqwest::header::HeaderMap) -> Duration {
    let Some(cache_control) = headers
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|value| value.to_str().ok())
    else {
        return DEFAULT_MAX_AGE;
    };
    let mut max_age = DEFAULT_MAX_AGE;
    for directive in cache_control.split(',').map(str::trim) {
        let lowered = directive.to_ascii_lowercase();
        if lowered == "no-store" || lowered == "no-cache" {
            return Duration::ZERO;
        }
        if let Some(seconds) = lowered.strip_prefix("max-age=") {
            max_age = seconds
                .trim_matches('"')
                .parse()
                .map_or(Duration::ZERO, Duration::from_secs);
        }
    }
    max_age.min(LONGEST_MAX_AGE)
}

/// A resolver that answers only public addresses.
struct PublicAddressesOnly;

impl reqwest::dns::Resolve for PublicAddressesOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((host.as_str(), 443)).await?;
            let public: Vec<SocketAddr> =
                resolved.filter(|address| is_public(address.ip())).collect();
            if public.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether an address is on the public internet: not loopback, private, link-local, shared
/// (CGNAT), unspecified, multicast, broadcast, documentation or unique-local.
pub fn is_public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0)
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8
                || first == 0x0064 && v6.segments()[1] == 0xff9b)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_pass() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "2001:db8::1",
        ] {
            assert!(!is_public(internal.parse().expect(internal)), "{internal}");
        }
        for public in [
            "1.1.1.1",
            "160.79.104.10",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(public.parse().expect(public)), "{public}");
        }
    }

    #[test]
    fn cache_headers_set_the_reuse_within_bounds() {
        let headers = |value: &str| {
            let mut map = reqwest::header::HeaderMap::new();
            map.insert(
                reqwest::header::CACHE_CONTROL,
                value.parse().expect("header"),
            );
            map
        };
        assert_eq!(max_age(&reqwest::header::HeaderMap::new()), DEFAULT_MAX_AGE);
        assert_eq!(
            max_age(&headers("public, max-age=600")),
            Duration::from_secs(600)
        );
        assert_eq!(max_age(&headers("max-age=99999999")), LONGEST_MAX_AGE);
        assert_eq!(max_age(&headers("no-store")), Duration::ZERO);
        assert_eq!(max_age(&headers("max-age=60, no-cache")), Duration::ZERO);
        assert_eq!(max_age(&headers("max-age=soon")), Duration::ZERO);
    }

    #[test]
    fn documents_must_be_public_clients_with_string_redirects() {
        let good = br#"{"client_id":"https://a.example/c","client_name":"A","redirect_uris":["https://a.example/cb"]}"#;
        assert_eq!(parse_document(good).expect("good").client_name, "A");
        for bad in [
            &b"not json"[..],
            br#"{"client_id":"https://a.example/c","client_name":"A"}"#,
            br#"{"client_id":"https://a.example/c","client_name":"A","redirect_uris":[1]}"#,
            br#"{"client_name":"A","redirect_uris":["https://a.example/cb"]}"#,
            br#"{"client_id":"https://a.example/c","client_name":"A","redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"private_key_jwt"}"#,
        ] {
            assert!(parse_document(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
