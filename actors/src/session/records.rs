//! How accounts are stored: the records behind users, sessions and API keys, their keys in the
//! state store, and the small helpers every operation uses to read and write them.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::types::{AuthError, KeyInfo, Role, UserInfo};

#[derive(Debug, Serialize, Deserialize, Clone)]
pub(super) struct UserRecord {
    pub(super) username: String,
    pub(super) role: Role,
    pub(super) password_hash: String,
    pub(super) disabled: bool,
    /// Moved by a password change or a disable: sessions opened under an older one are void.
    pub(super) generation: u64,
    pub(super) created_at: u64,
}

#[derive(Debug, Serialize, Deserialize, Clone)]
pub(super) struct SessionRecord {
    pub(super) user: String,
    pub(super) user_generation: u64,
    /// The generation of the one refresh token that may still be used.
    pub(super) generation: u64,
    pub(super) created_at: u64,
    pub(super) expires_at: u64,
}

#[derive(Debug, Serialize, Deserialize, Clone)]
pub(super) struct KeyRecord {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) role: Role,
    /// SHA-256 of the secret part (keys are random, so a slow hash adds nothing).
    pub(super) hash: String,
    pub(super) prefix: String,
    pub(super) created_at: u64,
    pub(super) created_by: String,
    pub(super) expires_at: Option<u64>,
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(super) fn random_bytes<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::Internal(format!("no randomness: {e}")))?;
    Ok(bytes)
}

pub(super) fn random_token(bytes: [u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(super) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, AuthError> {
    serde_json::to_vec(value).map_err(|e| AuthError::Internal(format!("encoding a record: {e}")))
}

pub(super) fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, AuthError> {
    serde_json::from_slice(bytes).map_err(|e| AuthError::Internal(format!("a stored record: {e}")))
}

pub(super) fn user_key(name: &str) -> String {
    format!("auth:user:{name}")
}

pub(super) fn session_key(id: &str) -> String {
    format!("auth:session:{id}")
}

pub(super) fn api_key_key(id: &str) -> String {
    format!("auth:key:{id}")
}

pub(super) const USERS: &str = "auth:users";
pub(super) const KEYS: &str = "auth:keys";

pub(super) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    // Constant time in the content: the comparison must not tell how much of a guess was right.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(super) fn audit(event: &'static str, outcome: &'static str, subject: &str, detail: &str) {
    tracing::info!(target: "aurora::audit", event, outcome, subject, detail, "auth event");
}

pub(super) fn user_info(record: &UserRecord) -> UserInfo {
    UserInfo {
        username: record.username.clone(),
        role: record.role,
        disabled: record.disabled,
        created_at: record.created_at,
    }
}

pub(super) fn key_info(record: KeyRecord) -> KeyInfo {
    KeyInfo {
        id: record.id,
        name: record.name,
        role: record.role,
        prefix: record.prefix,
        created_at: record.created_at,
        created_by: record.created_by,
        expires_at: record.expires_at,
    }
}
