//! JWT access tokens (RFC 7519), HS256-signed, with issuer, audience and expiry checked.
//! The header's `kid` (RFC 7515 §4.1.4) names the signing key, so the key can rotate: a new
//! key signs from the moment it is configured, and the previous ones, still configured,
//! verify the tokens they signed until those expire.

use crate::error::ApiError;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Shortest accepted HMAC key: 256 bits, the size of the SHA-256 output (RFC 7518 §3.2).
pub const MIN_KEY_BYTES: usize = 32;

/// Access-token settings.
#[derive(Clone)]
pub struct TokenConfig {
    /// HMAC-SHA256 key that signs, at least [`MIN_KEY_BYTES`] bytes.
    pub key: Vec<u8>,
    /// Keys that signed before `key`: they still verify (keep one until its tokens expired,
    /// one access-token lifetime after the rotation), and sign nothing.
    pub previous_keys: Vec<Vec<u8>>,
    /// `iss` claim written and required.
    pub issuer: String,
    /// `aud` claim written and required.
    pub audience: String,
    /// Lifetime of an access token, in seconds.
    pub ttl_seconds: u64,
}

impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("key", &"[redacted]")
            .field("previous_keys", &format!("[{} redacted]", self.previous_keys.len()))
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("ttl_seconds", &self.ttl_seconds)
            .finish()
    }
}

/// Claims of a Slipway access token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: the user id.
    pub sub: String,
    /// The user's email.
    pub email: String,
    /// The session this token belongs to: it stops working when the session ends.
    pub sid: String,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

/// Issues and verifies access tokens.
pub struct Tokens {
    kid: String,
    encoding: EncodingKey,
    /// Every configured key by its `kid`, the signing one included.
    decoding: Vec<(String, DecodingKey)>,
    validation: Validation,
    config: TokenConfig,
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The `kid` of a key: the first 8 bytes of its SHA-256, in hex. It names the key without
/// revealing anything usable about it.
pub fn key_id(key: &[u8]) -> String {
    Sha256::digest(key)[..8].iter().map(|b| format!("{b:02x}")).collect()
}

impl Tokens {
    /// # Errors
    /// A key is shorter than [`MIN_KEY_BYTES`].
    pub fn new(config: &TokenConfig) -> anyhow::Result<Self> {
        for key in std::iter::once(&config.key).chain(&config.previous_keys) {
            anyhow::ensure!(
                key.len() >= MIN_KEY_BYTES,
                "a JWT key must be at least {MIN_KEY_BYTES} bytes, one has {}",
                key.len()
            );
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 0;
        let decoding = std::iter::once(&config.key)
            .chain(&config.previous_keys)
            .map(|key| (key_id(key), DecodingKey::from_secret(key)))
            .collect();
        Ok(Self {
            kid: key_id(&config.key),
            encoding: EncodingKey::from_secret(&config.key),
            decoding,
            validation,
            config: config.clone(),
        })
    }

    /// Lifetime of issued tokens, in seconds (the `expires_in` of the login response).
    pub fn ttl_seconds(&self) -> u64 {
        self.config.ttl_seconds
    }

    /// Issues an access token for a user's session.
    ///
    /// # Errors
    /// 500 if signing fails (a bug).
    pub fn issue(&self, user_id: &str, email: &str, session: &str) -> Result<String, ApiError> {
        let iat = now();
        let claims = Claims {
            sub: user_id.into(),
            email: email.into(),
            sid: session.into(),
            iss: self.config.issuer.clone(),
            aud: self.config.audience.clone(),
            iat,
            exp: iat + self.config.ttl_seconds,
        };
        let header = Header { kid: Some(self.kid.clone()), ..Header::new(Algorithm::HS256) };
        jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("signing a token: {e}")))
    }

