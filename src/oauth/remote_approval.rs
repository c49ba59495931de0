//! Approval in another channel (Telegram): the owner is sent the client's name and redirect
//! host with Approve and Deny, and the waiting consent page completes once they answer. The
//! buttons carry a one-time token (stored hashed) that expires after a few minutes.

use crate::oauth::error::AuthorizeError;
use crate::oauth::{AuthServer, ConsentView};
use crate::secrets;

/// How long the owner has to answer in the other channel.
const REMOTE_APPROVAL_SECONDS: i64 = 5 * 60;

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

impl AuthServer {
    /// Starts a remote approval of a parked request: the token for the buttons and what to
    /// show the owner. `None` when the request is unknown or expired.
    pub async fn begin_remote_approval(
        &self,
        request_id: &str,
    ) -> Result<Option<(String, ConsentView)>, AuthorizeError> {
        let Some(view) = self.consent_view(request_id).await? else {
            return Ok(None);
        };
        let token = secrets::random_token();
        let now = self.now();
        let expires_at =
            now + REMOTE_APPROVAL_SECONDS.min(self.settings().authorization_request_ttl);
        self.store()
            .insert_remote_approval(request_id, &secrets::hash_secret(&token), expires_at)
            .await?;
        Ok(Some((token, view)))
    }

    /// Records the owner's answer for a button token. Returns the request's client name, or
    /// `None` when the token is unknown, expired or already used.
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
