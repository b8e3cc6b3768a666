//! Password hashing: argon2id in PHC strings, run on the blocking pool (a hash costs tens of
//! milliseconds of one core by design, and must not stall the runtime's workers).

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};

use super::AuthError;

/// argon2id's cost. The defaults are OWASP's recommendation (19 MiB, 2 passes, 1 lane).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    pub memory_kib: u32,
    pub passes: u32,
    pub lanes: u32,
}

impl Default for HashCost {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            passes: 2,
            lanes: 1,
        }
    }
}

fn hasher(cost: HashCost) -> Result<Argon2<'static>, AuthError> {
    let params = Params::new(cost.memory_kib, cost.passes, cost.lanes, None)
        .map_err(|e| AuthError::Internal(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// A PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) for `password`, with a fresh salt.
pub async fn hash(password: String, cost: HashCost) -> Result<String, AuthError> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt)
            .map_err(|e| AuthError::Internal(format!("no randomness: {e}")))?;
        hasher(cost)?
            .hash_password_with_salt(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| AuthError::Internal(format!("hashing a password: {e}")))
    })
    .await
    .map_err(|e| AuthError::Internal(format!("the hashing task failed: {e}")))?
}

/// Whether `password` matches `phc`. The cost is the one recorded in `phc`, so hashes made
/// under older settings still verify.
pub async fn verify(password: String, phc: String) -> Result<bool, AuthError> {
    tokio::task::spawn_blocking(move || {
        // The parameters in the string win over these; the hasher only supplies the code.
        let argon2 = Argon2::default();
        match argon2.verify_password(password.as_bytes(), phc.as_str()) {
            Ok(()) => Ok(true),
            Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
            Err(e) => Err(AuthError::Internal(format!("a stored password hash: {e}"))),
        }
    })
    .await
    .map_err(|e| AuthError::Internal(format!("the hashing task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: HashCost = HashCost {
        memory_kib: 64,
        passes: 1,
        lanes: 1,
    };

    #[tokio::test]
    async fn hashes_verify_and_are_salted() {
        let a = hash("correct horse".into(), CHEAP).await.unwrap();
        let b = hash("correct horse".into(), CHEAP).await.unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify("correct horse".into(), a.clone()).await.unwrap());
        assert!(!verify("correct horse!".into(), a).await.unwrap());
        assert!(verify("x".into(), "not a hash".into()).await.is_err());
    }
}
