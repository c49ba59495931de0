//! Client ID Metadata Documents (CIMD, the MCP authorization specification of 2025-11-25): a
//! `client_id` that is an https URL naming a JSON document that describes the client. This
//! module owns telling such ids from registered ones, refusing unsafe ones, checking a document
//! against its URL, the documents the gateway knows without fetching them (claude.ai's and
//! Claude Code's, built in, and those the owner pins in `oauth.cimd_documents`), and the cache
//! of fetched ones. Pinned documents come first and are never fetched: a DMZ host may have no
//! network, and claude.ai's documents often meet a Cloudflare challenge when fetched from a
//! datacenter address. Fetching itself (`crate::cimd_fetch`) is given by the composition root
//! only when `oauth.cimd_fetch` is on; this module never touches the network.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use url::{Host, Url};

use crate::clock::UnixSeconds;
use crate::config::PinnedClientDocument;
use crate::oauth::AuthServer;
use crate::oauth::client::{AuthMethod, check_redirect_uri};
use crate::oauth::client_name::display_name;
use crate::oauth::error::AuthorizeError;
use crate::store::{ClientRecord, NewClient};

/// claude.ai's client (custom connectors).
pub const CLAUDE_AI: &str = "https://claude.ai/oauth/mcp-oauth-client-metadata";
/// Claude Code's client.
pub const CLAUDE_CODE: &str = "https://claude.ai/oauth/claude-code-client-metadata";
/// Longest `client_id` URL considered.
const MAX_CLIENT_ID_LEN: usize = 2048;
/// Most redirect URIs a document may list.
const MAX_REDIRECT_URIS: usize = 10;

/// The documents shipped with the gateway, as their owners publish them.
pub fn built_in_documents() -> Vec<PinnedClientDocument> {
    vec![
        PinnedClientDocument {
            client_id: CLAUDE_AI.into(),
            client_name: "Claude".into(),
            redirect_uris: vec!["https://claude.ai/api/mcp/auth_callback".into()],
        },
        PinnedClientDocument {
            client_id: CLAUDE_CODE.into(),
            client_name: "Claude Code".into(),
            // Loopback redirects: any port matches (RFC 8252 §7.3), as for registered clients.
            redirect_uris: vec![
                "http://localhost/callback".into(),
                "http://127.0.0.1/callback".into(),
            ],
        },
    ]
}

/// A fetched document and how long it may be reused (from the response's cache headers).
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The document as parsed (still to be checked against its URL).
    pub document: PinnedClientDocument,
    /// How long the document may be reused.
    pub max_age: Duration,
}

/// Fetches the document at a URL; the error says why it could not be had.
pub type DocumentFetcher =
    Arc<dyn Fn(Url) -> Pin<Box<dyn Future<Output = Result<Fetched, String>> + Send>> + Send + Sync>;

/// Documents fetched lately, at most this many.
const MAX_CACHED_DOCUMENTS: usize = 256;

/// The fetcher, when fetching is on, and what it fetched lately.
#[derive(Default)]
pub struct FetchedDocuments {
    fetcher: OnceLock<DocumentFetcher>,
    cache: Mutex<HashMap<String, (PinnedClientDocument, Instant)>>,
}

impl FetchedDocuments {
    /// Fetching starts with the first fetcher given; a later one is ignored.
    pub(crate) fn set_fetcher(&self, fetcher: DocumentFetcher) {
        if self.fetcher.set(fetcher).is_err() {
            tracing::warn!("a second document fetcher was ignored");
        }
    }

    /// The document at `url`: cached while its `max_age` lasts, else fetched and checked.
    /// `Ok(None)` when fetching is off.
    async fn get(
        &self,
        url: Url,
        custom_schemes: &[String],
    ) -> Result<Option<PinnedClientDocument>, String> {
        let key = url.as_str().to_owned();
        let now = Instant::now();
        {
            let mut cache = self
                .cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            cache.retain(|_, (_, expires)| *expires > now);
            if let Some((document, _)) = cache.get(&key) {
                return Ok(Some(document.clone()));
            }
        }
        let Some(fetcher) = self.fetcher.get() else {
            return Ok(None);
        };
        let fetched = fetcher(url).await?;
        check_document(&key, &fetched.document, custom_schemes)?;
        if !fetched.max_age.is_zero() {
            let mut cache = self
                .cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if cache.len() < MAX_CACHED_DOCUMENTS {
                cache.insert(key, (fetched.document.clone(), now + fetched.max_age));
            }
        }
        Ok(Some(fetched.document))
    }
}

