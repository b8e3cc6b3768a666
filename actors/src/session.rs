//! SessionActor: who is calling, and may they. Users (argon2id password hashes), logins with
//! rotating refresh tokens, JWT access tokens tied to a session record, API keys, roles, and the
//! rate limits and lock-outs around them. Everything lives in the state store, so every replica
//! sees a logout, a revoked key or a lock-out at once.
//!
//! Messages: one [`SessionJob`] carrying a [`SessionOp`] — login, refresh, logout, password
//! change, user and API-key administration — answered with a [`SessionAnswer`].
//!
//! Restart: the actor is a ractor `Factory` of `SessionWorker`s (`auth.workers` of them, so at
//! most that many password hashes burn CPU at once), a permanent child of the root supervisor.
//! Workers hold no state: a crashed one is replaced by the factory with its queue kept, and
//! everything a job changed is already in the state store.
//!
//! The per-request check ([`Handle::authenticate`]) does not queue behind password hashes in the
//! mailbox: it verifies the JWT (or looks up the API key) and reads the session record in the
//! caller's task, through the same [`Accounts`] the workers use.
//!
//! State-store keys (all under `auth:`): `user:{name}` + set `users`, `key:{id}` + set `keys`,
//! `session:{id}`, `secret:{jwt|refresh}` (generated once, shared by replicas), `fail:…` (failed
//! logins in their window) and `rl:…` (GCRA rate limits).

pub mod passwords;
pub mod tokens;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ractor::RpcReplyPort;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{OnceCell, Semaphore};

use crate::Names;
use crate::pool::{self, JobHandler, PoolJob};
use crate::ports::{Quota, StateError, StateStore, Throttle};
use crate::supervisor::ChildSpec;

pub use passwords::HashCost;
pub use tokens::SigningKey;
use tokens::{AccessClaims, Rejection, TokenKeys};

/// What an API key starts with, so a bearer credential says which kind it is.
pub const API_KEY_PREFIX: &str = "aur_";

/// Keys an embedded state store must keep on disk (accounts outlive a restart; caches do not).
pub const DURABLE_PREFIXES: [&str; 4] = ["auth:user", "auth:key", "auth:session", "auth:secret"];

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

#[derive(Debug, Serialize, Deserialize, Clone)]
struct UserRecord {
    username: String,
    role: Role,
    password_hash: String,
    disabled: bool,
    /// Moved by a password change or a disable: sessions opened under an older one are void.
    generation: u64,
    created_at: u64,
}

#[derive(Debug, Serialize, Deserialize, Clone)]
struct SessionRecord {
    user: String,
    user_generation: u64,
    /// The generation of the one refresh token that may still be used.
    generation: u64,
    created_at: u64,
    expires_at: u64,
}

#[derive(Debug, Serialize, Deserialize, Clone)]
struct KeyRecord {
    id: String,
    name: String,
    role: Role,
    /// SHA-256 of the secret part (keys are random, so a slow hash adds nothing).
    hash: String,
    prefix: String,
    created_at: u64,
    created_by: String,
    expires_at: Option<u64>,
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How long the pair of a shared refresh is handed to the requests that raced it.
const REFRESH_SHARED_GRACE: Duration = Duration::from_secs(30);
const REFRESH_SHARED_POLL: Duration = Duration::from_millis(50);
/// 2 s of waiting for a concurrent refresh before giving up.
const REFRESH_SHARED_POLLS: u32 = 40;
const PENDING: &[u8] = b"pending";

/// A refreshed pair as the requests that raced for it read it back.
#[derive(Serialize, Deserialize)]
struct SharedPair {
    access_token: String,
    refresh_token: String,
    expires_in: u64,
}

fn random_bytes<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::Internal(format!("no randomness: {e}")))?;
    Ok(bytes)
}

