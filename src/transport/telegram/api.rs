//! A small Bot API client over reqwest. Every failure is classified for the caller (retry
//! after N, transient, conflict, permanent), and no error string ever contains the URL, which
//! carries the bot token.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::transport::telegram::objects::{
    ApiResponse, Chat, InlineButton, Message, Update, User, WebhookInfo,
};

/// Update kinds the bridge asks for; `allowed_updates` is sticky on Telegram's side, so it is
/// always sent explicitly.
pub const ALLOWED_UPDATES: [&str; 3] = ["message", "edited_message", "callback_query"];

/// A Bot API failure, classified by what the caller should do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TelegramError {
    /// 429: wait exactly this long, then retry.
    #[error("rate limited by Telegram: retry after {} s", .0.as_secs())]
    RetryAfter(Duration),
    /// 409: another poller or a webhook owns the bot's updates.
    #[error("conflict: {0}")]
    Conflict(String),
    /// 401: the bot token is wrong or revoked.
    #[error("the bot token was refused (401 Unauthorized)")]
    Unauthorized,
    /// 400/403/404: this request will never succeed (blocked, kicked, chat not found, ...).
    #[error("refused by Telegram: {0}")]
    Permanent(String),
    /// 5xx, an HTML error page, a timeout or a dropped connection: try again later.
    #[error("temporary failure: {0}")]
    Transient(String),
}

/// The Bot API for one bot.
#[derive(Clone)]
pub struct BotApi {
    http: reqwest::Client,
    // `<api_base>/bot<token>`: never logged, never put in an error.
    method_base: String,
}

impl std::fmt::Debug for BotApi {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("BotApi(..)")
    }
}

