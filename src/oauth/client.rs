//! Client metadata rules (RFC 7591 §2): which redirect URIs may be registered, and how a
//! requested redirect URI matches a registered one (exactly; loopback ports excepted,
//! RFC 8252 §7.3).

use std::net::IpAddr;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use url::{Host, Url};

use crate::oauth::client_name::display_name;

/// Longest redirect URI accepted. Real clients' callbacks are short; registration is open and
/// unauthenticated, so what a stranger can make us store is bounded.
const MAX_REDIRECT_URI_LEN: usize = 512;
/// Most redirect URIs one client may register (VS Code, the most, registers two).
const MAX_REDIRECT_URIS: usize = 5;
/// Longest free-text metadata value accepted.
const MAX_TEXT_LEN: usize = 512;
/// Most contacts one client may list.
const MAX_CONTACTS: usize = 5;
/// The most optional metadata (URIs, contacts, software ids) one client may store, in bytes.
const MAX_OPTIONAL_METADATA_BYTES: usize = 2048;

/// How a client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// A public client: PKCE is its only proof.
    None,
    /// `client_secret` in the form body.
    ClientSecretPost,
    /// HTTP Basic with the client id and secret.
    ClientSecretBasic,
}

impl AuthMethod {
    /// Every method, as advertised in metadata.
    pub const ALL: [AuthMethod; 3] = [
        AuthMethod::None,
        AuthMethod::ClientSecretPost,
        AuthMethod::ClientSecretBasic,
    ];

    /// The method as spelled in RFC 7591.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::ClientSecretBasic => "client_secret_basic",
        }
    }

    /// Parses a stored or requested method.
    pub fn parse(text: &str) -> Option<Self> {
        AuthMethod::ALL
            .into_iter()
            .find(|method| method.as_str() == text)
    }

    /// Whether the client holds a secret.
    pub fn has_secret(self) -> bool {
        self != AuthMethod::None
    }
}

/// A registration request body (RFC 7591 §2). Unknown members are ignored, as §2 requires.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RegistrationRequest {
    redirect_uris: Option<Vec<String>>,
    token_endpoint_auth_method: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    client_name: Option<String>,
    client_uri: Option<String>,
    logo_uri: Option<String>,
    tos_uri: Option<String>,
    policy_uri: Option<String>,
    scope: Option<String>,
    contacts: Option<Vec<String>>,
    software_id: Option<String>,
    software_version: Option<String>,
    application_type: Option<String>,
}

/// A registration that passed every rule, ready to store.
#[derive(Debug, Clone)]
pub struct ValidatedRegistration {
    /// The display name.
    pub name: String,
    /// The exact redirect URIs.
    pub redirect_uris: Vec<String>,
    /// The token endpoint authentication method.
    pub auth_method: AuthMethod,
    /// Every registered member, as it will be echoed (without id and secret).
    pub metadata: Map<String, Value>,
}

