//! Tokens. Access tokens are JWTs checked per RFC 8725: one algorithm allowed (never taken from
//! the token), explicit type (`typ: at+jwt`), and `exp`, `nbf`, `iat`, `iss`, `aud`, `sub`, `jti`
//! all required and checked with a small leeway. Refresh tokens are opaque
//! `{session}.{generation}.{mac}`: the MAC (HMAC-SHA256 under a shared secret) proves Aurora
//! issued that generation of that session, so a spent one is recognised without storing it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{AuthError, Role};

/// The JWT `typ` of access tokens (RFC 9068), so no other JWT signed with the key passes.
const ACCESS_TYPE: &str = "at+jwt";

/// How access tokens are signed.
#[derive(Clone)]
pub enum SigningKey {
    /// HMAC-SHA256 with a shared secret of at least 32 bytes.
    Hs256(Vec<u8>),
    /// Ed25519: PKCS#8 private key and SPKI public key, PEM.
    EdDsa {
        private_pem: Vec<u8>,
        public_pem: Vec<u8>,
    },
    /// RSA PKCS#1 v1.5 with SHA-256: private and public key, PEM.
    Rs256 {
        private_pem: Vec<u8>,
        public_pem: Vec<u8>,
    },
}

impl std::fmt::Debug for SigningKey {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SigningKey::Hs256(_) => "SigningKey::Hs256(…)",
            SigningKey::EdDsa { .. } => "SigningKey::EdDsa(…)",
            SigningKey::Rs256 { .. } => "SigningKey::Rs256(…)",
        })
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The username.
    pub sub: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    /// Unique per token.
    pub jti: String,
    /// The session (login) the token belongs to; checked in the state store on every request.
    pub sid: String,
    /// The role when issued; informative — the user record's current role is what counts.
    pub role: Role,
}

/// Signs and checks both kinds of token.
pub struct TokenKeys {
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    leeway: u64,
    refresh_mac: Vec<u8>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Why a token was refused: for logs and metrics, never more detail to the client than
/// "expired" vs "invalid".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    Expired,
    Invalid(&'static str),
}

impl TokenKeys {
    pub fn new(
        key: &SigningKey,
        issuer: &str,
        audience: &str,
        leeway_secs: u64,
        refresh_mac: Vec<u8>,
    ) -> Result<Self, AuthError> {
        let bad_key = |e: jsonwebtoken::errors::Error| AuthError::Config(format!("JWT key: {e}"));
        let (algorithm, encoding, decoding) = match key {
            SigningKey::Hs256(secret) => {
                if secret.len() < 32 {
                    return Err(AuthError::Config(
                        "the HS256 secret must be at least 32 bytes".into(),
                    ));
                }
                (
                    Algorithm::HS256,
                    EncodingKey::from_secret(secret),
                    DecodingKey::from_secret(secret),
                )
            }
            SigningKey::EdDsa {
                private_pem,
                public_pem,
            } => (
                Algorithm::EdDSA,
                EncodingKey::from_ed_pem(private_pem).map_err(bad_key)?,
                DecodingKey::from_ed_pem(public_pem).map_err(bad_key)?,
            ),
            SigningKey::Rs256 {
                private_pem,
                public_pem,
            } => (
                Algorithm::RS256,
                EncodingKey::from_rsa_pem(private_pem).map_err(bad_key)?,
                DecodingKey::from_rsa_pem(public_pem).map_err(bad_key)?,
            ),
        };
        // The allow-list is exactly the configured algorithm: a token's own `alg` never picks
        // the verification method (no `none`, no HS256-with-the-public-key).
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.leeway = leeway_secs;
        let keys = Self {
            algorithm,
            encoding,
            decoding,
            validation,
            leeway: leeway_secs,
            refresh_mac,
        };
        // A key pair that does not match would only show at the first login: check it now.
        let probe = AccessClaims {
            iss: issuer.into(),
            aud: audience.into(),
            sub: "probe".into(),
            exp: super::now() + 60,
            nbf: super::now(),
            iat: super::now(),
            jti: "probe".into(),
            sid: "probe".into(),
            role: Role::Reader,
        };
        let token = keys.issue(&probe)?;
        keys.verify(&token).map_err(|_| {
            AuthError::Config("the JWT public key does not match the private key".into())
        })?;
        Ok(keys)
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn issue(&self, claims: &AccessClaims) -> Result<String, AuthError> {
        let mut header = Header::new(self.algorithm);
        header.typ = Some(ACCESS_TYPE.to_string());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| AuthError::Internal(format!("signing a token: {e}")))
    }

