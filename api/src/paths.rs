//! Names taken from URL paths, checked before anything uses them. A name that is not a DNS
//! label cannot exist, and it must never reach a Kubernetes URL, where a `?` or a `/` decoded
//! from `%3F` or `%2F` would change what the call does (`.../apps/web%3FdryRun%3DAll` once
//! deleted `web`).

use crate::error::ApiError;
use axum::{
    extract::{FromRequestParts, Path},
    http::request::Parts,
};
use slipway_policies::rules::names::{MAX_LABEL, check_label};

/// Checks one path segment.
fn checked(name: String) -> Result<String, ApiError> {
    match check_label(&name, MAX_LABEL) {
        Ok(()) => Ok(name),
        Err(rule) => Err(ApiError::BadRequest(format!("{name:?} is not a valid name: {rule}"))),
    }
}

/// The tenant of `/tenants/{tenant}/...`.
pub struct TenantName(pub String);

/// The tenant and the object of `/tenants/{tenant}/{apps|databases|workspaces}/{name}/...`.
pub struct ObjectName {
    /// The tenant.
    pub tenant: String,
    /// The object.
    pub name: String,
}

/// The tenant and the person of `/tenants/{tenant}/members/{user}`, named by account id or
/// by address.
pub struct MemberPath {
    /// The tenant.
    pub tenant: String,
    /// An account id or an address, as the caller wrote it.
    pub who: String,
}

impl<S: Send + Sync> FromRequestParts<S> for MemberPath {
    type Rejection = ApiError;

    /// # Errors
    /// 400 when the tenant is not a name, or the person is empty, longer than an address can
    /// be (254) or holds control characters.
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path((tenant, who)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        if who.is_empty() || who.len() > 254 || who.chars().any(char::is_control) {
            return Err(ApiError::BadRequest(format!("{who:?} is neither an account id nor an address")));
        }
        Ok(Self { tenant: checked(tenant)?, who })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for TenantName {
    type Rejection = ApiError;

    /// # Errors
    /// 400 when the segment is not a name.
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(tenant) =
            Path::<String>::from_request_parts(parts, state).await.map_err(|e| ApiError::BadRequest(e.body_text()))?;
        Ok(Self(checked(tenant)?))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ObjectName {
    type Rejection = ApiError;

    /// # Errors
    /// 400 when a segment is not a name.
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path((tenant, name)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        Ok(Self { tenant: checked(tenant)?, name: checked(name)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dns_labels_pass() {
        assert!(checked("web".into()).is_ok());
        for odd in ["web?dryRun=All", "a\0b", "a\r\nb", "a b", "A", "..", "a/b", ""] {
            let e = checked(odd.into()).unwrap_err();
            assert_eq!(e.status().as_u16(), 400, "{odd:?}");
            assert!(e.to_string().contains("is not a valid name"), "{e}");
        }
    }
}
