//! User administration: create, list, update (role, password, disabled) and delete users, and a
//! user changing their own password. A new password or a disable ends the user's sessions.

use super::accounts::Accounts;
use super::passwords;
use super::records::*;
use super::types::*;

impl Accounts {
    fn check_password(&self, password: &Secret) -> Result<(), AuthError> {
        let chars = password.0.chars().count();
        if chars < self.config.min_password_chars || chars > super::MAX_PASSWORD_CHARS {
            return Err(AuthError::Invalid(format!(
                "a password has {} to {} characters",
                self.config.min_password_chars,
                super::MAX_PASSWORD_CHARS
            )));
        }
        Ok(())
    }

    pub async fn create_user(
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

    pub async fn list_users(&self) -> Result<Vec<UserInfo>, AuthError> {
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

    pub async fn update_user(
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

    pub async fn delete_user(&self, username: &str, by: &Principal) -> Result<(), AuthError> {
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

    pub async fn change_password(
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
}