fn random_token(bytes: [u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, AuthError> {
    serde_json::to_vec(value).map_err(|e| AuthError::Internal(format!("encoding a record: {e}")))
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, AuthError> {
    serde_json::from_slice(bytes).map_err(|e| AuthError::Internal(format!("a stored record: {e}")))
}

fn user_key(name: &str) -> String {
    format!("auth:user:{name}")
}

fn session_key(id: &str) -> String {
    format!("auth:session:{id}")
}

fn api_key_key(id: &str) -> String {
    format!("auth:key:{id}")
}

const USERS: &str = "auth:users";
const KEYS: &str = "auth:keys";

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

fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    // Constant time in the content: the comparison must not tell how much of a guess was right.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn audit(event: &'static str, outcome: &'static str, subject: &str, detail: &str) {
    tracing::info!(target: "aurora::audit", event, outcome, subject, detail, "auth event");
}

/// The logic every replica shares; the workers and the handle both call it.
pub struct Accounts {
    state: Arc<dyn StateStore>,
    config: SessionConfig,
    /// Built on first use, so Aurora starts while Redis is still coming up.
    keys: OnceCell<TokenKeys>,
    /// Verified against when the user does not exist, so both cases cost one argon2 check.
    decoy: OnceCell<String>,
}

impl Accounts {
    pub fn new(state: Arc<dyn StateStore>, config: SessionConfig) -> Self {
        Self {
            state,
            config,
            keys: OnceCell::new(),
            decoy: OnceCell::new(),
        }
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    async fn keys(&self) -> Result<&TokenKeys, AuthError> {
        self.keys
            .get_or_try_init(|| async {
                let refresh = self.shared_secret("auth:secret:refresh").await?;
                let signing = match &self.config.signing {
                    Some(key) => key.clone(),
                    None => SigningKey::Hs256(self.shared_secret("auth:secret:jwt").await?),
                };
                TokenKeys::new(
                    &signing,
                    &self.config.issuer,
                    &self.config.audience,
                    self.config.leeway.as_secs(),
                    refresh,
                )
            })
            .await
    }

    /// A random secret created by whichever replica gets there first, then read by all.
    async fn shared_secret(&self, key: &str) -> Result<Vec<u8>, AuthError> {
        let fresh = random_bytes::<32>()?.to_vec();
        self.state
            .set_if_absent(key.to_string(), fresh, None)
            .await?;
        self.state
            .get_many(&[key.to_string()])
            .await?
            .pop()
            .flatten()
            .ok_or_else(|| AuthError::Internal(format!("{key} vanished")))
    }

    async fn decoy(&self) -> Result<String, AuthError> {
        self.decoy
            .get_or_try_init(|| passwords::hash("decoy".into(), self.config.hash_cost))
            .await
            .cloned()
    }

    /// Makes sure the signing keys and the first admin exist. Returns the admin's password when
    /// it was generated here (to be shown once).
    pub async fn bootstrap(&self) -> Result<Option<Secret>, AuthError> {
        self.keys().await?;
        self.decoy().await?;
        if self.user("admin").await?.is_some() {
            return Ok(None);
        }
        let (password, generated) = match &self.config.admin_password {
            Some(password) => (password.clone(), false),
            None => (Secret(random_token(random_bytes::<32>()?)), true),
        };
        let record = UserRecord {
            username: "admin".into(),
            role: Role::Admin,
            password_hash: passwords::hash(password.0.clone(), self.config.hash_cost).await?,
            disabled: false,
            generation: 0,
            created_at: now(),
        };
        // Replicas starting together: one creates the admin, the others find it there.
        let created = self
            .state
            .set_if_absent(user_key("admin"), encode(&record)?, None)
            .await?;
        if !created {
            return Ok(None);
        }
        self.state.set_add(USERS, &["admin".to_string()]).await?;
        audit("user_created", "success", "admin", "bootstrap");
        Ok(generated.then_some(password))
    }

    async fn user(&self, name: &str) -> Result<Option<UserRecord>, AuthError> {
        match self
            .state
            .get_many(&[user_key(name)])
            .await?
            .pop()
            .flatten()
        {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// The caller behind a bearer credential (access token or API key).
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal, AuthError> {
        if let Some(key) = bearer.strip_prefix(API_KEY_PREFIX) {
            return self.authenticate_key(key).await;
        }
        let claims = self.keys().await?.verify(bearer).map_err(|r| match r {
            Rejection::Expired => AuthError::TokenExpired,
            Rejection::Invalid(why) => AuthError::InvalidToken(why),
        })?;
        self.check_session(&claims).await
    }

    async fn check_session(&self, claims: &AccessClaims) -> Result<Principal, AuthError> {
        // One round trip for both records.
        let mut records = self
            .state
            .get_many(&[session_key(&claims.sid), user_key(&claims.sub)])
            .await?
            .into_iter();
        let (Some(Some(session)), Some(Some(user))) = (records.next(), records.next()) else {
            return Err(AuthError::InvalidToken("session ended"));
        };
        let session: SessionRecord = decode(&session)?;
        let user: UserRecord = decode(&user)?;
        if session.user != claims.sub || user.disabled || user.generation != session.user_generation
        {
            return Err(AuthError::InvalidToken("session revoked"));
        }
        Ok(Principal {
            name: user.username,
            role: user.role,
            credential: Credential::Session {
                id: claims.sid.clone(),
                expires_at: claims.exp,
            },
        })
    }

    async fn authenticate_key(&self, key: &str) -> Result<Principal, AuthError> {
        let (id, secret) = key.split_once('_').ok_or(AuthError::InvalidApiKey)?;
        if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AuthError::InvalidApiKey);
        }
        let Some(bytes) = self
            .state
            .get_many(&[api_key_key(id)])
            .await?
            .pop()
            .flatten()
        else {
            return Err(AuthError::InvalidApiKey);
        };
        let record: KeyRecord = decode(&bytes)?;
        let hash = crate::knowledge::hex(&Sha256::digest(secret.as_bytes()));
        if !same_bytes(hash.as_bytes(), record.hash.as_bytes()) {
            return Err(AuthError::InvalidApiKey);
        }
        if record.expires_at.is_some_and(|at| at <= now()) {
            return Err(AuthError::InvalidApiKey);
        }
        Ok(Principal {
            name: record.name,
            role: record.role,
            credential: Credential::ApiKey {
                id: record.id,
                expires_at: record.expires_at,
            },
        })
    }

    /// One request of `principal` against its API quota.
    pub async fn throttle(&self, limit_key: &str) -> Result<Throttle, AuthError> {
        Ok(self
            .state
            .throttle(format!("auth:rl:api:{limit_key}"), self.config.api, 1)
            .await?)
    }

    async fn login(
        &self,
        username: &str,
        password: &Secret,
        ip: &str,
    ) -> Result<TokenPair, AuthError> {
        // An invalid name is just a user that does not exist (same answer, same cost).
        let name = normalize_username(username).unwrap_or_else(|_| "-".to_string());
        let login_outcome = |outcome: &'static str| {
            metrics::counter!("aurora_auth_logins_total", "outcome" => outcome).increment(1);
        };
        // Slowed: a GCRA quota per address and per account, before any hashing.
        for (scope, key, quota) in [
            (
                "login_ip",
                format!("auth:rl:login-ip:{ip}"),
                self.config.login_per_ip,
            ),
            (
                "login_account",
                format!("auth:rl:login-user:{name}"),
                self.config.login_per_account,
            ),
        ] {
            let throttle = self.state.throttle(key, quota, 1).await?;
            if !throttle.allowed {
                metrics::counter!("aurora_auth_rate_limited_total", "scope" => scope).increment(1);
                login_outcome("throttled");
                audit("login", "throttled", &name, ip);
                return Err(AuthError::RateLimited(throttle));
            }
        }
        // Then locked, after too many failures in the window.
        let window = self.config.lockout_window;
        let user_failures = format!("auth:fail:user:{name}");
        let ip_failures = format!("auth:fail:ip:{ip}");
        let (by_user, user_left) = self
            .state
            .increment(user_failures.clone(), 0, window)
            .await?;
        let (by_ip, ip_left) = self.state.increment(ip_failures.clone(), 0, window).await?;
        let locked = [
            (
                by_user >= i64::from(self.config.lockout_failures),
                user_left,
            ),
            (by_ip >= i64::from(self.config.lockout_ip_failures), ip_left),
        ]
        .into_iter()
        .filter(|(locked, _)| *locked)
        .map(|(_, left)| left)
        .max();
        if let Some(retry_after) = locked {
            login_outcome("locked");
            audit("login", "locked", &name, ip);
            return Err(AuthError::Locked { retry_after });
        }

        let user = self.user(&name).await?;
        let hash = match &user {
            Some(user) => user.password_hash.clone(),
            None => self.decoy().await?,
        };
        metrics::counter!("aurora_auth_password_checks_total").increment(1);
        let matches = passwords::verify(password.0.clone(), hash).await?;
        let user = match user {
            Some(user) if matches && !user.disabled => user,
            _ => {
                self.state.increment(user_failures, 1, window).await?;
                self.state.increment(ip_failures, 1, window).await?;
                login_outcome("invalid");
                audit("login", "failure", &name, ip);
                return Err(AuthError::InvalidCredentials);
            }
        };
        self.state.delete(&[user_failures]).await?;
        let tokens = self.open_session(&user).await?;
        login_outcome("success");
        audit("login", "success", &name, ip);
        Ok(tokens)
    }

    async fn open_session(&self, user: &UserRecord) -> Result<TokenPair, AuthError> {
        let id = URL_SAFE_NO_PAD.encode(random_bytes::<16>()?);
        let at = now();
        let record = SessionRecord {
            user: user.username.clone(),
            user_generation: user.generation,
            generation: 0,
            created_at: at,
            expires_at: at + self.config.session_max.as_secs(),
        };
        self.state
            .set_many(
                vec![(session_key(&id), encode(&record)?)],
                Some(self.session_ttl(&record)),
            )
            .await?;
        self.tokens(&id, &record, user.role).await
    }

    fn session_ttl(&self, record: &SessionRecord) -> Duration {
        let left = Duration::from_secs(record.expires_at.saturating_sub(now()).max(1));
        self.config.refresh_ttl.min(left)
    }

    async fn tokens(
        &self,
        session: &str,
        record: &SessionRecord,
        role: Role,
    ) -> Result<TokenPair, AuthError> {
        let keys = self.keys().await?;
        let at = now();
        let claims = AccessClaims {
            iss: self.config.issuer.clone(),
            aud: self.config.audience.clone(),
            sub: record.user.clone(),
            exp: at + self.config.access_ttl.as_secs(),
            nbf: at,
            iat: at,
            jti: URL_SAFE_NO_PAD.encode(random_bytes::<16>()?),
            sid: session.to_string(),
            role,
        };
        Ok(TokenPair {
            access_token: keys.issue(&claims)?,
            refresh_token: keys.refresh_token(session, record.generation)?,
            token_type: "bearer",
            expires_in: self.config.access_ttl.as_secs(),
        })
    }

    async fn refresh(&self, token: &Secret) -> Result<TokenPair, AuthError> {
        let outcome = refresh_outcome;
        let keys = self.keys().await?;
        let Some((session, generation)) = keys.parse_refresh(&token.0) else {
            outcome("invalid");
            return Err(AuthError::InvalidRefreshToken);
        };
        let key = session_key(session);
        let Some(stored) = self
            .state
            .get_many(std::slice::from_ref(&key))
            .await?
            .pop()
            .flatten()
        else {
            outcome("invalid");
            return Err(AuthError::InvalidRefreshToken);
        };
        let record: SessionRecord = decode(&stored)?;
        if generation < record.generation {
            return self.revoke_reused(&key, &record.user).await;
        }
        let user = self.user(&record.user).await?;
        let live = user
            .as_ref()
            .is_some_and(|u| !u.disabled && u.generation == record.user_generation);
        if generation > record.generation || record.expires_at <= now() || !live {
            outcome("invalid");
            return Err(AuthError::InvalidRefreshToken);
        }
        let next = SessionRecord {
            generation: generation + 1,
            ..record.clone()
        };
        let rotated = self
            .state
            .replace_if(
                key.clone(),
                stored,
                encode(&next)?,
                Some(self.session_ttl(&next)),
            )
            .await?;
        if !rotated {
            // Another refresh (or a logout) got there between our read and our write: the
            // token was spent by someone else, which is reuse unless the session is gone.
            if self
                .state
                .get_many(std::slice::from_ref(&key))
                .await?
                .first()
                .is_some_and(Option::is_some)
            {
                return self.revoke_reused(&key, &record.user).await;
            }
            outcome("invalid");
            return Err(AuthError::InvalidRefreshToken);
        }
        outcome("rotated");
        let role = user.map_or(Role::Reader, |u| u.role);
        self.tokens(session, &next, role).await
    }

    /// A refresh on behalf of a browser: the web interface's pages, scripts and polls can all
    /// arrive at once (on any replica) with the same expired access cookie. The first one
    /// refreshes; the others, within `REFRESH_SHARED_GRACE`, get the same new pair instead of
    /// spending the token again, which rotation would treat as reuse and end the session for.
    async fn refresh_shared(&self, token: &Secret) -> Result<TokenPair, AuthError> {
        let slot = format!(
            "auth:refresh-shared:{}",
            URL_SAFE_NO_PAD.encode(Sha256::digest(token.0.as_bytes()))
        );
        if self
            .state
            .set_if_absent(slot.clone(), PENDING.to_vec(), Some(REFRESH_SHARED_GRACE))
            .await?
        {
            let result = self.refresh(token).await;
            match &result {
                Ok(pair) => {
                    let shared = SharedPair {
                        access_token: pair.access_token.clone(),
                        refresh_token: pair.refresh_token.clone(),
                        expires_in: pair.expires_in,
                    };
                    self.state
                        .set_many(vec![(slot, encode(&shared)?)], Some(REFRESH_SHARED_GRACE))
                        .await?;
                }
                Err(_) => {
                    self.state.delete(&[slot]).await?;
                }
            }
            return result;
        }
        // Another request is refreshing this token: wait (boundedly) for the pair it gets.
        for _ in 0..REFRESH_SHARED_POLLS {
            tokio::time::sleep(REFRESH_SHARED_POLL).await;
            match self
                .state
                .get_many(std::slice::from_ref(&slot))
                .await?
                .pop()
            {
                Some(Some(value)) if value != PENDING => {
                    let shared: SharedPair = decode(&value)?;
                    return Ok(TokenPair {
                        access_token: shared.access_token,
                        refresh_token: shared.refresh_token,
                        token_type: "bearer",
                        expires_in: shared.expires_in,
                    });
                }
                Some(Some(_)) => continue,
                // The other refresh failed (the slot was cleared): so does this one.
                _ => break,
            }
        }
        Err(AuthError::InvalidRefreshToken)
    }

    /// A spent refresh token came back: whoever holds the family, one of them is not the user.
    /// The whole session goes (RFC 6819 §5.2.2.3).
    async fn revoke_reused(&self, key: &str, user: &str) -> Result<TokenPair, AuthError> {
        self.state.delete(&[key.to_string()]).await?;
        refresh_outcome("reused");
        audit("refresh", "reuse_revoked", user, "");
        Err(AuthError::RefreshReused)
    }

    async fn logout(&self, principal: &Principal) -> Result<(), AuthError> {
        match &principal.credential {
            Credential::Session { id, .. } => {
                self.state.delete(&[session_key(id)]).await?;
                audit("logout", "success", &principal.name, "");
                Ok(())
            }
            Credential::ApiKey { .. } => Err(AuthError::Invalid(
                "an API key does not log out; an admin revokes it with DELETE /v1/auth/keys/{id}"
                    .into(),
            )),
            Credential::Open => Ok(()),
        }
    }

    fn check_password(&self, password: &Secret) -> Result<(), AuthError> {
        let chars = password.0.chars().count();
        if chars < self.config.min_password_chars || chars > 1024 {
            return Err(AuthError::Invalid(format!(
                "a password has {} to 1024 characters",
                self.config.min_password_chars
            )));
        }
        Ok(())
    }

    async fn create_user(
        &self,
        username: &str,
        password: &Secret,
        role: Role,
        by: &Principal,
    ) -> Result<UserInfo, AuthError> {
        let name = normalize_username(username)?;
        self.check_password(password)?;
        let record = UserRecord {
            username: name.clone(),
            role,
            password_hash: passwords::hash(password.0.clone(), self.config.hash_cost).await?,
            disabled: false,
            generation: 0,
            created_at: now(),
        };
        if !self
            .state
            .set_if_absent(user_key(&name), encode(&record)?, None)
            .await?
        {
            return Err(AuthError::Conflict(format!("user `{name}` already exists")));
        }
        self.state
            .set_add(USERS, std::slice::from_ref(&name))
            .await?;
        audit("user_created", "success", &name, &by.name);
        Ok(user_info(&record))
    }

    async fn list_users(&self) -> Result<Vec<UserInfo>, AuthError> {
        let mut names = self.state.set_members(USERS).await?;
        names.sort();
        let keys: Vec<String> = names.iter().map(|n| user_key(n)).collect();
        let mut users = Vec::new();
        for bytes in self.state.get_many(&keys).await?.into_iter().flatten() {
            users.push(user_info(&decode::<UserRecord>(&bytes)?));
        }
        Ok(users)
    }

    /// Applies `change` to the stored user with compare-and-swap, so two admins editing the
    /// same user at once cannot lose one of the edits.
    async fn edit_user(
        &self,
        name: &str,
        change: impl Fn(&mut UserRecord),
    ) -> Result<UserRecord, AuthError> {
        for _ in 0..8 {
            let Some(stored) = self
                .state
                .get_many(&[user_key(name)])
                .await?
                .pop()
                .flatten()
            else {
                return Err(AuthError::NotFound(format!("no user `{name}`")));
            };
            let mut record: UserRecord = decode(&stored)?;
            change(&mut record);
            if self
                .state
                .replace_if(user_key(name), stored, encode(&record)?, None)
                .await?
            {
                return Ok(record);
            }
        }
        Err(AuthError::Conflict(format!(
            "user `{name}` is being changed concurrently; try again"
        )))
    }

    async fn update_user(
        &self,
        username: &str,
        update: &UserUpdate,
        by: &Principal,
    ) -> Result<UserInfo, AuthError> {
        let name = normalize_username(username)?;
        let is_self = matches!(by.credential, Credential::Session { .. }) && by.name == name;
        if is_self && (update.role.is_some_and(|r| r != by.role) || update.disabled == Some(true)) {
            return Err(AuthError::Invalid(
                "you cannot demote or disable yourself; ask another admin".into(),
            ));
        }
        let hash = match &update.password {
            Some(password) => {
                self.check_password(password)?;
                Some(passwords::hash(password.0.clone(), self.config.hash_cost).await?)
            }
            None => None,
        };
        let record = self
            .edit_user(&name, |record| {
                if let Some(role) = update.role {
                    record.role = role;
                }
                if let Some(disabled) = update.disabled {
                    record.disabled = disabled;
                }
                if let Some(hash) = &hash {
                    record.password_hash = hash.clone();
                }
                // A new password or a disable ends every session of the user.
                if hash.is_some() || update.disabled == Some(true) {
                    record.generation += 1;
                }
            })
            .await?;
        audit("user_updated", "success", &name, &by.name);
        Ok(user_info(&record))
    }

    async fn delete_user(&self, username: &str, by: &Principal) -> Result<(), AuthError> {
        let name = normalize_username(username)?;
        if matches!(by.credential, Credential::Session { .. }) && by.name == name {
            return Err(AuthError::Invalid("you cannot delete yourself".into()));
        }
        if self.state.delete(&[user_key(&name)]).await? == 0 {
            return Err(AuthError::NotFound(format!("no user `{name}`")));
        }
        self.state
            .set_remove(USERS, std::slice::from_ref(&name))
            .await?;
        audit("user_deleted", "success", &name, &by.name);
        Ok(())
    }

    async fn change_password(
        &self,
        principal: &Principal,
        current: &Secret,
        new: &Secret,
    ) -> Result<(), AuthError> {
        if !matches!(principal.credential, Credential::Session { .. }) {
            return Err(AuthError::Invalid(
                "only a logged-in user changes their password".into(),
            ));
        }
        self.check_password(new)?;
        let user = self
            .user(&principal.name)
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        metrics::counter!("aurora_auth_password_checks_total").increment(1);
        if !passwords::verify(current.0.clone(), user.password_hash).await? {
            audit("password_changed", "failure", &principal.name, "");
            return Err(AuthError::InvalidCredentials);
        }
        let hash = passwords::hash(new.0.clone(), self.config.hash_cost).await?;
        self.edit_user(&principal.name, |record| {
            record.password_hash = hash.clone();
            record.generation += 1;
        })
        .await?;
        audit("password_changed", "success", &principal.name, "");
        Ok(())
    }

    async fn create_key(
        &self,
        name: &str,
        role: Role,
        expires_in: Option<Duration>,
        by: &Principal,
    ) -> Result<NewKeyInfo, AuthError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(AuthError::Invalid(
                "an API key needs a name of 1–100 characters".into(),
            ));
        }
        let id = crate::knowledge::hex(&random_bytes::<8>()?);
        let secret = random_token(random_bytes::<32>()?);
        let key = format!("{API_KEY_PREFIX}{id}_{secret}");
        let at = now();
        let record = KeyRecord {
            id: id.clone(),
            name: name.to_string(),
            role,
            hash: crate::knowledge::hex(&Sha256::digest(secret.as_bytes())),
            prefix: key.chars().take(API_KEY_PREFIX.len() + 8).collect(),
            created_at: at,
            created_by: by.name.clone(),
            expires_at: expires_in.map(|d| at + d.as_secs()),
        };
        self.state
            .set_many(vec![(api_key_key(&id), encode(&record)?)], None)
            .await?;
        self.state.set_add(KEYS, std::slice::from_ref(&id)).await?;
        audit("api_key_created", "success", &id, &by.name);
        Ok(NewKeyInfo {
            info: key_info(record),
            key,
        })
    }

    async fn list_keys(&self) -> Result<Vec<KeyInfo>, AuthError> {
        let ids = self.state.set_members(KEYS).await?;
        let keys: Vec<String> = ids.iter().map(|id| api_key_key(id)).collect();
        let mut listed = Vec::new();
        for bytes in self.state.get_many(&keys).await?.into_iter().flatten() {
            listed.push(key_info(decode::<KeyRecord>(&bytes)?));
        }
        listed.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(listed)
    }

    async fn revoke_key(&self, id: &str, by: &Principal) -> Result<(), AuthError> {
        if self.state.delete(&[api_key_key(id)]).await? == 0 {
            return Err(AuthError::NotFound(format!("no API key `{id}`")));
        }
        self.state.set_remove(KEYS, &[id.to_string()]).await?;
        audit("api_key_revoked", "success", id, &by.name);
        Ok(())
    }

    /// Carries out one operation (what a session worker runs for each job).
    pub async fn run(&self, op: SessionOp) -> Result<SessionAnswer, AuthError> {
        use SessionAnswer as A;
        Ok(match op {
            SessionOp::Login {
                username,
                password,
                ip,
            } => A::Tokens(self.login(&username, &password, &ip).await?),
            SessionOp::Refresh { token } => A::Tokens(self.refresh(&token).await?),
            SessionOp::Logout { principal } => {
                self.logout(&principal).await?;
                A::Done
            }
            SessionOp::ChangePassword {
                principal,
                current,
                new,
            } => {
                self.change_password(&principal, &current, &new).await?;
                A::Done
            }
            SessionOp::CreateUser {
                username,
                password,
                role,
                by,
            } => A::User(self.create_user(&username, &password, role, &by).await?),
            SessionOp::ListUsers => A::Users(self.list_users().await?),
            SessionOp::UpdateUser {
                username,
                update,
                by,
            } => A::User(self.update_user(&username, &update, &by).await?),
            SessionOp::DeleteUser { username, by } => {
                self.delete_user(&username, &by).await?;
                A::Done
            }
            SessionOp::CreateKey {
                name,
                role,
                expires_in,
                by,
            } => A::KeyCreated(self.create_key(&name, role, expires_in, &by).await?),
            SessionOp::ListKeys => A::Keys(self.list_keys().await?),
            SessionOp::RevokeKey { id, by } => {
                self.revoke_key(&id, &by).await?;
                A::Done
            }
        })
    }
}

