//! The owner: the passphrase (argon2id, hashed off the async runtime), generated passphrases,
//! login sessions and remembered browsers, and the CSRF token of the consent form, which is
//! bound to the owner's session so a request id alone cannot be approved from another site.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::oauth::OwnerSession;
use crate::secrets;

/// The alphabet of generated passphrases: no look-alike characters.
const PASSPHRASE_ALPHABET: &[u8; 32] = b"abcdefghjkmnpqrstuvwxyz23456789-";

/// Hashes a passphrase with argon2id and a random salt, as a PHC string.
pub async fn hash_passphrase(passphrase: String) -> Result<String, String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(passphrase.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|error| error.to_string())
    })
    .await
    .map_err(|error| error.to_string())?
}

/// Checks a passphrase against a stored PHC string (constant time inside argon2).
pub async fn verify_passphrase(passphrase: String, stored_hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .verify_password(passphrase.as_bytes(), stored_hash.as_str())
            .is_ok()
    })
    .await
    .unwrap_or(false)
}

/// A new random passphrase: six groups of five characters, about 150 bits.
pub fn generate_passphrase() -> String {
    let bytes = rand::random::<[u8; 30]>();
    let characters: Vec<char> = bytes
        .iter()
        .map(|byte| char::from(PASSPHRASE_ALPHABET[usize::from(byte % 31)]))
        .collect();
    characters
        .chunks(5)
        .map(|group| group.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// The consent form's CSRF token for one session and one authorization request.
pub fn consent_csrf_token(session_token: &str, request_id: &str) -> String {
    secrets::derive(
        "nexus-gateway consent csrf v1",
        &[session_token, request_id],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passphrases_hash_and_verify() {
        let passphrase = generate_passphrase();
        assert_eq!(passphrase.len(), 35);
        let hash = hash_passphrase(passphrase.clone()).await.expect("hashes");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_passphrase(passphrase, hash.clone()).await);
        assert!(!verify_passphrase("wrong".into(), hash.clone()).await);
        assert!(!verify_passphrase("x".into(), "not a hash".into()).await);
    }

    #[test]
    fn csrf_tokens_are_bound_to_session_and_request() {
        assert_eq!(consent_csrf_token("s", "r"), consent_csrf_token("s", "r"));
        assert_ne!(consent_csrf_token("s", "r"), consent_csrf_token("s2", "r"));
        assert_ne!(consent_csrf_token("s", "r"), consent_csrf_token("s", "r2"));
    }
}

/// The shortest passphrase the owner may set.
pub const MIN_PASSPHRASE_CHARS: usize = 12;

/// How long a browser the owner logged in from is remembered.
const DEVICE_SECONDS: i64 = 90 * 24 * 3600;

impl crate::oauth::AuthServer {
    /// Checks the owner's passphrase and opens a session; `None` when it is wrong.
    pub async fn log_in_owner(
        &self,
        passphrase: &str,
    ) -> Result<Option<OwnerSession>, crate::oauth::error::AuthorizeError> {
        let Some(stored) = self.store().owner_password_hash().await? else {
            return Ok(None);
        };
        let Ok(_permit) = self.passphrase_checks().acquire().await else {
            return Ok(None);
        };
        if !verify_passphrase(passphrase.to_owned(), stored).await {
            return Ok(None);
        }
        let token = secrets::random_token();
        let now = self.now();
        let max_age = self.settings().owner_session_ttl;
        self.store()
            .insert_owner_session(&secrets::hash_secret(&token), now, now + max_age)
            .await?;
        tracing::info!("owner logged in");
        Ok(Some(OwnerSession {
            token: secrets::Secret::new(token),
            max_age,
        }))
    }

    /// Whether an owner session cookie is live.
    pub async fn owner_session_is_live(
        &self,
        session_token: &str,
    ) -> Result<bool, crate::oauth::error::AuthorizeError> {
        Ok(self
            .store()
            .owner_session_is_live(&secrets::hash_secret(session_token), self.now())
            .await?)
    }

    /// The consent form's CSRF token for this session and request.
    pub fn consent_csrf(&self, session_token: &str, request_id: &str) -> String {
        consent_csrf_token(session_token, request_id)
    }

    /// Remembers this browser as one the owner logs in from; returns the device cookie value
    /// and its lifetime in seconds. Remembered browsers skip the global login budget.
    pub async fn remember_owner_device(
        &self,
    ) -> Result<(String, i64), crate::oauth::error::AuthorizeError> {
        let token = secrets::random_token();
        let now = self.now();
        self.store()
            .insert_owner_device(&secrets::hash_secret(&token), now, now + DEVICE_SECONDS)
            .await?;
        Ok((token, DEVICE_SECONDS))
    }

    /// Whether a device cookie belongs to a browser the owner logged in from.
    pub async fn is_owner_device(
        &self,
        device_token: &str,
    ) -> Result<bool, crate::oauth::error::AuthorizeError> {
        Ok(self
            .store()
            .owner_device_is_known(&secrets::hash_secret(device_token), self.now())
            .await?)
    }

    /// Ends an owner session: each consent decision needs a fresh login, so one click lured
    /// from another site cannot approve a second request with a session still open.
    pub async fn end_owner_session(
        &self,
        session_token: &str,
    ) -> Result<(), crate::oauth::error::AuthorizeError> {
        Ok(self
            .store()
            .delete_owner_session(&secrets::hash_secret(session_token))
            .await?)
    }

    /// Makes sure the owner can log in: when no passphrase is set, generates one, stores its
    /// hash and returns it so the caller can show it once.
    pub async fn ensure_owner_credential(
        &self,
    ) -> Result<Option<String>, crate::oauth::error::OAuthError> {
        use crate::oauth::error::OAuthError;
        if self.store().owner_password_hash().await?.is_some() {
            return Ok(None);
        }
        let passphrase = generate_passphrase();
        let hash = hash_passphrase(passphrase.clone())
            .await
            .map_err(|error| OAuthError::internal(PassphraseError(error)))?;
        // Of replicas starting together on an empty database, one sets the passphrase and
        // shows it; the others find it set and show nothing.
        if !self
            .store()
            .insert_first_owner_password_hash(&hash, self.now())
            .await?
        {
            return Ok(None);
        }
        tracing::info!("owner passphrase set");
        Ok(Some(passphrase))
    }

    /// Sets the owner's passphrase, ending every open owner session.
    pub async fn set_owner_passphrase(
        &self,
        passphrase: &str,
    ) -> Result<(), crate::oauth::error::OAuthError> {
        use crate::oauth::error::{ErrorCode, OAuthError};
        if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
            return Err(OAuthError::rejected(
                ErrorCode::InvalidRequest,
                "the passphrase must have at least 12 characters",
            ));
        }
        let hash = hash_passphrase(passphrase.to_owned())
            .await
            .map_err(|error| OAuthError::internal(PassphraseError(error)))?;
        self.store()
            .set_owner_password_hash(&hash, self.now())
            .await?;
        tracing::info!("owner passphrase set");
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot hash the passphrase: {0}")]
struct PassphraseError(String);