    /// The claims of a valid access token.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, Rejection> {
        let data = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => Rejection::Expired,
                ErrorKind::ImmatureSignature => Rejection::Invalid("not yet valid"),
                ErrorKind::InvalidSignature => Rejection::Invalid("bad signature"),
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    Rejection::Invalid("algorithm not allowed")
                }
                ErrorKind::InvalidAudience => Rejection::Invalid("wrong audience"),
                ErrorKind::InvalidIssuer => Rejection::Invalid("wrong issuer"),
                ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
                    Rejection::Invalid("missing or malformed claim")
                }
                _ => Rejection::Invalid("malformed token"),
            })?;
        if data.header.typ.as_deref() != Some(ACCESS_TYPE) {
            return Err(Rejection::Invalid("not an access token"));
        }
        // RFC 7515 §4.1.11: extensions we do not understand must not be ignored.
        if data.header.crit.is_some() {
            return Err(Rejection::Invalid("unsupported critical header"));
        }
        if data.claims.iat > super::now() + self.leeway {
            return Err(Rejection::Invalid("issued in the future"));
        }
        Ok(data.claims)
    }

    /// The MAC of `{session}.{generation}`, not yet finalised.
    fn mac(&self, session: &str, generation: u64) -> Result<Hmac<Sha256>, AuthError> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.refresh_mac)
            .map_err(|e| AuthError::Internal(format!("refresh MAC key: {e}")))?;
        mac.update(session.as_bytes());
        mac.update(b".");
        mac.update(generation.to_string().as_bytes());
        Ok(mac)
    }

    /// The CSRF token of the web session `subject`: a MAC of its id, so it is recomputed
    /// rather than stored, lasts as long as the session (a refresh keeps the id), and cannot be
    /// made without the key. The NUL bytes keep it apart from every refresh-token MAC.
    pub fn csrf_token(&self, subject: &str) -> Result<String, AuthError> {
        Ok(URL_SAFE_NO_PAD.encode(self.csrf_mac(subject)?.finalize().into_bytes()))
    }

    /// Whether `given` is the CSRF token of `subject` (in constant time).
    pub fn csrf_matches(&self, subject: &str, given: &str) -> bool {
        let Ok(given) = URL_SAFE_NO_PAD.decode(given.trim()) else {
            return false;
        };
        self.csrf_mac(subject)
            .is_ok_and(|mac| mac.verify_slice(&given).is_ok())
    }

    fn csrf_mac(&self, subject: &str) -> Result<Hmac<Sha256>, AuthError> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.refresh_mac)
            .map_err(|e| AuthError::Internal(format!("refresh MAC key: {e}")))?;
        mac.update(b"\0csrf\0");
        mac.update(subject.as_bytes());
        Ok(mac)
    }

    /// The refresh token of `generation` of `session`.
    pub fn refresh_token(&self, session: &str, generation: u64) -> Result<String, AuthError> {
        let mac = self.mac(session, generation)?.finalize().into_bytes();
        Ok(format!(
            "{session}.{generation}.{}",
            URL_SAFE_NO_PAD.encode(mac)
        ))
    }

    /// `(session, generation)` of a refresh token Aurora issued; `None` for anything else.
    pub fn parse_refresh<'t>(&self, token: &'t str) -> Option<(&'t str, u64)> {
        let mut parts = token.splitn(3, '.');
        let (session, generation, mac) = (parts.next()?, parts.next()?, parts.next()?);
        let generation: u64 = generation.parse().ok()?;
        let given = URL_SAFE_NO_PAD.decode(mac).ok()?;
        // Constant time: the comparison must not tell how much of a forged MAC was right.
        self.mac(session, generation)
            .ok()?
            .verify_slice(&given)
            .ok()?;
        Some((session, generation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(
            &SigningKey::Hs256(vec![7; 32]),
            "aurora",
            "aurora-api",
            5,
            vec![9; 32],
        )
        .unwrap()
    }

    fn claims(now: u64) -> AccessClaims {
        AccessClaims {
            iss: "aurora".into(),
            aud: "aurora-api".into(),
            sub: "alice".into(),
            exp: now + 60,
            nbf: now,
            iat: now,
            jti: "j".into(),
            sid: "s".into(),
            role: Role::Editor,
        }
    }

    #[test]
    fn tokens_round_trip_and_claims_are_checked() {
        let keys = keys();
        let now = super::super::now();
        let token = keys.issue(&claims(now)).unwrap();
        assert_eq!(keys.verify(&token).unwrap(), claims(now));
        let expired = AccessClaims {
            exp: now - 60,
            ..claims(now)
        };
        assert_eq!(
            keys.verify(&keys.issue(&expired).unwrap()),
            Err(Rejection::Expired)
        );
        let early = AccessClaims {
            nbf: now + 60,
            ..claims(now)
        };
        assert!(keys.verify(&keys.issue(&early).unwrap()).is_err());
        let future = AccessClaims {
            iat: now + 60,
            ..claims(now)
        };
        assert!(keys.verify(&keys.issue(&future).unwrap()).is_err());
    }

    #[test]
    fn short_secrets_are_refused() {
        let err = TokenKeys::new(&SigningKey::Hs256(vec![1; 31]), "a", "b", 5, vec![1; 32])
            .unwrap_err()
            .to_string();
        assert!(err.contains("32 bytes"), "{err}");
    }

    #[test]
    fn csrf_tokens_belong_to_their_session() {
        let keys = keys();
        let token = keys.csrf_token("sess").unwrap();
        assert!(keys.csrf_matches("sess", &token));
        assert!(!keys.csrf_matches("other", &token));
        assert!(!keys.csrf_matches("sess", "garbage"));
        assert!(!keys.csrf_matches("sess", ""));
        // Not the MAC of any refresh token of the session.
        let refresh = keys.refresh_token("sess", 0).unwrap();
        assert!(!refresh.ends_with(&token));
    }

    #[test]
    fn refresh_tokens_carry_a_mac() {
        let keys = keys();
        let token = keys.refresh_token("sess", 3).unwrap();
        assert_eq!(keys.parse_refresh(&token), Some(("sess", 3)));
        let forged = token.replacen(".3.", ".4.", 1);
        assert_eq!(keys.parse_refresh(&forged), None);
        assert_eq!(keys.parse_refresh("sess.3"), None);
        assert_eq!(keys.parse_refresh("garbage"), None);
    }
}