    /// Verifies the key (`kid`), signature, algorithm, issuer, audience and expiry.
    ///
    /// # Errors
    /// 401 saying why the token is refused.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let malformed = || ApiError::Unauthorized("the access token is malformed".into());
        let kid = jsonwebtoken::decode_header(token).map_err(|_| malformed())?.kid.ok_or_else(malformed)?;
        let (_, key) = self.decoding.iter().find(|(id, _)| *id == kid).ok_or_else(|| {
            ApiError::Unauthorized("the access token was signed by a key this API does not know; log in again".into())
        })?;
        jsonwebtoken::decode::<Claims>(token, key, &self.validation).map(|d| d.claims).map_err(|e| {
            let why = match e.kind() {
                ErrorKind::ExpiredSignature => "the access token has expired; log in again",
                ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => "the access token was not issued for this API",
                ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => "the access token's signature is invalid",
                _ => "the access token is malformed",
            };
            ApiError::Unauthorized(why.into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(key: &[u8], ttl: u64) -> Tokens {
        Tokens::new(&TokenConfig {
            key: key.to_vec(),
            previous_keys: vec![],
            issuer: "slipway".into(),
            audience: "slipway-api".into(),
            ttl_seconds: ttl,
        })
        .unwrap()
    }

    #[test]
    fn round_trips() {
        let t = tokens(&[7; 32], 60);
        let claims = t.verify(&t.issue("u1", "a@example.com", "s1").unwrap()).unwrap();
        assert_eq!(claims.sid, "s1");
        assert_eq!((claims.sub.as_str(), claims.email.as_str()), ("u1", "a@example.com"));
        assert_eq!(claims.exp - claims.iat, 60);
    }

    #[test]
    fn refuses_forged_expired_and_foreign_tokens() {
        let t = tokens(&[7; 32], 60);
        let ours = Header { kid: Some(key_id(&[7; 32])), ..Header::default() };
        let claims = t.verify(&t.issue("u1", "a@example.com", "s1").unwrap()).unwrap();
        let forged = jsonwebtoken::encode(&ours, &claims, &EncodingKey::from_secret(&[8; 32])).unwrap();
        assert_eq!(t.verify(&forged).unwrap_err().to_string(), "the access token's signature is invalid");
        let no_kid = jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(&[7; 32])).unwrap();
        assert_eq!(t.verify(&no_kid).unwrap_err().to_string(), "the access token is malformed");
        let expired = jsonwebtoken::encode(
            &ours,
            &Claims {
                sub: "u".into(),
                email: "e".into(),
                sid: "s".into(),
                iss: "slipway".into(),
                aud: "slipway-api".into(),
                iat: 1,
                exp: 2,
            },
            &EncodingKey::from_secret(&[7; 32]),
        )
        .unwrap();
        assert_eq!(t.verify(&expired).unwrap_err().to_string(), "the access token has expired; log in again");
        assert_eq!(t.verify("garbage").unwrap_err().status().as_u16(), 401);
    }

    #[test]
    fn short_keys_are_refused() {
        let config = TokenConfig {
            key: vec![1; 16],
            previous_keys: vec![],
            issuer: "i".into(),
            audience: "a".into(),
            ttl_seconds: 1,
        };
        assert!(Tokens::new(&config).is_err());
        let old_too_short = TokenConfig { key: vec![1; 32], previous_keys: vec![vec![2; 8]], ..config };
        assert!(Tokens::new(&old_too_short).is_err());
    }

    #[test]
    fn a_rotated_key_still_verifies_its_tokens_until_it_is_dropped() {
        let before = tokens(&[7; 32], 60);
        let old = before.issue("u1", "a@example.com", "s1").unwrap();
        assert_eq!(jsonwebtoken::decode_header(&old).unwrap().kid.as_deref(), Some(key_id(&[7; 32]).as_str()));
        let config = |previous: Vec<Vec<u8>>| TokenConfig {
            key: vec![8; 32],
            previous_keys: previous,
            issuer: "slipway".into(),
            audience: "slipway-api".into(),
            ttl_seconds: 60,
        };
        let rotated = Tokens::new(&config(vec![vec![7; 32]])).unwrap();
        assert_eq!(rotated.verify(&old).unwrap().sub, "u1");
        let new = rotated.issue("u1", "a@example.com", "s1").unwrap();
        assert_eq!(jsonwebtoken::decode_header(&new).unwrap().kid.as_deref(), Some(key_id(&[8; 32]).as_str()));
        assert!(before.verify(&new).is_err(), "the old key alone does not know the new one");
        let dropped = Tokens::new(&config(vec![])).unwrap();
        assert_eq!(
            dropped.verify(&old).unwrap_err().to_string(),
            "the access token was signed by a key this API does not know; log in again"
        );
    }
}