/// A rejected registration: which RFC 7591 error, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationRejection {
    /// `invalid_redirect_uri`.
    RedirectUri(&'static str),
    /// `invalid_client_metadata`.
    Metadata(&'static str),
}

impl RegistrationRequest {
    /// Applies the registration rules; `custom_schemes` are the operator's extra schemes.
    pub fn validate(
        self,
        custom_schemes: &[String],
    ) -> Result<ValidatedRegistration, RegistrationRejection> {
        use RegistrationRejection::{Metadata, RedirectUri};

        let redirect_uris = self.redirect_uris.unwrap_or_default();
        if redirect_uris.is_empty() {
            return Err(RedirectUri("redirect_uris must list at least one URI"));
        }
        if redirect_uris.len() > MAX_REDIRECT_URIS {
            return Err(RedirectUri("too many redirect_uris (at most 5)"));
        }
        for uri in &redirect_uris {
            check_redirect_uri(uri, custom_schemes).map_err(RedirectUri)?;
        }

        // RFC 7591 §2: the default method is client_secret_basic.
        let auth_method = match self.token_endpoint_auth_method.as_deref() {
            None => AuthMethod::ClientSecretBasic,
            Some(text) => AuthMethod::parse(text).ok_or(Metadata(
                "token_endpoint_auth_method must be none, client_secret_post or client_secret_basic",
            ))?,
        };
        let response_types = self.response_types.unwrap_or_else(|| vec!["code".into()]);
        if response_types.iter().any(|kind| kind != "code") {
            return Err(Metadata("only the `code` response type is supported"));
        }
        let mut grant_types = self
            .grant_types
            .unwrap_or_else(|| vec!["authorization_code".into()]);
        if grant_types
            .iter()
            .any(|grant| grant != "authorization_code" && grant != "refresh_token")
        {
            return Err(Metadata(
                "only the authorization_code and refresh_token grant types are supported",
            ));
        }
        if !grant_types
            .iter()
            .any(|grant| grant == "authorization_code")
        {
            return Err(Metadata("grant_types must include authorization_code"));
        }
        // Every client gets refresh tokens (claude.ai never asks); say so in what we echo.
        if !grant_types.iter().any(|grant| grant == "refresh_token") {
            grant_types.push("refresh_token".into());
        }

        let name = display_name(self.client_name.as_deref().unwrap_or_default());
        if name.chars().count() > 200 {
            return Err(Metadata("client_name is too long (at most 200 characters)"));
        }
        let mut metadata = Map::new();
        metadata.insert("redirect_uris".into(), json!(redirect_uris));
        metadata.insert(
            "token_endpoint_auth_method".into(),
            json!(auth_method.as_str()),
        );
        metadata.insert("grant_types".into(), json!(grant_types));
        metadata.insert("response_types".into(), json!(response_types));
        metadata.insert("client_name".into(), json!(name));
        let optional_text = [
            ("client_uri", self.client_uri),
            ("logo_uri", self.logo_uri),
            ("tos_uri", self.tos_uri),
            ("policy_uri", self.policy_uri),
            ("scope", self.scope),
            ("software_id", self.software_id),
            ("software_version", self.software_version),
            ("application_type", self.application_type),
        ];
        let mut optional_bytes = 0;
        for (key, value) in optional_text {
            if let Some(value) = value {
                if value.len() > MAX_TEXT_LEN {
                    return Err(Metadata("a metadata value is too long"));
                }
                optional_bytes += value.len();
                metadata.insert(key.into(), json!(value));
            }
        }
        if let Some(contacts) = self.contacts {
            if contacts.len() > MAX_CONTACTS
                || contacts.iter().any(|contact| contact.len() > MAX_TEXT_LEN)
            {
                return Err(Metadata("contacts is too long"));
            }
            optional_bytes += contacts.iter().map(String::len).sum::<usize>();
            metadata.insert("contacts".into(), json!(contacts));
        }
        if optional_bytes > MAX_OPTIONAL_METADATA_BYTES {
            return Err(Metadata(
                "the optional metadata is too large (at most 2048 bytes in all)",
            ));
        }
        Ok(ValidatedRegistration {
            name,
            redirect_uris,
            auth_method,
            metadata,
        })
    }
}

/// Checks one redirect URI against the registration policy.
pub fn check_redirect_uri(uri: &str, custom_schemes: &[String]) -> Result<(), &'static str> {
    if uri.len() > MAX_REDIRECT_URI_LEN {
        return Err("a redirect URI is too long");
    }
    let url = Url::parse(uri).map_err(|_| "a redirect URI is not an absolute URI")?;
    // Fragments are forbidden by RFC 6749 §3.1.2; `Url` drops an empty `#`, so look at the text.
    if url.fragment().is_some() || uri.contains('#') {
        return Err("a redirect URI must not contain a fragment");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("a redirect URI must not contain credentials");
    }
    match url.scheme() {
        "https" => {
            if url.host().is_none() {
                return Err("an https redirect URI must name a host");
            }
            Ok(())
        }
        "http" => {
            if url.host().as_ref().is_some_and(is_loopback_host) {
                Ok(())
            } else {
                Err(
                    "http redirect URIs are allowed only for loopback hosts (RFC 8252 §7.3); use https",
                )
            }
        }
        "javascript" | "data" | "file" | "vbscript" | "blob" | "about" | "ftp" | "ws" | "wss" => {
            Err("a redirect URI uses a forbidden scheme")
        }
        scheme => {
            if custom_schemes
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(scheme))
            {
                Ok(())
            } else {
                Err(
                    "a redirect URI uses a custom scheme this gateway does not accept (see oauth.custom_redirect_schemes)",
                )
            }
        }
    }
}

/// Whether a requested redirect URI matches a registered one: byte for byte, except that a
/// loopback `http` URI may use any port (RFC 8252 §7.3).
pub fn redirect_uri_matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    let (Ok(registered), Ok(requested)) = (Url::parse(registered), Url::parse(requested)) else {
        return false;
    };
    registered.scheme() == "http"
        && requested.scheme() == "http"
        && registered.host().as_ref().is_some_and(is_loopback_host)
        && registered.host() == requested.host()
        && registered.path() == requested.path()
        && registered.query() == requested.query()
        && registered.fragment().is_none()
        && requested.fragment().is_none()
}

