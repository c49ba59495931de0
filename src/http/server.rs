//! The accept loop both listeners run, in place of `axum::serve`, for what it cannot do: a
//! deadline for a request's headers (which also ends a keep-alive connection idle that long),
//! a cap on open connections past which a new one is closed at once and counted, and a bound
//! on the drain at stop. Without them, thousands of connections trickling a header byte every
//! few seconds stayed open.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::{Service, ServiceExt};

use crate::metrics::Metrics;

/// The longest a stop waits for open requests to finish. Requests have their own deadlines, but
/// a client that stops reading a large response is held by nothing (there is no write timeout),
/// and would hold the stop with it. 25 s leaves the rest of the stop (Telegram leases, the log
/// fold: 5 s each at most) inside the unit's `TimeoutStopSec=40s`.
const DRAIN_LIMIT: Duration = Duration::from_secs(25);

/// What a listener allows each connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Time to receive a request's headers, counted from when the server starts waiting for
    /// them: on a keep-alive connection, that is also how long it may sit idle.
    pub header_read_timeout: Duration,
    /// Connections open at once on this listener.
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown` fires, then waits for open requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut make_service = router.into_make_service_with_connect_info::<SocketAddr>();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors, or a connection reset before it was accepted: keep
                    // serving; a short pause stops a busy loop on EMFILE.
                    tracing::warn!(error = %error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics.connection_refused();
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = match make_service.call(peer).await {
            Ok(service) => service,
            Err(never) => match never {},
        };
        let service = hyper_util::service::TowerToHyperService::new(
            service.map_request(|request: Request<Incoming>| request.map(axum::body::Body::new)),
        );
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        let metrics = metrics.clone();
        metrics.connection(true);
        tokio::spawn(async move {
            let _ = connection.await;
            metrics.connection(false);
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_LIMIT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            limit_s = DRAIN_LIMIT.as_secs(),
            "requests still open when the drain's time ran out; stopping without them"
        );
    }
    Ok(())
}
