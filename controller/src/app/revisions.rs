//! Recording an App's revisions (see [`slipway_crds::revision`]) as ControllerRevisions it
//! owns, and marking how each one's rollout ended.

use crate::{MANAGER, Result, apply::delete_if_exists};
use k8s_openapi::{
    api::apps::v1::ControllerRevision,
    apimachinery::pkg::{apis::meta::v1::ObjectMeta, runtime::RawExtension},
};
use kube::{
    Api, Resource, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};
use slipway_crds::{
    APP_LABEL, App, TENANT_LABEL,
    revision::{self, CHANGED_BY_ANNOTATION, OUTCOME_ANNOTATION, Outcome, RESTORES_ANNOTATION, TEMPLATE_KEY_LABEL},
};
use std::collections::BTreeMap;

/// How many Apps' last recorded revisions are remembered; beyond that the least recently used
/// are forgotten (each then costs one list again).
const CAPACITY: u64 = 100_000;

/// The revision this controller last recorded (created, or found newest) for each App, by the
/// App's uid: its template key and number.
///
/// A reconcile reads its App from the controller's store, which may not show yet the status
/// the previous reconcile of that App wrote a moment ago (the next reconcile, triggered by the
/// Deployment the first one created, often starts before the status' watch event arrives).
/// Without this it would list the App's revisions again to find the one it has just recorded:
/// issue 13 measured 631 such lists for 1,000 new Apps. Only this controller writes revisions
/// and a replica that loses leadership exits ([`crate::leader`]), so what it remembers is
/// what a list would find; an App it does not remember is listed as before.
pub struct Recorded {
    last: moka::sync::Cache<String, (String, i64)>,
}

impl Default for Recorded {
    fn default() -> Self {
        Self { last: moka::sync::Cache::new(CAPACITY) }
    }
}

impl Recorded {
    /// The revision recorded last for the App of `uid`, if it holds the template of `key`.
    fn number(&self, uid: &str, key: &str) -> Option<i64> {
        self.last.get(uid).filter(|(k, _)| k == key).map(|(_, n)| n)
    }

    fn remember(&self, uid: &str, key: &str, number: i64) {
        self.last.insert(uid.to_string(), (key.to_string(), number));
    }
}

/// The number of the revision holding `app`'s template (whose key is `key`): the newest one
/// when it holds that template already, else a new one numbered after it, copying the App's
/// [`CHANGED_BY_ANNOTATION`] and noting which earlier revision it restores, if any. Keeps the
/// newest `spec.revisionHistoryLimit` and deletes older ones.
///
/// Called only when the template differs from the one the status names, so a reconcile that
/// changes nothing reads no revisions; and answered from `recorded` when this controller
/// recorded that template last. Safe to retry: an interrupted call is finished by the next
/// one, which finds its revision the newest.
///
/// # Errors
/// Kubernetes API errors (a revision of that number created meanwhile is a conflict, retried).
pub async fn record(
    api: &Api<ControllerRevision>,
    recorded: &Recorded,
    app: &App,
    tenant: &str,
    key: &str,
) -> Result<i64> {
    let uid = app.uid().unwrap_or_default();
    if let Some(number) = recorded.number(&uid, key) {
        return Ok(number);
    }
    // A new App (its status names no revision yet) has none as a rule: its first revision is
    // created without a list (issue 13: the list was one uncached request per new App). One
    // that exists already (an interrupted reconcile's, or a deleted App's of the same name)
    // answers 409, and is looked for as before.
    let new = app.status.as_ref().is_none_or(|s| s.revision.is_none());
    let created = if new { create_first(api, app, tenant, key).await? } else { None };
    let number = match created {
        Some(number) => number,
        None => list_or_create(api, app, &uid, tenant, key).await?,
    };
    recorded.remember(&uid, key, number);
    Ok(number)
}

