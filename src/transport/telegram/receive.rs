//! Receiving: updates from `getUpdates` (or the webhook) become task updates. Only the
//! configured chat counts, only allowed users when set, never bots. A reply finds its task by
//! `reply_to_message`, then by the task's tag in the text, then as the single open task;
//! otherwise it is kept as an update with no task, as the seed bridge did. `/ack`, `/working`,
//! `/done`, `/failed` and the buttons move the task's status. Each update is handled once,
//! whatever redelivers it: its id is marked handled (and, when polling, the offset moved past
//! it) in the transaction that records what it carried, so a failed write keeps none of them
//! and the update is handled when it comes again.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::oauth::remote_approval::parse_pairing_code;
use crate::queue::error::QueueError;
use crate::queue::message::MessageStatus;
use crate::store::{MessageRecord, Receipt, Sighting};
use crate::transport::telegram::api::TelegramError;
use crate::transport::telegram::delivery::{backoff, external_ref};
use crate::transport::telegram::format::{
    ButtonAction, default_status_text, find_tag, parse_callback, parse_command, posted_task_tag,
    tag_digits, task_tag,
};
use crate::transport::telegram::objects::{CallbackQuery, Message, Update, User};
use crate::transport::telegram::{TelegramTarget, approval};

/// What handling one update did, for tests and debug logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Recorded as an update (on a task when `task` is set).
    Recorded {
        /// The task it was attached to.
        task: Option<String>,
        /// The status it moved the task to.
        status: Option<MessageStatus>,
    },
    /// Refused with a reply in the chat (an illegal status change, a command with no task).
    Answered,
    /// Not for us: another chat, a stranger, a bot, an edit, a non-text message.
    Ignored(&'static str),
    /// Seen before.
    Duplicate,
    /// An owner-approval button.
    Approval,
}

/// Handles one update that came by webhook.
pub async fn handle_update(target: &TelegramTarget, update: Update) -> Result<Handled, QueueError> {
    let receipt = receipt(target, update.update_id, None);
    handle(target, update, &receipt).await
}

/// Handles one update; `receipt` is written with what it carried, or on its own when it
/// carried nothing to keep.
async fn handle(
    target: &TelegramTarget,
    update: Update,
    receipt: &Receipt,
) -> Result<Handled, QueueError> {
    if target.queue.event_seen(receipt).await? {
        target.queue.acknowledge(receipt).await?;
        return Ok(Handled::Duplicate);
    }
    let handled = if let Some(callback) = update.callback_query {
        handle_callback(target, callback, receipt).await?
    } else if let Some(message) = update.message {
        handle_message(target, message, receipt).await?
    } else if update.edited_message.is_some() {
        // An edit must not count as a second answer.
        Handled::Ignored("edited message")
    } else {
        Handled::Ignored("update kind")
    };
    match handled {
        // Written with the reply, or by the copy that was handled first.
        Handled::Recorded { .. } | Handled::Duplicate => {}
        Handled::Ignored(why) => {
            // Counted, never with content or chat ids.
            tracing::debug!(target = %target.name, update_id = update.update_id, why, "telegram update ignored");
            target.queue.acknowledge(receipt).await?;
        }
        Handled::Answered | Handled::Approval => target.queue.acknowledge(receipt).await?,
    }
    Ok(handled)
}

/// An update's receipt: its id, and when polled the offset that confirms it.
fn receipt(target: &TelegramTarget, update_id: i64, offset_key: Option<&str>) -> Receipt {
    Receipt {
        target: target.name.clone(),
        event_id: format!("update:{update_id}"),
        state_after: offset_key.map(|key| (key.to_owned(), (update_id + 1).to_string())),
    }
}

async fn handle_message(
    target: &TelegramTarget,
    message: Message,
    receipt: &Receipt,
) -> Result<Handled, QueueError> {
    if let Some(handled) = handle_pairing_code(target, &message).await {
        return Ok(handled);
    }
    if message.chat.id != target.chat_id() {
        return Ok(Handled::Ignored("another chat"));
    }
    let Some(sender) = message.from.as_ref() else {
        return Ok(Handled::Ignored("no sender"));
    };
    if let Some(why) = refuse_sender(target, sender) {
        return Ok(Handled::Ignored(why));
    }
    let Some(text) = message
        .text
        .as_deref()
        .filter(|text| !text.trim().is_empty())
    else {
        return Ok(Handled::Ignored("not text"));
    };
    let (status, content) = parse_command(text);
    let task = correlate(target, &message, text).await?;
    if status.is_some() && task.is_none() {
        answer(
            target,
            &message,
            "Which task? Reply to the task's message (or include its #tag) so I know.",
        )
        .await;
        return Ok(Handled::Answered);
    }
    let source = source_of(sender);
    match target
        .queue
        .record_reply(receipt, task.as_ref(), &content, status, &source)
        .await
    {
        Ok(Sighting::First(_)) => Ok(Handled::Recorded {
            task: task.map(|task| task.id),
            status,
        }),
        Ok(Sighting::Repeat) => Ok(Handled::Duplicate),
        Err(QueueError::InvalidTransition { from, reason, .. }) => {
            let tag = task
                .as_ref()
                .map(|task| task_tag(&task.id))
                .unwrap_or_default();
            answer(
                target,
                &message,
                &format!("Task {tag} is {from}: {reason}. Nothing was changed."),
            )
            .await;
            Ok(Handled::Answered)
        }
        Err(error) => Err(error),
    }
}

