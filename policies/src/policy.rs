//! A tenant's resolved policy and everything it answers, in one place: the per-kind reviews
//! the webhook enforces and the API previews, the defaults the mutating webhook fills in,
//! footprints, and the amounts behind the namespace's ResourceQuota and LimitRange.

use crate::{
    Amount, Defaults, Footprint, Limits, Minimums, Outcome, Review, Total, defaults,
    rules::{counts, engines, env, exposure, images, names, sizes, totals, workspaces},
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use slipway_crds::{AppSpec, DatabaseSpec, Kind, WorkspaceSpec};

/// A tenant's resolved policy: its plan with the tenant's overrides applied (see
/// [`PlanCatalog::effective`](crate::PlanCatalog::effective)).
#[derive(Clone, Debug, PartialEq)]
pub struct TenantPolicy {
    /// The plan's name (used in every message: `the plan "free" limit of 3`).
    pub plan: String,
    /// Effective limits.
    pub limits: Limits,
    /// The least each amount may be.
    pub minimums: Minimums,
    /// The plan's defaults.
    pub defaults: Defaults,
}

/// A spec the plan judges: what the webhook and the API need to know of each kind's spec
/// (`AppSpec`, `DatabaseSpec`, `WorkspaceSpec`), so they handle every kind with one code path.
pub trait Spec: Clone + PartialEq {
    /// The kind this is the spec of.
    const KIND: Kind;
    /// The fields of the spec that [`Spec::defaulted`] fills in where they are unset, as
    /// dot-separated paths of their JSON names under `spec` (`resources.limits.cpu`), whatever
    /// the plan: with every one of them set, defaulting changes nothing (tested). The mutating
    /// webhook's registration skips objects that carry them all (see `slipway_webhook::register`).
    const DEFAULTED_FIELDS: &'static [&'static str];
    /// The spec with the plan's defaults filled in where it is silent (idempotent).
    fn defaulted(&self, policy: &TenantPolicy) -> Self;
    /// Those of [`Spec::DEFAULTED_FIELDS`] this spec leaves unset, in their order: the ones
    /// the plan's defaults would fill.
    fn unset_defaulted_fields(&self) -> Vec<&'static str>
    where
        Self: serde::Serialize,
    {
        let spec = serde_json::to_value(self).unwrap_or_default();
        Self::DEFAULTED_FIELDS
            .iter()
            .copied()
            .filter(|field| field.split('.').try_fold(&spec, |at, part| at.get(part)).is_none_or(|v| v.is_null()))
            .collect()
    }
    /// What the object may use of the tenant's totals; `None` when an amount does not parse.
    fn footprint(&self, policy: &TenantPolicy) -> Option<Footprint>;
    /// The plan's verdict on the object.
    fn review(policy: &TenantPolicy, review: &Review<'_, Self>) -> Outcome;
    /// Whether this spec changes what runs compared with `previous` (an App's template: not
    /// its replica count), so the change is a new revision with an author.
    fn runs_differently(&self, previous: &Self) -> bool {
        self != previous
    }
}

impl Spec for AppSpec {
    const KIND: Kind = Kind::App;
    const DEFAULTED_FIELDS: &'static [&'static str] = &[
        "replicas",
        "expose",
        "resources.limits.cpu",
        "resources.limits.memory",
        "resources.requests.cpu",
        "resources.requests.memory",
    ];
    fn defaulted(&self, policy: &TenantPolicy) -> Self {
        policy.default_app(self)
    }
    fn footprint(&self, policy: &TenantPolicy) -> Option<Footprint> {
        policy.app_footprint(self)
    }
    fn review(policy: &TenantPolicy, review: &Review<'_, Self>) -> Outcome {
        policy.review_app(review)
    }
    fn runs_differently(&self, previous: &Self) -> bool {
        self.template() != previous.template()
    }
}

impl Spec for DatabaseSpec {
    const KIND: Kind = Kind::Database;
    const DEFAULTED_FIELDS: &'static [&'static str] = &["cpu", "memory"];
    fn defaulted(&self, policy: &TenantPolicy) -> Self {
        policy.default_database(self)
    }
    fn footprint(&self, policy: &TenantPolicy) -> Option<Footprint> {
        policy.instance_footprint(self.cpu.as_ref(), self.memory.as_ref(), &self.storage)
    }
    fn review(policy: &TenantPolicy, review: &Review<'_, Self>) -> Outcome {
        policy.review_database(review)
    }
}

