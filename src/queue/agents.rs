//! Agents: programs (or people) that claim tasks through the agent API. Each has a name, the
//! targets it serves, and a bearer token shown once and stored only as a hash. Agent tokens
//! and OAuth access tokens are separate kinds: neither works where the other is expected.

use std::sync::Arc;

use crate::clock::SharedClock;
use crate::queue::error::QueueError;
use crate::queue::message::is_valid_target_name;
use crate::secrets;
use crate::store::{AgentRecord, Store};

/// Prefix of agent tokens, so a leaked one is recognisable in a secret scanner.
const AGENT_TOKEN_PREFIX: &str = "nxa_";

/// The agent registry: a cheap, cloneable handle.
#[derive(Clone)]
pub struct Agents {
    store: Store,
    clock: SharedClock,
    known_targets: Arc<Vec<String>>,
}

impl std::fmt::Debug for Agents {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Agents").finish_non_exhaustive()
    }
}

impl Agents {
    /// The registry over `store`; `known_targets` are the configured target names.
    pub fn new(store: Store, clock: SharedClock, known_targets: Vec<String>) -> Self {
        Self {
            store,
            clock,
            known_targets: Arc::new(known_targets),
        }
    }

    /// Adds an agent serving `targets` and returns it with its token (shown once).
    pub async fn add(
        &self,
        name: &str,
        targets: &[String],
    ) -> Result<(AgentRecord, String), QueueError> {
        let name = name.trim();
        if !is_valid_target_name(name) {
            return Err(QueueError::Invalid(
                "an agent name uses lowercase letters, digits and -_:. (1 to 64)".into(),
            ));
        }
        if targets.is_empty() {
            return Err(QueueError::Invalid(
                "an agent must serve at least one target".into(),
            ));
        }
        if let Some(unknown) = targets
            .iter()
            .find(|target| !self.known_targets.contains(target))
        {
            return Err(QueueError::UnknownTarget {
                name: unknown.clone(),
                known: self.known_targets.to_vec(),
            });
        }
        if self.store.find_live_agent(name).await?.is_some() {
            return Err(QueueError::Invalid(format!(
                "an agent named `{name}` exists; revoke it first"
            )));
        }
        let token = format!("{AGENT_TOKEN_PREFIX}{}", secrets::random_token());
        let agent = AgentRecord {
            id: secrets::random_id("ag_"),
            name: name.to_owned(),
            targets: targets.to_vec(),
            created_at: self.clock.now(),
            revoked_at: None,
        };
        self.store
            .insert_agent(&agent, &secrets::hash_secret(&token))
            .await?;
        tracing::info!(agent = %agent.name, "agent added");
        Ok((agent, token))
    }

    /// The live agent holding `token`, if any. Lookup is by hash, so the comparison never
    /// touches the secret itself.
    pub async fn authenticate(&self, token: &str) -> Result<Option<AgentRecord>, QueueError> {
        if !token.starts_with(AGENT_TOKEN_PREFIX) {
            return Ok(None);
        }
        Ok(self
            .store
            .find_agent_by_token_hash(&secrets::hash_secret(token))
            .await?)
    }

    /// Every agent, newest first.
    pub async fn list(&self) -> Result<Vec<AgentRecord>, QueueError> {
        Ok(self.store.list_agents().await?)
    }

    /// Revokes an agent by name; false when there is none.
    pub async fn revoke(&self, name: &str) -> Result<bool, QueueError> {
        let revoked = self.store.revoke_agent(name, self.clock.now()).await?;
        if revoked {
            tracing::info!(agent = %name, "agent revoked");
        }
        Ok(revoked)
    }
}
