//! `/tenants/{tenant}/members`, `/tenants/{tenant}/invitations` and `/invitations/accept`
//! (see [`crate::teams`]).

use crate::{
    AppState,
    accounts::address,
    auth::AuthUser,
    error::ApiError,
    json::StrictJson,
    paths::{MemberPath, TenantName},
    teams::{
        Role,
        invitations::{self, InvitationView},
        members::{self, MemberView},
    },
};
use axum::{
    Json,
    extract::{Query, State, rejection::QueryRejection},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
pub struct InvitationRequest {
    email: String,
    role: Role,
}

#[derive(Deserialize)]
pub struct RoleChange {
    role: Role,
}

#[derive(Deserialize)]
pub struct AcceptRequest {
    token: String,
}

#[derive(Serialize)]
pub struct Joined {
    tenant: String,
    role: Role,
}

#[derive(Serialize)]
pub struct Explained {
    detail: String,
}

/// `GET /api/v1/tenants/{tenant}/members` → `{"items":[{"id","email","name","role"}]}`,
/// owners first.
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    TenantName(tenant): TenantName,
) -> Result<Json<serde_json::Value>, ApiError> {
    let items = members::list(&state, &user, &tenant).await?;
    Ok(Json(serde_json::json!({ "items": items })))
}

/// `PATCH /api/v1/tenants/{tenant}/members/{user}` `{"role"}` → 200, the member.
pub async fn change_role(
    State(state): State<AppState>,
    user: AuthUser,
    MemberPath { tenant, who }: MemberPath,
    StrictJson(req): StrictJson<RoleChange>,
) -> Result<Json<MemberView>, ApiError> {
    Ok(Json(members::change_role(&state, &user, &tenant, &who, req.role).await?))
}

/// `DELETE /api/v1/tenants/{tenant}/members/{user}` → 204: removes them (yourself: leaves).
pub async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    MemberPath { tenant, who }: MemberPath,
) -> Result<StatusCode, ApiError> {
    members::remove(&state, &user, &tenant, &who).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/tenants/{tenant}/invitations` `{"email","role"}` → 201, the invitation; the
/// address gets the link.
pub async fn invite(
    State(state): State<AppState>,
    user: AuthUser,
    TenantName(tenant): TenantName,
    StrictJson(req): StrictJson<InvitationRequest>,
) -> Result<(StatusCode, Json<InvitationView>), ApiError> {
    let email = address::normalize(&req.email)
        .ok_or_else(|| ApiError::invalid("email", "enter an email address like name@example.com"))?;
    Ok((StatusCode::CREATED, Json(invitations::invite(&state, &user, &tenant, &email, req.role).await?)))
}

/// `POST /api/v1/invitations/accept` `{"token"}` → 200 `{"tenant","role"}`: the caller joins.
pub async fn accept(
    State(state): State<AppState>,
    user: AuthUser,
    StrictJson(req): StrictJson<AcceptRequest>,
) -> Result<Json<Joined>, ApiError> {
    let (tenant, role) = invitations::accept(&state, &user, &req.token).await?;
    Ok(Json(Joined { tenant, role }))
}

/// `GET /api/v1/invitations/accept?token=T`, where the emailed link points: says how to use
/// it, and uses nothing (mail scanners fetch links).
pub async fn accept_link(query: Result<Query<AcceptRequest>, QueryRejection>) -> Result<Json<Explained>, ApiError> {
    let Query(link) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    Ok(Json(Explained {
        detail: format!(
            "to join, log in (POST /api/v1/auth/login) with the invited address, then POST {{\"token\": \"{}\"}} to \
             /api/v1/invitations/accept with your access token",
            link.token.trim()
        ),
    }))
}