impl Spec for WorkspaceSpec {
    const KIND: Kind = Kind::Workspace;
    const DEFAULTED_FIELDS: &'static [&'static str] = &["cpu", "memory"];
    fn defaulted(&self, policy: &TenantPolicy) -> Self {
        policy.default_workspace(self)
    }
    fn footprint(&self, policy: &TenantPolicy) -> Option<Footprint> {
        policy.instance_footprint(self.cpu.as_ref(), self.memory.as_ref(), &self.storage)
    }
    fn review(policy: &TenantPolicy, review: &Review<'_, Self>) -> Outcome {
        policy.review_workspace(review)
    }
}

impl TenantPolicy {
    /// Judges an App: its name, Service names and the App count (on CREATE); replicas and pod
    /// amounts; exposure and Ingress host; image reference and registry; the tenant's CPU and
    /// memory totals over every kind.
    pub fn review_app(&self, review: &Review<'_, AppSpec>) -> Outcome {
        let mut out = self.review_new_object(review);
        sizes::review_app(self, review.spec, &mut out);
        exposure::review_app(self, review, &mut out);
        images::review_image(self, "spec.image", &review.spec.image, &mut out);
        env::review_env(&review.spec.env, &mut out);
        self.review_footprint(review, "this App", |t| format!("spec.resources.limits.{}", t.name()), &mut out);
        out
    }

    /// Judges a Database: its name, Service names and the Database count (on CREATE); the
    /// engine and version the plan offers; node-port exposure where the plan allows it; its
    /// amounts; the tenant's totals.
    pub fn review_database(&self, review: &Review<'_, DatabaseSpec>) -> Outcome {
        let spec = review.spec;
        let mut out = self.review_new_object(review);
        engines::review_engine(self, spec, &mut out);
        exposure::review_database(self, spec, &mut out);
        sizes::review_instance(self, spec.cpu.as_ref(), spec.memory.as_ref(), &spec.storage, &mut out);
        self.review_footprint(review, "this Database", |t| format!("spec.{}", t.name()), &mut out);
        out
    }

    /// Judges a Workspace: its name, Service name and the Workspace count (on CREATE); who
    /// owns it and who may change it; its SSH keys; the image, when it names one; its amounts;
    /// the tenant's totals.
    pub fn review_workspace(&self, review: &Review<'_, WorkspaceSpec>) -> Outcome {
        let spec = review.spec;
        let mut out = self.review_new_object(review);
        workspaces::review_ownership(review, &mut out);
        workspaces::review_keys(spec, &mut out);
        if let Some(image) = &spec.image {
            images::review_image(self, "spec.image", image, &mut out);
        }
        sizes::review_instance(self, spec.cpu.as_ref(), spec.memory.as_ref(), &spec.storage, &mut out);
        self.review_footprint(review, "this Workspace", |t| format!("spec.{}", t.name()), &mut out);
        out
    }

    /// What only a CREATE is judged on: a valid name, free Service names, the kind's count.
    fn review_new_object<S: Spec>(&self, review: &Review<'_, S>) -> Outcome {
        let mut out = Outcome::default();
        if review.previous.is_none() {
            names::review_name(S::KIND, review.name, &mut out);
            names::review_unique_services(S::KIND, review.name, review.others, &mut out);
            counts::review_count(self, S::KIND, review.others, &mut out);
        }
        out
    }

    /// The object's footprint against the tenant's totals (skipped when an amount does not
    /// parse: that is reported by the sizes rules).
    fn review_footprint<S: Spec>(
        &self,
        review: &Review<'_, S>,
        what: &str,
        field: impl Fn(Total) -> String,
        out: &mut Outcome,
    ) {
        let Some(needed) = review.spec.footprint(self) else { return };
        let before = review.previous.and_then(|p| p.footprint(self));
        totals::review_totals(self, what, &needed, before.as_ref(), review.others, field, out);
    }

