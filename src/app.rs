//! The composition root: builds every service from a `Config` (`App::build`) and serves them
//! on a listener the caller bound (`App::serve`), until a cancellation token fires. Tests go
//! through exactly this path, on port 0.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::clock::{SharedClock, SystemClock};
use crate::config::{ApprovalMode, Config};
use crate::http::rate_limit::RateLimits;
use crate::metrics::Metrics;
use crate::oauth::error::OAuthError;
use crate::oauth::{AuthServer, AuthSettings};
use crate::queue::Queue;
use crate::queue::agents::Agents;
use crate::store::{Store, StoreError};
use crate::transport::telegram::{self, SetupError, TelegramTarget};
use crate::upstream::Upstreams;

/// How often expired rows are swept and rotated keys picked up.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(60);

/// How often the revocation log is read for revocations made elsewhere (the CLI, another
/// replica): the longest a token revoked there stays accepted here.
const REVOCATION_WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// How long stopping waits for the Telegram workers to stop and let their bots' leases go.
const BOT_RELEASE_WAIT: Duration = Duration::from_secs(5);

/// How long stopping waits to fold SQLite's write-ahead log into the database file.
const STORE_FOLD_WAIT: Duration = Duration::from_secs(5);

/// What every handler can reach: cheap, cloneable handles.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The authorization server.
    pub auth: AuthServer,
    /// The configuration in force.
    pub config: Arc<Config>,
    /// Per-IP rate limiters.
    pub limits: Arc<RateLimits>,
    /// The task queue.
    pub queue: Queue,
    /// The agents allowed to claim tasks.
    pub agents: Agents,
    /// Targets served by Telegram bots.
    pub telegram: Arc<Vec<TelegramTarget>>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Federated upstream MCP servers.
    pub upstreams: Upstreams,
}

impl AppState {
    /// The Telegram target that asks the owner for approvals, if one is configured.
    pub fn telegram_approver(&self) -> Option<&TelegramTarget> {
        self.telegram
            .iter()
            .find(|target| target.approves_for_owner())
    }
}

