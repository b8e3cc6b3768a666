//! SessionActor — in code a ractor `Factory` of `SessionWorker`s registered as
//! `Names::session` (a pool, so password hashing runs side by side), plus [`Accounts`], which the
//! per-request check uses in the caller's task: who is calling, and may they.
//!
//! Users (argon2id password hashes), logins with rotating refresh tokens, JWT access tokens tied
//! to a session record, API keys, roles, and the rate limits and lock-outs around them. Everything lives in the state store, so every replica
//! sees a logout, a revoked key or a lock-out at once.
//!
//! Messages: [`SessionJob`], one variant per operation, each carrying the reply port typed by
//! what that operation answers — login and refresh → [`TokenPair`], user administration →
//! [`UserInfo`], API keys → [`NewKeyInfo`] / [`KeyInfo`], the rest → `()`. Callers use the
//! [`Handle`]'s methods (`login`, `create_key`, …), so a wrong pairing does not compile.
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
//! Files: `types` (what the layer speaks), `records` (what is stored, and where), `accounts`
//! (the shared logic and per-request checks), `logins`, `users`, `api_keys` (the operations),
//! `passwords` (argon2id), `tokens` (JWTs, refresh tokens, CSRF tokens).
//!
//! State-store keys (all under `auth:`): `user:{name}` + set `users`, `key:{id}` + set `keys`,
//! `session:{id}`, `secret:{jwt|refresh}` (generated once, shared by replicas), `fail:…` (failed
//! logins in their window) and `rl:…` (GCRA rate limits).

mod accounts;
mod api_keys;
mod logins;
pub mod passwords;
mod records;
pub mod tokens;
mod types;
mod users;

use std::sync::Arc;
use std::time::Duration;

use ractor::RpcReplyPort;
use tokio::sync::Semaphore;

use crate::Names;
use crate::pool::{self, JobHandler, PoolJob};
use crate::ports::Throttle;
use crate::supervisor::ChildSpec;

pub use accounts::Accounts;
pub use passwords::HashCost;
pub(crate) use records::now;
pub use tokens::SigningKey;
pub use types::{
    AuthError, Credential, KeyInfo, NewKeyInfo, Principal, Role, Secret, SessionConfig, TokenPair,
    UserInfo, UserUpdate, normalize_username,
};

/// What an API key starts with, so a bearer credential says which kind it is.
pub const API_KEY_PREFIX: &str = "aur_";

/// An API key's name, in characters at most.
pub const API_KEY_NAME_MAX_CHARS: usize = 100;

/// A password's length in characters at most (the least is `auth.min_password_chars`).
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// Usernames as [`normalize_username`] takes them (it also trims and lower-cases).
pub const USERNAME_PATTERN: &str = r"^[A-Za-z0-9._@-]{1,64}$";

/// Keys an embedded state store must keep on disk (accounts outlive a restart; caches do not).
pub const DURABLE_PREFIXES: [&str; 4] = ["auth:user", "auth:key", "auth:session", "auth:secret"];

/// Where a job's answer goes: typed by what the operation returns.
type Reply<T> = RpcReplyPort<Result<T, AuthError>>;

/// One job for the session pool: an operation with its arguments and its typed reply port.
pub enum SessionJob {
    Login {
        username: String,
        password: Secret,
        /// The client's address (per-address limits and lock-out).
        ip: String,
        reply: Reply<TokenPair>,
    },
    Refresh {
        token: Secret,
        reply: Reply<TokenPair>,
    },
    Logout {
        principal: Principal,
        reply: Reply<()>,
    },
    ChangePassword {
        principal: Principal,
        current: Secret,
        new: Secret,
        reply: Reply<()>,
    },
    CreateUser {
        username: String,
        password: Secret,
        role: Role,
        by: Principal,
        reply: Reply<UserInfo>,
    },
    ListUsers {
        reply: Reply<Vec<UserInfo>>,
    },
    UpdateUser {
        username: String,
        update: UserUpdate,
        by: Principal,
        reply: Reply<UserInfo>,
    },
    DeleteUser {
        username: String,
        by: Principal,
        reply: Reply<()>,
    },
    CreateKey {
        name: String,
        role: Role,
        expires_in: Option<Duration>,
        by: Principal,
        reply: Reply<NewKeyInfo>,
    },
    ListKeys {
        reply: Reply<Vec<KeyInfo>>,
    },
    RevokeKey {
        id: String,
        by: Principal,
        reply: Reply<()>,
    },
    #[cfg(feature = "fault-injection")]
    Panic,
}

