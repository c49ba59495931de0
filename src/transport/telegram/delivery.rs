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
/// The pause after a step that failed inside the gateway (the store), before trying again.
const STEP_ERROR_PAUSE: Duration = Duration::from_secs(5);

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
        // Stopped (shutdown, or this replica no longer holds the bot): not one more post, or
        // the replica taking over could post the same task.
        if shutdown.is_cancelled() {
            return;
        }
        // Armed before looking, so a task queued while this one is found absent still wakes us.
        let mut work = target.queue.work_signal();
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
        let wait = match pause_after(&outcome, &mut transient_failures, rand::random()) {
            Pause::None => continue,
            Pause::UntilWork => {
                tokio::select! {
                    _ = tokio::time::timeout(IDLE_RECHECK, &mut work) => {}
                    () = shutdown.cancelled() => return,
                }
                continue;
            }
            Pause::For(wait) => wait,
        };
        match &outcome {
            Ok(Delivery::RetryAfter(_)) => {
                tracing::warn!(target = %target.name, retry_after_seconds = wait.as_secs(), "Telegram rate limit; waiting as asked");
            }
            Ok(Delivery::Transient(reason)) => {
                tracing::warn!(target = %target.name, reason = %reason, retry_in_ms = wait.as_millis() as u64, "Telegram delivery failed; will retry");
            }
            Err(error) => {
                tracing::error!(target = %target.name, error = %error, "delivery step failed");
            }
            Ok(_) => {}
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// What the delivery loop does before its next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pause {
    /// Go on at once: something was sent (or failed for good), more may be waiting.
    None,
    /// Nothing to send: sleep until a task is queued (or a periodic recheck).
    UntilWork,
    /// Wait this long: exactly `retry_after` after a 429, a jittered backoff after a fault.
    For(Duration),
}

/// The loop's wait after a step, counting consecutive transient failures for the backoff.
pub fn pause_after<E>(
    outcome: &Result<Delivery, E>,
    transient_failures: &mut u32,
    jitter: u16,
) -> Pause {
    match outcome {
        Ok(Delivery::Sent { .. } | Delivery::Failed { .. }) => {
            *transient_failures = 0;
            Pause::None
        }
        Ok(Delivery::Idle) => Pause::UntilWork,
        Ok(Delivery::RetryAfter(wait)) => Pause::For(*wait),
        Ok(Delivery::Transient(_)) => {
            *transient_failures = transient_failures.saturating_add(1);
            Pause::For(backoff(*transient_failures, jitter))
        }
        Err(_) => Pause::For(STEP_ERROR_PAUSE),
    }
}

/// Capped exponential backoff with jitter: 1 s, 2 s, 4 s ... up to a minute, each scaled by a
/// factor in [0.5, 1.0) taken from `jitter` so that retries of several gateways spread out.
pub fn backoff(failures: u32, jitter: u16) -> Duration {
    crate::clock::jittered_backoff(failures, jitter, MAX_BACKOFF)
}

/// How a posted Telegram message is recorded: unique per chat.
pub fn external_ref(chat_id: i64, message_id: i64) -> String {
    format!("{chat_id}:{message_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_429_pauses_exactly_the_retry_after_whatever_the_jitter() {
        let mut failures = 3;
        for jitter in [0, u16::MAX / 2, u16::MAX] {
            assert_eq!(
                pause_after::<()>(
                    &Ok(Delivery::RetryAfter(Duration::from_secs(7))),
                    &mut failures,
                    jitter
                ),
                Pause::For(Duration::from_secs(7))
            );
        }
        assert_eq!(
            failures, 3,
            "a 429 is not a fault and does not grow the backoff"
        );
    }

    #[test]
    fn faults_back_off_and_a_success_resets_the_backoff() {
        let mut failures = 0;
        let fault = Ok(Delivery::Transient("502".into()));
        assert_eq!(
            pause_after::<()>(&fault, &mut failures, 0),
            Pause::For(Duration::from_millis(500))
        );
        assert_eq!(
            pause_after::<()>(&fault, &mut failures, 0),
            Pause::For(Duration::from_secs(1))
        );
        let sent = Ok(Delivery::Sent {
            message_id: "m".into(),
            parts: 1,
        });
        assert_eq!(pause_after::<()>(&sent, &mut failures, 0), Pause::None);
        assert_eq!(failures, 0);
        assert_eq!(
            pause_after::<()>(&Ok(Delivery::Idle), &mut failures, 0),
            Pause::UntilWork
        );
        assert_eq!(
            pause_after(&Err(()), &mut failures, 0),
            Pause::For(STEP_ERROR_PAUSE)
        );
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        assert_eq!(backoff(1, 0), Duration::from_millis(500));
        assert!(backoff(1, u16::MAX) < Duration::from_secs(1));
        assert_eq!(backoff(3, 0), Duration::from_secs(2));
        assert!(backoff(30, u16::MAX) < MAX_BACKOFF);
        assert!(backoff(30, 0) >= MAX_BACKOFF / 2);
    }
}