fn refresh_outcome(outcome: &'static str) {
    metrics::counter!("aurora_auth_refreshes_total", "outcome" => outcome).increment(1);
}

fn user_info(record: &UserRecord) -> UserInfo {
    UserInfo {
        username: record.username.clone(),
        role: record.role,
        disabled: record.disabled,
        created_at: record.created_at,
    }
}

fn key_info(record: KeyRecord) -> KeyInfo {
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

/// What the session pool can be asked to do.
#[derive(Debug)]
pub enum SessionOp {
    Login {
        username: String,
        password: Secret,
        /// The client's address (per-address limits and lock-out).
        ip: String,
    },
    Refresh {
        token: Secret,
    },
    Logout {
        principal: Principal,
    },
    ChangePassword {
        principal: Principal,
        current: Secret,
        new: Secret,
    },
    CreateUser {
        username: String,
        password: Secret,
        role: Role,
        by: Principal,
    },
    ListUsers,
    UpdateUser {
        username: String,
        update: UserUpdate,
        by: Principal,
    },
    DeleteUser {
        username: String,
        by: Principal,
    },
    CreateKey {
        name: String,
        role: Role,
        expires_in: Option<Duration>,
        by: Principal,
    },
    ListKeys,
    RevokeKey {
        id: String,
        by: Principal,
    },
}

#[derive(Debug)]
pub enum SessionAnswer {
    Tokens(TokenPair),
    Done,
    User(UserInfo),
    Users(Vec<UserInfo>),
    KeyCreated(NewKeyInfo),
    Keys(Vec<KeyInfo>),
}

/// One job for the session pool.
pub enum SessionJob {
    Run {
        op: SessionOp,
        reply: RpcReplyPort<Result<SessionAnswer, AuthError>>,
    },
    #[cfg(feature = "fault-injection")]
    Panic,
}

impl PoolJob for SessionJob {
    fn fail_unavailable(self) {
        match self {
            SessionJob::Run { reply, .. } => {
                let _ = reply.send(Err(AuthError::Unavailable("the session pool".into())));
            }
            #[cfg(feature = "fault-injection")]
            SessionJob::Panic => {}
        }
    }
}

pub(crate) struct SessionWorker {
    accounts: Arc<Accounts>,
}

impl JobHandler for SessionWorker {
    type Job = SessionJob;

    async fn run(&self, job: SessionJob) {
        match job {
            SessionJob::Run { op, reply } => {
                let kind = op_label(&op);
                let span = tracing::info_span!("session", op = kind);
                let result = tracing::Instrument::instrument(self.accounts.run(op), span).await;
                if let Err(AuthError::Internal(message)) = &result {
                    tracing::error!(op = kind, %message, "session job failed");
                }
                let _ = reply.send(result);
            }
            #[cfg(feature = "fault-injection")]
            SessionJob::Panic => panic!("session worker asked to panic"),
        }
    }
}

fn op_label(op: &SessionOp) -> &'static str {
    match op {
        SessionOp::Login { .. } => "login",
        SessionOp::Refresh { .. } => "refresh",
        SessionOp::Logout { .. } => "logout",
        SessionOp::ChangePassword { .. } => "change_password",
        SessionOp::CreateUser { .. } => "create_user",
        SessionOp::ListUsers => "list_users",
        SessionOp::UpdateUser { .. } => "update_user",
        SessionOp::DeleteUser { .. } => "delete_user",
        SessionOp::CreateKey { .. } => "create_key",
        SessionOp::ListKeys => "list_keys",
        SessionOp::RevokeKey { .. } => "revoke_key",
    }
}

