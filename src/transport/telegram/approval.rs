//! Owner approval in Telegram: the bot sends the owner (in their private chat with it) who is
//! asking (client name, redirect host, scopes, the requester's address and browser, when the
//! client registered and whether it was ever approved) with a single Deny button. Approving
//! takes the pairing code shown in the browser that asked, sent to the bot by the owner: a
//! careless tap can only deny. Only the configured owner counts.

use crate::clock::UnixSeconds;
use crate::oauth::ConsentView;
use crate::oauth::remote_approval::RequestContext;
use crate::oauth::scope::ScopeCatalog;
use crate::queue::rfc3339;
use crate::transport::telegram::TelegramTarget;
use crate::transport::telegram::api::TelegramError;
use crate::transport::telegram::format::approval_callback;
use crate::transport::telegram::objects::{InlineButton, User};

/// Longest user agent quoted in a prompt.
const MAX_USER_AGENT_CHARS: usize = 120;

/// Who opened the request, as the gateway saw them.
#[derive(Debug, Clone)]
pub struct Requester<'a> {
    /// The client address (after `trusted_proxies`).
    pub address: String,
    /// The browser's `User-Agent`, if it sent one.
    pub user_agent: Option<&'a str>,
}

/// Sends the owner the approval request for `view`, its Deny button carrying `deny_token`.
pub async fn ask_owner(
    target: &TelegramTarget,
    view: &ConsentView,
    deny_token: &str,
    context: &RequestContext,
    requester: &Requester<'_>,
) -> Result<(), TelegramError> {
    let Some(owner) = target.config.owner_user_id else {
        return Err(TelegramError::Permanent(
            "no owner_user_id is configured".into(),
        ));
    };
    let text = prompt_text(view, context, requester, &target.auth.settings().scopes);
    let buttons = vec![vec![InlineButton {
        text: "Deny".into(),
        callback_data: approval_callback(false, deny_token),
    }]];
    // In a private chat the chat id is the user's id.
    target
        .api
        .send_message(owner, &text, None, Some(&buttons))
        .await
        .map(|_| ())
}

/// The prompt: what is asked, who asks, and how (not) to approve.
pub fn prompt_text(
    view: &ConsentView,
    context: &RequestContext,
    requester: &Requester<'_>,
    catalog: &ScopeCatalog,
) -> String {
    let scopes: Vec<String> = view
        .scopes
        .iter()
        .map(|scope| catalog.describe(scope))
        .collect();
    let user_agent: String = requester
        .user_agent
        .map(|agent| {
            agent
                .chars()
                .filter(|c| !c.is_control())
                .take(MAX_USER_AGENT_CHARS)
                .collect()
        })
        .unwrap_or_else(|| "no user agent".into());
    let history = if context.client_approved_before {
        "approved before"
    } else {
        "never approved before"
    };
    format!(
        "Access request\n\n\u{2068}{}\u{2069} wants to use your gateway.\nIt will return to: {}\nIt will be able to:\n- {}\n\nRequested from {} ({user_agent}).\nThis client registered {}, {history}.\n\nTo approve, send me the 6-digit code shown in the browser that asked. If you did not start this just now, tap Deny: nothing here approves without that code.",
        view.client_name,
        view.redirect_host,
        scopes.join("\n- "),
        requester.address,
        registered_when(context.client_registered_at),
    )
}

fn registered_when(at: UnixSeconds) -> String {
    format!("at {}", rfc3339(at))
}

/// Sends the owner a notice (an upstream's drift, say) in their private chat with the bot.
pub async fn notify_owner(target: &TelegramTarget, text: &str) {
    let Some(owner) = target.config.owner_user_id else {
        return;
    };
    if let Err(error) = target.api.send_message(owner, text, None, None).await {
        tracing::warn!(target = %target.name, error = %error, "cannot send the owner a notice");
    }
}

/// Handles a tap on Deny; returns the notice shown to the person who tapped.
pub async fn handle_button(
    target: &TelegramTarget,
    from: &User,
    approved: bool,
    token: &str,
) -> String {
    if !is_owner(target, from) {
        tracing::warn!(target = %target.name, "an approval button was tapped by someone who is not the owner");
        return "Only the owner can answer this".into();
    }
    if approved {
        // No prompt carries an Approve button any more; an old one must not approve.
        return "Approving needs the code shown in the browser: send it to me".into();
    }
    match target.auth.record_remote_decision(token, false).await {
        Ok(Some(client)) => format!("Denied: {client}"),
        Ok(None) => "This request has expired or was already answered".into(),
        Err(error) => {
            tracing::error!(target = %target.name, error = %error, "cannot record an approval");
            "Something went wrong; try again from the browser".into()
        }
    }
}

/// Handles a pairing code the owner sent; returns the reply to send, or `None` when the
/// sender is not the owner (the message is then not an approval at all).
pub async fn handle_code(target: &TelegramTarget, from: &User, code: &str) -> Option<String> {
    if !is_owner(target, from) {
        return None;
    }
    Some(match target.auth.approve_by_pairing_code(code).await {
        Ok(Some(client)) => format!("Approved: {client}"),
        Ok(None) => "No waiting request shows that code; nothing was approved".into(),
        Err(error) => {
            tracing::error!(target = %target.name, error = %error, "cannot record an approval");
            "Something went wrong; try again from the browser".into()
        }
    })
}

fn is_owner(target: &TelegramTarget, from: &User) -> bool {
    target.config.owner_user_id == Some(from.id) && !from.is_bot
}
