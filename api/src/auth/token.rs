//! JWT access tokens (RFC 7519), HS256-signed, with issuer, audience and expiry checked.

use crate::error::ApiError;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

/// Shortest accepted HMAC key: 256 bits, the size of the SHA-256 output (RFC 7518 §3.2).
pub const MIN_KEY_BYTES: usize = 32;

/// Access-token settings.
#[derive(Clone)]
pub struct TokenConfig {
    /// HMAC-SHA256 key, at least [`MIN_KEY_BYTES`] bytes.
    pub key: Vec<u8>,
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
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    config: TokenConfig,
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Tokens {
    /// # Errors
    /// The key is shorter than [`MIN_KEY_BYTES`].
    pub fn new(config: &TokenConfig) -> anyhow::Result<Self> {
        anyhow::ensure!(
            config.key.len() >= MIN_KEY_BYTES,
            "the JWT key must be at least {MIN_KEY_BYTES} bytes, it has {}",
            config.key.len()
        );
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 0;
        Ok(Self {
            encoding: EncodingKey::from_secret(&config.key),
            decoding: DecodingKey::from_secret(&config.key),
            validation,
            config: config.clone(),
        })
    }

    /// Lifetime of issued tokens, in seconds (the `expires_in` of the login response).
    pub fn ttl_seconds(&self) -> u64 {
        self.config.ttl_seconds
    }

    /// Issues an access token for a user.
    ///
    /// # Errors
    /// 500 if signing fails (a bug).
    pub fn issue(&self, user_id: &str, email: &str) -> Result<String, ApiError> {
        let iat = now();
        let claims = Claims {
            sub: user_id.into(),
            email: email.into(),
            iss: self.config.issuer.clone(),
            aud: self.config.audience.clone(),
            iat,
            exp: iat + self.config.ttl_seconds,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("signing a token: {e}")))
    }

    /// Verifies signature, algorithm, issuer, audience and expiry.
    ///
    /// # Errors
    /// 401 saying why the token is refused.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map(|d| d.claims).map_err(|e| {
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
            issuer: "slipway".into(),
            audience: "slipway-api".into(),
            ttl_seconds: ttl,
        })
        .unwrap()
    }

    #[test]
    fn round_trips() {
        let t = tokens(&[7; 32], 60);
        let claims = t.verify(&t.issue("u1", "a@example.com").unwrap()).unwrap();
        assert_eq!((claims.sub.as_str(), claims.email.as_str()), ("u1", "a@example.com"));
        assert_eq!(claims.exp - claims.iat, 60);
    }

    #[test]
    fn refuses_forged_expired_and_foreign_tokens() {
        let t = tokens(&[7; 32], 60);
        let forged = tokens(&[8; 32], 60).issue("u1", "a@example.com").unwrap();
        assert_eq!(t.verify(&forged).unwrap_err().to_string(), "the access token's signature is invalid");
        let expired = jsonwebtoken::encode(
            &Header::default(),
            &Claims {
                sub: "u".into(),
                email: "e".into(),
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
        let config = TokenConfig { key: vec![1; 16], issuer: "i".into(), audience: "a".into(), ttl_seconds: 1 };
        assert!(Tokens::new(&config).is_err());
    }
}