/// Whether `client_id` claims to be a metadata document's URL. Registered clients' ids are
/// `c_` and base64url, which never contain a colon.
pub fn is_document_client_id(client_id: &str) -> bool {
    client_id.contains(':')
}

/// Refuses a `client_id` URL the gateway would not trust: anything but https, credentials, a
/// fragment, no path, an IP address, a name that can only be internal, or a URL not written in
/// its one canonical form (dot segments, an upper-case host, a default port), which would let
/// two spellings name one client.
pub fn check_client_id(client_id: &str) -> Result<Url, &'static str> {
    if client_id.len() > MAX_CLIENT_ID_LEN {
        return Err("the client_id URL is too long");
    }
    let url = Url::parse(client_id).map_err(|_| "the client_id is neither registered nor a URL")?;
    if url.scheme() != "https" {
        return Err("a client_id URL must use https");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("a client_id URL must not contain credentials");
    }
    if url.fragment().is_some() || client_id.contains('#') {
        return Err("a client_id URL must not contain a fragment");
    }
    match url.host() {
        Some(Host::Domain(name)) => {
            let name = name.trim_end_matches('.');
            let internal = !name.contains('.')
                || [".localhost", ".local", ".internal", ".home.arpa", ".lan"]
                    .iter()
                    .any(|suffix| name.ends_with(suffix));
            if internal {
                return Err("a client_id URL must name a public host");
            }
        }
        Some(Host::Ipv4(_) | Host::Ipv6(_)) => {
            return Err("a client_id URL must name a host, not an IP address");
        }
        None => return Err("a client_id URL must name a host"),
    }
    if url.path() == "/" {
        return Err("a client_id URL must have a path");
    }
    if url.as_str() != client_id {
        return Err("a client_id URL must be written in its canonical form");
    }
    Ok(url)
}

/// Checks a document against the URL it was found at: valid JSON is the caller's part; here,
/// the `client_id` equal to the URL exactly, a name, and redirect URIs the registration rules
/// accept.
pub fn check_document(
    url: &str,
    document: &PinnedClientDocument,
    custom_schemes: &[String],
) -> Result<(), &'static str> {
    check_client_id(url)?;
    if document.client_id != url {
        return Err("the document's client_id is not the URL it describes");
    }
    if document.client_name.trim().is_empty() {
        return Err("the document has no client_name");
    }
    if document.redirect_uris.is_empty() {
        return Err("the document lists no redirect_uris");
    }
    if document.redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err("the document lists too many redirect_uris (at most 10)");
    }
    for uri in &document.redirect_uris {
        check_redirect_uri(uri, custom_schemes)?;
    }
    Ok(())
}

/// The host that published the document naming `client_id`, for the consent page; `None` for
/// a registered client.
pub fn document_host(client_id: &str) -> Option<String> {
    if !is_document_client_id(client_id) {
        return None;
    }
    Url::parse(client_id)
        .ok()
        .and_then(|url| url.host_str().map(str::to_owned))
}

