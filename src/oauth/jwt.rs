//! JWT access tokens (RFC 9068): ES256 signing with persisted keys, the published JWKS, and
//! verification with an algorithm allow-list, `typ`, `iss`, `aud`, `exp` and a small leeway.
//! Expiry is checked against our `Clock`, not the library's, so tests can move time.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::clock::UnixSeconds;
use crate::store::SigningKeyRecord;

/// The only algorithm we sign with or accept.
const ALGORITHM: Algorithm = Algorithm::ES256;
/// The JOSE `typ` of an access token (RFC 9068 §2.1).
const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// Clock skew tolerated on `exp` and `iat`.
pub const LEEWAY_SECONDS: i64 = 30;

/// The claims of our access tokens (RFC 9068 §2.2), plus `gid`, the grant they came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer: our public origin.
    pub iss: String,
    /// The resource owner.
    pub sub: String,
    /// Audience: the MCP endpoint's canonical URL.
    pub aud: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// Granted scope, space-separated.
    pub scope: String,
    /// Issued at.
    pub iat: i64,
    /// Expiry.
    pub exp: i64,
    /// Unique token id, used for revocation.
    pub jti: String,
    /// The grant the token belongs to; revoking the grant kills the token.
    pub gid: String,
}

/// Why a presented token was refused. Logged at debug; clients only learn `invalid_token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    /// Not a JWT, or its header or claims do not parse.
    #[error("malformed token")]
    Malformed,
    /// Signed with an algorithm we do not accept (`none`, HS256, ...).
    #[error("algorithm not allowed")]
    Algorithm,
    /// Not an access token (`typ` is not `at+jwt`).
    #[error("wrong token type")]
    Type,
    /// Signed by a key we do not hold.
    #[error("unknown signing key")]
    UnknownKey,
    /// Bad signature, issuer or audience.
    #[error("signature, issuer or audience invalid")]
    Invalid,
    /// Past its expiry, or issued in the future.
    #[error("expired")]
    Expired,
    /// Revoked, or its grant was.
    #[error("revoked")]
    Revoked,
}

/// A key-generation or key-loading failure.
#[derive(Debug, thiserror::Error)]
#[error("signing key error: {0}")]
pub struct KeyError(String);

/// A loaded signing key.
struct LoadedKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    public_jwk: Jwk,
}

/// The keys in use: the newest signs; all of them verify and are published.
#[derive(Clone)]
pub struct KeyRing {
    signing: Arc<LoadedKey>,
    by_kid: HashMap<String, Arc<LoadedKey>>,
    published: Arc<JwkSet>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("KeyRing")
            .field("signing_kid", &self.signing.kid)
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Loads keys from the store's records (newest first; the first unretired one signs).
    pub fn from_records(records: &[SigningKeyRecord]) -> Result<Option<Self>, KeyError> {
        let mut loaded = Vec::new();
        for record in records {
            if record.alg != "ES256" {
                return Err(KeyError(format!(
                    "key {} uses unsupported algorithm {}",
                    record.kid, record.alg
                )));
            }
            loaded.push((record.retired_at.is_none(), Arc::new(load_key(record)?)));
        }
        let Some(signing) = loaded
            .iter()
            .find(|(current, _)| *current)
            .map(|(_, key)| key.clone())
        else {
            return Ok(None);
        };
        let by_kid: HashMap<String, Arc<LoadedKey>> = loaded
            .iter()
            .map(|(_, key)| (key.kid.clone(), key.clone()))
            .collect();
        let published = Arc::new(JwkSet {
            keys: loaded
                .iter()
                .map(|(_, key)| key.public_jwk.clone())
                .collect(),
        });
        Ok(Some(Self {
            signing,
            by_kid,
            published,
        }))
    }

    /// The key id that signs new tokens.
    pub fn signing_kid(&self) -> &str {
        &self.signing.kid
    }

