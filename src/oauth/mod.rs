//! The OAuth 2.1 authorization server: client registration (RFC 7591), owner approval at
//! `/authorize`, the code and refresh grants with rotation, revocation (RFC 7009), JWT access
//! tokens (RFC 9068) and their verification. No HTTP here: `http` adapts requests to these
//! calls, and `store` keeps the state.

pub mod cimd;
pub mod client;
pub mod client_name;
pub mod error;
pub mod jwt;
pub mod owner;
pub mod pkce;
pub mod scope;

mod authorize;
mod register;
pub mod remote_approval;
mod sealed;
mod token;
mod verified;

pub use verified::VerifiedToken;

use std::sync::{Arc, Mutex, RwLock};

use crate::clock::{SharedClock, UnixSeconds};
use crate::config::Config;
use crate::oauth::error::OAuthError;
use crate::oauth::jwt::{AccessClaims, KeyRing, TokenRejection};
use crate::oauth::verified::VerifiedTokens;
use crate::store::{Change, Store, StoreError};

pub use authorize::{
    AuthorizationRequest, ConsentView, OwnerSession, PendingAuthorization, redirect_with,
};
pub use register::RegisteredClient;
pub use token::{ClientCredentials, IssuedBearerToken, TokenResponse};

/// The subject of every token: the gateway has exactly one resource owner.
pub const OWNER_SUBJECT: &str = "owner";

/// How often an unknown `kid` may trigger a reload of the keys from the store.
const KEY_RELOAD_INTERVAL_SECONDS: i64 = 10;

/// A registered client that starts no authorization within this long is removed: every real
/// client registers right before it sends the owner to `/authorize`.
const UNSTARTED_CLIENT_SECONDS: i64 = 10 * 60;

/// Clients the owner never approved, kept at most; past it the oldest go. Registration is open
/// and unauthenticated, so this bounds what strangers can store.
const MAX_UNAPPROVED_CLIENTS: u32 = 500;

/// Lifetimes and policies of the authorization server, in seconds.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// The issuer (`iss`): our public origin.
    pub issuer: String,
    /// The MCP resource (`aud`).
    pub resource: String,
    /// Access-token lifetime.
    pub access_token_ttl: i64,
    /// Refresh-token lifetime.
    pub refresh_token_ttl: i64,
    /// Grace window of a rotated refresh token.
    pub refresh_grace: i64,
    /// Authorization-code lifetime.
    pub code_ttl: i64,
    /// Time the owner has to approve a request.
    pub authorization_request_ttl: i64,
    /// Owner session lifetime.
    pub owner_session_ttl: i64,
    /// Age after which never-approved clients are removed.
    pub unused_client_ttl: i64,
    /// Custom redirect-URI schemes accepted at registration.
    pub custom_redirect_schemes: Vec<String>,
    /// The scopes this gateway grants (built-in and upstream).
    pub scopes: scope::ScopeCatalog,
    /// Client ID Metadata Documents known without fetching: built in, then pinned in config.
    pub client_documents: Vec<crate::config::PinnedClientDocument>,
}

impl AuthSettings {
    /// Derives the settings from the configuration.
    pub fn from_config(config: &Config) -> Self {
        let seconds =
            |duration: std::time::Duration| i64::try_from(duration.as_secs()).unwrap_or(i64::MAX);
        Self {
            issuer: config.public_url.as_str().to_owned(),
            resource: config.mcp_resource(),
            access_token_ttl: seconds(config.oauth.access_token_ttl),
            refresh_token_ttl: seconds(config.oauth.refresh_token_ttl),
            refresh_grace: seconds(config.oauth.refresh_grace),
            code_ttl: seconds(config.oauth.code_ttl),
            authorization_request_ttl: seconds(config.oauth.authorization_request_ttl),
            owner_session_ttl: seconds(config.oauth.owner_session_ttl),
            unused_client_ttl: seconds(config.oauth.unused_client_ttl),
            custom_redirect_schemes: config.oauth.custom_redirect_schemes.clone(),
            scopes: scope::ScopeCatalog::from_config(config),
            client_documents: cimd::built_in_documents()
                .into_iter()
                .chain(config.oauth.cimd_documents.iter().cloned())
                .collect(),
        }
    }

    /// Whether a `resource` parameter names us (RFC 8707). The canonical URL is what we mint
    /// into `aud`; the bare origin and a trailing slash are accepted because older clients
    /// send them.
    pub fn accepts_resource(&self, resource: &str) -> bool {
        let trimmed = resource.strip_suffix('/').unwrap_or(resource);
        trimmed == self.resource || trimmed == self.issuer
    }
}

