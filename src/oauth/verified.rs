//! The verified-token cache: an access token's signature and revocation status are checked once,
//! then its claims are served from memory until it expires or the revocation log names it.
//! Keyed by the token's SHA-256, so the cache holds no usable token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::clock::UnixSeconds;
use crate::oauth::jwt::{self, AccessClaims, TokenRejection};
use crate::oauth::scope::ScopeSet;
use crate::store::Revoked;

/// Tokens remembered at most: each is a few hundred bytes, and a gateway serves a few clients.
/// Past it, expired entries go first, then everything (a miss only costs one full check).
const MAX_ENTRIES: usize = 10_000;

/// The SHA-256 of a presented token.
pub type TokenKey = [u8; 32];

/// A verified access token as a request's handlers use it: its claims, and the scopes they
/// grant, parsed once. Requests share the cached one (`Arc`), so none copies a claim. Only
/// `AuthServer::verify_access_token` makes one, so holding one means the checks passed.
#[derive(Debug)]
pub struct VerifiedToken {
    claims: AccessClaims,
    /// Parsed from `claims.scope`, never set apart from it.
    scopes: ScopeSet,
}

impl VerifiedToken {
    /// Wraps `claims` that passed every check (signature, claims, lifetime, revocation).
    pub(crate) fn new(claims: AccessClaims) -> Self {
        let scopes = ScopeSet::from_token_claim(&claims.scope);
        Self { claims, scopes }
    }

    /// The token's claims.
    pub fn claims(&self) -> &AccessClaims {
        &self.claims
    }

    /// The scopes the token grants.
    pub fn scopes(&self) -> &ScopeSet {
        &self.scopes
    }
}

/// Verified access tokens and where the revocation log was last read.
#[derive(Debug, Default)]
pub struct VerifiedTokens {
    // Held for a lookup or an update, never across an await.
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<TokenKey, Arc<VerifiedToken>>,
    /// The revocation log's sequence number read up to.
    log_seq: i64,
    /// `Store::local_revocations` when the log was last read.
    local_seen: u64,
    /// Moves whenever entries are dropped for a revocation, so a check that started before a
    /// revocation cannot put its (now stale) verdict in afterwards.
    epoch: u64,
}

impl VerifiedTokens {
    /// A cache that has read the revocation log up to `log_seq`.
    pub fn new(log_seq: i64, local_seen: u64) -> Self {
        Self {
            state: Mutex::new(State {
                log_seq,
                local_seen,
                ..State::default()
            }),
        }
    }

    /// The key for `token`.
    pub fn key(token: &str) -> TokenKey {
        Sha256::digest(token.as_bytes()).into()
    }

    /// The cached claims for `key`, if it was verified and is still within its lifetime. An
    /// expired entry is dropped and reported as expired.
    pub fn get(
        &self,
        key: &TokenKey,
        now: UnixSeconds,
    ) -> Option<Result<Arc<VerifiedToken>, TokenRejection>> {
        let mut state = self.lock();
        let verified = state.entries.get(key)?;
        match jwt::check_lifetime(&verified.claims, now) {
            Ok(()) => Some(Ok(verified.clone())),
            Err(rejection) => {
                state.entries.remove(key);
                Some(Err(rejection))
            }
        }
    }

    /// The epoch to pass back to `insert` for a check starting now.
    pub fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    /// Remembers a token verified (signature and revocation) during `epoch`; skipped if a
    /// revocation was applied since.
    pub fn insert(
        &self,
        key: TokenKey,
        verified: Arc<VerifiedToken>,
        epoch: u64,
        now: UnixSeconds,
    ) {
        let mut state = self.lock();
        if state.epoch != epoch {
            return;
        }
        if state.entries.len() >= MAX_ENTRIES {
            state
                .entries
                .retain(|_, verified| jwt::check_lifetime(&verified.claims, now).is_ok());
            if state.entries.len() >= MAX_ENTRIES {
                state.entries.clear();
            }
        }
        state.entries.insert(key, verified);
    }

    /// Whether this process committed a revocation since the log was last read.
    pub fn behind_local(&self, local_revocations: u64) -> bool {
        self.lock().local_seen != local_revocations
    }

    /// Where the log was read up to.
    pub fn log_seq(&self) -> i64 {
        self.lock().log_seq
    }

    /// Drops what `revoked` names (everything, when the log had a `gap`), and records how far
    /// the log and the local counter were read.
    pub fn apply(&self, revoked: &[Revoked], gap: bool, log_seq: i64, local_seen: u64) {
        let mut state = self.lock();
        if gap {
            state.entries.clear();
        } else if !revoked.is_empty() {
            state.entries.retain(|_, verified| {
                !revoked.iter().any(|revoked| match revoked {
                    Revoked::Grant(grant) => *grant == verified.claims.gid,
                    Revoked::Token(jti) => *jti == verified.claims.jti,
                })
            });
        }
        if gap || !revoked.is_empty() {
            state.epoch += 1;
        }
        state.log_seq = state.log_seq.max(log_seq);
        state.local_seen = state.local_seen.max(local_seen);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere mid-update; the map inside is whole.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(jti: &str, gid: &str, exp: i64) -> Arc<VerifiedToken> {
        Arc::new(VerifiedToken::new(AccessClaims {
            iss: "https://gw.example".into(),
            sub: "owner".into(),
            aud: "https://gw.example/mcp".into(),
            client_id: "c".into(),
            scope: "tasks:read".into(),
            iat: exp - 3600,
            exp,
            jti: jti.into(),
            gid: gid.into(),
        }))
    }

    #[test]
    fn an_entry_lives_until_its_expiry_and_no_longer() {
        let cache = VerifiedTokens::new(0, 0);
        let key = VerifiedTokens::key("token-a");
        cache.insert(key, claims("j1", "g1", 5000), cache.epoch(), 1000);
        assert!(matches!(cache.get(&key, 4000), Some(Ok(_))));
        assert!(matches!(
            cache.get(&key, 6000),
            Some(Err(TokenRejection::Expired))
        ));
        assert!(
            cache.get(&key, 4000).is_none(),
            "an expired entry is dropped"
        );
    }

    #[test]
    fn a_revoked_grant_or_token_is_forgotten_and_a_stale_check_is_not_cached() {
        let cache = VerifiedTokens::new(0, 0);
        let (a, b) = (VerifiedTokens::key("a"), VerifiedTokens::key("b"));
        cache.insert(a, claims("j1", "g1", 5000), cache.epoch(), 1000);
        cache.insert(b, claims("j2", "g2", 5000), cache.epoch(), 1000);
        let started = cache.epoch();
        cache.apply(&[Revoked::Grant("g1".into())], false, 7, 1);
        assert!(cache.get(&a, 1000).is_none());
        assert!(cache.get(&b, 1000).is_some());
        // A check that began before the revocation must not re-insert its verdict.
        cache.insert(a, claims("j1", "g1", 5000), started, 1000);
        assert!(cache.get(&a, 1000).is_none());
        cache.apply(&[Revoked::Token("j2".into())], false, 8, 1);
        assert!(cache.get(&b, 1000).is_none());
        assert_eq!(cache.log_seq(), 8);
        assert!(!cache.behind_local(1));
        assert!(cache.behind_local(2));
    }
}
