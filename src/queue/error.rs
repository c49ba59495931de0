//! The queue's errors. Each variant is a case a caller answers differently; the messages are
//! written for the person or model that sent the request.

use crate::queue::message::{ContentProblem, MessageStatus};
use crate::store::StoreError;

/// A failure of a queue operation.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The message text is empty.
    #[error("the message is empty")]
    EmptyMessage,
    /// The message text is too long.
    #[error("the message is longer than {max} bytes", max = crate::queue::message::MAX_MESSAGE_BYTES)]
    MessageTooLong,
    /// The message text holds a NUL character.
    #[error("the message contains a NUL character (U+0000), which cannot be stored")]
    NulInMessage,
    /// No target by that name.
    #[error("unknown target `{name}`; known targets: {}", known.join(", "))]
    UnknownTarget {
        /// The name asked for.
        name: String,
        /// The configured names.
        known: Vec<String>,
    },
    /// No message with that id.
    #[error("no message with id `{0}`")]
    NotFound(String),
    /// The requested status change is not allowed.
    #[error("message `{id}` is {from}: {reason}")]
    InvalidTransition {
        /// The message.
        id: String,
        /// Its current status.
        from: MessageStatus,
        /// Why the change is refused.
        reason: &'static str,
    },
    /// `since` is neither a cursor nor an RFC 3339 time.
    #[error(
        "`since` must be a cursor returned as next_cursor or an RFC 3339 time such as 2026-11-21T10:00:00Z"
    )]
    BadCursor,
    /// `after` is not a cursor from an earlier answer about the message.
    #[error("`after` must be the next_cursor of an earlier answer (a whole number)")]
    BadAfter,
    /// The agent does not serve the message's target.
    #[error("this agent does not serve target `{0}`")]
    NotYourTarget(String),
    /// Another agent claimed the task; only it may report on it.
    #[error("task is claimed by agent `{0}`; only that agent can report on it")]
    ClaimedByAnother(String),
    /// A name or value given to an admin command is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error("internal error")]
    Internal(#[from] StoreError),
}

impl From<ContentProblem> for QueueError {
    fn from(problem: ContentProblem) -> Self {
        match problem {
            ContentProblem::Empty => QueueError::EmptyMessage,
            ContentProblem::TooLong => QueueError::MessageTooLong,
            ContentProblem::NulCharacter => QueueError::NulInMessage,
        }
    }
}
