//! Federation: tools of upstream MCP servers (stdio children or Streamable HTTP), allow-listed,
//! renamed and scoped by the configuration, served from pinned definitions and forwarded
//! through one shared, supervised client per upstream.
//!
//! - `call.rs`: the call path (timeout, slots, cancellation, the result cap, tool errors).
//! - `supervisor.rs`: connects, re-connects with backoff, pings, and checks the tool list.
//! - `stdio.rs`: the child's process group, environment, stderr, and the shim that kills the
//!   group if the gateway dies; `http.rs`: the HTTP client (its own credential only).
//! - `client.rs`: what we are to an upstream (no sampling, elicitation or roots).
//! - `pinned.rs`: the rug-pull defence (drift between pinned and live definitions).
//! - `operator.rs`: `upstreams list`, `approve` and `import`.
//! - `queued.rs`: `mode = "queued"`, long calls answered through the durable queue.
//!
//! The client's token and headers never go upstream. An upstream that is down leaves its
//! tools listed; a call answers a tool error that says why.

mod call;
mod client;
pub mod http;
pub mod operator;
pub mod pinned;
pub mod queued;
pub mod stdio;
mod supervisor;

pub use call::{MAX_RESULT_BYTES, tool_error};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rmcp::RoleClient;
use rmcp::model::Tool;
use rmcp::service::Peer;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::config::upstreams::{ToolMode, UpstreamConfig};
use crate::metrics::Metrics;
use crate::queue::Queue;
use crate::store::Store;
use crate::upstream::pinned::Drift;

/// Where one upstream's connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Connecting (or never connected yet).
    Starting,
    /// Connected and answering pings.
    Ready,
    /// Its configuration cannot work (a missing command, an unset credential): not retried.
    Disabled {
        /// Why.
        reason: String,
    },
    /// Down; the next attempt is at `retry_at`.
    Backoff {
        /// When the supervisor tries again.
        retry_at: Instant,
        /// Why it is down.
        reason: String,
    },
}

/// A pinned tool of one upstream, as the upstream defined it, with its drift.
#[derive(Debug, Clone)]
pub struct PinnedTool {
    /// The pinned definition (upstream's name).
    pub tool: Tool,
    /// How the live definition differs, if it does.
    pub drift: Option<Drift>,
}

/// One exposed tool: where calls to it go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The upstream's name.
    pub upstream: String,
    /// The tool's name at the upstream.
    pub tool: String,
    /// The name clients see.
    pub exposed: String,
    /// The scope a token needs.
    pub scope: String,
    /// Direct or queued.
    pub mode: ToolMode,
}

/// One upstream: its configuration, connection, slots and pinned tools.
pub struct Upstream {
    config: UpstreamConfig,
    status: watch::Sender<Status>,
    /// The live connection and its generation (one per connection).
    peer: RwLock<Option<(u64, Peer<RoleClient>)>>,
    generation: AtomicU64,
    /// The generation a call found broken; the supervisor reconnects only if it is current.
    broken_generation: AtomicU64,
    slots: Semaphore,
    pinned: RwLock<BTreeMap<String, PinnedTool>>,
    restarts: AtomicU64,
    /// Woken by a call that found the connection broken: reconnect now, not at the next ping.
    broken: tokio::sync::Notify,
}

