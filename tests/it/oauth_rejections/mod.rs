//! One test per rule the authorization server enforces: each sends what an attacker or a
//! broken client would, and checks the exact error the RFC prescribes. One file per endpoint:
//! `authorize`, `token`, `register`, and `guard` (the bearer guard in front of `/mcp`).

mod authorize;
mod guard;
mod register;
mod token;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use nexus_gateway::store::Store;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{
    PROTECTED, Pkce, REDIRECT_URI, TestApp, assert_oauth_error, redirect_params, spawn_app,
    spawn_app_with,
};
