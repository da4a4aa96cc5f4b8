//! An App's revisions: each template it ran ([`AppSpec::template`]), kept as `apps/v1`
//! ControllerRevision objects owned by the App, the way StatefulSets and DaemonSets keep their
//! history (<https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/controller-revision-v1/>),
//! so kubectl users (`kubectl get controllerrevisions -l slipway.dev/app=web`) and API users
//! see the same history, and it survives restarts.
//!
//! A revision is named `<app>-<number>` (numbers have no dash, so no two Apps' names meet),
//! labelled [`APP_LABEL`](crate::APP_LABEL)` = <app>` and [`TEMPLATE_KEY_LABEL`]` = <key>`,
//! holds the template as its `data`, and is annotated with who made the change
//! ([`CHANGED_BY_ANNOTATION`], which the mutating webhook puts on the App), how its rollout
//! ended ([`OUTCOME_ANNOTATION`]) and, when it brings back an earlier template, which one
//! ([`RESTORES_ANNOTATION`]).

use crate::{APP_LABEL, AppSpec};
use k8s_openapi::{api::apps::v1::ControllerRevision, apimachinery::pkg::apis::meta::v1::Time};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Who last changed what an App runs: the Kubernetes user name of the request (an API user's
/// email: the API impersonates them; a kubectl user's name; a controller's service account).
/// Set by the mutating webhook on the App, copied onto the revision.
pub const CHANGED_BY_ANNOTATION: &str = "slipway.dev/changed-by";

/// How a revision's rollout ended: one of [`Outcome`]'s names; absent while it has not ended.
pub const OUTCOME_ANNOTATION: &str = "slipway.dev/outcome";

/// The number of the earlier revision whose template a revision brings back (a rollback).
pub const RESTORES_ANNOTATION: &str = "slipway.dev/restores";

/// The label holding a revision's [`template_key`]: equal keys, equal templates.
pub const TEMPLATE_KEY_LABEL: &str = "slipway.dev/template-key";

/// How a revision's rollout ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Not ended yet (or never watched to the end: a newer revision came first).
    Pending,
    /// Every wanted replica became available with it.
    Healthy,
    /// Its rollout failed (the Deployment's progress deadline passed).
    Failed,
}

impl Outcome {
    /// The annotation value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pending => "Pending",
            Outcome::Healthy => "Healthy",
            Outcome::Failed => "Failed",
        }
    }

    fn parse(value: &str) -> Outcome {
        match value {
            "Healthy" => Outcome::Healthy,
            "Failed" => Outcome::Failed,
            _ => Outcome::Pending,
        }
    }
}

/// The name of revision `number` of App `app`.
pub fn revision_name(app: &str, number: i64) -> String {
    format!("{app}-{number}")
}

/// A short, stable key of `template`: the first 32 hex digits of the SHA-256 of its JSON (a
/// label value holds at most 63 characters). Equal keys mean equal templates: it tells the
/// controller whether a template is already the newest revision's.
pub fn template_key(template: &AppSpec) -> String {
    let json = serde_json::to_vec(&template.template()).unwrap_or_default();
    let mut key = format!("{:x}", Sha256::digest(&json));
    key.truncate(32);
    key
}

/// One revision of an App, read from its ControllerRevision.
#[derive(Clone, Debug, PartialEq)]
pub struct Revision {
    /// Its number, counting from 1; higher is newer.
    pub number: i64,
    /// The template it ran.
    pub template: AppSpec,
    /// Who made the change, when known.
    pub changed_by: Option<String>,
    /// When it was recorded.
    pub created: Option<Time>,
    /// How its rollout ended.
    pub outcome: Outcome,
    /// The earlier revision it brings back, for a rollback.
    pub restores: Option<i64>,
}