/// A failure to start the gateway.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The store could not be opened.
    #[error("cannot open the store")]
    Store(#[from] StoreError),
    /// The authorization server could not start.
    #[error("cannot start the authorization server")]
    OAuth(#[from] OAuthError),
    /// A Telegram target could not be set up.
    #[error(transparent)]
    Telegram(#[from] SetupError),
    /// The HTTP client that fetches client metadata documents could not be built.
    #[error("cannot set up fetching of client metadata documents: {0}")]
    DocumentFetcher(String),
}

/// A built gateway, ready to serve.
pub struct App {
    state: AppState,
    extra_routes: Router,
    generated_owner_passphrase: Option<String>,
    // Cancelled when serving stops: ends long polls, MCP streams and the maintenance loop.
    stopping: CancellationToken,
    internal_listener: Option<TcpListener>,
    upstream_shim: Option<std::path::PathBuf>,
    // The store handle, for listening to other replicas' changes once serving starts.
    store: Store,
}

impl App {
    /// Builds the gateway with the wall clock.
    pub async fn build(config: Config) -> Result<Self, AppError> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Builds the gateway with the given clock (tests use a manual one).
    pub async fn build_with_clock(config: Config, clock: SharedClock) -> Result<Self, AppError> {
        let store = Store::open_at(&config.store_location()).await?;
        let auth = AuthServer::open(
            store.clone(),
            clock.clone(),
            AuthSettings::from_config(&config),
        )
        .await?;
        if config.oauth.cimd_fetch {
            let fetcher = crate::cimd_fetch::fetcher(crate::cimd_fetch::FetchPolicy::default())
                .map_err(AppError::DocumentFetcher)?;
            auth.set_document_fetcher(fetcher);
        }
        let stopping = CancellationToken::new();
        let queue = Queue::new(
            store.clone(),
            clock.clone(),
            config.targets.clone(),
            stopping.clone(),
        );
        let store_for_upstreams = store.clone();
        let store_for_changes = store.clone();
        let agents = Agents::new(
            store,
            clock.clone(),
            config
                .targets
                .iter()
                .map(|target| target.name.clone())
                .collect(),
        );
        let metrics = Metrics::default();
        let telegram = Arc::new(telegram::build_targets(&config, &queue, &auth, &metrics).await?);
        let generated_owner_passphrase = match config.approval {
            ApprovalMode::Password => auth.ensure_owner_credential().await?,
            ApprovalMode::Auto => {
                tracing::warn!(
                    listen = %config.listen,
                    "approval = \"auto\": every authorization request is approved without asking anyone; use only for local development"
                );
                None
            }
        };
        // Drift notices go to the owner in Telegram when a bot asks the owner for approvals.
        let notifier = telegram
            .iter()
            .find(|target| target.approves_for_owner())
            .cloned()
            .map(|target| {
                Arc::new(move |text: String| {
                    let target = target.clone();
                    tokio::spawn(async move {
                        telegram::approval::notify_owner(&target, &text).await;
                    });
                }) as crate::upstream::OwnerNotifier
            });
        let upstreams = Upstreams::new(
            &config.upstreams,
            store_for_upstreams,
            clock.clone(),
            metrics.clone(),
            notifier,
        );
        let limits = Arc::new(RateLimits::new(&config.limits, clock));
        Ok(Self {
            state: AppState {
                auth,
                config: Arc::new(config),
                limits,
                queue,
                agents,
                telegram,
                metrics,
                upstreams,
            },
            extra_routes: Router::new(),
            generated_owner_passphrase,
            stopping,
            internal_listener: None,
            upstream_shim: std::env::current_exe().ok(),
            store: store_for_changes,
        })
    }

    /// The passphrase generated on first start, to be shown to the operator once.
    pub fn generated_owner_passphrase(&self) -> Option<&str> {
        self.generated_owner_passphrase.as_deref()
    }

    /// The shared state, for mounting extra routes.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Adds routes under the same middleware stack (used for routes guarded by the bearer
    /// layer that live outside this crate's router, such as test routes).
    pub fn merge_routes(mut self, routes: Router) -> Self {
        self.extra_routes = self.extra_routes.merge(routes);
        self
    }

    /// Runs stdio upstreams under `shim` (this program's executable, by default; tests that host
    /// the gateway in-process name the real binary).
    pub fn with_upstream_shim(mut self, shim: std::path::PathBuf) -> Self {
        self.upstream_shim = Some(shim);
        self
    }

    /// Serves the agent API, `/metrics` and the probes on `listener` (the internal side).
    pub fn with_internal_listener(mut self, listener: TcpListener) -> Self {
        self.internal_listener = Some(listener);
        self
    }

    /// The complete router.
    pub fn router(&self) -> Router {
        crate::http::router(
            self.state.clone(),
            self.extra_routes.clone(),
            &self.stopping,
        )
    }

    /// Serves on `listener` until `shutdown` is cancelled, then drains open requests.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let router = self.router();
        let stopping = self.stopping.clone();
        tokio::spawn({
            let stopping = stopping.clone();
            let shutdown = shutdown.clone();
            async move {
                shutdown.cancelled().await;
                stopping.cancel();
            }
        });
        let maintenance = tokio::spawn(run_maintenance(self.state.clone(), stopping.clone()));
        // Several replicas on PostgreSQL: wake what waits here for what the others commit.
        if let Some(feed) = self.store.watch_changes(stopping.clone()) {
            tokio::spawn({
                let queue = self.state.queue.clone();
                let changes = feed.subscribe();
                async move { queue.follow(changes).await }
            });
            tokio::spawn({
                let auth = self.state.auth.clone();
                let changes = feed.subscribe();
                async move { auth.follow(changes).await }
            });
        }
        tokio::spawn(watch_revocations(self.state.auth.clone(), stopping.clone()));
        let writer_died = tokio::spawn(stop_if_the_writer_dies(
            self.store.clone(),
            shutdown.clone(),
        ));
        match self.upstream_shim.clone() {
            Some(shim) => {
                self.state
                    .upstreams
                    .start(shim, &self.state.queue, &stopping)
                    .await
            }
            None if self.state.config.upstreams.is_empty() => {}
            None => tracing::error!(
                "cannot find this program's executable; stdio upstreams cannot start"
            ),
        }
        let bots = telegram::spawn_all(
            &self.state.telegram,
            &self.state.config.public_url,
            &stopping,
        );
        let limits = crate::http::server::ConnectionLimits {
            header_read_timeout: self.state.config.limits.header_read_timeout,
            max_connections: self.state.config.limits.max_connections,
        };
        let internal = match self.internal_listener {
            Some(internal) => {
                let internal_router = crate::http::internal_router(self.state.clone());
                let internal_stop = stopping.clone();
                tracing::info!(address = %internal.local_addr()?, "internal listener (agent API, metrics) up");
                let metrics = self.state.metrics.clone();
                Some(tokio::spawn(crate::http::server::serve(
                    internal,
                    internal_router,
                    limits,
                    metrics,
                    internal_stop,
                )))
            }
            None => None,
        };
        let address = listener.local_addr()?;
        tracing::info!(%address, public_url = %self.state.config.public_url, "nexus-gateway listening");
        let served = crate::http::server::serve(
            listener,
            router,
            limits,
            self.state.metrics.clone(),
            shutdown.clone(),
        )
        .await;
        stopping.cancel();
        // The agent API's requests drain like the public ones: an agent's report that is still
        // arriving is answered and kept, and lands before the log is folded.
        if let Some(internal) = internal {
            let _ = internal.await;
        }
        let _ = maintenance.await;
        // Let each bot's lease go, so another replica takes it over now, not when it lapses.
        let released = async {
            for bot in bots {
                let _ = bot.await;
            }
        };
        if tokio::time::timeout(BOT_RELEASE_WAIT, released)
            .await
            .is_err()
        {
            tracing::warn!(
                "a Telegram bot's workers did not stop in time; its lease lapses by itself"
            );
        }
        match tokio::time::timeout(STORE_FOLD_WAIT, self.store.fold_log()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(error = %error, "cannot fold the write-ahead log into the database at stop; the next start replays it")
            }
            Err(_) => tracing::warn!(
                "folding the write-ahead log into the database took too long; the next start replays it"
            ),
        }
        tracing::info!("nexus-gateway stopped");
        if writer_died.await.unwrap_or(false) {
            // A non-zero exit, so that the service manager starts the gateway again.
            return Err(std::io::Error::other(StoreError::WriterStopped));
        }
        served
    }
}

