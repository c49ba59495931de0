//! Approval in another channel (Telegram), bound to the browser that asked. That browser's
//! waiting page shows a pairing code derived from its login-form token; the owner approves by
//! sending that code to the bot, so a tap on a prompt the owner did not start (however real it
//! looks) approves nothing. The prompt's only button is Deny, carrying a one-time token
//! (stored hashed). Each request is asked once, and a decision is never reset.

use crate::clock::UnixSeconds;
use crate::oauth::error::AuthorizeError;
use crate::oauth::{AuthServer, ConsentView};
use crate::secrets;

/// How long the owner has to answer in the other channel.
const REMOTE_APPROVAL_SECONDS: i64 = 5 * 60;

/// Digits in a pairing code: enough that a guess is hopeless for the one person who may send
/// codes (the owner), few enough to type from a phone.
const PAIRING_CODE_DIGITS: usize = 6;

/// Where a remote approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteDecision {
    /// No answer yet.
    Waiting,
    /// The owner approved.
    Approved,
    /// The owner denied.
    Denied,
    /// It expired (or was never asked).
    Expired,
}

/// What the owner is told about a request, besides the consent view: enough to tell a request
/// they started from one a stranger started.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// When the client registered.
    pub client_registered_at: UnixSeconds,
    /// Whether the owner ever approved this client before.
    pub client_approved_before: bool,
}

/// The outcome of asking for a remote approval.
#[derive(Debug, Clone)]
pub enum RemoteAsk {
    /// A new ask: send the owner the prompt, with `deny_token` on its Deny button.
    New {
        /// The one-time token of the Deny button.
        deny_token: String,
        /// What the request asks for.
        view: ConsentView,
        /// Who is asking.
        context: RequestContext,
    },
    /// This request was asked already: show its state, send nothing.
    AlreadyAsked(ConsentView),
    /// The request is unknown or expired.
    Gone,
}

/// The pairing code the browser holding `login_csrf` shows for `request_id`: only that browser
/// (and the gateway, while it holds the code's hash) can know it.
pub fn pairing_code(login_csrf: &str, request_id: &str) -> String {
    let derived = secrets::derive(
        "nexus-gateway telegram pairing v1",
        &[login_csrf, request_id],
    );
    let number = derived.bytes().take(8).fold(0u64, |acc, byte| {
        acc.wrapping_mul(131).wrapping_add(u64::from(byte))
    });
    format!(
        "{:0width$}",
        number % 1_000_000,
        width = PAIRING_CODE_DIGITS
    )
}

/// The digits of a pairing code typed by a person (`123 456`, `123-456`), or `None` when
/// `text` is not one.
pub fn parse_pairing_code(text: &str) -> Option<String> {
    let trimmed = text.trim();
    if !trimmed
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-'))
    {
        return None;
    }
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    (digits.len() == PAIRING_CODE_DIGITS).then_some(digits)
}

fn code_hash(code: &str, request_id: &str) -> String {
    secrets::derive("nexus-gateway pairing code hash v1", &[code, request_id])
}

impl AuthServer {
    /// Asks for a remote approval of a parked request, whose login form carried `login_csrf`
    /// (already checked by the caller). A request is asked at most once.
    pub async fn begin_remote_approval(
        &self,
        request_id: &str,
        login_csrf: &str,
    ) -> Result<RemoteAsk, AuthorizeError> {
        let Some(view) = self.consent_view(request_id).await? else {
            return Ok(RemoteAsk::Gone);
        };
        let Some(client) = self.store().find_client(&view.client_id).await? else {
            return Ok(RemoteAsk::Gone);
        };
        let deny_token = secrets::random_token();
        let code = pairing_code(login_csrf, request_id);
        let now = self.now();
        let expires_at =
            now + REMOTE_APPROVAL_SECONDS.min(self.settings().authorization_request_ttl);
        let asked = self
            .store()
            .insert_remote_approval(
                request_id,
                &secrets::hash_secret(&deny_token),
                &code_hash(&code, request_id),
                expires_at,
            )
            .await?;
        if !asked {
            return Ok(RemoteAsk::AlreadyAsked(view));
        }
        Ok(RemoteAsk::New {
            deny_token,
            view,
            context: RequestContext {
                client_registered_at: client.created_at,
                client_approved_before: client.authorized_at.is_some(),
            },
        })
    }

    /// Approves the one waiting request whose browser shows `code`. Returns the client's name,
    /// or `None` when no waiting request has that code.
    pub async fn approve_by_pairing_code(
        &self,
        code: &str,
    ) -> Result<Option<String>, AuthorizeError> {
        let now = self.now();
        let waiting = self.store().undecided_remote_approvals(now).await?;
        let matching: Vec<&String> = waiting
            .iter()
            .filter(|(request_id, stored)| {
                secrets::constant_time_eq(stored, &code_hash(code, request_id))
            })
            .map(|(request_id, _)| request_id)
            .collect();
        // Two waiting requests with one code (one in a million) approve neither.
        let [request_id] = matching.as_slice() else {
            return Ok(None);
        };
        if !self.store().approve_remote_request(request_id, now).await? {
            return Ok(None);
        }
        tracing::info!("owner approved an authorization request with its pairing code");
        Ok(Some(
            self.consent_view(request_id)
                .await?
                .map(|view| view.client_name)
                .unwrap_or_default(),
        ))
    }

    /// Records the owner's answer for a button token (only Deny has one). Returns the
    /// request's client name, or `None` when the token is unknown, expired or already used.
    pub async fn record_remote_decision(
        &self,
        token: &str,
        approved: bool,
    ) -> Result<Option<String>, AuthorizeError> {
        let Some(request_id) = self
            .store()
            .record_remote_decision(&secrets::hash_secret(token), approved, self.now())
            .await?
        else {
            return Ok(None);
        };
        tracing::info!(approved, "owner answered an authorization request remotely");
        Ok(Some(
            self.consent_view(&request_id)
                .await?
                .map(|view| view.client_name)
                .unwrap_or_default(),
        ))
    }

    /// Where the remote approval of a request stands.
    pub async fn remote_decision(
        &self,
        request_id: &str,
    ) -> Result<RemoteDecision, AuthorizeError> {
        Ok(
            match self.store().remote_decision(request_id, self.now()).await? {
                None => RemoteDecision::Expired,
                Some(None) => RemoteDecision::Waiting,
                Some(Some(true)) => RemoteDecision::Approved,
                Some(Some(false)) => RemoteDecision::Denied,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairing_codes_are_six_digits_bound_to_the_browser_and_request() {
        let code = pairing_code("csrf", "r1");
        assert_eq!(code.len(), 6);
        assert!(code.bytes().all(|byte| byte.is_ascii_digit()));
        assert_eq!(code, pairing_code("csrf", "r1"));
        assert_ne!(code, pairing_code("other browser", "r1"));
        assert_ne!(code, pairing_code("csrf", "r2"));
    }

    #[test]
    fn typed_codes_are_read_leniently_and_nothing_else_is() {
        assert_eq!(parse_pairing_code(" 123 456 ").as_deref(), Some("123456"));
        assert_eq!(parse_pairing_code("123-456").as_deref(), Some("123456"));
        assert_eq!(parse_pairing_code("12345"), None);
        assert_eq!(parse_pairing_code("1234567"), None);
        assert_eq!(parse_pairing_code("approve 123456"), None);
        assert_eq!(parse_pairing_code("/done"), None);
    }
}