/// Creates revision 1 of `app`: `Some(1)`, or `None` when a revision of that name exists.
async fn create_first(api: &Api<ControllerRevision>, app: &App, tenant: &str, key: &str) -> Result<Option<i64>> {
    match api.create(&Default::default(), &new_revision(app, tenant, key, 1, None)?).await {
        Ok(_) => Ok(Some(1)),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn list_or_create(api: &Api<ControllerRevision>, app: &App, uid: &str, tenant: &str, key: &str) -> Result<i64> {
    let name = app.name_any();
    let selector = format!("{APP_LABEL}={name}");
    let objects = api.list(&ListParams::default().labels(&selector)).await?.items;
    let owned: Vec<&ControllerRevision> =
        objects.iter().filter(|o| revision::Revision::of(o, &name, uid).is_some()).collect();
    let key_of = |o: &ControllerRevision| o.labels().get(TEMPLATE_KEY_LABEL).cloned();
    let newest = owned.iter().max_by_key(|o| o.revision);
    if let Some(newest) = newest.filter(|o| key_of(o).as_deref() == Some(key)) {
        return Ok(newest.revision);
    }
    let number = newest.map_or(1, |o| o.revision + 1);
    let restores = owned.iter().filter(|o| key_of(o).as_deref() == Some(key)).map(|o| o.revision).max();
    let object = new_revision(app, tenant, key, number, restores)?;
    api.create(&Default::default(), &object).await?;

    // The newest `limit` stay; the new one is the newest of all.
    let limit = app.spec.revision_history_limit();
    let mut older: Vec<&ControllerRevision> = owned;
    older.sort_by_key(|o| std::cmp::Reverse(o.revision));
    for stale in older.iter().skip(limit.saturating_sub(1)) {
        delete_if_exists(api, &stale.name_any()).await?;
    }
    Ok(number)
}

fn new_revision(app: &App, tenant: &str, key: &str, number: i64, restores: Option<i64>) -> Result<ControllerRevision> {
    let name = app.name_any();
    let mut annotations = BTreeMap::new();
    if let Some(author) = app.annotations().get(CHANGED_BY_ANNOTATION) {
        annotations.insert(CHANGED_BY_ANNOTATION.to_string(), author.clone());
    }
    if let Some(n) = restores {
        annotations.insert(RESTORES_ANNOTATION.to_string(), n.to_string());
    }
    Ok(ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision::revision_name(&name, number)),
            namespace: app.namespace(),
            labels: Some(BTreeMap::from([
                (APP_LABEL.to_string(), name.clone()),
                (TENANT_LABEL.to_string(), tenant.to_string()),
                (TEMPLATE_KEY_LABEL.to_string(), key.to_string()),
                ("app.kubernetes.io/managed-by".to_string(), "slipway".to_string()),
            ])),
            annotations: Some(annotations),
            owner_references: Some(vec![app.controller_owner_ref(&()).expect("App has a name and uid")]),
            ..Default::default()
        },
        data: Some(RawExtension(serde_json::to_value(app.spec.template()).map_err(kube::Error::SerdeError)?)),
        revision: number,
    })
}

/// Marks revision `number` of App `app` with how its rollout ended. A revision pruned
/// meanwhile is left alone.
///
/// # Errors
/// Kubernetes API errors.
pub async fn mark(api: &Api<ControllerRevision>, app: &str, number: i64, outcome: Outcome) -> Result<()> {
    let patch = serde_json::json!({ "metadata": { "annotations": { OUTCOME_ANNOTATION: outcome.as_str() } } });
    let params = PatchParams { field_manager: Some(MANAGER.into()), ..Default::default() };
    match api.patch(&revision::revision_name(app, number), &params, &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_template_recorded_last_is_answered_from_memory() {
        let recorded = Recorded::default();
        assert_eq!(recorded.number("uid-1", "a"), None, "never recorded: list");
        recorded.remember("uid-1", "a", 1);
        assert_eq!(recorded.number("uid-1", "a"), Some(1));
        assert_eq!(recorded.number("uid-2", "a"), None, "another App (or the same name recreated)");
        recorded.remember("uid-1", "b", 2);
        // Back to template "a": a new revision restoring 1 is due, which only a list finds.
        assert_eq!(recorded.number("uid-1", "a"), None);
        assert_eq!(recorded.number("uid-1", "b"), Some(2));
    }
}
