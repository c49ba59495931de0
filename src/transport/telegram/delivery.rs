//! Delivery: each pending task of the target is posted to the chat once, in order (urgent
//! first), as plain text split into parts, with status buttons. `deliver_one` is one step
//! that never sleeps: it says what happened and how long to wait, and `run` does the waiting.
//! So a Telegram outage delays tasks, never loses them, and the wait after a 429 is exactly
//! the `retry_after` Telegram asked for.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::queue::error::QueueError;
use crate::store::MessageRecord;
use crate::transport::telegram::TelegramTarget;
use crate::transport::telegram::api::TelegramError;
use crate::transport::telegram::format::{split_message, status_buttons, task_text};

/// The longest wait between retries of a transient failure.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long an idle worker sleeps before looking again (it is also woken by new tasks).
const IDLE_RECHECK: Duration = Duration::from_secs(30);

/// What one delivery step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// A task was posted (all its parts).
    Sent {
        /// The task.
        message_id: String,
        /// How many Telegram messages it took.
        parts: usize,
    },
    /// Nothing to deliver.
    Idle,
    /// Telegram asked to wait this long (429); the same task is retried after it.
    RetryAfter(Duration),
    /// A transient failure (5xx, timeout, dropped connection); retry with backoff.
    Transient(String),
    /// Telegram refused for good (bot blocked, chat not found, token revoked): the task was
    /// marked as error.
    Failed {
        /// The task.
        message_id: String,
        /// Why.
        reason: String,
    },
}

/// Delivery progress that must survive between steps: parts of a task already posted, so a
/// failure in the middle of a long task resumes instead of posting the first parts twice.
#[derive(Debug, Default)]
pub struct DeliveryProgress {
    posted: Option<(String, Vec<String>)>,
}

/// Delivers the next task of `target`, if any.
pub async fn deliver_one(
    target: &TelegramTarget,
    progress: &mut DeliveryProgress,
) -> Result<Delivery, QueueError> {
    let Some(task) = target.queue.next_undelivered(&target.name).await? else {
        return Ok(Delivery::Idle);
    };
    let parts = split_message(&task_text(&task));
    let mut posted = match progress.posted.take() {
        Some((id, refs)) if id == task.id => refs,
        _ => Vec::new(),
    };
    for (index, part) in parts.iter().enumerate().skip(posted.len()) {
        // The status buttons go under the last part, where the task ends.
        let buttons = (index + 1 == parts.len()).then(|| status_buttons(&task.id));
        match target
            .api
            .send_message(target.chat_id(), part, None, buttons.as_deref())
            .await
        {
            Ok(sent) => posted.push(external_ref(sent.chat.id, sent.message_id)),
            Err(error) => {
                let outcome = failure_outcome(target, &task, error).await?;
                if !matches!(outcome, Delivery::Failed { .. }) {
                    progress.posted = Some((task.id.clone(), posted));
                }
                return Ok(outcome);
            }
        }
    }
    target.queue.mark_delivered(&task, &posted).await?;
    Ok(Delivery::Sent {
        message_id: task.id,
        parts: posted.len(),
    })
}

async fn failure_outcome(
    target: &TelegramTarget,
    task: &MessageRecord,
    error: TelegramError,
) -> Result<Delivery, QueueError> {
    Ok(match error {
        TelegramError::RetryAfter(wait) => Delivery::RetryAfter(wait),
        TelegramError::Transient(reason) | TelegramError::Conflict(reason) => {
            Delivery::Transient(reason)
        }
        TelegramError::Unauthorized => {
            let reason = "the Telegram bot token was refused (401)".to_owned();
            target.queue.fail_delivery(task, &reason).await?;
            Delivery::Failed {
                message_id: task.id.clone(),
                reason,
            }
        }
        TelegramError::Permanent(reason) => {
            target.queue.fail_delivery(task, &reason).await?;
            Delivery::Failed {
                message_id: task.id.clone(),
                reason,
            }
        }
    })
}

/// Runs delivery for `target` until `shutdown`.
pub async fn run(target: TelegramTarget, shutdown: CancellationToken) {
    let mut progress = DeliveryProgress::default();
    let mut transient_failures: u32 = 0;
    loop {
        let outcome = deliver_one(&target, &mut progress).await;
        if let Ok(delivery) = &outcome {
            let label = match delivery {
                Delivery::Sent { .. } => Some("sent"),
                Delivery::RetryAfter(_) => Some("retry_after"),
                Delivery::Transient(_) => Some("transient"),
                Delivery::Failed { .. } => Some("failed"),
                Delivery::Idle => None,
            };
            if let Some(label) = label {
                target.metrics.delivery(&target.name, label);
            }
        }
        let wait = match outcome {
            Ok(Delivery::Sent { .. } | Delivery::Failed { .. }) => {
                transient_failures = 0;
                continue;
            }
            Ok(Delivery::Idle) => {
                tokio::select! {
                    () = target.queue.wait_for_work(IDLE_RECHECK) => {}
                    () = shutdown.cancelled() => return,
                }
                continue;
            }
            Ok(Delivery::RetryAfter(wait)) => {
                tracing::warn!(target = %target.name, retry_after_seconds = wait.as_secs(), "Telegram rate limit; waiting as asked");
                wait
            }
            Ok(Delivery::Transient(reason)) => {
                transient_failures = transient_failures.saturating_add(1);
                let wait = backoff(transient_failures, rand::random());
                tracing::warn!(target = %target.name, reason = %reason, retry_in_ms = wait.as_millis() as u64, "Telegram delivery failed; will retry");
                wait
            }
            Err(error) => {
                tracing::error!(target = %target.name, error = %error, "delivery step failed");
                Duration::from_secs(5)
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Capped exponential backoff with jitter: 1 s, 2 s, 4 s ... up to a minute, each scaled by a
/// factor in [0.5, 1.0) taken from `jitter` so that retries of several gateways spread out.
pub fn backoff(failures: u32, jitter: u16) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    let base = Duration::from_secs(1u64 << exponent).min(MAX_BACKOFF);
    let factor = 0.5 + f64::from(jitter) / f64::from(u16::MAX) / 2.0;
    base.mul_f64(factor.min(0.9999))
}

/// How a posted Telegram message is recorded: unique per chat.
pub fn external_ref(chat_id: i64, message_id: i64) -> String {
    format!("{chat_id}:{message_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        assert_eq!(backoff(1, 0), Duration::from_millis(500));
        assert!(backoff(1, u16::MAX) < Duration::from_secs(1));
        assert_eq!(backoff(3, 0), Duration::from_secs(2));
        assert!(backoff(30, u16::MAX) < MAX_BACKOFF);
        assert!(backoff(30, 0) >= MAX_BACKOFF / 2);
    }
}