    /// The public keys, as served at the JWKS endpoint.
    pub fn jwks(&self) -> &JwkSet {
        &self.published
    }

    /// Signs an access token.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, KeyError> {
        let mut header = Header::new(ALGORITHM);
        header.typ = Some(ACCESS_TOKEN_TYPE.into());
        header.kid = Some(self.signing.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.signing.encoding)
            .map_err(|error| KeyError(error.to_string()))
    }

    /// Verifies an access token's signature, type, issuer, audience and lifetime. Whether it
    /// was revoked is the caller's second step.
    pub fn verify(
        &self,
        token: &str,
        issuer: &str,
        audience: &str,
        now: UnixSeconds,
    ) -> Result<AccessClaims, TokenRejection> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenRejection::Malformed)?;
        if header.alg != ALGORITHM {
            return Err(TokenRejection::Algorithm);
        }
        let typ_ok = header.typ.as_deref().is_some_and(|typ| {
            typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE)
                || typ.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            return Err(TokenRejection::Type);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.by_kid.get(kid))
            .ok_or(TokenRejection::UnknownKey)?;

        let mut validation = Validation::new(ALGORITHM);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims =
            HashSet::from(["exp".to_owned(), "iss".to_owned(), "aud".to_owned()]);
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &validation)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::Json(_)
                | jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(_) => {
                    TokenRejection::Malformed
                }
                _ => TokenRejection::Invalid,
            })?
            .claims;
        check_lifetime(&claims, now)?;
        Ok(claims)
    }
}

/// Whether verified claims are still within their lifetime at `now` (with the clock leeway).
pub fn check_lifetime(claims: &AccessClaims, now: UnixSeconds) -> Result<(), TokenRejection> {
    if claims.exp + LEEWAY_SECONDS <= now || claims.iat > now + LEEWAY_SECONDS {
        return Err(TokenRejection::Expired);
    }
    Ok(())
}

/// Generates a new ES256 signing key.
pub fn generate_signing_key(now: UnixSeconds) -> Result<SigningKeyRecord, KeyError> {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
        .map_err(|_| KeyError("key generation failed".into()))?;
    let pkcs8 = pair
        .to_pkcs8v1()
        .map_err(|_| KeyError("key serialisation failed".into()))?;
    let private_pkcs8 = pkcs8.as_ref().to_vec();
    let jwk = Jwk::from_encoding_key(&EncodingKey::from_ec_der(&private_pkcs8), ALGORITHM)
        .map_err(|error| KeyError(error.to_string()))?;
    let kid = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|error| KeyError(error.to_string()))?;
    Ok(SigningKeyRecord {
        kid,
        alg: "ES256".into(),
        private_pkcs8,
        created_at: now,
        retired_at: None,
        tokens_valid_until: 0,
    })
}