impl Revision {
    /// The revision `object` holds if it is one of App `app` with UID `uid` (a ControllerRevision
    /// of another owner, say of an earlier App of the same name, is `None`), else `None`.
    pub fn of(object: &ControllerRevision, app: &str, uid: &str) -> Option<Revision> {
        let meta = &object.metadata;
        let labelled = meta.labels.as_ref().and_then(|l| l.get(APP_LABEL)).is_some_and(|l| l == app);
        let owned = meta.owner_references.iter().flatten().any(|o| o.uid == uid && o.controller == Some(true));
        if !labelled || !owned {
            return None;
        }
        let template: AppSpec = serde_json::from_value(object.data.as_ref()?.0.clone()).ok()?;
        let annotation = |key: &str| meta.annotations.as_ref().and_then(|a| a.get(key)).cloned();
        Some(Revision {
            number: object.revision,
            template,
            changed_by: annotation(CHANGED_BY_ANNOTATION),
            created: meta.creation_timestamp.clone(),
            outcome: annotation(OUTCOME_ANNOTATION).map_or(Outcome::Pending, |o| Outcome::parse(&o)),
            restores: annotation(RESTORES_ANNOTATION).and_then(|n| n.parse().ok()),
        })
    }
}

/// `objects`' revisions of App `app` (UID `uid`), newest first.
pub fn history<'a>(objects: impl IntoIterator<Item = &'a ControllerRevision>, app: &str, uid: &str) -> Vec<Revision> {
    let mut revisions: Vec<Revision> = objects.into_iter().filter_map(|o| Revision::of(o, app, uid)).collect();
    revisions.sort_by_key(|r| std::cmp::Reverse(r.number));
    revisions
}

/// The revision a rollback without a number goes back to: the newest healthy one before
/// `running` (the one the App runs now), like `kubectl rollout undo`, which goes back one.
pub fn previous_healthy(history: &[Revision], running: Option<i64>) -> Option<&Revision> {
    history.iter().find(|r| Some(r.number) < running && r.outcome == Outcome::Healthy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::{apis::meta::v1::OwnerReference, runtime::RawExtension};

    fn spec(image: &str, replicas: i32) -> AppSpec {
        AppSpec {
            image: image.into(),
            port: 8080,
            replicas: Some(replicas),
            env: vec![],
            resources: None,
            expose: None,
            autoscaling: None,
            rollout: None,
            revision_history_limit: None,
        }
    }

    fn object(app: &str, owner: &str, number: i64, image: &str, outcome: Option<&str>) -> ControllerRevision {
        let mut annotations = std::collections::BTreeMap::new();
        if let Some(o) = outcome {
            annotations.insert(OUTCOME_ANNOTATION.to_string(), o.to_string());
        }
        ControllerRevision {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(revision_name(app, number)),
                labels: Some([(APP_LABEL.to_string(), app.to_string())].into()),
                annotations: Some(annotations),
                owner_references: Some(vec![OwnerReference {
                    uid: owner.into(),
                    controller: Some(true),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            data: Some(RawExtension(serde_json::to_value(spec(image, 1).template()).unwrap())),
            revision: number,
        }
    }

    #[test]
    fn scaling_keeps_the_key_and_any_other_change_makes_a_new_one() {
        assert_eq!(template_key(&spec("nginx", 1)), template_key(&spec("nginx", 5)));
        let mut limited = spec("nginx", 1);
        limited.revision_history_limit = Some(3);
        assert_eq!(template_key(&limited), template_key(&spec("nginx", 1)));
        assert_ne!(template_key(&spec("nginx", 1)), template_key(&spec("nginx:1.27", 1)));
        assert_eq!(template_key(&spec("nginx", 1)).len(), 32);
    }

    #[test]
    fn history_is_the_apps_own_newest_first_and_undo_goes_to_the_last_healthy_one() {
        let objects = [
            object("web", "u1", 1, "a", Some("Healthy")),
            object("web", "u1", 3, "c", None),
            object("web", "u1", 2, "b", Some("Failed")),
            object("web", "old", 4, "x", Some("Healthy")),
            object("web-2", "u1", 1, "y", Some("Healthy")),
        ];
        let history = history(&objects, "web", "u1");
        assert_eq!(history.iter().map(|r| r.number).collect::<Vec<_>>(), [3, 2, 1]);
        assert_eq!(history[0].template.image, "c");
        assert_eq!(history[0].outcome, Outcome::Pending);
        assert_eq!(previous_healthy(&history, Some(3)).map(|r| r.number), Some(1));
        assert_eq!(previous_healthy(&history, Some(1)), None);
    }

    #[test]
    fn a_rollback_brings_back_the_template_and_keeps_the_scale() {
        let mut now = spec("new", 4);
        now.revision_history_limit = Some(5);
        let back = now.running(&spec("old", 1));
        assert_eq!((back.image.as_str(), back.replicas, back.revision_history_limit), ("old", Some(4), Some(5)));
    }
}
