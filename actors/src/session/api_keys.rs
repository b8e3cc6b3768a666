//! API keys: created by an admin with a role and an optional expiry, shown once and stored
//! only as a SHA-256 hash, listed and revoked.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::API_KEY_PREFIX;
use super::accounts::Accounts;
use super::records::*;
use super::types::*;

impl Accounts {
    pub async fn create_key(
        &self,
        name: &str,
        role: Role,
        expires_in: Option<Duration>,
        by: &Principal,
    ) -> Result<NewKeyInfo, AuthError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > super::API_KEY_NAME_MAX_CHARS {
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

    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>, AuthError> {
        let ids = self.state.set_members(KEYS).await?;
        let keys: Vec<String> = ids.iter().map(|id| api_key_key(id)).collect();
        let mut listed = Vec::new();
        for bytes in self.state.get_many(&keys).await?.into_iter().flatten() {
            listed.push(key_info(decode::<KeyRecord>(&bytes)?));
        }
        listed.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(listed)
    }

    pub async fn revoke_key(&self, id: &str, by: &Principal) -> Result<(), AuthError> {
        if self.state.delete(&[api_key_key(id)]).await? == 0 {
            return Err(AuthError::NotFound(format!("no API key `{id}`")));
        }
        self.state.set_remove(KEYS, &[id.to_string()]).await?;
        audit("api_key_revoked", "success", id, &by.name);
        Ok(())
    }
}