/// Why an access token was not accepted by `verify_access_token`.
#[derive(Debug, thiserror::Error)]
pub enum AccessTokenError {
    /// The token is bad; the client is told `invalid_token`.
    #[error("access token rejected: {0}")]
    Rejected(TokenRejection),
    /// The store failed while checking revocation.
    #[error("cannot check the access token")]
    Internal(#[from] StoreError),
}

/// The authorization-server service: a cheap, cloneable handle.
#[derive(Clone)]
pub struct AuthServer {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    clock: SharedClock,
    settings: AuthSettings,
    // Held only for a clone or a swap, never across an await.
    // Swapped whole on reload; readers clone the Arc, never the ring.
    keys: RwLock<Arc<KeyRing>>,
    last_key_reload: Mutex<UnixSeconds>,
    verified: VerifiedTokens,
    // argon2id takes ~19 MiB and tens of milliseconds per check: bound how many run at once,
    // so a flood of logins cannot exhaust memory or the blocking pool.
    passphrase_checks: tokio::sync::Semaphore,
    /// Client ID Metadata Documents fetched (when fetching is on) and cached.
    fetched_documents: cimd::FetchedDocuments,
}

impl std::fmt::Debug for AuthServer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AuthServer")
            .field("issuer", &self.inner.settings.issuer)
            .finish_non_exhaustive()
    }
}

