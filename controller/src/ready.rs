//! Emails sent at most once: the one "ready" email of a resource per lifetime, for every kind
//! that has `status.readyNotifiedAt`, and the claim-then-send steps other one-time emails
//! (an App's failed rollout, once per revision) share.

use crate::{Context, Result, notify::Email};
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::events::EventType,
};
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// Field manager that owns `status.readyNotifiedAt`, apart from the status the controller
/// recomputes on every reconcile, so applying that status never clears the marker.
const NOTIFIER: &str = "slipway-notifier";

/// Emails `recipients` once per resource lifetime, even across controller restarts and replicas.
///
/// First claims the notification by writing `status.readyNotifiedAt` with the resource's
/// current `resourceVersion` as a precondition: of two racing reconciles only one claim
/// succeeds (the other gets 409 Conflict and requeues, then sees the marker). Then sends; if
/// sending fails the claim is withdrawn so a retry sends again. A crash between claim and send
/// loses that one email (at most once), which we prefer over duplicates.
///
/// Returns `false` when the claim lost to a concurrent change (409): nothing was sent.
pub async fn notify_once<K>(ctx: &Context, api: &Api<K>, obj: &K, recipients: &[&str], email: &Email) -> Result<bool>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
{
    let now = serde_json::to_value(Time(Timestamp::now())).map_err(kube::Error::SerdeError)?;
    let marker = Marker { field: "readyNotifiedAt", value: now };
    if claim(api, obj, &marker).await?.is_none() {
        return Ok(false);
    }
    send_or_unclaim(ctx, api, obj, &marker, recipients, email).await?;
    let kind = K::kind(&());
    let note = format!("emailed {} recipient(s) that the {kind} is ready", recipients.len());
    ctx.publish(obj, EventType::Normal, "OwnersNotified", note).await;
    Ok(true)
}

/// A status field that records that an email went out (owned by [`NOTIFIER`]), and its value.
pub struct Marker {
    /// The field of `status`, e.g. `readyNotifiedAt`.
    pub field: &'static str,
    /// Its value once the email is claimed.
    pub value: serde_json::Value,
}

/// Claims the email `marker` stands for: writes it into `obj`'s status with `obj`'s
/// `resourceVersion` as a precondition, so of racing reconciles exactly one wins. The object as
/// written, or `None` when the claim lost to a concurrent change (409).
///
/// # Errors
/// Other Kubernetes API errors.
pub async fn claim<K>(api: &Api<K>, obj: &K, marker: &Marker) -> Result<Option<K>>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
{
    let claim = serde_json::json!({
        "metadata": { "resourceVersion": obj.resource_version() },
        "status": { marker.field: marker.value },
    });
    match api.patch_status(&obj.name_any(), &notifier(), &Patch::Merge(&claim)).await {
        Ok(written) => Ok(Some(written)),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Sends `email` after a [`claim`]; when sending fails, withdraws the claim (so a retry sends
/// again) and returns the error.
///
/// # Errors
/// The mail error, or a Kubernetes error withdrawing the claim.
pub async fn send_or_unclaim<K>(
    ctx: &Context,
    api: &Api<K>,
    obj: &K,
    marker: &Marker,
    recipients: &[&str],
    email: &Email,
) -> Result<()>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
{
    if let Err(e) = ctx.mailer.send(recipients, email).await {
        let unclaim = serde_json::json!({ "status": { marker.field: null } });
        api.patch_status(&obj.name_any(), &notifier(), &Patch::Merge(&unclaim)).await?;
        return Err(e.into());
    }
    Ok(())
}

fn notifier() -> PatchParams {
    PatchParams { field_manager: Some(NOTIFIER.into()), ..Default::default() }
}
