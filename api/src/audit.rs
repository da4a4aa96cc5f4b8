//! The audit trail: who changed what, when, from where, and how it ended. A middleware
//! ([`record`]) appends one event per state-changing API call (POST, PUT, PATCH, DELETE),
//! successful or not, after the handler answered; the caller's identity reaches it through an
//! [`ActorSlot`] the authentication extractor fills. Bodies are never recorded (they hold
//! passwords and tokens).
//!
//! Changes to Slipway's kinds made through Kubernetes (kubectl) arrive from the admission
//! webhook as [`ClusterChange`]s ([`append_cluster_change`]).
//!
//! Owners and admins of a tenant read its events; platform admins read all.

use crate::{
    AppState,
    auth::AuthUser,
    db::{AuditRecord, Database},
    error::ApiError,
    pagination::{self, Page},
    teams::{self, Role},
};
use axum::{
    extract::{ConnectInfo, MatchedPath, OriginalUri, Request, State},
    http::{Method, header},
    middleware::Next,
    response::Response,
};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

/// Who made the request, once authentication knows: `(account id, address)`.
#[derive(Clone, Default)]
pub struct ActorSlot(Arc<Mutex<Option<(String, String)>>>);

impl ActorSlot {
    /// Records the authenticated caller.
    pub fn set(&self, id: &str, email: &str) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((id.to_string(), email.to_string()));
    }

    fn take(&self) -> Option<(String, String)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// The time as events store it: RFC 3339 UTC with microseconds, fixed width (sorts as text).
fn stored_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Middleware: runs the request, then appends its event if it changed (or tried to change)
/// state. A failure to append is logged; the answer stands (the change already happened).
pub async fn record(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let method = request.method().clone();
    if matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(request).await;
    }
    let slot = ActorSlot::default();
    request.extensions_mut().insert(slot.clone());
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    // The whole path: inside the `/api/v1` nest the URI has lost its prefix.
    let path = request.extensions().get::<OriginalUri>().map_or(request.uri().path(), |u| u.path()).to_string();
    let client = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string());
    let response = next.run(request).await;
    let Some(route) = route else { return response };
    // The created object's own path, when the call created one.
    let object =
        response.headers().get(header::LOCATION).and_then(|l| l.to_str().ok()).map_or(path.clone(), str::to_string);
    let actor = slot.take();
    let record = AuditRecord {
        id: uuid::Uuid::new_v4().to_string(),
        time: stored_time(Utc::now()),
        actor: actor.as_ref().map_or_else(|| "anonymous".to_string(), |(_, email)| email.clone()),
        actor_id: actor.map(|(id, _)| id),
        action: format!("{method} {route}"),
        tenant: tenant_of(&path),
        object,
        status: response.status().as_u16(),
        client: client.unwrap_or_default(),
    };
    if let Err(e) = state.db.append_audit(&record).await {
        tracing::error!(error = %e, action = %record.action, "an audit event could not be recorded");
    }
    response
}

/// A change made through Kubernetes (kubectl, say) to one of Slipway's kinds, as the
/// admission webhook saw it (`slipway_webhook::audit`).
#[derive(Clone, Debug)]
pub struct ClusterChange {
    /// The change's identity: a change already on record under this id is not added again.
    pub id: String,
    /// When admission decided.
    pub time: DateTime<Utc>,
    /// The Kubernetes user name.
    pub actor: String,
    /// `OPERATION resource.group`, e.g. `DELETE apps.slipway.dev`.
    pub action: String,
    /// The tenant owning the namespace.
    pub tenant: Option<String>,
    /// The object's Kubernetes API path.
    pub object: String,
    /// 200 when admitted, else the admission's denial code.
    pub status: u16,
}

/// Appends `change` unless its id is on record already, with no account id (the actor is a Kubernetes user name) and
/// no client address (admission does not see it).
///
/// # Errors
/// Database errors.
pub async fn append_cluster_change(db: &Database, change: ClusterChange) -> sqlx::Result<()> {
    let record = AuditRecord {
        id: change.id,
        time: stored_time(change.time),
        actor: change.actor,
        actor_id: None,
        action: change.action,
        tenant: change.tenant,
        object: change.object,
        status: change.status,
        client: String::new(),
    };
    db.append_audit(&record).await
}

