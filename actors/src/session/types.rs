//! What the session layer speaks: roles, principals and their credentials, its error type and
//! settings, and the shapes of its answers.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::passwords::HashCost;
use super::tokens::SigningKey;
use crate::ports::{Quota, StateError, Throttle};

/// Roles, each allowed everything the one before it is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Search, query, chat.
    #[default]
    Reader,
    /// Also ingest, crawl, scrape, collections.
    Editor,
    /// Also users and API keys.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "reader" => Some(Role::Reader),
            "editor" => Some(Role::Editor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A string that never shows in logs or debug output (passwords, tokens, keys).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The username, or the API key's name.
    pub name: String,
    pub role: Role,
    pub credential: Credential,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A logged-in user's access token.
    Session {
        id: String,
        /// When the access token expires (Unix seconds).
        expires_at: u64,
    },
    ApiKey {
        id: String,
        expires_at: Option<u64>,
    },
    /// `auth.enabled = false`: everyone is a local admin.
    Open,
}

impl Principal {
    /// The identity rate limits count against.
    pub fn limit_key(&self) -> String {
        match &self.credential {
            Credential::Session { .. } => format!("user:{}", self.name),
            Credential::ApiKey { id, .. } => format!("key:{id}"),
            Credential::Open => "open".to_string(),
        }
    }

    pub fn open() -> Self {
        Principal {
            name: "local".to_string(),
            role: Role::Admin,
            credential: Credential::Open,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required: send `Authorization: Bearer <token or API key>`")]
    MissingCredentials,
    /// The message is deliberately the same for every failed token check; `reason` is logged.
    #[error("invalid access token")]
    InvalidToken(&'static str),
    #[error("the access token expired; refresh it")]
    TokenExpired,
    #[error("invalid API key")]
    InvalidApiKey,
    /// Wrong password and unknown user alike.
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    #[error("this refresh token was already used; the session is revoked, log in again")]
    RefreshReused,
    #[error("this needs the {needed} role; you have {have}")]
    Forbidden {
        needed: &'static str,
        have: &'static str,
    },
    #[error("too many failed logins; try again later")]
    Locked { retry_after: Duration },
    #[error("rate limit exceeded")]
    RateLimited(Throttle),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("too many authentication requests in progress")]
    Overloaded,
    #[error("authentication is unavailable: {0}")]
    Unavailable(String),
    #[error("authentication settings: {0}")]
    Config(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StateError> for AuthError {
    fn from(error: StateError) -> Self {
        match error {
            StateError::Unavailable(e) => AuthError::Unavailable(e),
            StateError::Backend(e) => AuthError::Internal(e),
        }
    }
}

/// How sessions and tokens behave (from the settings).
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// `None`: HS256 under a secret generated once and shared through the state store.
    pub signing: Option<SigningKey>,
    pub issuer: String,
    pub audience: String,
    pub leeway: Duration,
    pub access_ttl: Duration,
    /// A refresh token unused this long expires (each refresh restarts it).
    pub refresh_ttl: Duration,
    /// A login lasts at most this long, however often it is refreshed.
    pub session_max: Duration,
    /// The bootstrap admin's password; `None` = generate one on first start.
    pub admin_password: Option<Secret>,
    pub hash_cost: HashCost,
    pub min_password_chars: usize,
    pub login_per_ip: Quota,
    pub login_per_account: Quota,
    /// Failed logins of one account within `lockout_window` before it is locked.
    pub lockout_failures: u32,
    /// Failed logins from one address within `lockout_window` before it is locked.
    pub lockout_ip_failures: u32,
    /// Failures are counted over this window; a lock lasts until it ends.
    pub lockout_window: Duration,
    /// Every authenticated caller's quota on the API.
    pub api: Quota,
    pub workers: usize,
    /// Bound on one job (login, refresh, administration).
    pub timeout: Duration,
    /// Jobs waiting or running at once before new ones get `Overloaded`.
    pub max_pending: usize,
}

impl Default for SessionConfig {
    /// The documented defaults of `config/default.toml`'s `[auth]`.
    fn default() -> Self {
        let per_minute = |limit| Quota {
            limit,
            period: Duration::from_secs(60),
        };
        Self {
            signing: None,
            issuer: "aurora".into(),
            audience: "aurora".into(),
            leeway: Duration::from_secs(30),
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(14 * 86_400),
            session_max: Duration::from_secs(30 * 86_400),
            admin_password: None,
            hash_cost: HashCost::default(),
            min_password_chars: 12,
            login_per_ip: per_minute(20),
            login_per_account: per_minute(10),
            lockout_failures: 10,
            lockout_ip_failures: 100,
            lockout_window: Duration::from_secs(900),
            api: per_minute(1200),
            workers: 2,
            timeout: Duration::from_secs(30),
            max_pending: 256,
        }
    }
}

/// What a login or refresh returns (OAuth 2 token response shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    /// Seconds the access token is valid.
    pub expires_in: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserInfo {
    pub username: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    pub created_at: u64,
    pub created_by: String,
    pub expires_at: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewKeyInfo {
    #[serde(flatten)]
    pub info: KeyInfo,
    /// The key itself: shown once, stored only as a hash.
    pub key: String,
}

/// Changes to a user; absent fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub role: Option<Role>,
    pub password: Option<Secret>,
    pub disabled: Option<bool>,
}

/// Usernames are case-insensitive: stored lower-case.
pub fn normalize_username(name: &str) -> Result<String, AuthError> {
    let name = name.trim().to_lowercase();
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    match ok {
        true => Ok(name),
        false => Err(AuthError::Invalid(
            "a username is 1–64 letters, digits, `.`, `_`, `-` or `@`".into(),
        )),
    }
}