    /// Whether changing an object from `previous` to `spec` may raise the tenant's usage (any
    /// total grows, or an amount does not parse): only such UPDATEs need the tenant's other
    /// objects, and a reservation of their growth.
    pub fn grows<S: Spec>(&self, previous: &S, spec: &S) -> bool {
        match (previous.footprint(self), spec.footprint(self)) {
            (Some(before), Some(after)) => after.exceeds(&before),
            _ => true,
        }
    }

    /// The App with the plan's defaults where its spec is silent (see [`Spec::defaulted`]).
    pub fn default_app(&self, spec: &AppSpec) -> AppSpec {
        defaults::app(self, spec)
    }

    /// The Database with the plan's default CPU and memory where unset.
    pub fn default_database(&self, spec: &DatabaseSpec) -> DatabaseSpec {
        let mut out = spec.clone();
        defaults::instance(self, &mut out.cpu, &mut out.memory);
        out
    }

    /// The Workspace with the plan's default CPU and memory where unset.
    pub fn default_workspace(&self, spec: &WorkspaceSpec) -> WorkspaceSpec {
        let mut out = spec.clone();
        defaults::instance(self, &mut out.cpu, &mut out.memory);
        out
    }

    /// Replicas an App runs: its own value or the plan's default.
    pub fn replicas_of(&self, spec: &AppSpec) -> i32 {
        spec.replicas.unwrap_or(i32::try_from(self.defaults.replicas).unwrap_or(i32::MAX))
    }

    /// The most replicas an App may run: with autoscaling, its `maxReplicas` (when above the
    /// current count). The tenant's totals count this, so an autoscaler never takes a tenant
    /// past its plan.
    pub fn most_replicas_of(&self, spec: &AppSpec) -> i32 {
        let most = spec.autoscaling.as_ref().map_or(0, |a| a.max_replicas);
        self.replicas_of(spec).max(most)
    }

    /// The tenant total of `total` (`limits.cpu`, `memory`, `storage`).
    pub fn limit_of(&self, total: Total) -> &Amount {
        match total {
            Total::Cpu => &self.limits.cpu,
            Total::Memory => &self.limits.memory,
            Total::Storage => &self.limits.storage,
        }
    }

    /// The least one amount of `total` may be (`minimums`).
    pub fn minimum_of(&self, total: Total) -> &Amount {
        match total {
            Total::Cpu => &self.minimums.cpu,
            Total::Memory => &self.minimums.memory,
            Total::Storage => &self.minimums.storage,
        }
    }

    /// A container's default limit of `total`. Storage has no plan default (a volume's size
    /// defaults in the CRD): its minimum is returned, which no rule asks for.
    pub(crate) fn default_limit_of(&self, total: Total) -> &Amount {
        match total {
            Total::Cpu => &self.defaults.cpu_limit,
            Total::Memory => &self.defaults.memory_limit,
            Total::Storage => &self.minimums.storage,
        }
    }

    /// A container's default request of `total` (storage: as [`Self::default_limit_of`]).
    pub(crate) fn default_request_of(&self, total: Total) -> &Amount {
        match total {
            Total::Cpu => &self.defaults.cpu_request,
            Total::Memory => &self.defaults.memory_request,
            Total::Storage => &self.minimums.storage,
        }
    }

    /// The node ports the tenant's ResourceQuota allows (see [`exposure::node_port_quota`]).
    pub fn node_port_quota(&self) -> u32 {
        exposure::node_port_quota(self)
    }

    /// An App's footprint: its most replicas (see [`Self::most_replicas_of`]) x limits (or
    /// the plan's default limits), no storage.
    fn app_footprint(&self, spec: &AppSpec) -> Option<Footprint> {
        let replicas = self.most_replicas_of(spec);
        let limits = spec.resources.as_ref().and_then(|r| r.limits.as_ref());
        let limit = |total| match sizes::pick(limits, total) {
            Some(q) => Amount::from_quantity(q).ok().map(|a| a.times(replicas)),
            None => Some(self.default_limit_of(total).times(replicas)),
        };
        Some(Footprint { cpu: limit(Total::Cpu)?, memory: limit(Total::Memory)?, storage: Amount::zero() })
    }

