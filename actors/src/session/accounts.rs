//! [`Accounts`]: the logic every replica shares, which the session workers and the handle both
//! call; here its keys, the bootstrap admin and the per-request checks (token or API key,
//! API quota). The operations live beside it: `logins`, `users`, `api_keys`.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use super::API_KEY_PREFIX;
use super::passwords;
use super::records::*;
use super::tokens::{AccessClaims, Rejection, SigningKey, TokenKeys};
use super::types::*;
use crate::ports::{StateStore, Throttle};

/// The logic every replica shares; the workers and the handle both call it.
pub struct Accounts {
    pub(super) state: Arc<dyn StateStore>,
    pub(super) config: SessionConfig,
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

    pub(super) async fn keys(&self) -> Result<&TokenKeys, AuthError> {
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

    pub(super) async fn decoy(&self) -> Result<String, AuthError> {
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

    pub(super) async fn user(&self, name: &str) -> Result<Option<UserRecord>, AuthError> {
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
}