/// Stops the gateway if the store's message writer dies: every send would fail from then on,
/// and only a new process brings a writer back. Returns whether it did.
async fn stop_if_the_writer_dies(store: Store, shutdown: CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => false,
        () = store.writer_stopped() => {
            tracing::error!("the message writer stopped; stopping, so that the service manager starts the gateway again");
            shutdown.cancel();
            true
        }
    }
}

async fn watch_revocations(auth: AuthServer, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(REVOCATION_WATCH_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Err(error) = auth.sync_revocations().await {
            tracing::warn!(error = %error, "cannot read the revocation log; will retry");
        }
    }
}

async fn run_maintenance(state: AppState, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(MAINTENANCE_INTERVAL);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match state.auth.run_maintenance().await {
            Ok(removed) if removed > 0 => {
                tracing::info!(removed, "expired authorization data removed")
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(error = %error, "maintenance failed; will retry"),
        }
        state.limits.shrink();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A dead writer stops the gateway (and says so, for the exit status); a stop asked for
    /// otherwise ends the watch quietly.
    #[tokio::test]
    async fn the_gateway_stops_when_its_message_writer_dies_and_only_then() {
        let dir = tempfile::TempDir::new().expect("dir");
        let mut store = Store::open(&dir.path().join("db.sqlite3"))
            .await
            .expect("opens");
        let shutdown = CancellationToken::new();
        let watch = tokio::spawn(stop_if_the_writer_dies(store.clone(), shutdown.clone()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!shutdown.is_cancelled(), "a running writer stops nothing");
        shutdown.cancel();
        assert!(
            !watch.await.expect("watch"),
            "a stop asked for is not a dead writer"
        );

        store.lose_message_writer();
        let shutdown = CancellationToken::new();
        let died = tokio::time::timeout(
            Duration::from_secs(5),
            stop_if_the_writer_dies(store, shutdown.clone()),
        )
        .await
        .expect("the watch ends");
        assert!(died, "a dead writer is reported");
        assert!(shutdown.is_cancelled(), "and the gateway stops");
    }
}
