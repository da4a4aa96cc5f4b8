//! Sign-up, login and the caller's profile.

use super::openapi::{Problem, TooManyRequests, Unauthorized};
use crate::{
    AppState,
    accounts::{address, email_change, password_policy, password_reset, profile, registration, sessions, verification},
    auth::{Caller, verify_password},
    error::{ApiError, FieldError},
    json::StrictJson,
    limits::{ClientAddr, Endpoint},
};
use axum::{
    Json,
    extract::{Query, State, rejection::QueryRejection},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A new account: `{"email","password","name"}`.
#[derive(Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// The address to verify, e.g. `ada@example.com`.
    email: String,
    /// 12 to 128 characters, zxcvbn strength 3 of 4 at least.
    #[schema(min_length = 12, max_length = 128)]
    password: String,
    /// 1 to 100 characters (trimmed).
    name: String,
}

/// A login: `{"email","password"}`.
#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    /// The account's address.
    email: String,
    /// Its password.
    password: String,
}

/// The token of an emailed link: `{"token"}`.
#[derive(Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenRequest {
    /// The `token` query parameter of the link.
    token: String,
}

/// A request taken, with what happens next.
#[derive(Serialize, ToSchema)]
pub struct Accepted {
    /// What happens next.
    detail: String,
}

/// A verified address.
#[derive(Serialize, ToSchema)]
pub struct Verified {
    /// The address.
    email: String,
    /// Always `true`.
    email_verified: bool,
}

/// An account.
#[derive(Serialize, ToSchema)]
pub struct UserView {
    /// The account's id.
    id: String,
    /// Its address.
    email: String,
    /// Its holder's name.
    name: String,
    /// Whether the address is confirmed (until it is, only `/me` and verification work).
    email_verified: bool,
}

/// A session's token pair.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// A JWT for `Authorization: Bearer`.
    access_token: String,
    /// Always `Bearer`.
    #[schema(inline, value_type = String, example = "Bearer")]
    token_type: &'static str,
    /// Seconds the access token lasts.
    expires_in: u64,
    /// Single-use: `POST /api/v1/auth/refresh` spends it for the next pair.
    refresh_token: String,
}

impl From<sessions::TokenPair> for TokenResponse {
    fn from(pair: sessions::TokenPair) -> Self {
        Self {
            access_token: pair.access_token,
            token_type: "Bearer",
            expires_in: pair.expires_in,
            refresh_token: pair.refresh_token,
        }
    }
}

/// Changes to the caller's account: `{"name"?, "password"?, "current_password"?}`.
#[derive(Deserialize, ToSchema)]
pub struct ProfilePatch {
    /// A new name, 1 to 100 characters (trimmed).
    name: Option<String>,
    /// A new password (12 to 128 characters, zxcvbn strength 3 of 4); needs `current_password`.
    #[schema(min_length = 12, max_length = 128)]
    password: Option<String>,
    /// The current password, to change it.
    current_password: Option<String>,
    email: Option<String>,
}

/// The password confirming an account's deletion: `{"password"}`.
#[derive(Deserialize, ToSchema)]
pub struct DeleteAccount {
    /// The account's password.
    password: String,
}

/// A password reset request: `{"email"}`.
#[derive(Deserialize, ToSchema)]
pub struct ResetRequest {
    /// The account's address.
    email: String,
}

/// A new password with the token of a reset link: `{"token","password"}`.
#[derive(Deserialize, ToSchema)]
pub struct ResetConfirmation {
    /// The `token` of the emailed link.
    token: String,
    /// The new password: 12 to 128 characters, zxcvbn strength 3 of 4 at least.
    #[schema(min_length = 12, max_length = 128)]
    password: String,
}

/// A session's refresh token: `{"refresh_token"}`.
#[derive(Deserialize, ToSchema)]
pub struct RefreshRequest {
    /// The refresh token of the session's latest pair.
    refresh_token: String,
}

/// The caller: the account's fields and its tenants.
#[derive(Serialize, ToSchema)]
pub struct MeView {
    #[serde(flatten)]
    user: UserView,
    /// The tenants the caller belongs to.
    tenants: Vec<TenantRef>,
    /// How many tenants the account may own and which plans it may choose.
    entitlements: crate::entitlements::Entitlements,
    platform_admin: bool,
}

/// A tenant the caller belongs to, with their role in it.
#[derive(Serialize, ToSchema)]
pub struct TenantRef {
    /// The tenant's name.
    name: String,
    /// `owner` (the only role yet).
    role: String,
}

