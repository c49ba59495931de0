//! Opaque secrets: generation (256 bits from the OS-seeded CSPRNG), the SHA-256 hashes we
//! store instead of them, and constant-time comparison.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A new random secret: 32 bytes, base64url without padding (43 characters).
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// A new random identifier with a readable prefix, such as `c_...` for clients.
pub fn random_id(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
    )
}

/// The stored form of a secret: base64url(SHA-256(secret)).
pub fn hash_secret(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
}

/// SHA-256 of `parts` joined with NUL separators, base64url; for derived values such as
/// CSRF tokens, where the domain string keeps derivations apart.
pub fn derive(domain: &str, parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(domain.as_bytes());
    for part in parts {
        hasher.update([0u8]);
        hasher.update(part.as_bytes());
    }
    URL_SAFE_NO_PAD.encode(hasher.finalize())
}

/// A secret value held in memory (a token, a client secret, a session or CSRF token). Its
/// `Debug` never shows it, so `{:?}` of any struct holding one (up to `AppState`) is safe to
/// log; the value is reached only through `expose`. Serialises as the plain string, for the
/// answers that must carry it.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that must send or compare it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Secret([redacted])")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

/// Compares two secrets without leaking where they differ.
pub fn constant_time_eq(left: &str, right: &str) -> bool {
    left.as_bytes().ct_eq(right.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_shows_in_debug_but_serialises_as_itself() {
        let secret = Secret::new("hunter2-token");
        assert_eq!(format!("{secret:?}"), "Secret([redacted])");
        assert_eq!(
            format!("{:?}", Some(secret.clone())),
            "Some(Secret([redacted]))"
        );
        assert_eq!(secret.expose(), "hunter2-token");
        assert_eq!(
            serde_json::to_string(&secret).ok().as_deref(),
            Some("\"hunter2-token\"")
        );
    }

    #[test]
    fn tokens_are_long_random_and_url_safe() {
        let first = random_token();
        assert_eq!(first.len(), 43);
        assert_ne!(first, random_token());
        assert!(
            first
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn hashes_and_comparisons() {
        assert_eq!(hash_secret("a"), hash_secret("a"));
        assert_ne!(hash_secret("a"), hash_secret("b"));
        assert!(constant_time_eq("same", "same"));
        assert!(!constant_time_eq("same", "sane"));
        assert!(!constant_time_eq("same", "same-but-longer"));
        assert_ne!(derive("x", &["a", "b"]), derive("x", &["ab"]));
    }
}