/// A pairing code the owner sent in their private chat with the bot approves the waiting
/// request whose browser shows it. `None` when the message is not such a code (in a chat that
/// is also the task chat, a reply to a task is always a task reply).
async fn handle_pairing_code(target: &TelegramTarget, message: &Message) -> Option<Handled> {
    let owner = target.config.owner_user_id?;
    if message.chat.id != owner
        || (message.chat.id == target.chat_id() && message.reply_to_message.is_some())
    {
        return None;
    }
    let code = message.text.as_deref().and_then(parse_pairing_code)?;
    let sender = message.from.as_ref()?;
    let reply = approval::handle_code(target, sender, &code).await?;
    answer(target, message, &reply).await;
    Some(Handled::Approval)
}

async fn handle_callback(
    target: &TelegramTarget,
    callback: CallbackQuery,
    receipt: &Receipt,
) -> Result<Handled, QueueError> {
    let in_chat = callback
        .message
        .as_ref()
        .is_some_and(|message| message.chat.id == target.chat_id());
    let action = callback.data.as_deref().and_then(parse_callback);
    if let Some(ButtonAction::Approval { approved, token }) = action {
        // Approval buttons are sent to the owner's private chat, not the task chat.
        let outcome = approval::handle_button(target, &callback.from, approved, &token).await;
        acknowledge(target, &callback.id, &outcome).await;
        return Ok(Handled::Approval);
    }
    if !in_chat {
        return Ok(Handled::Ignored("button in another chat"));
    }
    if let Some(why) = refuse_sender(target, &callback.from) {
        return Ok(Handled::Ignored(why));
    }
    let Some(ButtonAction::SetStatus { status, task_id }) = action else {
        acknowledge(target, &callback.id, "Unknown button").await;
        return Ok(Handled::Ignored("unknown button"));
    };
    let task = match target.queue.find_message(&task_id).await {
        Ok(message) if message.target == target.name => message,
        Ok(_) | Err(QueueError::NotFound(_)) => {
            acknowledge(target, &callback.id, "That task is unknown").await;
            return Ok(Handled::Answered);
        }
        Err(error) => return Err(error),
    };
    let source = source_of(&callback.from);
    let result = target
        .queue
        .record_reply(
            receipt,
            Some(&task),
            default_status_text(status),
            Some(status),
            &source,
        )
        .await;
    match result {
        Ok(Sighting::Repeat) => Ok(Handled::Duplicate),
        Ok(Sighting::First(_)) => {
            acknowledge(
                target,
                &callback.id,
                &format!("Task {} is now {status}", task_tag(&task.id)),
            )
            .await;
            Ok(Handled::Recorded {
                task: Some(task.id),
                status: Some(status),
            })
        }
        Err(QueueError::InvalidTransition { from, reason, .. }) => {
            acknowledge(target, &callback.id, &format!("Task is {from}: {reason}")).await;
            Ok(Handled::Answered)
        }
        Err(error) => Err(error),
    }
}

/// Finds the task a message answers: by reply, by tag, or as the single open task.
async fn correlate(
    target: &TelegramTarget,
    message: &Message,
    text: &str,
) -> Result<Option<MessageRecord>, QueueError> {
    if let Some(replied) = &message.reply_to_message {
        let reference = external_ref(replied.chat.id, replied.message_id);
        if let Some(task) = target.queue.find_by_ref(&target.name, &reference).await? {
            return Ok(Some(task));
        }
        // A copy of a task's post whose answer from Telegram was lost (so the task was posted
        // again) has no ref, but its heading names the task. A reply to our post about a task
        // that is no longer open is not guessed onto another one.
        if let Some(tag) = own_post_tag(target, replied) {
            let open = target.queue.open_tasks(&target.name).await?;
            return Ok(open_task_tagged(open, &tag));
        }
    }
    let open = target.queue.open_tasks(&target.name).await?;
    if let Some(tag) = find_tag(text) {
        return Ok(open_task_tagged(open, &tag));
    }
    // Only when exactly one task is open can a plain message be about it; with two, guessing
    // would put the answer on the wrong task.
    Ok(match <[MessageRecord; 1]>::try_from(open) {
        Ok([only]) => Some(only),
        Err(_) => None,
    })
}

/// The tag of a task post this bot made in the target's chat. Anything else names no task,
/// whatever its text: another bot, or a person, can post the same words.
fn own_post_tag(target: &TelegramTarget, message: &Message) -> Option<String> {
    let ours = message
        .from
        .as_ref()
        .is_some_and(|author| author.is_bot && author.id == target.bot_id);
    if !ours || message.chat.id != target.chat_id() {
        return None;
    }
    posted_task_tag(message.text.as_deref()?)
}

