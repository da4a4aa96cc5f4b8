//! Sign-up, login and the caller's profile.

use crate::{
    AppState,
    accounts::password_policy,
    auth::{AuthUser, hash_password, verify_password},
    db::{User, is_unique_violation},
    error::{ApiError, FieldError},
    json::StrictJson,
};
use axum::{Json, extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
pub struct RegisterRequest {
    email: String,
    password: String,
    name: String,
}

#[derive(Deserialize)]
pub struct LoginRequest {
    email: String,
    password: String,
}

#[derive(Serialize)]
pub struct UserView {
    id: String,
    email: String,
    name: String,
}

#[derive(Serialize)]
pub struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
}

#[derive(Serialize)]
pub struct MeView {
    #[serde(flatten)]
    user: UserView,
    tenants: Vec<TenantRef>,
}

#[derive(Serialize)]
pub struct TenantRef {
    name: String,
    role: String,
}

/// Lowercased, trimmed email if it looks like `local@domain.tld` (RFC 5321 caps it at 254).
fn normalize_email(email: &str) -> Option<String> {
    let email = email.trim().to_ascii_lowercase();
    let (local, domain) = email.split_once('@')?;
    let ok = email.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then_some(email)
}

/// `POST /api/v1/auth/register` `{"email","password","name"}` → 201 `{"id","email","name"}`.
pub async fn register(
    State(state): State<AppState>,
    StrictJson(req): StrictJson<RegisterRequest>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let mut errors = Vec::new();
    let email = normalize_email(&req.email);
    if email.is_none() {
        errors
            .push(FieldError { field: "email".into(), message: "enter an email address like name@example.com".into() });
    }
    let name = req.name.trim().to_string();
    let own_email = email.as_deref().unwrap_or(req.email.as_str());
    if let Err(e) = password_policy::check("password", &req.password, own_email, &name) {
        errors.push(e);
    }
    if name.is_empty() || name.chars().count() > 100 {
        errors.push(FieldError { field: "name".into(), message: "enter a name of 1 to 100 characters".into() });
    }
    let Some(email) = email.filter(|_| errors.is_empty()) else {
        let detail = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
        return Err(ApiError::Unprocessable { detail, errors });
    };
    let user =
        User { id: uuid::Uuid::new_v4().to_string(), email, name, password_hash: hash_password(req.password).await? };
    match state.db.insert_user(&user).await {
        Ok(()) => {}
        Err(e) if is_unique_violation(&e) => {
            return Err(ApiError::Conflict(format!("an account for {} already exists; log in instead", user.email)));
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(user = %user.id, "user registered");
    Ok((StatusCode::CREATED, Json(UserView { id: user.id, email: user.email, name: user.name })))
}

/// `POST /api/v1/auth/login` `{"email","password"}` → 200 `{"access_token","token_type","expires_in"}`.
/// Unknown email and wrong password answer the same 401, in the same time.
pub async fn login(
    State(state): State<AppState>,
    StrictJson(req): StrictJson<LoginRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let user = match normalize_email(&req.email) {
        Some(email) => state.db.user_by_email(&email).await?,
        None => None,
    };
    let verified = verify_password(req.password, user.as_ref().map(|u| u.password_hash.clone())).await?;
    let user = user.filter(|_| verified).ok_or_else(|| ApiError::Unauthorized("invalid email or password".into()))?;
    Ok(Json(TokenResponse {
        access_token: state.tokens.issue(&user.id, &user.email)?,
        token_type: "Bearer",
        expires_in: state.tokens.ttl_seconds(),
    }))
}

/// `GET /api/v1/me` → the caller and their tenants.
pub async fn me(State(state): State<AppState>, caller: AuthUser) -> Result<Json<MeView>, ApiError> {
    let user = state
        .db
        .user_by_id(&caller.id)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("the account of this token no longer exists".into()))?;
    let tenants =
        state.db.memberships(&user.id).await?.into_iter().map(|m| TenantRef { name: m.tenant, role: m.role }).collect();
    Ok(Json(MeView { user: UserView { id: user.id, email: user.email, name: user.name }, tenants }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(normalize_email(" Ada@Example.COM ").as_deref(), Some("ada@example.com"));
        for bad in ["", "ada", "ada@", "@example.com", "ada@example", "a b@example.com", "a@b@example.com", "ada@.com"]
        {
            assert_eq!(normalize_email(bad), None, "{bad}");
        }
    }
}