pub(crate) fn child_spec(names: &Names, accounts: Arc<Accounts>, workers: usize) -> ChildSpec {
    pool::child_spec(
        "session",
        "session_worker",
        names.session.clone(),
        names.root.clone(),
        workers,
        move || SessionWorker {
            accounts: accounts.clone(),
        },
    )
}

/// What a CSRF token is bound to: the session, or the one open principal when auth is off.
fn csrf_subject(principal: &Principal) -> Option<&str> {
    match &principal.credential {
        Credential::Session { id, .. } => Some(id),
        Credential::Open => Some("open"),
        Credential::ApiKey { .. } => None,
    }
}

/// What the HTTP layer holds: the fast checks run here, the rest goes to the pool.
#[derive(Clone)]
pub struct Handle {
    pub(crate) names: Arc<Names>,
    pub(crate) accounts: Arc<Accounts>,
    /// Bounds the jobs waiting for the pool: past it, `Overloaded` rather than a growing queue.
    pub(crate) pending: Arc<Semaphore>,
    pub(crate) next_job: Arc<std::sync::atomic::AtomicU64>,
}

impl Handle {
    /// The caller behind `bearer`, checked against the state store (revocation is immediate).
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal, AuthError> {
        self.accounts.authenticate(bearer).await
    }

    /// Counts one request of the caller named `limit_key` (`Principal::limit_key`, or an
    /// address when authentication is off) against the API quota.
    pub async fn throttle_key(&self, limit_key: &str) -> Result<Throttle, AuthError> {
        self.accounts.throttle(limit_key).await
    }