/// Where the code will go, for the consent page, the login page and the Telegram prompt: the
/// host of an `http(s)` redirect URI. A custom scheme is handed to whichever app on the device
/// claimed it, so the "host" in `cursor://claude.ai/cb` is only text the client chose; showing
/// it would vouch for a site that never sees the code. Such a URI is named by its scheme.
pub fn redirect_host(uri: &str) -> String {
    match Url::parse(uri) {
        Ok(url) => match (url.scheme(), url.host_str()) {
            ("http" | "https", Some(host)) => host.to_owned(),
            (scheme, _) => format!("the app that opens {scheme}: links"),
        },
        Err(_) => "an unknown place".into(),
    }
}

fn is_loopback_host(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(address) => IpAddr::V4(*address).is_loopback(),
        Host::Ipv6(address) => IpAddr::V6(*address).is_loopback(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(uri: &str, accepted: bool) {
        let custom = vec!["cursor".to_owned()];
        assert_eq!(check_redirect_uri(uri, &custom).is_ok(), accepted, "{uri}");
    }

    #[test]
    fn redirect_uri_policy() {
        check("https://claude.ai/api/mcp/auth_callback", true);
        check("https://claude.ai/cb?x=1", true);
        check("http://localhost:6274/oauth/callback", true);
        check("http://127.0.0.1/callback", true);
        check("http://[::1]:9/callback", true);
        check("cursor://anysphere.cursor-mcp/oauth/callback", true);
        check("http://evil.example/callback", false);
        check("http://localhost.evil.example/cb", false);
        check("https://claude.ai/cb#frag", false);
        check("https://claude.ai/cb#", false);
        check("javascript:alert(1)", false);
        check("data:text/html,hi", false);
        check("myapp://callback", false);
        check("/relative", false);
        check("https://user:pw@claude.ai/cb", false);
    }

    #[test]
    fn redirect_matching_is_exact_except_loopback_ports() {
        assert!(redirect_uri_matches(
            "https://a.example/cb",
            "https://a.example/cb"
        ));
        assert!(!redirect_uri_matches(
            "https://a.example/cb",
            "https://a.example/cb/"
        ));
        assert!(!redirect_uri_matches(
            "https://a.example/cb",
            "https://a.example:8443/cb"
        ));
        assert!(!redirect_uri_matches(
            "https://a.example/cb",
            "https://A.example/cb?x"
        ));
        assert!(redirect_uri_matches(
            "http://127.0.0.1/callback",
            "http://127.0.0.1:53100/callback"
        ));
        assert!(redirect_uri_matches(
            "http://localhost:1/cb",
            "http://localhost:2/cb"
        ));
        assert!(!redirect_uri_matches(
            "http://localhost:1/cb",
            "http://127.0.0.1:2/cb"
        ));
        assert!(!redirect_uri_matches(
            "http://localhost:1/cb",
            "http://localhost:2/other"
        ));
    }

    #[test]
    fn redirect_host_names_only_what_the_uri_proves() {
        assert_eq!(
            redirect_host("https://claude.ai/api/mcp/auth_callback"),
            "claude.ai"
        );
        assert_eq!(redirect_host("http://127.0.0.1:3000/cb"), "127.0.0.1");
        // A custom scheme goes to whichever app claimed it; the "host" is just text.
        assert_eq!(
            redirect_host("cursor://claude.ai/cb"),
            "the app that opens cursor: links"
        );
        assert_eq!(
            redirect_host("com.example.app:/oauth"),
            "the app that opens com.example.app: links"
        );
        assert_eq!(redirect_host("not a uri"), "an unknown place");
    }

    #[test]
    fn registration_defaults_and_rejections() {
        let request: RegistrationRequest =
            serde_json::from_value(json!({"redirect_uris": ["https://claude.ai/api/mcp/auth_callback"], "client_name": " Claude\u{7}\u{202E}"}))
                .expect("valid json");
        let validated = request.validate(&[]).expect("valid registration");
        assert_eq!(validated.name, "Claude");
        assert_eq!(validated.auth_method, AuthMethod::ClientSecretBasic);
        assert_eq!(
            validated.metadata["grant_types"],
            json!(["authorization_code", "refresh_token"])
        );

        let reject = |body: Value| {
            serde_json::from_value::<RegistrationRequest>(body)
                .expect("json")
                .validate(&[])
                .err()
        };
        assert!(matches!(
            reject(json!({})),
            Some(RegistrationRejection::RedirectUri(_))
        ));
        assert!(matches!(
            reject(
                json!({"redirect_uris": ["https://a/cb"], "grant_types": ["client_credentials"]})
            ),
            Some(RegistrationRejection::Metadata(_))
        ));
        assert!(matches!(
            reject(
                json!({"redirect_uris": ["https://a/cb"], "token_endpoint_auth_method": "private_key_jwt"})
            ),
            Some(RegistrationRejection::Metadata(_))
        ));
        assert!(matches!(
            reject(json!({"redirect_uris": ["https://a/cb"], "response_types": ["token"]})),
            Some(RegistrationRejection::Metadata(_))
        ));
    }
}