impl BotApi {
    /// A client for the bot with `token` at `api_base`.
    pub fn new(api_base: &str, token: &str) -> Result<Self, TelegramError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| TelegramError::Transient(error.without_url().to_string()))?;
        Ok(Self {
            http,
            method_base: format!("{}/bot{token}", api_base.trim_end_matches('/')),
        })
    }

    /// `getMe`: who the bot is (a cheap token check).
    pub async fn get_me(&self) -> Result<User, TelegramError> {
        self.call("getMe", &json!({}), Duration::from_secs(15))
            .await
    }

    /// `getChat`: whether the bot can see the chat.
    pub async fn get_chat(&self, chat_id: i64) -> Result<Chat, TelegramError> {
        self.call(
            "getChat",
            &json!({"chat_id": chat_id}),
            Duration::from_secs(15),
        )
        .await
    }

    /// `sendMessage` as plain text (no `parse_mode`: arbitrary text must arrive as written),
    /// optionally replying to a message and with inline buttons.
    pub async fn send_message(
        &self,
        chat_id: i64,
        text: &str,
        reply_to: Option<i64>,
        buttons: Option<&[Vec<InlineButton>]>,
    ) -> Result<Message, TelegramError> {
        let mut params = json!({"chat_id": chat_id, "text": text, "link_preview_options": {"is_disabled": true}});
        if let Some(message_id) = reply_to {
            params["reply_parameters"] =
                json!({"message_id": message_id, "allow_sending_without_reply": true});
        }
        if let Some(buttons) = buttons {
            params["reply_markup"] = json!({"inline_keyboard": buttons});
        }
        self.call("sendMessage", &params, Duration::from_secs(30))
            .await
    }

    /// `getUpdates`, long-polling up to `timeout`; the HTTP timeout is set above it.
    pub async fn get_updates(
        &self,
        offset: i64,
        timeout: Duration,
    ) -> Result<Vec<Update>, TelegramError> {
        let params = json!({"offset": offset, "timeout": timeout.as_secs(), "limit": 100, "allowed_updates": ALLOWED_UPDATES});
        self.call("getUpdates", &params, timeout + Duration::from_secs(10))
            .await
    }

    /// `answerCallbackQuery`: stops the button's spinner, with a short notice.
    pub async fn answer_callback_query(
        &self,
        callback_query_id: &str,
        text: &str,
    ) -> Result<bool, TelegramError> {
        self.call(
            "answerCallbackQuery",
            &json!({"callback_query_id": callback_query_id, "text": text}),
            Duration::from_secs(15),
        )
        .await
    }

    /// `setWebhook` with a secret token and an explicit update list.
    pub async fn set_webhook(&self, url: &str, secret_token: &str) -> Result<bool, TelegramError> {
        let params = json!({"url": url, "secret_token": secret_token, "allowed_updates": ALLOWED_UPDATES, "drop_pending_updates": false});
        self.call("setWebhook", &params, Duration::from_secs(15))
            .await
    }

    /// `deleteWebhook`, keeping queued updates.
    pub async fn delete_webhook(&self) -> Result<bool, TelegramError> {
        self.call(
            "deleteWebhook",
            &json!({"drop_pending_updates": false}),
            Duration::from_secs(15),
        )
        .await
    }

    /// `getWebhookInfo`.
    pub async fn get_webhook_info(&self) -> Result<WebhookInfo, TelegramError> {
        self.call("getWebhookInfo", &json!({}), Duration::from_secs(15))
            .await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        params: &impl Serialize,
        timeout: Duration,
    ) -> Result<T, TelegramError> {
        let response = self
            .http
            .post(format!("{}/{method}", self.method_base))
            .json(params)
            .timeout(timeout)
            .send()
            .await
            // `without_url`: reqwest errors name the URL, and the URL holds the token.
            .map_err(|error| {
                TelegramError::Transient(format!("{method}: {}", error.without_url()))
            })?;
        let status = response.status();
        let header_retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        let body = response.bytes().await.map_err(|error| {
            TelegramError::Transient(format!("{method}: {}", error.without_url()))
        })?;
        let Ok(envelope) = serde_json::from_slice::<ApiResponse<Value>>(&body) else {
            // 502/504 from Telegram's front end come as HTML pages.
            return Err(classify(
                status.as_u16(),
                &format!("{method}: unexpected response (HTTP {status})"),
                header_retry_after,
            ));
        };
        if envelope.ok {
            let result = envelope.result.unwrap_or(Value::Null);
            return serde_json::from_value(result).map_err(|error| {
                TelegramError::Transient(format!("{method}: unexpected result ({error})"))
            });
        }
        let code = envelope
            .error_code
            .and_then(|code| u16::try_from(code).ok())
            .unwrap_or(status.as_u16());
        let retry_after = envelope
            .parameters
            .and_then(|parameters| parameters.retry_after)
            .or(header_retry_after);
        let description = envelope
            .description
            .unwrap_or_else(|| format!("HTTP {code}"));
        Err(classify(
            code,
            &format!("{method}: {description}"),
            retry_after,
        ))
    }
}

fn classify(code: u16, description: &str, retry_after: Option<u64>) -> TelegramError {
    match code {
        429 => TelegramError::RetryAfter(Duration::from_secs(retry_after.unwrap_or(5))),
        409 => TelegramError::Conflict(description.to_owned()),
        401 => TelegramError::Unauthorized,
        400 | 403 | 404 => TelegramError::Permanent(description.to_owned()),
        _ => TelegramError::Transient(description.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_classified_by_what_to_do() {
        assert_eq!(
            classify(429, "x", Some(7)),
            TelegramError::RetryAfter(Duration::from_secs(7))
        );
        assert_eq!(classify(401, "x", None), TelegramError::Unauthorized);
        assert!(matches!(
            classify(403, "Forbidden: bot was blocked by the user", None),
            TelegramError::Permanent(_)
        ));
        assert!(matches!(
            classify(400, "Bad Request: chat not found", None),
            TelegramError::Permanent(_)
        ));
        assert!(matches!(
            classify(
                409,
                "Conflict: terminated by other getUpdates request",
                None
            ),
            TelegramError::Conflict(_)
        ));
        assert!(matches!(
            classify(502, "bad gateway", None),
            TelegramError::Transient(_)
        ));
        assert!(matches!(
            classify(500, "Internal Server Error: restart", None),
            TelegramError::Transient(_)
        ));
    }

    #[test]
    fn the_token_never_appears_in_debug_output() {
        let api = BotApi::new("https://api.telegram.org", "123456:SECRET-token").expect("client");
        assert!(!format!("{api:?}").contains("SECRET"));
    }
}
