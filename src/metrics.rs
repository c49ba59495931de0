//! Prometheus metrics: requests by route and status, tool calls by tool and outcome, queue
//! depth by status, token issuance and failures, delivery attempts. Served in the text format
//! on the internal listener only (never through the public proxy).

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabels {
    tool: String,
    /// One of a few fixed words: no copy per call.
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrantLabels {
    grant_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    target: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamToolLabels {
    upstream: String,
    tool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamCallLabels {
    upstream: String,
    tool: String,
    outcome: String,
}

/// The gateway's metrics: a cheap, cloneable handle.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    requests: Family<RouteLabels, Counter>,
    tool_calls: Family<ToolLabels, Counter>,
    queue_depth: Family<StatusLabels, Gauge>,
    tokens_issued: Family<GrantLabels, Counter>,
    token_failures: Family<FailureLabels, Counter>,
    deliveries: Family<DeliveryLabels, Counter>,
    upstream_up: Family<UpstreamLabels, Gauge>,
    upstream_restarts: Family<UpstreamLabels, Counter>,
    upstream_calls: Family<UpstreamCallLabels, Counter>,
    upstream_call_seconds: Family<UpstreamLabels, Histogram>,
    upstream_drift: Family<UpstreamToolLabels, Gauge>,
    connections_open: Gauge,
    connections_refused: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Metrics(..)")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("nexus");
        let requests = Family::<RouteLabels, Counter>::default();
        let tool_calls = Family::<ToolLabels, Counter>::default();
        let queue_depth = Family::<StatusLabels, Gauge>::default();
        let tokens_issued = Family::<GrantLabels, Counter>::default();
        let token_failures = Family::<FailureLabels, Counter>::default();
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        let upstream_up = Family::<UpstreamLabels, Gauge>::default();
        let upstream_restarts = Family::<UpstreamLabels, Counter>::default();
        let upstream_calls = Family::<UpstreamCallLabels, Counter>::default();
        let upstream_call_seconds =
            Family::<UpstreamLabels, Histogram>::new_with_constructor(|| {
                Histogram::new([0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 280.0])
            });
        let upstream_drift = Family::<UpstreamToolLabels, Gauge>::default();
        let connections_open = Gauge::default();
        let connections_refused = Counter::default();
        registry.register(
            "connections_open",
            "HTTP connections open on the listeners",
            connections_open.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed at once because limits.max_connections were open",
            connections_refused.clone(),
        );
        registry.register(
            "upstream_up",
            "Whether an upstream MCP server is connected (1) or not (0)",
            upstream_up.clone(),
        );
        registry.register(
            "upstream_restarts",
            "Upstream connections restarted after a failure",
            upstream_restarts.clone(),
        );
        registry.register(
            "upstream_tool_calls",
            "Calls forwarded to upstream tools by outcome (ok, tool_error, timeout, unavailable, too_large, refused, cancelled, error)",
            upstream_calls.clone(),
        );
        registry.register(
            "upstream_call_seconds",
            "Duration of calls forwarded to an upstream",
            upstream_call_seconds.clone(),
        );
        registry.register(
            "upstream_drift",
            "Whether an upstream tool's live definition differs from the pinned one",
            upstream_drift.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route template and status",
            requests.clone(),
        );
        registry.register(
            "tool_calls",
            "MCP tool calls by tool and outcome (ok, tool_error, refused)",
            tool_calls.clone(),
        );
        registry.register(
            "queue_messages",
            "Messages by status (open statuses, at scrape time)",
            queue_depth.clone(),
        );
        registry.register(
            "tokens_issued",
            "Access tokens issued by grant type",
            tokens_issued.clone(),
        );
        registry.register(
            "token_failures",
            "Token endpoint refusals by OAuth error code",
            token_failures.clone(),
        );
        registry.register(
            "deliveries",
            "Delivery attempts by target and outcome (sent, retry_after, transient, failed)",
            deliveries.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                requests,
                tool_calls,
                queue_depth,
                tokens_issued,
                token_failures,
                deliveries,
                upstream_up,
                upstream_restarts,
                upstream_calls,
                upstream_call_seconds,
                upstream_drift,
                connections_open,
                connections_refused,
            }),
        }
    }
}

impl Metrics {
    /// Records whether an upstream is connected.
    pub fn upstream_up(&self, upstream: &str, up: bool) {
        self.inner
            .upstream_up
            .get_or_create(&UpstreamLabels {
                upstream: upstream.to_owned(),
            })
            .set(i64::from(up));
    }

    /// Counts a restart of an upstream connection.
    pub fn upstream_restart(&self, upstream: &str) {
        self.inner
            .upstream_restarts
            .get_or_create(&UpstreamLabels {
                upstream: upstream.to_owned(),
            })
            .inc();
    }

    /// Counts a forwarded call and observes its duration.
    pub fn upstream_call(
        &self,
        upstream: &str,
        tool: &str,
        outcome: &str,
        elapsed: std::time::Duration,
    ) {
        self.inner
            .upstream_calls
            .get_or_create(&UpstreamCallLabels {
                upstream: upstream.to_owned(),
                tool: tool.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        self.inner
            .upstream_call_seconds
            .get_or_create(&UpstreamLabels {
                upstream: upstream.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Records whether an upstream tool has drifted from its pinned definition.
    pub fn upstream_drift(&self, upstream: &str, tool: &str, drifted: bool) {
        self.inner
            .upstream_drift
            .get_or_create(&UpstreamToolLabels {
                upstream: upstream.to_owned(),
                tool: tool.to_owned(),
            })
            .set(i64::from(drifted));
    }
}

impl Metrics {
    /// A connection was accepted (`opened`) or ended.
    pub fn connection(&self, opened: bool) {
        if opened {
            self.inner.connections_open.inc();
        } else {
            self.inner.connections_open.dec();
        }
    }

    /// A connection was closed at once: `limits.max_connections` were open.
    pub fn connection_refused(&self) {
        self.inner.connections_refused.inc();
    }

    /// Counts a finished HTTP request.
    pub fn request(&self, route: &str, status: u16) {
        self.inner
            .requests
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
                status,
            })
            .inc();
    }

    /// Counts a tool call.
    pub fn tool_call(&self, tool: &str, outcome: &'static str) {
        self.inner
            .tool_calls
            .get_or_create(&ToolLabels {
                tool: tool.to_owned(),
                outcome,
            })
            .inc();
    }

    /// Counts an issued access token.
    pub fn token_issued(&self, grant_type: &str) {
        self.inner
            .tokens_issued
            .get_or_create(&GrantLabels {
                grant_type: grant_type.to_owned(),
            })
            .inc();
    }

    /// Counts a token endpoint refusal.
    pub fn token_failure(&self, reason: &str) {
        self.inner
            .token_failures
            .get_or_create(&FailureLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts a delivery attempt.
    pub fn delivery(&self, target: &str, outcome: &str) {
        self.inner
            .deliveries
            .get_or_create(&DeliveryLabels {
                target: target.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Sets the queue depth of one status.
    pub fn set_queue_depth(&self, status: &str, count: i64) {
        self.inner
            .queue_depth
            .get_or_create(&StatusLabels {
                status: status.to_owned(),
            })
            .set(count);
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.inner.registry).is_err() {
            text.clear();
        }
        text
    }
}
