//! The router: `/api/v1/...` plus `/healthz` and `/readyz`.

mod accounts;
mod admin;
mod apps;
mod audit;
mod credentials;
mod databases;
mod health;
mod members;
mod objects;
#[path = "../openapi.rs"]
mod openapi;
mod preview;
mod revisions;
mod tenants;
mod workspaces;

use crate::{AppState, error::ApiError};
use axum::{
    Router,
    extract::DefaultBodyLimit,
    response::{IntoResponse, Response},
    routing::{get, patch, post, put},
};
use slipway_crds::{App, Database, Workspace};
use tower_http::{catch_panic::CatchPanicLayer, trace::TraceLayer};

/// A handler that panicked (a bug) answers a logged 500 in problem details, rather than a
/// connection the server drops.
fn panicked(cause: Box<dyn std::any::Any + Send>) -> Response {
    let what =
        cause.downcast_ref::<&str>().map(ToString::to_string).or_else(|| cause.downcast_ref::<String>().cloned());
    ApiError::Internal(anyhow::anyhow!("a handler panicked: {}", what.unwrap_or_default())).into_response()
}

/// Builds the whole router over `state`; bodies over `max_body_bytes` answer 413.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let v1 = Router::new()
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/auth/register", post(accounts::register))
        .route("/auth/login", post(accounts::login))
        .route("/auth/refresh", post(accounts::refresh))
        .route("/auth/password-reset", post(accounts::request_password_reset).get(accounts::password_reset_link))
        .route("/auth/password-reset/confirm", post(accounts::confirm_password_reset))
        .route("/auth/logout", post(accounts::logout))
        .route("/auth/logout-all", post(accounts::logout_all))
        .route("/auth/verify", post(accounts::verify).get(accounts::verify_link))
        .route("/auth/verify/resend", post(accounts::resend_verification))
        .route("/me", get(accounts::me).patch(accounts::update_me).delete(accounts::delete_me))
        .route("/me/email/confirm", post(accounts::confirm_email_change).get(accounts::email_change_link))
        .route("/admin/users", get(admin::list_users))
        .route("/admin/users/{user}", get(admin::get_user))
        .route("/admin/users/{user}/entitlements", put(admin::set_entitlements))
        .route("/admin/users/{user}/suspend", post(admin::suspend))
        .route("/admin/users/{user}/reactivate", post(admin::reactivate))
        .route("/admin/tenants", get(admin::list_tenants))
        .route("/admin/audit", get(audit::everything))
        .route("/tenants/{tenant}/audit", get(audit::tenant))
        .route("/admin/tenants/{tenant}/plan", put(admin::change_plan))
        .route("/tenants", post(tenants::create).get(tenants::list))
        .route("/tenants/{tenant}", get(tenants::get).delete(tenants::delete))
        .route("/tenants/{tenant}/members", get(members::list))
        .route("/tenants/{tenant}/members/{user}", patch(members::change_role).delete(members::remove))
        .route("/tenants/{tenant}/invitations", post(members::invite))
        .route("/invitations/accept", post(members::accept).get(members::accept_link))
        .route("/tenants/{tenant}/apps", post(apps::create).get(objects::list::<App>))
        .route(
            "/tenants/{tenant}/apps/{app}",
            get(objects::get::<App>).put(apps::update).delete(objects::delete::<App>),
        )
        .route("/tenants/{tenant}/apps/{app}/scale", put(apps::scale))
        .route("/tenants/{tenant}/apps/{app}/revisions", get(revisions::list))
        .route("/tenants/{tenant}/apps/{app}/rollback", post(revisions::rollback))
        .route("/tenants/{tenant}/databases", post(databases::create).get(objects::list::<Database>))
        .route("/tenants/{tenant}/databases/{db}", get(objects::get::<Database>).delete(objects::delete::<Database>))
        .route("/tenants/{tenant}/databases/{db}/credentials", get(credentials::get))
        .route("/tenants/{tenant}/workspaces", post(workspaces::create).get(objects::list::<Workspace>))
        .route(
            "/tenants/{tenant}/workspaces/{ws}",
            get(objects::get::<Workspace>).put(workspaces::update).delete(objects::delete::<Workspace>),
        )
        // Every matched call that changes state leaves an audit event.
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), crate::audit::record));
    Router::new()
        .nest("/api/v1", v1)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        // Counted and timed by route template; a route layer, so it sees the matched route.
        .route_layer(axum::middleware::from_fn(crate::metrics::record))
        .fallback(|| async { ApiError::NotFound("no such endpoint; the API lives under /api/v1".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("this endpoint does not support that method".into())
        })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(CatchPanicLayer::custom(panicked))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

/// The span of one request, which whatever its handler logs carries: method and path and, for
/// `/api/v1/tenants/{tenant}/{kind}/{name}...`, the tenant, kind (`apps`, `members`, ...) and
/// name it is about (empty where the path has none).
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let path = request.uri().path();
    let mut about = path.strip_prefix("/api/v1/tenants/").unwrap_or_default().split('/');
    let (tenant, kind, name) =
        (about.next().unwrap_or_default(), about.next().unwrap_or_default(), about.next().unwrap_or_default());
    tracing::info_span!("request", method = %request.method(), path, tenant, kind, name)
}