/// `POST /api/v1/auth/register` `{"email","password","name"}` → 202 `{"detail"}`, the same
/// for a new address and one that has an account (see [`registration`]); the address gets a
/// verification link or a notice.
#[utoipa::path(
    post,
    path = "/api/v1/auth/register",
    tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 202, description = "The same for a new address and one that has an account: the address gets a link or a notice", body = Accepted),
        (status = 422, description = "An invalid address, a weak or badly sized password, or a bad name; `errors` lists each", body = Problem, content_type = "application/problem+json"),
        (status = 429, response = TooManyRequests),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    StrictJson(req): StrictJson<RegisterRequest>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    state.limits.check_client(Endpoint::Register, client)?;
    let mut errors = Vec::new();
    let email = address::normalize(&req.email);
    if email.is_none() {
        errors
            .push(FieldError { field: "email".into(), message: "enter an email address like name@example.com".into() });
    }
    let name = req.name.trim().to_string();
    let own_email = email.as_deref().unwrap_or(req.email.as_str());
    if let Err(e) = password_policy::check("password", &req.password, own_email, &name) {
        errors.push(e);
    }
    if let Err(e) = profile::check_name(&name) {
        errors.push(e);
    }
    let Some(email) = email.filter(|_| errors.is_empty()) else {
        return Err(ApiError::fields(errors));
    };
    let detail = format!(
        "check the inbox of {email}: it has a link to confirm the address (log in, then POST the link's token to \
         /api/v1/auth/verify)"
    );
    registration::register(&state, email, name, req.password).await?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { detail })))
}

/// `POST /api/v1/auth/verify` `{"token"}` → 200 `{"email","email_verified":true}`: the caller
/// confirms their address with the token of a link mailed to it.
#[utoipa::path(
    post,
    path = "/api/v1/auth/verify",
    tag = "auth",
    request_body = TokenRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's address is verified", body = Verified),
        (status = 400, description = "The token is unknown, another account's, used or expired; or the body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 429, response = TooManyRequests),
    )
)]
pub async fn verify(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    StrictJson(req): StrictJson<TokenRequest>,
) -> Result<Json<Verified>, ApiError> {
    state.limits.check_client(Endpoint::Verify, client)?;
    verification::confirm(&state, &caller.id, &req.token).await?;
    Ok(Json(Verified { email: caller.email, email_verified: true }))
}

/// `GET /api/v1/auth/verify?token=T`, where the emailed link points: says how to use the
/// token, and uses nothing (a link scanner fetching it changes nothing; see [`verify`]).
#[utoipa::path(
    get,
    path = "/api/v1/auth/verify",
    tag = "auth",
    params(TokenRequest),
    responses(
        (status = 200, description = "How to use the link's token; nothing changes", body = Accepted),
        (status = 400, description = "No `token` query parameter", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn verify_link(link: Result<Query<TokenRequest>, QueryRejection>) -> Result<Json<Accepted>, ApiError> {
    let Query(link) = link?;
    Ok(Json(Accepted {
        detail: format!(
            "to confirm your address, log in (POST /api/v1/auth/login), then POST {{\"token\": \"{}\"}} to \
             /api/v1/auth/verify with your access token",
            link.token.trim()
        ),
    }))
}

/// `POST /api/v1/auth/verify/resend` → 202: a new link, at most one a minute (429 with
/// `Retry-After` before that).
#[utoipa::path(
    post,
    path = "/api/v1/auth/verify/resend",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 202, description = "A new link is on its way", body = Accepted),
        (status = 409, description = "The address is already verified", body = Problem, content_type = "application/problem+json"),
        (status = 429, response = TooManyRequests),
    )
)]
pub async fn resend_verification(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    state.limits.check_client(Endpoint::Verify, client)?;
    verification::resend(&state, &caller.id, &caller.email, caller.verified).await?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { detail: format!("a new link is on its way to {}", caller.email) })))
}

/// `POST /api/v1/auth/login` `{"email","password"}` → 200
/// `{"access_token","token_type","expires_in","refresh_token"}`: a new session.
/// Unknown email and wrong password answer the same 401, in the same time.
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "A new session (verified or not)", body = TokenResponse),
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyRequests),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    StrictJson(req): StrictJson<LoginRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    state.limits.check_client(Endpoint::Login, client)?;
    let email = address::normalize(&req.email);
    let user = match &email {
        Some(email) => {
            // Per address attempted, whether or not it has an account: the limits reveal nothing.
            state.limits.before_login(email, client).await?;
            state.db.user_by_email(email).await?
        }
        None => None,
    };
    let verified = verify_password(req.password, user.as_ref().map(|u| u.password_hash.clone())).await?;
    if let Some(email) = &email {
        state.limits.after_login(email, verified && user.is_some()).await;
    }
    let user = user.filter(|_| verified).ok_or_else(|| ApiError::Unauthorized("invalid email or password".into()))?;
    Ok(Json(sessions::start(&state, &user).await?.into()))
}