/// The tenant a path under `/api/v1/tenants/{tenant}` or `/api/v1/admin/tenants/{tenant}` names.
fn tenant_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/api/v1/tenants/").or_else(|| path.strip_prefix("/api/v1/admin/tenants/"))?;
    let tenant = rest.split('/').next().filter(|t| !t.is_empty())?;
    Some(tenant.to_string())
}

/// One event as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EventView {
    /// When the call ended (RFC 3339, microseconds).
    pub time: String,
    /// The caller's address, or `anonymous`.
    pub actor: String,
    /// `METHOD route`, e.g. `POST /api/v1/tenants/{tenant}/apps`; for changes made through
    /// Kubernetes, `OPERATION resource.group`, e.g. `CREATE apps.slipway.dev`.
    pub action: String,
    /// The path acted on (a created object's own path; a Kubernetes API path for changes made
    /// through Kubernetes).
    pub object: String,
    /// `success` (2xx) or `failure`.
    pub result: &'static str,
    /// The HTTP status of the answer.
    pub status: u16,
    /// The tenant, when the call named one.
    pub tenant: Option<String>,
    /// The client's IP address; empty for changes made through Kubernetes (admission does not
    /// see it; the API server's own audit log has it).
    pub client: String,
}

impl From<AuditRecord> for EventView {
    fn from(r: AuditRecord) -> Self {
        Self {
            result: if (200..300).contains(&r.status) { "success" } else { "failure" },
            time: r.time,
            actor: r.actor,
            action: r.action,
            object: r.object,
            status: r.status,
            tenant: r.tenant,
            client: r.client,
        }
    }
}

/// What a reader asks for: events newer than `since`, by `actor`, a page at a time.
#[derive(Default)]
pub struct Filter {
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only events of this actor (an address, or `anonymous`).
    pub actor: Option<String>,
    /// Page size (see [`pagination::size`]).
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
}

/// Events of `tenant` (or of everything, for `None`), newest first.
async fn page(state: &AppState, tenant: Option<&str>, filter: Filter) -> Result<Page<EventView>, ApiError> {
    let limit = pagination::size(filter.limit)?;
    // The cursor is `time id` of the last event shown.
    let before = pagination::after(filter.cursor.as_deref())?
        .map(|key| {
            key.split_once(' ')
                .map(|(t, i)| (t.to_string(), i.to_string()))
                .ok_or_else(|| ApiError::BadRequest("cursor: use the `next` value of the previous page".into()))
        })
        .transpose()?;
    let since = filter.since.map(stored_time);
    let records =
        state.db.audit_events(tenant, since.as_deref(), filter.actor.as_deref(), before.as_ref(), limit).await?;
    let page = Page::new(records, limit, |r| format!("{} {}", r.time, r.id));
    Ok(Page { items: page.items.into_iter().map(EventView::from).collect(), next: page.next })
}

/// The tenant's events, for its owners and admins.
///
/// # Errors
/// 404 for outsiders; 403 for members; 400 for a bad cursor or limit.
pub async fn of_tenant(
    state: &AppState,
    user: &AuthUser,
    tenant: &str,
    filter: Filter,
) -> Result<Page<EventView>, ApiError> {
    let role = Role::parse(&teams::membership(state, user, tenant).await?.role);
    if role == Role::Member {
        return Err(ApiError::Forbidden(format!(
            "only owners and admins of tenant {tenant:?} may read its audit trail"
        )));
    }
    page(state, Some(tenant), filter).await
}

/// Every event, for platform admins (the route checks).
///
/// # Errors
/// 400 for a bad cursor or limit.
pub async fn everything(state: &AppState, filter: Filter) -> Result<Page<EventView>, ApiError> {
    page(state, None, filter).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tenant_comes_from_the_path() {
        assert_eq!(tenant_of("/api/v1/tenants/acme/apps/web").as_deref(), Some("acme"));
        assert_eq!(tenant_of("/api/v1/tenants/acme").as_deref(), Some("acme"));
        assert_eq!(tenant_of("/api/v1/admin/tenants/acme/plan").as_deref(), Some("acme"));
        assert_eq!(tenant_of("/api/v1/tenants"), None);
        assert_eq!(tenant_of("/api/v1/auth/login"), None);
    }

    #[test]
    fn stored_times_have_a_fixed_width() {
        let t = DateTime::parse_from_rfc3339("2026-11-22T05:34:26Z").unwrap().with_timezone(&Utc);
        assert_eq!(stored_time(t), "2026-11-22T05:34:26.000000Z");
    }
}