    /// A single instance's footprint (Database, Workspace): its CPU and memory (the plan's
    /// default limits when unset) and its volume.
    fn instance_footprint(
        &self,
        cpu: Option<&Quantity>,
        memory: Option<&Quantity>,
        storage: &Quantity,
    ) -> Option<Footprint> {
        let or_default = |q: Option<&Quantity>, total| match q {
            Some(q) => Amount::from_quantity(q).ok(),
            None => Some(self.default_limit_of(total).clone()),
        };
        Some(Footprint {
            cpu: or_default(cpu, Total::Cpu)?,
            memory: or_default(memory, Total::Memory)?,
            storage: Amount::from_quantity(storage).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Inventory, PlanCatalog, Platform, Requester};
    use slipway_crds::{
        ComputeResources, DatabaseEngine, DatabaseExposeType, DatabaseExposure, DeletionPolicy, Expose, ExposeType,
        ResourceAmounts, TenantOwner,
    };

    const ED25519: &str = include_str!("../tests/ssh-keys/ed25519.pub");
    const OWNER: &str = "ada@example.com";

    fn plan(name: &str) -> TenantPolicy {
        PlanCatalog::embedded().effective(name, None).unwrap()
    }

    fn app(replicas: i32, cpu: &str) -> AppSpec {
        AppSpec {
            image: "nginx".into(),
            port: 8080,
            replicas: Some(replicas),
            env: vec![],
            resources: Some(ComputeResources {
                requests: None,
                limits: Some(ResourceAmounts {
                    cpu: Some(Quantity(cpu.into())),
                    memory: Some(Quantity("64Mi".into())),
                }),
            }),
            expose: None,
            autoscaling: None,
            rollout: None,
            revision_history_limit: None,
        }
    }

    fn database(version: &str, storage: &str) -> DatabaseSpec {
        DatabaseSpec {
            engine: DatabaseEngine::Postgres,
            version: version.into(),
            storage: Quantity(storage.into()),
            cpu: None,
            memory: None,
            expose: None,
            deletion_policy: DeletionPolicy::Retain,
        }
    }

    fn workspace(storage: &str) -> WorkspaceSpec {
        WorkspaceSpec {
            owner: OWNER.into(),
            cpu: None,
            memory: None,
            storage: Quantity(storage.into()),
            ssh_keys: vec![ED25519.trim().into()],
            image: None,
        }
    }

    /// Judges `spec` called `name` in tenant `acme` (owned by [`OWNER`]) as an operator.
    fn judge<S: Spec>(
        policy: &TenantPolicy,
        name: &str,
        spec: &S,
        previous: Option<&S>,
        others: &Inventory,
    ) -> Outcome {
        let owners = [TenantOwner { email: OWNER.into() }];
        let platform = Platform::new("apps.example.com", [""; 0]);
        let spec = spec.defaulted(policy);
        S::review(
            policy,
            &Review {
                tenant: "acme",
                owners: &owners,
                members: &[],
                name,
                spec: &spec,
                previous,
                requester: Requester::Operator,
                others,
                hosts: &[],
                platform: &platform,
            },
        )
    }

    fn holding<S: Spec>(policy: &TenantPolicy, objects: &[(&str, S)]) -> Inventory {
        let mut inventory = Inventory::default();
        for (name, spec) in objects {
            inventory.insert_spec(policy, *name, spec);
        }
        inventory
    }

    #[test]
    fn totals_count_every_kind() {
        // free: 2 CPUs, 5Gi. Apps use 1500m; a Database on the 250m default fits, one of 1 CPU
        // does not; a 3Gi Workspace leaves 2Gi of storage for Databases.
        let free = plan("free");
        let mut others = holding(&free, &[("web", app(3, "500m"))]);
        assert!(judge(&free, "orders", &database("17", "1Gi"), None, &others).allowed());
        let mut big = database("17", "1Gi");
        big.cpu = Some(Quantity("1".into()));
        assert_eq!(judge(&free, "orders", &big, None, &others).violations[0].field, "spec.cpu");
        others.insert_spec(&free, "box", &workspace("3Gi"));
        assert!(judge(&free, "orders", &database("17", "2Gi"), None, &others).allowed());
        assert_eq!(
            judge(&free, "orders", &database("17", "3Gi"), None, &others).message(),
            r#"spec.storage: this Database needs 3Gi but the tenant already uses 3Gi of the plan "free" storage limit of 5Gi (2Gi left)"#
        );
    }

    #[test]
    fn updates_are_never_counted_and_may_shrink_over_a_total() {
        let free = plan("free");
        let full = holding(&free, &[("a", app(1, "10m")), ("b", app(1, "10m")), ("c", app(1, "10m"))]);
        let web = app(1, "500m").defaulted(&free);
        assert!(!judge(&free, "web", &web, None, &full).allowed(), "a fourth App is one too many");
        assert!(judge(&free, "web", &web, Some(&web), &full).allowed(), "an UPDATE is not counted");

        // Others alone are over the CPU total (the plan shrank): scaling down is fine, up is not.
        let over = holding(&free, &[("big", app(3, "750m"))]);
        let before = app(2, "500m").defaulted(&free);
        assert!(judge(&free, "web", &app(1, "500m"), Some(&before), &over).allowed());
        let up = judge(&free, "web", &app(3, "500m"), Some(&before), &over);
        assert_eq!(up.violations[0].field, "spec.resources.limits.cpu");
        assert!(free.grows(&before, &app(3, "500m").defaulted(&free)));
        assert!(!free.grows(&before, &app(1, "500m").defaulted(&free)));
        let mut unreadable = before.clone();
        unreadable.resources.as_mut().unwrap().limits.as_mut().unwrap().cpu = Some(Quantity("lots".into()));
        assert!(free.grows(&before, &unreadable), "an unreadable amount may hide growth");
    }

    #[test]
    fn databases_follow_the_plans_engines_exposure_and_count() {
        let free = plan("free");
        let none = Inventory::default();
        let first = judge(&free, "orders", &database("17", "1Gi"), None, &none);
        assert!(first.allowed(), "{}", first.message());
        assert_eq!(first.warnings, [r#"this is the last Database the plan "free" allows (1 of 1)"#]);
        let mut exposed = database("9.6", "1Gi");
        exposed.expose = Some(DatabaseExposure { type_: DatabaseExposeType::NodePort });
        assert_eq!(
            judge(&free, "orders", &exposed, None, &none).message(),
            [
                r#"spec.version: postgres "9.6" is not offered by the plan "free" (offered: 16, 17)"#,
                r#"spec.expose.type: NodePort is not allowed for Databases by the plan "free"; use ClusterIP and connect from inside the cluster"#,
            ]
            .join("; ")
        );
        exposed.version = "17".into();
        assert!(judge(&plan("standard"), "orders", &exposed, None, &none).allowed());
        let one = holding(&free, &[("old", database("17", "1Gi"))]);
        assert_eq!(
            judge(&free, "orders", &database("17", "1Gi"), None, &one).message(),
            r#"metadata.name: the tenant already has 1 Databases; the plan "free" allows 1 (0 left)"#
        );
    }

    #[test]
    fn workspaces_have_keys_an_allowed_image_and_a_valid_name() {
        let free = plan("free");
        let none = Inventory::default();
        assert!(judge(&free, "box", &workspace("1Gi"), None, &none).allowed());
        let mut bad = workspace("1Gi");
        bad.ssh_keys.push("ssh-dss AAAA".into());
        bad.image = Some("evil.example.com/miner".into());
        let fields: Vec<_> = judge(&free, "Box", &bad, None, &none).violations.into_iter().map(|v| v.field).collect();
        assert_eq!(fields, ["metadata.name", "spec.sshKeys[1]", "spec.image"]);
    }

    #[test]
    fn apps_get_every_family_of_rule() {
        let standard = plan("standard");
        let mut spec = app(9, "1e-400");
        spec.image = "ngi nx".into();
        spec.expose = Some(Expose { type_: ExposeType::Ingress, host: Some("shop.example.com".into()) });
        let fields: Vec<_> = judge(&standard, "web", &spec, None, &Inventory::default())
            .violations
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(
            fields,
            [
                "spec.replicas",
                "spec.resources.requests.cpu",
                "spec.resources.limits.cpu",
                "spec.expose.host",
                "spec.image"
            ]
        );
    }

    #[test]
    fn defaults_fill_only_what_is_unset_and_are_idempotent() {
        let free = plan("free");
        let bare = AppSpec {
            image: "nginx".into(),
            port: 8080,
            replicas: None,
            env: vec![],
            resources: None,
            expose: None,
            autoscaling: None,
            rollout: None,
            revision_history_limit: None,
        };
        let once = bare.defaulted(&free);
        assert_eq!(once.replicas, Some(1));
        assert_eq!(once.expose, Some(Expose { type_: ExposeType::ClusterIP, host: None }));
        let r = once.resources.clone().unwrap();
        assert_eq!(r.limits.unwrap().cpu, Some(Quantity("250m".into())));
        assert_eq!(r.requests.unwrap().memory, Some(Quantity("64Mi".into())));
        assert_eq!(once.defaulted(&free), once, "defaulting is idempotent");
        // A user's own limit becomes the request (LimitRange semantics); user values stay.
        let r = app(3, "200m").defaulted(&free).resources.unwrap();
        assert_eq!(r.requests.unwrap().cpu, Some(Quantity("200m".into())));

        let ws = workspace("1Gi").defaulted(&free);
        assert_eq!(
            (ws.cpu.clone(), ws.memory.clone()),
            (Some(Quantity("250m".into())), Some(Quantity("128Mi".into())))
        );
        assert_eq!(ws.defaulted(&free), ws);
        let mut mine = database("17", "1Gi");
        mine.cpu = Some(Quantity("1".into()));
        assert_eq!(mine.defaulted(&free).cpu, Some(Quantity("1".into())));
    }

    /// `spec` as JSON with only the fields at `paths` (dot-separated) copied from `from`.
    fn with_fields<S: Spec + serde::Serialize + serde::de::DeserializeOwned>(spec: &S, from: &S, paths: &[&str]) -> S {
        let (mut out, from) = (serde_json::to_value(spec).unwrap(), serde_json::to_value(from).unwrap());
        for path in paths {
            let pointer = format!("/{}", path.replace('.', "/"));
            let value = from.pointer(&pointer).unwrap_or_else(|| panic!("{path} is set by defaulting")).clone();
            let mut keys: Vec<&str> = path.split('.').collect();
            let leaf = keys.pop().unwrap();
            let mut at = &mut out;
            for key in keys {
                at = at.as_object_mut().unwrap().entry(key).or_insert_with(|| serde_json::json!({}));
            }
            at.as_object_mut().unwrap().insert(leaf.to_string(), value);
        }
        serde_json::from_value(out).unwrap()
    }

    /// `DEFAULTED_FIELDS` is exactly what defaulting fills: with those fields alone set (to
    /// another plan's values), no plan's defaults change the spec; without any one of them,
    /// every plan's do.
    fn check_defaulted_fields<S: Spec + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned>(bare: &S) {
        let catalog = PlanCatalog::embedded();
        let plans: Vec<_> = catalog.plans().map(|p| catalog.effective(&p.name, None).unwrap()).collect();
        for (i, policy) in plans.iter().enumerate() {
            let other = &plans[(i + 1) % plans.len()];
            let complete = with_fields(bare, &bare.defaulted(other), S::DEFAULTED_FIELDS);
            assert_eq!(
                complete.defaulted(policy),
                complete,
                "{:?}: a spec with {:?} set",
                S::KIND,
                S::DEFAULTED_FIELDS
            );
            assert_eq!(complete.unset_defaulted_fields(), Vec::<&str>::new());
            assert_eq!(bare.defaulted(policy).unset_defaulted_fields(), Vec::<&str>::new());
            for field in S::DEFAULTED_FIELDS {
                let rest: Vec<_> = S::DEFAULTED_FIELDS.iter().copied().filter(|f| f != field).collect();
                let missing = with_fields(bare, &bare.defaulted(other), &rest);
                assert_ne!(missing.defaulted(policy), missing, "{:?}: defaulting fills {field}", S::KIND);
                assert_eq!(missing.unset_defaulted_fields(), [*field], "{:?}", S::KIND);
            }
        }
    }

    #[test]
    fn defaulted_fields_are_exactly_what_defaults_fill() {
        let bare = AppSpec { replicas: None, resources: None, ..app(1, "1") };
        check_defaulted_fields(&bare);
        check_defaulted_fields(&database("17", "1Gi"));
        check_defaulted_fields(&workspace("1Gi"));
    }
}
