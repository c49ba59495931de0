//! The Bot API objects the bridge reads and writes (core.telegram.org/bots/api), with only
//! the fields it uses. Ids are `i64`: chat and user ids can exceed 32 bits.

use serde::{Deserialize, Serialize};

/// Every Bot API response: `{"ok": true, "result": ...}` or `{"ok": false, "error_code", ...}`.
#[derive(Debug, Deserialize)]
pub struct ApiResponse<T> {
    /// Whether the call succeeded.
    pub ok: bool,
    /// The result, on success.
    pub result: Option<T>,
    /// The error code (equal to the HTTP status), on failure.
    pub error_code: Option<i64>,
    /// A human-readable reason, on failure.
    pub description: Option<String>,
    /// Extra details, such as `retry_after` with a 429.
    pub parameters: Option<ResponseParameters>,
}

/// `ResponseParameters`.
#[derive(Debug, Deserialize)]
pub struct ResponseParameters {
    /// Seconds to wait before retrying (with 429).
    pub retry_after: Option<u64>,
}

/// A Telegram user or bot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    /// User id.
    pub id: i64,
    /// Whether it is a bot.
    #[serde(default)]
    pub is_bot: bool,
    /// First name.
    #[serde(default)]
    pub first_name: String,
    /// `@username`, without the `@`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// A chat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Chat {
    /// Chat id (negative for groups).
    pub id: i64,
    /// `private`, `group`, `supergroup` or `channel`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Group title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Private chat's first name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
}

/// A message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    /// Message id, unique within its chat only.
    pub message_id: i64,
    /// The sender (absent in channels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<User>,
    /// The chat it belongs to.
    pub chat: Chat,
    /// Text, for text messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The message this one replies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to_message: Option<Box<Message>>,
}

/// A tap on an inline button.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallbackQuery {
    /// Id to answer with `answerCallbackQuery`.
    pub id: String,
    /// Who tapped.
    pub from: User,
    /// The message the button was on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    /// The button's `callback_data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// An incoming update: exactly one of the optional fields is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Update {
    /// Monotonic id; `offset = last + 1` confirms it.
    pub update_id: i64,
    /// A new message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    /// An edited message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_message: Option<Message>,
    /// A button tap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_query: Option<CallbackQuery>,
}

/// `getWebhookInfo`'s result, as much as `telegram check` prints.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookInfo {
    /// The webhook URL, empty when none is set.
    #[serde(default)]
    pub url: String,
    /// Updates waiting to be delivered.
    #[serde(default)]
    pub pending_update_count: i64,
    /// The last delivery error, if any.
    #[serde(default)]
    pub last_error_message: Option<String>,
}

/// An inline button.
#[derive(Debug, Clone, Serialize)]
pub struct InlineButton {
    /// Its label.
    pub text: String,
    /// What a tap sends back (at most 64 bytes).
    pub callback_data: String,
}
