//! The message model: statuses and their legal transitions (pending → acknowledged →
//! in_progress → complete | error; open ones may be cancelled), the dedup key, and the rules
//! for message text. Pure: no I/O, no clock.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Longest message text accepted, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Queued, not yet seen by the agent.
    Pending,
    /// The agent has it.
    Acknowledged,
    /// The agent is working on it.
    InProgress,
    /// Done.
    Complete,
    /// The agent (or delivery) failed.
    Error,
    /// Withdrawn by the sender before work started.
    Cancelled,
}

impl MessageStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [MessageStatus; 6] = [
        MessageStatus::Pending,
        MessageStatus::Acknowledged,
        MessageStatus::InProgress,
        MessageStatus::Complete,
        MessageStatus::Error,
        MessageStatus::Cancelled,
    ];

    /// Statuses of a message still open: the ones dedup applies to.
    pub const OPEN: [MessageStatus; 3] = [
        MessageStatus::Pending,
        MessageStatus::Acknowledged,
        MessageStatus::InProgress,
    ];

    /// The status as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Pending => "pending",
            MessageStatus::Acknowledged => "acknowledged",
            MessageStatus::InProgress => "in_progress",
            MessageStatus::Complete => "complete",
            MessageStatus::Error => "error",
            MessageStatus::Cancelled => "cancelled",
        }
    }

    /// Whether nothing can follow this status.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            MessageStatus::Complete | MessageStatus::Error | MessageStatus::Cancelled
        )
    }

    /// Whether a message may move from `self` to `next`: forward only (skipping steps is
    /// fine), cancelling only before work starts, and never out of a terminal status.
    pub fn can_move_to(self, next: MessageStatus) -> bool {
        use MessageStatus::{Acknowledged, Cancelled, Complete, Error, InProgress, Pending};
        matches!(
            (self, next),
            (
                Pending,
                Acknowledged | InProgress | Complete | Error | Cancelled
            ) | (Acknowledged, InProgress | Complete | Error | Cancelled)
                | (InProgress, Complete | Error)
        )
    }

    fn rank(self) -> u8 {
        match self {
            MessageStatus::Pending => 0,
            MessageStatus::Acknowledged => 1,
            MessageStatus::InProgress => 2,
            MessageStatus::Complete | MessageStatus::Error | MessageStatus::Cancelled => 3,
        }
    }

    /// Explains why `self -> next` is refused, for error messages.
    pub fn why_not(self, next: MessageStatus) -> &'static str {
        if self.is_terminal() {
            "the message is already finished"
        } else if next == MessageStatus::Cancelled {
            "work on the message has started, so it can no longer be cancelled"
        } else if next.rank() <= self.rank() {
            "a message's status only moves forward"
        } else {
            "that status change is not allowed"
        }
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for MessageStatus {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        MessageStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| format!("unknown status `{text}`"))
    }
}

/// The dedup key of a message text: hex SHA-256 of its exact bytes.
pub fn content_hash(content: &str) -> String {
    Sha256::digest(content.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Why a message text is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentProblem {
    /// Nothing but white space.
    Empty,
    /// Over `MAX_MESSAGE_BYTES`.
    TooLong,
    /// Holds a NUL character, which PostgreSQL text cannot store (and no person types).
    NulCharacter,
}

/// Checks a message text.
pub fn check_content(content: &str) -> Result<(), ContentProblem> {
    if content.trim().is_empty() {
        Err(ContentProblem::Empty)
    } else if content.len() > MAX_MESSAGE_BYTES {
        Err(ContentProblem::TooLong)
    } else if content.contains('\0') {
        Err(ContentProblem::NulCharacter)
    } else {
        Ok(())
    }
}

/// Checks a target name: lowercase letters, digits and `-_:.`, 1 to 64 characters.
pub fn is_valid_target_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|byte| {
            byte.is_ascii_lowercase()
                || byte.is_ascii_digit()
                || matches!(byte, b'-' | b'_' | b':' | b'.')
        })
}

#[cfg(test)]
mod tests {
    use super::MessageStatus::{Acknowledged, Cancelled, Complete, Error, InProgress, Pending};
    use super::*;

    #[track_caller]
    fn check(from: MessageStatus, allowed: &[MessageStatus]) {
        for to in MessageStatus::ALL {
            assert_eq!(
                from.can_move_to(to),
                allowed.contains(&to),
                "{from} -> {to}"
            );
        }
    }

    #[test]
    fn transitions_move_forward_only() {
        check(
            Pending,
            &[Acknowledged, InProgress, Complete, Error, Cancelled],
        );
        check(Acknowledged, &[InProgress, Complete, Error, Cancelled]);
        check(InProgress, &[Complete, Error]);
        check(Complete, &[]);
        check(Error, &[]);
        check(Cancelled, &[]);
    }

    #[test]
    fn refusals_explain_themselves() {
        assert_eq!(
            Complete.why_not(InProgress),
            "the message is already finished"
        );
        assert!(
            InProgress
                .why_not(Cancelled)
                .contains("can no longer be cancelled")
        );
        assert_eq!(
            InProgress.why_not(Acknowledged),
            "a message's status only moves forward"
        );
    }

    #[test]
    fn statuses_round_trip_through_text() {
        for status in MessageStatus::ALL {
            assert_eq!(status.as_str().parse::<MessageStatus>(), Ok(status));
        }
        assert!("done".parse::<MessageStatus>().is_err());
    }

    #[test]
    fn content_and_target_rules() {
        assert_eq!(check_content("  \n"), Err(ContentProblem::Empty));
        assert_eq!(
            check_content(&"x".repeat(MAX_MESSAGE_BYTES + 1)),
            Err(ContentProblem::TooLong)
        );
        assert_eq!(check_content("hello"), Ok(()));
        assert_eq!(
            check_content("nul\0byte"),
            Err(ContentProblem::NulCharacter)
        );
        assert_eq!(content_hash("a"), content_hash("a"));
        assert_ne!(content_hash("a"), content_hash("a "));
        assert!(is_valid_target_name("nexus:felt"));
        assert!(!is_valid_target_name("Homelab"));
        assert!(!is_valid_target_name(""));
    }
}