impl SessionJob {
    /// The operation's name in spans and logs.
    fn label(&self) -> &'static str {
        match self {
            SessionJob::Login { .. } => "login",
            SessionJob::Refresh { .. } => "refresh",
            SessionJob::Logout { .. } => "logout",
            SessionJob::ChangePassword { .. } => "change_password",
            SessionJob::CreateUser { .. } => "create_user",
            SessionJob::ListUsers { .. } => "list_users",
            SessionJob::UpdateUser { .. } => "update_user",
            SessionJob::DeleteUser { .. } => "delete_user",
            SessionJob::CreateKey { .. } => "create_key",
            SessionJob::ListKeys { .. } => "list_keys",
            SessionJob::RevokeKey { .. } => "revoke_key",
            #[cfg(feature = "fault-injection")]
            SessionJob::Panic => "panic",
        }
    }
}

impl PoolJob for SessionJob {
    fn fail_unavailable(self) {
        fn refuse<T>(reply: Reply<T>) {
            let _ = reply.send(Err(AuthError::Unavailable("the session pool".into())));
        }
        match self {
            SessionJob::Login { reply, .. } | SessionJob::Refresh { reply, .. } => refuse(reply),
            SessionJob::Logout { reply, .. }
            | SessionJob::ChangePassword { reply, .. }
            | SessionJob::DeleteUser { reply, .. }
            | SessionJob::RevokeKey { reply, .. } => refuse(reply),
            SessionJob::CreateUser { reply, .. } | SessionJob::UpdateUser { reply, .. } => {
                refuse(reply)
            }
            SessionJob::ListUsers { reply } => refuse(reply),
            SessionJob::CreateKey { reply, .. } => refuse(reply),
            SessionJob::ListKeys { reply } => refuse(reply),
            #[cfg(feature = "fault-injection")]
            SessionJob::Panic => {}
        }
    }
}

pub(crate) struct SessionWorker {
    accounts: Arc<Accounts>,
}

/// Runs `work` in the operation's span and sends its result; internal failures are logged here,
/// the one place every operation passes.
async fn answer<T>(
    op: &'static str,
    reply: Reply<T>,
    work: impl std::future::Future<Output = Result<T, AuthError>>,
) {
    let result = tracing::Instrument::instrument(work, tracing::info_span!("session", op)).await;
    if let Err(AuthError::Internal(message)) = &result {
        tracing::error!(op, %message, "session job failed");
    }
    let _ = reply.send(result);
}

impl JobHandler for SessionWorker {
    type Job = SessionJob;