impl AuthServer {
    /// The client `/authorize` is asked about: a registered one from the store, or one named
    /// by a metadata document the gateway knows, stored (or brought up to date) on the way so
    /// that `/token`, `clients list` and `clients revoke` treat it as any other client.
    pub(crate) async fn client_for_authorization(
        &self,
        client_id: &str,
    ) -> Result<ClientRecord, AuthorizeError> {
        if !is_document_client_id(client_id) {
            return self
                .store()
                .find_client(client_id)
                .await?
                .ok_or(AuthorizeError::Page(
                    "this application is not registered with the gateway (unknown client_id)",
                ));
        }
        let url = check_client_id(client_id).map_err(AuthorizeError::Page)?;
        let pinned = self
            .settings()
            .client_documents
            .iter()
            .find(|document| document.client_id == client_id)
            .cloned();
        let document = match pinned {
            Some(document) => document,
            None => {
                let settings = self.settings();
                let fetched = self
                    .inner
                    .fetched_documents
                    .get(url, &settings.custom_redirect_schemes)
                    .await;
                match fetched {
                    Ok(Some(document)) => document,
                    Ok(None) => {
                        return Err(AuthorizeError::Page(
                            "this application identifies itself by a metadata document this gateway does not know; the owner can pin it in oauth.cimd_documents",
                        ));
                    }
                    Err(reason) => {
                        tracing::warn!(client_id, reason = %reason, "client metadata document refused");
                        return Err(AuthorizeError::Page(
                            "this application's metadata document could not be fetched or is not valid; the log says why",
                        ));
                    }
                }
            }
        };
        self.store()
            .upsert_document_client(&document_client(&document, self.now()))
            .await?;
        self.store()
            .find_client(client_id)
            .await?
            .ok_or(AuthorizeError::Page(
                "this application's record was removed meanwhile; try again",
            ))
    }
}

/// The stored form of a document's client: public (`none`), named by the document.
fn document_client(document: &PinnedClientDocument, now: UnixSeconds) -> NewClient {
    NewClient {
        id: document.client_id.clone(),
        secret_hash: None,
        name: display_name(&document.client_name),
        redirect_uris: document.redirect_uris.clone(),
        auth_method: AuthMethod::None.as_str().to_owned(),
        metadata: serde_json::json!({
            "client_id_metadata_document": document.client_id,
            "client_name": document.client_name,
            "redirect_uris": document.redirect_uris,
        }),
        created_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_ids_are_not_document_ids() {
        assert!(!is_document_client_id("c_9YJy52UV8jKVSrZ7XwSP9g"));
        assert!(is_document_client_id(CLAUDE_AI));
        assert!(is_document_client_id("http://example.com/client"));
    }

    #[test]
    fn unsafe_client_ids_are_refused_with_the_reason() {
        for (client_id, reason) in [
            ("http://example.com/client", "https"),
            ("https://user:pw@example.com/client", "credentials"),
            ("https://example.com/client#x", "fragment"),
            ("https://example.com/client#", "fragment"),
            ("https://example.com/", "path"),
            ("https://example.com", "path"),
            ("https://127.0.0.1/client", "IP address"),
            ("https://10.0.0.8/client", "IP address"),
            ("https://[::1]/client", "IP address"),
            ("https://0x7f.1/client", "IP address"),
            ("https://localhost/client", "public host"),
            ("https://nas.local/client", "public host"),
            ("https://intranet/client", "public host"),
            ("https://printer.home.arpa/client", "public host"),
            ("https://Example.com/client", "canonical"),
            ("https://example.com/a/../client", "canonical"),
            ("https://example.com:443/client", "canonical"),
            ("javascript:alert(1)", "https"),
        ] {
            let refusal = check_client_id(client_id).expect_err(client_id);
            assert!(
                refusal.contains(reason),
                "{client_id}: {refusal} (expected {reason})"
            );
        }
        assert!(check_client_id(CLAUDE_AI).is_ok());
        assert!(check_client_id("https://app.example.com/oauth/client.json?v=2").is_ok());
    }

    #[test]
    fn the_built_in_documents_pass_their_own_checks() {
        for document in built_in_documents() {
            check_document(&document.client_id, &document, &[]).expect("built in");
        }
    }

    #[test]
    fn a_document_must_describe_its_own_url() {
        let mut document = built_in_documents().remove(0);
        document.client_id = "https://evil.example/claude".into();
        assert_eq!(
            check_document(CLAUDE_AI, &document, &[]),
            Err("the document's client_id is not the URL it describes")
        );
        let mut nameless = built_in_documents().remove(0);
        nameless.client_name = " ".into();
        assert!(check_document(CLAUDE_AI, &nameless, &[]).is_err());
        let mut no_redirects = built_in_documents().remove(0);
        no_redirects.redirect_uris.clear();
        assert!(check_document(CLAUDE_AI, &no_redirects, &[]).is_err());
        let mut plain_http = built_in_documents().remove(0);
        plain_http.redirect_uris = vec!["http://claude.ai/cb".into()];
        assert!(check_document(CLAUDE_AI, &plain_http, &[]).is_err());
    }
}