    pub async fn bootstrap(&self) -> Result<Option<Secret>, AuthError> {
        self.accounts.bootstrap().await
    }

    /// The CSRF token forms and scripts of the web interface send back for `principal`'s web
    /// session (`None` for API keys: they never ride on a cookie).
    pub async fn csrf_token(&self, principal: &Principal) -> Result<Option<String>, AuthError> {
        let Some(subject) = csrf_subject(principal) else {
            return Ok(None);
        };
        Ok(Some(self.accounts.keys().await?.csrf_token(subject)?))
    }

    /// Refreshes a browser's session from its refresh cookie; requests racing with the same
    /// token share one rotation (see `Accounts::refresh_shared`). Runs in the caller's task: no
    /// password hashing, just the state store.
    pub async fn refresh_shared(&self, token: &Secret) -> Result<TokenPair, AuthError> {
        self.accounts.refresh_shared(token).await
    }

    /// Whether `given` is `principal`'s CSRF token.
    pub async fn csrf_matches(&self, principal: &Principal, given: &str) -> bool {
        match (csrf_subject(principal), self.accounts.keys().await) {
            (Some(subject), Ok(keys)) => keys.csrf_matches(subject, given),
            _ => false,
        }
    }

    /// Runs `op` on the session pool.
    pub async fn run(&self, op: SessionOp) -> Result<SessionAnswer, AuthError> {
        let _permit = self
            .pending
            .clone()
            .try_acquire_owned()
            .map_err(|_| AuthError::Overloaded)?;
        let (tx, rx) = ractor::concurrency::oneshot();
        let key = self
            .next_job
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        pool::dispatch(
            &self.names.session,
            key,
            SessionJob::Run {
                op,
                reply: tx.into(),
            },
        );
        match tokio::time::timeout(self.accounts.config.timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(AuthError::Unavailable(
                "a session worker stopped while serving the request".into(),
            )),
            Err(_) => Err(AuthError::Unavailable(
                "the session pool did not answer in time".into(),
            )),
        }
    }
}
