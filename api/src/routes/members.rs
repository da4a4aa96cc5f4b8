//! `/tenants/{tenant}/members`, `/tenants/{tenant}/invitations` and `/invitations/accept`
//! (see [`crate::teams`]).

use super::openapi::{Problem, TooManyRequests};
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
use utoipa::{IntoParams, ToSchema};

/// An invitation to send: `{"email","role"}`.
#[derive(Deserialize, ToSchema)]
pub struct InvitationRequest {
    /// The address to invite.
    #[schema(example = "bob@example.com")]
    email: String,
    /// The role it gives.
    role: Role,
}

/// A new role: `{"role"}`.
#[derive(Deserialize, ToSchema)]
pub struct RoleChange {
    /// The role.
    role: Role,
}

/// The token of an invitation's link.
#[derive(Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AcceptRequest {
    /// The `token` query parameter of the mailed link.
    token: String,
}

/// The tenant joined and the role in it.
#[derive(Serialize, ToSchema)]
pub struct Joined {
    /// The tenant.
    tenant: String,
    /// The role.
    role: Role,
}

/// How to use a link.
#[derive(Serialize, ToSchema)]
pub struct Explained {
    /// What to do.
    detail: String,
}

/// The tenant's people: `{"items": [...]}`.
#[derive(Serialize, ToSchema)]
pub struct MemberList {
    /// Owners first, then admins, then members.
    items: Vec<MemberView>,
}

/// `GET /api/v1/tenants/{tenant}/members` → `{"items":[{"id","email","name","role"}]}`,
/// owners first.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/members", tag = "members", params(("tenant" = String, Path, description = "The tenant's name", pattern = "^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 63)), security(("bearer" = [])),
    responses(
        (status = 200, description = "The tenant's people, owners first", body = MemberList),
        (status = 404, description = "No such tenant, or the caller is not in it", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    TenantName(tenant): TenantName,
) -> Result<Json<MemberList>, ApiError> {
    Ok(Json(MemberList { items: members::list(&state, &user, &tenant).await? }))
}

/// `PATCH /api/v1/tenants/{tenant}/members/{user}` `{"role"}` → 200, the member.
#[utoipa::path(patch, path = "/api/v1/tenants/{tenant}/members/{user}", tag = "members", params(("tenant" = String, Path, description = "The tenant's name", pattern = "^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 63), ("user" = String, Path, description = "An account id or an address of someone of the tenant", max_length = 254)),
    request_body = RoleChange, security(("bearer" = [])),
    responses(
        (status = 200, description = "The person with the new role", body = MemberView),
        (status = 403, description = "The caller may not manage that person or give that role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant or person", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It would leave the tenant without an owner", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn change_role(
    State(state): State<AppState>,
    user: AuthUser,
    MemberPath { tenant, who }: MemberPath,
    StrictJson(req): StrictJson<RoleChange>,
) -> Result<Json<MemberView>, ApiError> {
    Ok(Json(members::change_role(&state, &user, &tenant, &who, req.role).await?))
}

/// `DELETE /api/v1/tenants/{tenant}/members/{user}` → 204: removes them (yourself: leaves).
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/members/{user}", tag = "members", params(("tenant" = String, Path, description = "The tenant's name", pattern = "^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 63), ("user" = String, Path, description = "An account id or an address of someone of the tenant", max_length = 254)),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed (or, for the caller, left)"),
        (status = 403, description = "The caller may not manage that person", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant or person", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The tenant's last owner", body = Problem, content_type = "application/problem+json"),
    ))]
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
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/invitations", tag = "members", params(("tenant" = String, Path, description = "The tenant's name", pattern = "^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 63)),
    request_body = InvitationRequest, security(("bearer" = [])),
    responses(
        (status = 201, description = "The invitation; the address gets the link", body = InvitationView),
        (status = 403, description = "The caller may not give that role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant, or the caller is not in it", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The address is in the tenant already", body = Problem, content_type = "application/problem+json"),
        (status = 429, response = TooManyRequests),
    ))]
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
#[utoipa::path(post, path = "/api/v1/invitations/accept", tag = "members", request_body = AcceptRequest, security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller joined", body = Joined),
        (status = 400, description = "The token is unknown, used or expired", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The invitation was sent to another address", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The caller is in the tenant already", body = Problem, content_type = "application/problem+json"),
    ))]
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
#[utoipa::path(get, path = "/api/v1/invitations/accept", tag = "members", params(AcceptRequest),
    responses(
        (status = 200, description = "How to use the link's token; nothing changes", body = Explained),
        (status = 400, description = "No `token` query parameter", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn accept_link(query: Result<Query<AcceptRequest>, QueryRejection>) -> Result<Json<Explained>, ApiError> {
    let Query(link) = query?;
    Ok(Json(Explained {
        detail: format!(
            "to join, log in (POST /api/v1/auth/login) with the invited address, then POST {{\"token\": \"{}\"}} to \
             /api/v1/invitations/accept with your access token",
            link.token.trim()
        ),
    }))
}
