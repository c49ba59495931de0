//! Bounds on `pull_updates` calls that wait for news: per client and in all. A waiting call
//! holds a connection and a task for up to 50 s, and registration is open, so without a bound
//! one client (or a crowd of them) could keep the gateway's connections busy doing nothing.
//! A call over a bound is not refused: it answers at once with what there is, and says why.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Waiting calls one client may have at once. A model following a few tasks in parallel needs
/// a handful; more is a client that leaks calls or retries without waiting for an answer.
pub const MAX_WAITS_PER_CLIENT: usize = 4;
/// Waiting calls the gateway holds at once, over all clients: well under the open files and
/// tasks a small host gives the service, with room for every other request.
pub const MAX_WAITS_TOTAL: usize = 256;

/// The waiting calls held now, shared by every request's handler.
#[derive(Debug)]
pub struct WaitSlots {
    per_client: usize,
    total: usize,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    by_client: HashMap<String, usize>,
}

/// Why a call may not wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WaitRefused {
    /// The client already has its most waiting calls.
    #[error(
        "did not wait: this client already has {0} pull_updates calls waiting; read these, or wait in one call at a time"
    )]
    Client(usize),
    /// The gateway holds its most waiting calls.
    #[error("did not wait: the gateway is busy with other waiting calls; pull again shortly")]
    Total,
}

/// One waiting call's place; given back when dropped.
#[derive(Debug)]
pub struct WaitSlot {
    slots: Arc<WaitSlots>,
    client: String,
}

impl WaitSlots {
    /// Slots bounded by `per_client` and `total`.
    pub fn new(per_client: usize, total: usize) -> Self {
        Self {
            per_client,
            total,
            held: Mutex::new(Held::default()),
        }
    }

    /// Takes a place for one of `client`'s calls to wait in, if both bounds allow it.
    pub fn acquire(self: &Arc<Self>, client: &str) -> Result<WaitSlot, WaitRefused> {
        let mut held = self.lock();
        let mine = held.by_client.get(client).copied().unwrap_or(0);
        if mine >= self.per_client {
            return Err(WaitRefused::Client(self.per_client));
        }
        if held.total >= self.total {
            return Err(WaitRefused::Total);
        }
        held.total += 1;
        held.by_client.insert(client.to_owned(), mine + 1);
        Ok(WaitSlot {
            slots: Arc::clone(self),
            client: client.to_owned(),
        })
    }

    // The counts stay consistent under a panic elsewhere (each change is one step), so a
    // poisoned lock is still good to use.
    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for WaitSlots {
    fn default() -> Self {
        Self::new(MAX_WAITS_PER_CLIENT, MAX_WAITS_TOTAL)
    }
}

impl Drop for WaitSlot {
    fn drop(&mut self) {
        let mut held = self.slots.lock();
        held.total = held.total.saturating_sub(1);
        if let Some(count) = held.by_client.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.by_client.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_and_the_gateway_have_a_bound_and_places_come_back() {
        let slots = Arc::new(WaitSlots::new(2, 3));
        let a1 = slots.acquire("a").expect("first");
        let _a2 = slots.acquire("a").expect("second");
        assert_eq!(slots.acquire("a").err(), Some(WaitRefused::Client(2)));
        let _b1 = slots.acquire("b").expect("another client");
        assert_eq!(slots.acquire("c").err(), Some(WaitRefused::Total));
        drop(a1);
        let _c1 = slots.acquire("c").expect("a place came back");
        assert_eq!(slots.acquire("a").err(), Some(WaitRefused::Total));
        assert!(slots.lock().by_client.values().all(|count| *count > 0));
    }

    #[test]
    fn a_client_with_no_waiting_calls_is_forgotten() {
        let slots = Arc::new(WaitSlots::new(2, 3));
        drop(slots.acquire("a").expect("place"));
        assert!(slots.lock().by_client.is_empty());
        assert_eq!(slots.lock().total, 0);
    }
}
