//! The JSON shapes of messages and updates, shared by the MCP tools and the agent API, with
//! times as RFC 3339 strings and JSON Schemas for MCP output schemas.

use schemars::JsonSchema;
use serde::Serialize;

use crate::queue::message::MessageStatus;
use crate::queue::rfc3339;
use crate::store::{MessageRecord, UpdateRecord};

/// A message as clients and agents see it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MessageView {
    /// Message id.
    pub id: String,
    /// The target it was sent to.
    pub target: String,
    /// The text sent.
    pub content: String,
    /// Current status.
    pub status: MessageStatus,
    /// Whether it jumps the queue.
    pub urgent: bool,
    /// The client that sent it.
    pub sender: String,
    /// When it was queued (RFC 3339).
    pub created_at: String,
    /// When an agent acknowledged it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<String>,
    /// When work started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When it finished (complete, error or cancelled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

impl From<&MessageRecord> for MessageView {
    fn from(message: &MessageRecord) -> Self {
        Self {
            id: message.id.clone(),
            target: message.target.clone(),
            content: message.content.clone(),
            status: message.status,
            urgent: message.urgent,
            sender: message.sender.clone(),
            created_at: rfc3339(message.created_at),
            acknowledged_at: message.acknowledged_at.map(rfc3339),
            started_at: message.started_at.map(rfc3339),
            finished_at: message.finished_at.map(rfc3339),
        }
    }
}

/// An update: a reply from the agent or a status change.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct UpdateView {
    /// Sequence number; updates are returned in this order.
    pub seq: i64,
    /// The message it is about (absent for messages the agent sent on its own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The target it came from.
    pub target: String,
    /// What the agent said, or what happened.
    pub content: String,
    /// The status the message moved to, when this update changed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<MessageStatus>,
    /// Who wrote it: `gateway` or `agent:<name>`.
    pub source: String,
    /// When (RFC 3339).
    pub created_at: String,
}

impl From<&UpdateRecord> for UpdateView {
    fn from(update: &UpdateRecord) -> Self {
        Self {
            seq: update.seq,
            message_id: update.message_id.clone(),
            target: update.target.clone(),
            content: update.content.clone(),
            status: update.status,
            source: update.source.clone(),
            created_at: rfc3339(update.created_at),
        }
    }
}