impl AuthServer {
    /// Opens the authorization server over `store`, creating the first signing key when
    /// there is none.
    pub async fn open(
        store: Store,
        clock: SharedClock,
        settings: AuthSettings,
    ) -> Result<Self, OAuthError> {
        let now = clock.now();
        let keys = match load_key_ring(&store, now).await? {
            Some(keys) => keys,
            None => {
                let record = jwt::generate_signing_key(now).map_err(OAuthError::internal)?;
                // Replicas starting together on an empty database: one key is made, and the
                // others load it.
                if store.insert_first_signing_key(&record).await? {
                    tracing::info!(kid = %record.kid, "created the first token signing key");
                }
                load_key_ring(&store, now)
                    .await?
                    .ok_or_else(|| OAuthError::internal(jwt_missing_key()))?
            }
        };
        // Everything revoked so far is in the store, where a cache miss looks.
        let verified = VerifiedTokens::new(
            store.latest_revocation_seq().await?,
            store.local_revocations(),
        );
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                clock,
                settings,
                keys: RwLock::new(Arc::new(keys)),
                last_key_reload: Mutex::new(now),
                verified,
                passphrase_checks: tokio::sync::Semaphore::new(2),
                fetched_documents: cimd::FetchedDocuments::default(),
            }),
        })
    }

    /// Fetches Client ID Metadata Documents that are not pinned with `fetcher` (the
    /// composition root's, which goes to the network with its guards); none by default, and
    /// only the first one given counts.
    pub fn set_document_fetcher(&self, fetcher: cimd::DocumentFetcher) {
        self.inner.fetched_documents.set_fetcher(fetcher);
    }

    /// The settings in force.
    pub fn settings(&self) -> &AuthSettings {
        &self.inner.settings
    }

    /// The current time according to the server's clock.
    pub fn now(&self) -> UnixSeconds {
        self.inner.clock.now()
    }

    /// The published JSON Web Key Set.
    pub fn jwks(&self) -> jsonwebtoken::jwk::JwkSet {
        self.key_ring().jwks().clone()
    }

    /// Whether the store answers; for readiness. (A signing key is loaded by construction: an
    /// `AuthServer` cannot open without one.)
    pub async fn is_ready(&self) -> bool {
        match self.inner.store.ping().await {
            Ok(()) => true,
            Err(error) => {
                // The 503 says only "not ready"; the log says why.
                crate::telemetry::log_internal("readiness", &error);
                false
            }
        }
    }

    /// Verifies a bearer access token: signature, type, issuer, audience, lifetime, and
    /// that neither it nor its grant was revoked.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn verify_access_token(
        &self,
        token: &str,
    ) -> Result<Arc<VerifiedToken>, AccessTokenError> {
        let now = self.now();
        // A revocation committed by this process is in force on its very next request.
        if self
            .inner
            .verified
            .behind_local(self.inner.store.local_revocations())
        {
            self.sync_revocations().await?;
        }
        let key = VerifiedTokens::key(token);
        if let Some(verdict) = self.inner.verified.get(&key, now) {
            return verdict.map_err(AccessTokenError::Rejected);
        }
        let epoch = self.inner.verified.epoch();
        let verified = Arc::new(VerifiedToken::new(self.verify_in_full(token, now).await?));
        self.inner
            .verified
            .insert(key, verified.clone(), epoch, now);
        Ok(verified)
    }

    /// Reads the revocation log past the point the token cache has seen and drops what it
    /// names. Run every second (revocations by the CLI or another replica) and at once after
    /// a revocation of this process's own.
    pub async fn sync_revocations(&self) -> Result<(), StoreError> {
        let store = &self.inner.store;
        // Read the counter first: a revocation committed while the log is read is then read
        // again next time rather than missed.
        let local = store.local_revocations();
        loop {
            let since = store
                .revocations_since(self.inner.verified.log_seq())
                .await?;
            self.inner
                .verified
                .apply(&since.entries, since.gap, since.last_seq, local);
            if !since.more {
                return Ok(());
            }
        }
    }

    /// The check behind a cache miss: signature, claims, lifetime, and the store's revocations.
    async fn verify_in_full(
        &self,
        token: &str,
        now: UnixSeconds,
    ) -> Result<AccessClaims, AccessTokenError> {
        let settings = &self.inner.settings;
        let mut verdict = self
            .key_ring()
            .verify(token, &settings.issuer, &settings.resource, now);
        if verdict == Err(TokenRejection::UnknownKey) && self.reload_keys_if_due(now).await? {
            verdict = self
                .key_ring()
                .verify(token, &settings.issuer, &settings.resource, now);
        }
        let claims = verdict.map_err(AccessTokenError::Rejected)?;
        if self
            .inner
            .store
            .is_access_token_revoked(&claims.jti, &claims.gid)
            .await?
        {
            return Err(AccessTokenError::Rejected(TokenRejection::Revoked));
        }
        Ok(claims)
    }

    /// Rotates the signing key: new tokens are signed by a new key, and the old one stays
    /// published until the last token it signed has expired.
    pub async fn rotate_signing_key(&self) -> Result<String, OAuthError> {
        let now = self.now();
        let record = jwt::generate_signing_key(now).map_err(OAuthError::internal)?;
        self.inner.store.insert_signing_key(&record).await?;
        self.reload_keys(now).await?;
        Ok(record.kid)
    }

    /// Picks up what other replicas change, as `changes` announces it (PostgreSQL only),
    /// until the feed closes: a key rotated anywhere is loaded here at once, so tokens it
    /// signs verify on every replica. (Revocations need nothing here: the store moves the
    /// counter the token cache checks.)
    pub async fn follow(&self, mut changes: tokio::sync::broadcast::Receiver<Change>) {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match changes.recv().await {
                Ok(Change::Keys | Change::Anything) | Err(RecvError::Lagged(_)) => {
                    if let Err(error) = self.reload_keys(self.now()).await {
                        tracing::warn!(error = %error, "cannot reload the signing keys; will retry");
                    }
                }
                Ok(Change::Messages | Change::Updates | Change::Revocations) => {}
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Periodic upkeep: removes what has expired and picks up keys rotated by the CLI.
    pub async fn run_maintenance(&self) -> Result<u64, OAuthError> {
        let now = self.now();
        let removed = self
            .inner
            .store
            .sweep_expired(
                now,
                now - self.inner.settings.unused_client_ttl,
                now - UNSTARTED_CLIENT_SECONDS,
            )
            .await?;
        self.reload_keys(now).await?;
        Ok(removed)
    }

    fn key_ring(&self) -> Arc<KeyRing> {
        // A poisoned lock only means a panic elsewhere mid-swap; the ring inside is whole.
        match self.inner.keys.read() {
            Ok(keys) => keys.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }

    fn passphrase_checks(&self) -> &tokio::sync::Semaphore {
        &self.inner.passphrase_checks
    }

    async fn reload_keys(&self, now: UnixSeconds) -> Result<(), OAuthError> {
        if let Some(ring) = load_key_ring(&self.inner.store, now).await? {
            match self.inner.keys.write() {
                Ok(mut keys) => *keys = Arc::new(ring),
                Err(poisoned) => *poisoned.into_inner() = Arc::new(ring),
            }
        }
        Ok(())
    }

    /// Reloads keys after an unknown `kid`, at most once per interval, so random `kid`s
    /// cannot turn every request into a database read.
    async fn reload_keys_if_due(&self, now: UnixSeconds) -> Result<bool, StoreError> {
        {
            let mut last = match self.inner.last_key_reload.lock() {
                Ok(last) => last,
                Err(poisoned) => poisoned.into_inner(),
            };
            if now - *last < KEY_RELOAD_INTERVAL_SECONDS {
                return Ok(false);
            }
            *last = now;
        }
        match self.reload_keys(now).await {
            Ok(()) => Ok(true),
            Err(OAuthError::Internal(_)) | Err(OAuthError::Rejected { .. }) => Ok(false),
        }
    }
}

async fn load_key_ring(store: &Store, now: UnixSeconds) -> Result<Option<KeyRing>, OAuthError> {
    let records = store.live_signing_keys(now).await?;
    KeyRing::from_records(&records).map_err(OAuthError::internal)
}

fn jwt_missing_key() -> StoreError {
    StoreError::Corrupt("the signing key just written cannot be read back".into())
}
