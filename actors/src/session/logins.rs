//! Logins and their sessions: the throttles and lock-outs in front of the password check, the
//! session record, token pairs, refresh with rotation and reuse detection, the shared refresh a
//! browser's racing requests use, and logout.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::accounts::Accounts;
use super::passwords;
use super::records::*;
use super::tokens::AccessClaims;
use super::types::*;

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

fn refresh_outcome(outcome: &'static str) {
    metrics::counter!("aurora_auth_refreshes_total", "outcome" => outcome).increment(1);
}

impl Accounts {
    pub async fn login(
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

    pub async fn refresh(&self, token: &Secret) -> Result<TokenPair, AuthError> {
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
    pub async fn refresh_shared(&self, token: &Secret) -> Result<TokenPair, AuthError> {
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

    pub async fn logout(&self, principal: &Principal) -> Result<(), AuthError> {
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
}