/// `POST /api/v1/auth/refresh` `{"refresh_token"}` → 200, the session's next pair; the token
/// is spent. A spent token presented again ends its session (401).
#[utoipa::path(
    post,
    path = "/api/v1/auth/refresh",
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "The session's next pair; the refresh token is spent", body = TokenResponse),
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyRequests),
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    StrictJson(req): StrictJson<RefreshRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    state.limits.check_client(Endpoint::Refresh, client)?;
    Ok(Json(sessions::refresh(&state, &req.refresh_token).await?.into()))
}

/// `POST /api/v1/auth/logout` `{"refresh_token"}` → 204: ends that session, its access
/// tokens included.
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "The session has ended, its access tokens with it"),
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyRequests),
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    StrictJson(req): StrictJson<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    state.limits.check_client(Endpoint::Refresh, client)?;
    sessions::end(&state, &req.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/auth/logout-all` → 204: ends every session of the caller's account.
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout-all",
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 204, description = "Every session of the caller's account has ended"))
)]
pub async fn logout_all(State(state): State<AppState>, caller: Caller) -> Result<StatusCode, ApiError> {
    sessions::end_all(&state, &caller.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/auth/password-reset` `{"email"}` → 202, the same whether or not the address
/// has an account; if it has, it gets a reset link.
#[utoipa::path(
    post,
    path = "/api/v1/auth/password-reset",
    tag = "auth",
    request_body = ResetRequest,
    responses(
        (status = 202, description = "The same for any address: one with an account gets a link", body = Accepted),
        (status = 422, description = "Not an email address", body = Problem, content_type = "application/problem+json"),
        (status = 429, response = TooManyRequests),
    )
)]
pub async fn request_password_reset(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    StrictJson(req): StrictJson<ResetRequest>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    state.limits.check_client(Endpoint::Reset, client)?;
    let email = address::normalize(&req.email)
        .ok_or_else(|| ApiError::invalid("email", "enter an email address like name@example.com"))?;
    password_reset::request(&state, &email).await?;
    let detail = format!(
        "if {email} has an account, a link to choose a new password is on its way; it works for {} minutes",
        crate::accounts::emails::RESET_MINUTES
    );
    Ok((StatusCode::ACCEPTED, Json(Accepted { detail })))
}