/// The open task (of the target's) whose tag is `tag`; none when two share it (32 random bits
/// make that rare, and an answer is better asked for again than put on the wrong task).
fn open_task_tagged(open: Vec<MessageRecord>, tag: &str) -> Option<MessageRecord> {
    let mut tagged = open.into_iter().filter(|task| tag_digits(&task.id) == tag);
    let first = tagged.next()?;
    tagged.next().is_none().then_some(first)
}

fn refuse_sender(target: &TelegramTarget, sender: &User) -> Option<&'static str> {
    if sender.is_bot {
        return Some("a bot");
    }
    let allowed = &target.config.allowed_user_ids;
    (!allowed.is_empty() && !allowed.contains(&sender.id)).then_some("a user not allowed")
}

fn source_of(sender: &User) -> String {
    match &sender.username {
        Some(username) => format!("telegram:@{username}"),
        None => format!("telegram:{}", sender.first_name),
    }
}

async fn answer(target: &TelegramTarget, message: &Message, text: &str) {
    if let Err(error) = target
        .api
        .send_message(message.chat.id, text, Some(message.message_id), None)
        .await
    {
        tracing::warn!(target = %target.name, error = %error, "cannot answer in the Telegram chat");
    }
}

async fn acknowledge(target: &TelegramTarget, callback_id: &str, text: &str) {
    if let Err(error) = target.api.answer_callback_query(callback_id, text).await {
        tracing::warn!(target = %target.name, error = %error, "cannot answer a button tap");
    }
}

/// Fetches one batch of updates and handles it; the offset past each update is stored with
/// it, so a restart neither replays nor skips.
pub async fn poll_once(target: &TelegramTarget) -> Result<usize, PollError> {
    let key = offset_key(&target.name);
    let offset = target
        .queue
        .transport_state(&key)
        .await?
        .and_then(|value| value.parse::<i64>().ok())
        .unwrap_or(0);
    let updates = target
        .api
        .get_updates(offset, target.config.poll_timeout)
        .await?;
    let count = updates.len();
    for update in updates {
        let receipt = receipt(target, update.update_id, Some(&key));
        // A failed write kept nothing of the update, the offset included: it comes again.
        handle(target, update, &receipt).await?;
    }
    Ok(count)
}

/// A failed poll.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// Telegram refused or failed.
    #[error(transparent)]
    Telegram(#[from] TelegramError),
    /// The store failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// The store key of a target's `getUpdates` offset.
pub fn offset_key(target: &str) -> String {
    format!("telegram:{target}:offset")
}

/// Long-polls for updates until `shutdown`.
pub async fn run_polling(target: TelegramTarget, shutdown: CancellationToken) {
    // A webhook set by an earlier run (or another tool) would make every poll a 409.
    if let Err(error) = target.api.delete_webhook().await {
        tracing::warn!(target = %target.name, error = %error, "cannot clear a webhook before polling");
    }
    let mut failures: u32 = 0;
    loop {
        let outcome = tokio::select! {
            outcome = poll_once(&target) => outcome,
            () = shutdown.cancelled() => return,
        };
        let wait = match outcome {
            Ok(_) => {
                failures = 0;
                continue;
            }
            Err(PollError::Telegram(TelegramError::Conflict(_))) => {
                failures = failures.saturating_add(1);
                tracing::error!(
                    target = %target.name,
                    "Telegram answered 409 Conflict: another instance is polling this bot, or a webhook is set; backing off"
                );
                backoff(failures + 4, rand::random())
            }
            Err(PollError::Telegram(TelegramError::RetryAfter(wait))) => wait,
            Err(PollError::Telegram(TelegramError::Unauthorized)) => {
                tracing::error!(target = %target.name, "the Telegram bot token was refused (401); check the token");
                Duration::from_secs(60)
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                tracing::warn!(target = %target.name, error = %error, "Telegram poll failed; will retry");
                backoff(failures, rand::random())
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::telegram::format::pending_task as task;

    #[test]
    fn a_tag_names_a_task_only_when_one_open_task_has_it() {
        let a = "019d3f1c-2b4a-7e01-9c3d-4a5b8c1e2f3a";
        let b = "019d3f1c-2b4a-7e02-8d4e-5b6c00000001";
        let found = open_task_tagged(vec![task(a), task(b)], "8c1e2f3a");
        assert_eq!(found.map(|task| task.id), Some(a.to_owned()));
        // The same time prefix names nothing: only the random end is the tag.
        assert!(open_task_tagged(vec![task(a), task(b)], "019d3f1c").is_none());
        // Two open tasks sharing a tag: neither is guessed.
        let twin = "019d3f1d-0000-7e03-9000-00008c1e2f3a";
        assert!(open_task_tagged(vec![task(a), task(twin)], "8c1e2f3a").is_none());
    }
}
