//! Dynamic client registration (RFC 7591 §3): validate, store (the secret only as a hash),
//! and answer with everything registered.

use serde_json::{Value, json};

use crate::oauth::AuthServer;
use crate::oauth::client::{RegistrationRejection, RegistrationRequest};
use crate::oauth::error::{ErrorCode, OAuthError};
use crate::secrets;
use crate::store::{ClientRecord, NewClient};

/// The answer to a successful registration (RFC 7591 §3.2.1).
#[derive(Debug, Clone)]
pub struct RegisteredClient {
    /// The new client's identifier.
    pub client_id: String,
    /// The response body: every registered member, the id, and the secret if any.
    pub body: Value,
}

impl AuthServer {
    /// Registers a client.
    #[tracing::instrument(skip_all)]
    pub async fn register_client(
        &self,
        request: RegistrationRequest,
    ) -> Result<RegisteredClient, OAuthError> {
        let validated = request
            .validate(&self.settings().custom_redirect_schemes)
            .map_err(|rejection| match rejection {
                RegistrationRejection::RedirectUri(why) => {
                    OAuthError::rejected(ErrorCode::InvalidRedirectUri, why)
                }
                RegistrationRejection::Metadata(why) => {
                    OAuthError::rejected(ErrorCode::InvalidClientMetadata, why)
                }
            })?;
        let now = self.now();
        let client_id = secrets::random_id("c_");
        let secret = validated
            .auth_method
            .has_secret()
            .then(secrets::random_token);
        // The name and redirect URIs have columns of their own: store them once.
        let mut stored_metadata = validated.metadata.clone();
        stored_metadata.remove("redirect_uris");
        stored_metadata.remove("client_name");
        let evicted = self
            .store()
            .insert_client(
                &NewClient {
                    id: client_id.clone(),
                    secret_hash: secret.as_deref().map(secrets::hash_secret),
                    name: validated.name.clone(),
                    redirect_uris: validated.redirect_uris.clone(),
                    auth_method: validated.auth_method.as_str().to_owned(),
                    metadata: Value::Object(stored_metadata),
                    created_at: now,
                },
                super::MAX_UNAPPROVED_CLIENTS,
            )
            .await?;
        if evicted > 0 {
            tracing::warn!(
                evicted,
                "too many clients nobody approved: the oldest were removed (a registration flood?)"
            );
        }
        tracing::info!(client_id = %client_id, auth_method = validated.auth_method.as_str(), "client registered");

        let mut body = validated.metadata;
        body.insert("client_id".into(), json!(client_id));
        body.insert("client_id_issued_at".into(), json!(now));
        if let Some(secret) = secret {
            body.insert("client_secret".into(), json!(secret));
            // Secrets never expire: an expiring DCR secret silently kills a connector.
            body.insert("client_secret_expires_at".into(), json!(0));
        }
        Ok(RegisteredClient {
            client_id,
            body: Value::Object(body),
        })
    }

    /// Lists registered clients.
    pub async fn list_clients(&self) -> Result<Vec<ClientRecord>, OAuthError> {
        Ok(self.store().list_clients().await?)
    }

    /// Removes a client with all its grants and tokens; false when there is none.
    pub async fn revoke_client(&self, client_id: &str) -> Result<bool, OAuthError> {
        let removed = self.store().delete_client(client_id).await?;
        if removed {
            tracing::info!(client_id = %client_id, "client removed by the operator");
        }
        Ok(removed)
    }
}
