//! `queue_status`'s numbers: open-message counts per target, the update total and the current
//! task, read from the store once per change and served from memory in between. The queue moves
//! its change counter after every committed write (`Queue::updates_recorded`), so a cached answer
//! is never older than the last change this process made.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use crate::queue::Queue;
use crate::queue::error::QueueError;
use crate::store::{MessageRecord, StatusCounts};

/// Queue counts for `queue_status`.
#[derive(Debug, Clone)]
pub struct QueueSnapshot {
    /// Open-message counts per target (every configured target, zeros included).
    pub per_target: Vec<StatusCounts>,
    /// Updates recorded in all.
    pub total_updates: i64,
    /// The oldest message in progress, if any.
    pub current_task: Option<MessageRecord>,
}

/// Snapshots by target filter (`None` for all targets; only configured names get in), all
/// taken at one value of the change counter.
#[derive(Debug, Default)]
pub(super) struct SnapshotCache {
    // Held for a lookup or an insert, never across an await.
    state: Mutex<(u64, SnapshotsByTarget)>,
}

/// Shared, so a cached answer is handed out without copying its strings.
type SnapshotsByTarget = HashMap<Option<String>, Arc<QueueSnapshot>>;

impl SnapshotCache {
    fn get(&self, changes: u64, target: &Option<String>) -> Option<Arc<QueueSnapshot>> {
        let state = self.lock();
        if state.0 != changes {
            return None;
        }
        state.1.get(target).cloned()
    }

    /// Keeps `snapshot`, read from the store after the counter was `changes`. A snapshot
    /// older than what is kept is dropped; a newer one replaces them all.
    fn put(&self, changes: u64, target: Option<String>, snapshot: Arc<QueueSnapshot>) {
        let mut state = self.lock();
        if changes < state.0 {
            return;
        }
        if changes > state.0 {
            *state = (changes, HashMap::new());
        }
        state.1.insert(target, snapshot);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, SnapshotsByTarget)> {
        // A poisoned lock only means a panic elsewhere mid-insert; the map inside is whole.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Queue {
    /// Counts of open messages per target, the update total and the current task.
    pub async fn snapshot(&self, target: Option<&str>) -> Result<Arc<QueueSnapshot>, QueueError> {
        let target = target
            .map(|name| self.resolve_target(Some(name)))
            .transpose()?;
        // Read before the store is: a change committed after this point moves the counter,
        // so what is read below is cached under a value that is already stale, never as current.
        let changes = self.inner.changes.load(Ordering::Acquire);
        if let Some(snapshot) = self.inner.snapshots.get(changes, &target) {
            return Ok(snapshot);
        }
        let snapshot = Arc::new(self.read_snapshot(target.as_deref()).await?);
        self.inner
            .snapshots
            .put(changes, target, Arc::clone(&snapshot));
        Ok(snapshot)
    }

    async fn read_snapshot(&self, target: Option<&str>) -> Result<QueueSnapshot, QueueError> {
        let counted: BTreeMap<String, StatusCounts> = self
            .inner
            .store
            .open_counts()
            .await?
            .into_iter()
            .map(|counts| (counts.target.clone(), counts))
            .collect();
        let per_target = self
            .inner
            .targets
            .iter()
            .filter(|configured| target.is_none_or(|wanted| wanted == configured.name))
            .map(|configured| {
                counted
                    .get(&configured.name)
                    .cloned()
                    .unwrap_or_else(|| StatusCounts {
                        target: configured.name.clone(),
                        ..StatusCounts::default()
                    })
            })
            .collect();
        let current_task = self.inner.store.current_in_progress(target).await?;
        Ok(QueueSnapshot {
            per_target,
            total_updates: self.inner.store.count_updates().await?,
            current_task,
        })
    }
}