    async fn run(&self, job: SessionJob) {
        let op = job.label();
        let accounts = &self.accounts;
        match job {
            SessionJob::Login {
                username,
                password,
                ip,
                reply,
            } => answer(op, reply, accounts.login(&username, &password, &ip)).await,
            SessionJob::Refresh { token, reply } => {
                answer(op, reply, accounts.refresh(&token)).await
            }
            SessionJob::Logout { principal, reply } => {
                answer(op, reply, accounts.logout(&principal)).await
            }
            SessionJob::ChangePassword {
                principal,
                current,
                new,
                reply,
            } => {
                let work = accounts.change_password(&principal, &current, &new);
                answer(op, reply, work).await
            }
            SessionJob::CreateUser {
                username,
                password,
                role,
                by,
                reply,
            } => {
                let work = accounts.create_user(&username, &password, role, &by);
                answer(op, reply, work).await
            }
            SessionJob::ListUsers { reply } => answer(op, reply, accounts.list_users()).await,
            SessionJob::UpdateUser {
                username,
                update,
                by,
                reply,
            } => answer(op, reply, accounts.update_user(&username, &update, &by)).await,
            SessionJob::DeleteUser {
                username,
                by,
                reply,
            } => answer(op, reply, accounts.delete_user(&username, &by)).await,
            SessionJob::CreateKey {
                name,
                role,
                expires_in,
                by,
                reply,
            } => answer(op, reply, accounts.create_key(&name, role, expires_in, &by)).await,
            SessionJob::ListKeys { reply } => answer(op, reply, accounts.list_keys()).await,
            SessionJob::RevokeKey { id, by, reply } => {
                answer(op, reply, accounts.revoke_key(&id, &by)).await
            }
            #[cfg(feature = "fault-injection")]
            SessionJob::Panic => panic!("session worker asked to panic"),
        }
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

    pub async fn login(
        &self,
        username: String,
        password: Secret,
        ip: String,
    ) -> Result<TokenPair, AuthError> {
        self.call(|reply| SessionJob::Login {
            username,
            password,
            ip,
            reply,
        })
        .await
    }

    pub async fn refresh(&self, token: Secret) -> Result<TokenPair, AuthError> {
        self.call(|reply| SessionJob::Refresh { token, reply })
            .await
    }

    pub async fn logout(&self, principal: Principal) -> Result<(), AuthError> {
        self.call(|reply| SessionJob::Logout { principal, reply })
            .await
    }

    pub async fn change_password(
        &self,
        principal: Principal,
        current: Secret,
        new: Secret,
    ) -> Result<(), AuthError> {
        self.call(|reply| SessionJob::ChangePassword {
            principal,
            current,
            new,
            reply,
        })
        .await
    }

    pub async fn create_user(
        &self,
        username: String,
        password: Secret,
        role: Role,
        by: Principal,
    ) -> Result<UserInfo, AuthError> {
        self.call(|reply| SessionJob::CreateUser {
            username,
            password,
            role,
            by,
            reply,
        })
        .await
    }

    pub async fn list_users(&self) -> Result<Vec<UserInfo>, AuthError> {
        self.call(|reply| SessionJob::ListUsers { reply }).await
    }

    pub async fn update_user(
        &self,
        username: String,
        update: UserUpdate,
        by: Principal,
    ) -> Result<UserInfo, AuthError> {
        self.call(|reply| SessionJob::UpdateUser {
            username,
            update,
            by,
            reply,
        })
        .await
    }

    pub async fn delete_user(&self, username: String, by: Principal) -> Result<(), AuthError> {
        self.call(|reply| SessionJob::DeleteUser {
            username,
            by,
            reply,
        })
        .await
    }

    pub async fn create_key(
        &self,
        name: String,
        role: Role,
        expires_in: Option<Duration>,
        by: Principal,
    ) -> Result<NewKeyInfo, AuthError> {
        self.call(|reply| SessionJob::CreateKey {
            name,
            role,
            expires_in,
            by,
            reply,
        })
        .await
    }

    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>, AuthError> {
        self.call(|reply| SessionJob::ListKeys { reply }).await
    }

    pub async fn revoke_key(&self, id: String, by: Principal) -> Result<(), AuthError> {
        self.call(|reply| SessionJob::RevokeKey { id, by, reply })
            .await
    }

    /// Runs one job on the session pool and waits (boundedly) for its answer.
    async fn call<T>(&self, job: impl FnOnce(Reply<T>) -> SessionJob) -> Result<T, AuthError> {
        let _permit = self
            .pending
            .clone()
            .try_acquire_owned()
            .map_err(|_| AuthError::Overloaded)?;
        let (tx, rx) = ractor::concurrency::oneshot();
        let key = self
            .next_job
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        pool::dispatch(&self.names.session, key, job(tx.into()));
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
