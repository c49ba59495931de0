//! Transports: how tasks reach agents outside the gateway and how their replies come back.
//! The agent API needs none (agents pull through `http::agent_api`); the Telegram bot does.
//! Transports talk to `Queue`, never to the store.

pub mod telegram;