fn load_key(record: &SigningKeyRecord) -> Result<LoadedKey, KeyError> {
    let encoding = EncodingKey::from_ec_der(&record.private_pkcs8);
    let mut public_jwk = Jwk::from_encoding_key(&encoding, ALGORITHM)
        .map_err(|error| KeyError(error.to_string()))?;
    public_jwk.common.key_id = Some(record.kid.clone());
    public_jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    public_jwk.common.key_algorithm = Some(KeyAlgorithm::ES256);
    let decoding =
        DecodingKey::from_jwk(&public_jwk).map_err(|error| KeyError(error.to_string()))?;
    Ok(LoadedKey {
        kid: record.kid.clone(),
        encoding,
        decoding,
        public_jwk,
    })
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    const NOW: i64 = 1_800_000_000;
    const ISSUER: &str = "https://mcp.example.com";
    const AUDIENCE: &str = "https://mcp.example.com/mcp";

    fn ring() -> KeyRing {
        let record = generate_signing_key(NOW).expect("key");
        KeyRing::from_records(&[record])
            .expect("loads")
            .expect("has a signing key")
    }

    fn claims() -> AccessClaims {
        AccessClaims {
            iss: ISSUER.into(),
            sub: "owner".into(),
            aud: AUDIENCE.into(),
            client_id: "c_1".into(),
            scope: "tasks:read".into(),
            iat: NOW,
            exp: NOW + 3600,
            jti: "j1".into(),
            gid: "g1".into(),
        }
    }

    #[test]
    fn signed_tokens_verify_and_carry_their_claims() {
        let ring = ring();
        let token = ring.sign(&claims()).expect("signs");
        assert_eq!(
            ring.verify(&token, ISSUER, AUDIENCE, NOW + 10),
            Ok(claims())
        );
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.kid.as_deref(), Some(ring.signing_kid()));
        assert_eq!(ring.jwks().keys.len(), 1);
    }

    #[test]
    fn wrong_audience_issuer_time_or_key_is_refused() {
        let ring = ring();
        let token = ring.sign(&claims()).expect("signs");
        assert_eq!(
            ring.verify(&token, ISSUER, "https://other.example/mcp", NOW),
            Err(TokenRejection::Invalid)
        );
        assert_eq!(
            ring.verify(&token, "https://other.example", AUDIENCE, NOW),
            Err(TokenRejection::Invalid)
        );
        assert_eq!(
            ring.verify(&token, ISSUER, AUDIENCE, NOW + 3600 + LEEWAY_SECONDS),
            Err(TokenRejection::Expired)
        );
        assert_eq!(
            ring.verify(&token, ISSUER, AUDIENCE, NOW - 3600),
            Err(TokenRejection::Expired)
        );
        assert_eq!(
            self::ring().verify(&token, ISSUER, AUDIENCE, NOW),
            Err(TokenRejection::UnknownKey)
        );
    }

    #[test]
    fn forged_algorithms_and_types_are_refused() {
        let ring = ring();
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).expect("json"));
        let unsigned = format!(
            "{}.{body}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"at+jwt"}"#)
        );
        assert_eq!(
            ring.verify(&unsigned, ISSUER, AUDIENCE, NOW),
            Err(TokenRejection::Malformed)
        );

        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some("at+jwt".into());
        header.kid = Some(ring.signing_kid().into());
        let hmac = jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(b"guess"))
            .expect("signs");
        assert_eq!(
            ring.verify(&hmac, ISSUER, AUDIENCE, NOW),
            Err(TokenRejection::Algorithm)
        );

        let mut id_token_header = Header::new(ALGORITHM);
        id_token_header.kid = Some(ring.signing_kid().into());
        let id_token = jsonwebtoken::encode(&id_token_header, &claims(), &ring.signing.encoding)
            .expect("signs");
        assert_eq!(
            ring.verify(&id_token, ISSUER, AUDIENCE, NOW),
            Err(TokenRejection::Type)
        );
        assert_eq!(
            ring.verify("not.a.jwt", ISSUER, AUDIENCE, NOW),
            Err(TokenRejection::Malformed)
        );
    }

    #[test]
    fn retired_keys_still_verify_but_do_not_sign() {
        let old = SigningKeyRecord {
            retired_at: Some(NOW),
            tokens_valid_until: NOW + 3600,
            ..generate_signing_key(NOW - 10).expect("key")
        };
        let old_ring = KeyRing::from_records(&[SigningKeyRecord {
            retired_at: None,
            ..old.clone()
        }])
        .expect("ok")
        .expect("ring");
        let old_token = old_ring.sign(&claims()).expect("signs");
        let new = generate_signing_key(NOW).expect("key");
        let ring = KeyRing::from_records(&[new.clone(), old])
            .expect("ok")
            .expect("ring");
        assert_eq!(ring.signing_kid(), new.kid);
        assert_eq!(ring.jwks().keys.len(), 2);
        assert!(ring.verify(&old_token, ISSUER, AUDIENCE, NOW).is_ok());
    }
}
