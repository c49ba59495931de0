//! The load generator: N keep-alive HTTP/1.1 connections, each sending its next request as soon
//! as the previous answer is read (closed loop, like wrk), for a fixed time. Latencies are kept
//! whole (one `u32` of microseconds per request) so percentiles are exact.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

/// Builds the `n`th request a connection sends (so bodies can differ, as distinct tasks must).
pub type MakeRequest = Arc<dyn Fn(u64) -> Request<Full<Bytes>> + Send + Sync>;

/// What one timed run measured.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub requests: u64,
    pub failures: u64,
    pub per_second: f64,
    pub p50_us: u32,
    pub p99_us: u32,
}

/// Runs `connections` closed loops against `address` for `duration`.
pub async fn run(
    address: SocketAddr,
    connections: usize,
    duration: Duration,
    make: MakeRequest,
) -> Run {
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = Vec::with_capacity(connections);
    for worker in 0..connections {
        let make = make.clone();
        workers.push(tokio::spawn(async move {
            one_connection(address, deadline, worker as u64, make).await
        }));
    }
    let mut latencies = Vec::new();
    let mut failures = 0;
    for worker in workers {
        let (mut own, own_failures) = worker.await.expect("load worker");
        latencies.append(&mut own);
        failures += own_failures;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let percentile = |p: f64| -> u32 {
        if latencies.is_empty() {
            return 0;
        }
        let index = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies[index]
    };
    Run {
        requests: latencies.len() as u64,
        failures,
        per_second: (latencies.len() as u64 - failures.min(latencies.len() as u64)) as f64
            / elapsed,
        p50_us: percentile(0.50),
        p99_us: percentile(0.99),
    }
}

/// One connection's loop; a failed answer is counted, a broken connection is reopened.
async fn one_connection(
    address: SocketAddr,
    deadline: Instant,
    worker: u64,
    make: MakeRequest,
) -> (Vec<u32>, u64) {
    let mut latencies = Vec::with_capacity(64 * 1024);
    let mut failures = 0;
    // Request numbers are unique across connections: worker in the high bits.
    let mut sequence = worker << 40;
    'reconnect: while Instant::now() < deadline {
        let mut sender = match connect(address).await {
            Some(sender) => sender,
            None => {
                failures += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        while Instant::now() < deadline {
            let request = make(sequence);
            sequence += 1;
            let sent = Instant::now();
            let Ok(response) = sender.send_request(request).await else {
                failures += 1;
                continue 'reconnect;
            };
            let ok = response.status().is_success();
            let Ok(_body) = response.into_body().collect().await else {
                failures += 1;
                continue 'reconnect;
            };
            latencies.push(sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
            if !ok {
                failures += 1;
            }
        }
    }
    (latencies, failures)
}

/// An HTTP/1.1 connection, driven on its own task.
pub async fn connect(
    address: SocketAddr,
) -> Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(address).await.ok()?;
    stream.set_nodelay(true).ok()?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(connection);
    Some(sender)
}

/// One request on a fresh connection; the status and body.
pub async fn once(address: SocketAddr, request: Request<Full<Bytes>>) -> Option<(u16, Bytes)> {
    let mut sender = connect(address).await?;
    let response = sender.send_request(request).await.ok()?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some((status, body))
}
