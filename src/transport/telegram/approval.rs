//! Owner approval in Telegram: the bot sends the owner (in their private chat with it) the
//! client's name, redirect host and scopes with Approve and Deny buttons; a tap records the
//! decision, which the waiting consent page then carries out. Only the configured owner's tap
//! counts.

use crate::oauth::ConsentView;
use crate::transport::telegram::TelegramTarget;
use crate::transport::telegram::api::TelegramError;
use crate::transport::telegram::format::approval_callback;
use crate::transport::telegram::objects::{InlineButton, User};

/// Sends the owner the approval request for `view`, with buttons carrying `token`.
pub async fn ask_owner(
    target: &TelegramTarget,
    view: &ConsentView,
    token: &str,
) -> Result<(), TelegramError> {
    let Some(owner) = target.config.owner_user_id else {
        return Err(TelegramError::Permanent(
            "no owner_user_id is configured".into(),
        ));
    };
    let scopes: Vec<&str> = view.scopes.iter().map(|scope| scope.describe()).collect();
    let text = format!(
        "Access request\n\n{} wants to use your gateway.\nIt will return to: {}\nIt will be able to:\n- {}\n\nApprove only if you started this just now.",
        view.client_name,
        view.redirect_host,
        scopes.join("\n- ")
    );
    let buttons = vec![vec![
        InlineButton {
            text: "Approve".into(),
            callback_data: approval_callback(true, token),
        },
        InlineButton {
            text: "Deny".into(),
            callback_data: approval_callback(false, token),
        },
    ]];
    // In a private chat the chat id is the user's id.
    target
        .api
        .send_message(owner, &text, None, Some(&buttons))
        .await
        .map(|_| ())
}

/// Handles a tap on Approve or Deny; returns the notice shown to the person who tapped.
pub async fn handle_button(
    target: &TelegramTarget,
    from: &User,
    approved: bool,
    token: &str,
) -> String {
    if target.config.owner_user_id != Some(from.id) || from.is_bot {
        tracing::warn!(target = %target.name, "an approval button was tapped by someone who is not the owner");
        return "Only the owner can answer this".into();
    }
    match target.auth.record_remote_decision(token, approved).await {
        Ok(Some(client)) if approved => format!("Approved: {client}"),
        Ok(Some(client)) => format!("Denied: {client}"),
        Ok(None) => "This request has expired or was already answered".into(),
        Err(error) => {
            tracing::error!(target = %target.name, error = %error, "cannot record an approval");
            "Something went wrong; try again from the browser".into()
        }
    }
}