/// `GET /api/v1/auth/password-reset?token=T`, where the emailed link points: says how to
/// use the token, and uses nothing.
#[utoipa::path(
    get,
    path = "/api/v1/auth/password-reset",
    tag = "auth",
    params(TokenRequest),
    responses(
        (status = 200, description = "How to use the link's token; nothing changes", body = Accepted),
        (status = 400, description = "No `token` query parameter", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn password_reset_link(
    link: Result<Query<TokenRequest>, QueryRejection>,
) -> Result<Json<Accepted>, ApiError> {
    let Query(link) = link?;
    Ok(Json(Accepted {
        detail: format!(
            "to choose a new password, POST {{\"token\": \"{}\", \"password\": \"...\"}} to \
             /api/v1/auth/password-reset/confirm",
            link.token.trim()
        ),
    }))
}

/// `POST /api/v1/auth/password-reset/confirm` `{"token","password"}` → 204: the new password
/// is set and every session of the account ends.
#[utoipa::path(
    post,
    path = "/api/v1/auth/password-reset/confirm",
    tag = "auth",
    request_body = ResetConfirmation,
    responses(
        (status = 204, description = "The new password is set and every session has ended"),
        (status = 400, description = "The token is unknown, used or expired; or the body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The password breaks the rules, or a field is wrong", body = Problem, content_type = "application/problem+json"),
        (status = 429, response = TooManyRequests),
    )
)]
pub async fn confirm_password_reset(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    StrictJson(req): StrictJson<ResetConfirmation>,
) -> Result<StatusCode, ApiError> {
    state.limits.check_client(Endpoint::Reset, client)?;
    password_reset::confirm(&state, &req.token, req.password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/me` → the caller and their tenants (unverified accounts too).
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "me",
    security(("bearer" = [])),
    responses((status = 200, description = "The caller and their tenants", body = MeView))
)]
pub async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<MeView>, ApiError> {
    let user = profile::current_user(&state, &caller).await?;
    me_view(&state, user).await
}

async fn me_view(state: &AppState, user: crate::db::User) -> Result<Json<MeView>, ApiError> {
    let tenants =
        state.db.memberships(&user.id).await?.into_iter().map(|m| TenantRef { name: m.tenant, role: m.role }).collect();
    let entitlements = crate::entitlements::of(state, &user).await?;
    let platform_admin = state.entitlements.is_admin(&user.email, user.verified);
    let user = UserView { id: user.id, email: user.email, name: user.name, email_verified: user.verified };
    Ok(Json(MeView { user, tenants, entitlements, platform_admin }))
}

/// `PATCH /api/v1/me` `{"name"?, "password"?, "current_password"?}` → 200, the caller as
/// `GET /me` shows it. A new password needs the current one and ends the other sessions.
#[utoipa::path(
    patch,
    path = "/api/v1/me",
    tag = "me",
    request_body = ProfilePatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller, changed", body = MeView),
        (status = 422, description = "A bad name or new password, a missing or wrong `current_password`", body = Problem, content_type = "application/problem+json"),
        (status = 429, response = TooManyRequests),
    )
)]
pub async fn update_me(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    StrictJson(req): StrictJson<ProfilePatch>,
) -> Result<Json<MeView>, ApiError> {
    let email = req
        .email
        .map(|e| {
            address::normalize(&e)
                .ok_or_else(|| ApiError::invalid("email", "enter an email address like name@example.com"))
        })
        .transpose()?;
    let change = profile::ProfileChange {
        name: req.name,
        password: req.password,
        current_password: req.current_password.clone(),
    };
    let user = profile::update(&state, &caller, client, change).await?;
    if let Some(email) = email {
        email_change::request(&state, &caller, client, &email, req.current_password).await?;
    }
    me_view(&state, user).await
}

/// `POST /api/v1/me/email/confirm` `{"token"}` → 200, the caller as `GET /me` shows it, now
/// at the address the token's link was mailed to.
#[utoipa::path(post, path = "/api/v1/me/email/confirm", tag = "me", request_body = TokenRequest, security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller, now at the new address", body = MeView),
        (status = 400, description = "The token is unknown, another account's, used or expired", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another account took the address meanwhile", body = Problem, content_type = "application/problem+json"),
        (status = 429, response = TooManyRequests),
    ))]
pub async fn confirm_email_change(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    StrictJson(req): StrictJson<TokenRequest>,
) -> Result<Json<MeView>, ApiError> {
    state.limits.check_client(Endpoint::Verify, client)?;
    email_change::confirm(&state, &caller, &req.token).await?;
    me_view(&state, profile::current_user(&state, &caller).await?).await
}

/// `GET /api/v1/me/email/confirm?token=T`, where the emailed link points: says how to use the
/// token, and uses nothing.
#[utoipa::path(get, path = "/api/v1/me/email/confirm", tag = "me", params(TokenRequest),
    responses(
        (status = 200, description = "How to use the link's token; nothing changes", body = Accepted),
        (status = 400, description = "No `token` query parameter", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn email_change_link(link: Result<Query<TokenRequest>, QueryRejection>) -> Result<Json<Accepted>, ApiError> {
    let Query(link) = link?;
    Ok(Json(Accepted {
        detail: format!(
            "to move your account to this address, log in (POST /api/v1/auth/login), then POST {{\"token\": \"{}\"}} \
             to /api/v1/me/email/confirm with your access token",
            link.token.trim()
        ),
    }))
}

/// `DELETE /api/v1/me` `{"password"}` → 204; 409 while the account owns tenants.
#[utoipa::path(
    delete,
    path = "/api/v1/me",
    tag = "me",
    request_body = DeleteAccount,
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The account is deleted"),
        (status = 409, description = "The account owns tenants (named in `detail`): delete them first", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A wrong password", body = Problem, content_type = "application/problem+json"),
        (status = 429, response = TooManyRequests),
    )
)]
pub async fn delete_me(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    StrictJson(req): StrictJson<DeleteAccount>,
) -> Result<StatusCode, ApiError> {
    profile::delete(&state, &caller, client, req.password).await?;
    Ok(StatusCode::NO_CONTENT)
}