impl Upstream {
    fn new(config: UpstreamConfig) -> Self {
        let slots = usize::try_from(config.max_concurrency.max(1)).unwrap_or(1);
        Self {
            config,
            status: watch::Sender::new(Status::Starting),
            peer: RwLock::new(None),
            generation: AtomicU64::new(0),
            broken_generation: AtomicU64::new(u64::MAX),
            slots: Semaphore::new(slots),
            pinned: RwLock::new(BTreeMap::new()),
            restarts: AtomicU64::new(0),
            broken: tokio::sync::Notify::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    /// Where the connection stands.
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// Waits until the status satisfies `done` (for tests and the operator).
    pub async fn wait_for_status(&self, done: impl FnMut(&Status) -> bool) {
        let mut receiver = self.status.subscribe();
        // The sender lives as long as `self`, so the wait cannot fail.
        let _ = receiver.wait_for(done).await;
    }

    /// How many times the connection was (re)started after a failure.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// The pinned tools, by their upstream name.
    pub fn pinned(&self) -> BTreeMap<String, PinnedTool> {
        read(&self.pinned).clone()
    }

    fn set_status(&self, status: Status) {
        self.status.send_replace(status);
    }

    /// Installs a new connection; returns its generation.
    fn set_peer(&self, peer: Peer<RoleClient>) -> u64 {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        *write(&self.peer) = Some((generation, peer));
        generation
    }

    fn clear_peer(&self) {
        *write(&self.peer) = None;
    }

    fn peer(&self) -> Option<(u64, Peer<RoleClient>)> {
        read(&self.peer).clone()
    }

    /// Whether a call found connection `generation` broken.
    fn is_broken(&self, generation: u64) -> bool {
        self.broken_generation.load(Ordering::Relaxed) == generation
    }

    fn set_pinned(&self, pinned: BTreeMap<String, PinnedTool>) {
        *write(&self.pinned) = pinned;
    }

    /// The tool error for a call made while the upstream is not connected.
    fn unavailable(&self) -> String {
        match self.status() {
            Status::Backoff { retry_at, reason } => {
                let seconds = retry_at
                    .saturating_duration_since(Instant::now())
                    .as_secs()
                    .max(1);
                format!(
                    "upstream {} is restarting ({reason}); try again in ~{seconds} s",
                    self.config.name
                )
            }
            Status::Disabled { reason } => format!(
                "upstream {} is disabled ({reason}); the owner has to fix its configuration",
                self.config.name
            ),
            Status::Starting | Status::Ready => format!(
                "upstream {} is starting; try again in a few seconds",
                self.config.name
            ),
        }
    }
}

/// Every configured upstream, and the table from exposed names to them.
#[derive(Clone)]
pub struct Upstreams {
    inner: Arc<Inner>,
}

struct Inner {
    upstreams: BTreeMap<String, Arc<Upstream>>,
    routes: Vec<Route>,
    store: Store,
    clock: SharedClock,
    metrics: Metrics,
    notifier: Option<OwnerNotifier>,
}

/// Tells the owner something (drift) through a channel the composition root chose (Telegram).
pub type OwnerNotifier = Arc<dyn Fn(String) + Send + Sync>;

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Upstreams")
            .field(
                "upstreams",
                &self.inner.upstreams.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Upstreams {
    /// The upstreams of a validated configuration (nothing is started yet).
    pub fn new(
        configs: &[UpstreamConfig],
        store: Store,
        clock: SharedClock,
        metrics: Metrics,
        notifier: Option<OwnerNotifier>,
    ) -> Self {
        let mut routes = Vec::new();
        for config in configs {
            for tool in &config.tools {
                routes.push(Route {
                    upstream: config.name.clone(),
                    tool: tool.name.clone(),
                    exposed: config.exposed_name(tool),
                    scope: config.scope_of(tool),
                    mode: tool.mode,
                });
            }
        }
        let upstreams = configs
            .iter()
            .map(|config| (config.name.clone(), Arc::new(Upstream::new(config.clone()))))
            .collect();
        Self {
            inner: Arc::new(Inner {
                upstreams,
                routes,
                store,
                clock,
                metrics,
                notifier,
            }),
        }
    }

    /// Loads the pinned definitions, then starts one supervisor per upstream (none blocks:
    /// the built-in tools work with every upstream down). `shim` is this program's executable.
    pub async fn start(&self, shim: PathBuf, queue: &Queue, shutdown: &CancellationToken) {
        for upstream in self.inner.upstreams.values() {
            if upstream
                .config
                .tools
                .iter()
                .any(|tool| tool.mode == ToolMode::Queued)
            {
                tokio::spawn(self.clone().run_queued(
                    queue.clone(),
                    upstream.clone(),
                    shutdown.clone(),
                ));
            }
            if let Err(error) = self.load_pins(upstream).await {
                tracing::warn!(upstream = %upstream.config.name, error = %error, "cannot read pinned tools");
            }
            tokio::spawn(supervisor::supervise(
                self.clone(),
                upstream.clone(),
                shim.clone(),
                shutdown.clone(),
            ));
        }
    }

    /// The upstreams, by name.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Upstream>> {
        self.inner.upstreams.values()
    }

    /// One upstream.
    pub fn get(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.inner.upstreams.get(name)
    }

    /// Each upstream's state and restart count, as JSON for `upstreams list`.
    pub fn live_state(&self) -> serde_json::Value {
        let states: serde_json::Map<String, serde_json::Value> = self
            .inner
            .upstreams
            .iter()
            .map(|(name, upstream)| {
                let state = match upstream.status() {
                    Status::Starting => "starting".to_owned(),
                    Status::Ready => "ready".to_owned(),
                    Status::Disabled { reason } => format!("disabled: {reason}"),
                    Status::Backoff { retry_at, reason } => format!(
                        "backoff: {reason}; retrying in {} s",
                        retry_at.saturating_duration_since(Instant::now()).as_secs()
                    ),
                };
                (
                    name.clone(),
                    serde_json::json!({"state": state, "restarts": upstream.restarts()}),
                )
            })
            .collect();
        serde_json::Value::Object(states)
    }

    /// Every exposed tool.
    pub fn routes(&self) -> &[Route] {
        &self.inner.routes
    }

    /// The route of an exposed tool name.
    pub fn route(&self, exposed: &str) -> Option<&Route> {
        self.inner
            .routes
            .iter()
            .find(|route| route.exposed == exposed)
    }

    /// The pinned definitions of the exposed tools whose scope `allowed` accepts, under their
    /// exposed names. A tool never seen yet has no definition to show and is left out.
    pub fn list_tools(&self, allowed: impl Fn(&str) -> bool) -> Vec<Tool> {
        self.inner
            .routes
            .iter()
            .filter(|route| allowed(&route.scope))
            .filter_map(|route| {
                let upstream = self.inner.upstreams.get(&route.upstream)?;
                let mut tool = read(&upstream.pinned).get(&route.tool)?.tool.clone();
                tool.name = route.exposed.clone().into();
                Some(tool)
            })
            .collect()
    }

    /// Reads `upstream`'s pinned tools from the store (the CLI's `approve` writes them there).
    async fn load_pins(&self, upstream: &Upstream) -> Result<(), crate::store::StoreError> {
        let records = self.inner.store.pinned_tools(&upstream.config.name).await?;
        let mut pinned = BTreeMap::new();
        for record in records {
            match serde_json::from_str::<Tool>(&record.definition) {
                Ok(tool) => {
                    let drift = record.drift.as_deref().and_then(Drift::parse);
                    pinned.insert(record.name, PinnedTool { tool, drift });
                }
                Err(error) => {
                    tracing::warn!(upstream = %upstream.config.name, tool = %record.name, error = %error, "a pinned definition does not parse; it is left out");
                }
            }
        }
        upstream.set_pinned(pinned);
        Ok(())
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }

    fn now(&self) -> crate::clock::UnixSeconds {
        self.inner.clock.now()
    }

    fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    fn notify(&self, text: String) {
        if let Some(notifier) = &self.inner.notifier {
            notifier(text);
        }
    }
}

/// The longest a health ping may take before it counts as failed.
pub(crate) const PING_TIMEOUT: Duration = Duration::from_secs(10);

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere mid-write; the value is whole.
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
