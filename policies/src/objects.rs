//! The admission rules of Databases and Workspaces, and the defaults filled into them.

use crate::{
    Amount, Inventory, Outcome, TenantPolicy, Violation, check_ssh_public_key,
    tenancy::{Kind, Sized, review_name},
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use slipway_crds::{DatabaseSpec, WorkspaceSpec};

/// One Database or Workspace under review, with what it is judged against.
#[derive(Clone, Copy, Debug)]
pub struct ObjectReview<'a, S> {
    /// The object's name.
    pub name: &'a str,
    /// The spec to admit (after defaulting).
    pub spec: &'a S,
    /// Everything else the tenant holds (stored or reserved), not including this object.
    pub others: &'a Inventory,
    /// The stored spec on UPDATE, `None` on CREATE. Counts and names are judged on CREATE
    /// only, and a total this change does not raise is not judged.
    pub previous: Option<&'a S>,
}

impl TenantPolicy {
    /// Judges a Database: the count, the engine and version the plan offers, node-port
    /// exposure where the plan allows it, readable amounts, and the tenant's CPU, memory and
    /// storage totals.
    pub fn review_database(&self, review: &ObjectReview<'_, DatabaseSpec>) -> Outcome {
        let spec = review.spec;
        let mut out = Outcome::default();
        if review.previous.is_none() {
            self.review_count(Kind::Database, review.others, &mut out);
            review_name(Kind::Database, review.name, review.others, &mut out.violations);
        }
        out.violations.extend(self.check_database_engine(spec.engine.as_str(), &spec.version));
        if spec.node_port() && !self.limits.database_node_ports {
            out.violations.push(Violation {
                field: "spec.expose.type".into(),
                message: format!(
                    "NodePort is not allowed for Databases by the plan \"{}\"; use ClusterIP and connect from inside the cluster",
                    self.plan
                ),
            });
        }
        self.review_sized("this Database", &spec.into(), review.previous.map(Sized::from), review.others, &mut out);
        out
    }

    /// Judges a Workspace: the count, each SSH key (see [`check_ssh_public_key`]), the image
    /// registry when an image is named, readable amounts, and the tenant's totals.
    pub fn review_workspace(&self, review: &ObjectReview<'_, WorkspaceSpec>) -> Outcome {
        let spec = review.spec;
        let mut out = Outcome::default();
        if review.previous.is_none() {
            self.review_count(Kind::Workspace, review.others, &mut out);
            review_name(Kind::Workspace, review.name, review.others, &mut out.violations);
        }
        for (i, key) in spec.ssh_keys.iter().enumerate() {
            if let Err(message) = check_ssh_public_key(key) {
                out.violations.push(Violation { field: format!("spec.sshKeys[{i}]"), message });
            }
        }
        if let Some(image) = &spec.image {
            self.review_registry(image, &mut out.violations);
        }
        self.review_sized("this Workspace", &spec.into(), review.previous.map(Sized::from), review.others, &mut out);
        out
    }

    /// Amounts must parse, and the object's footprint must fit in the totals.
    fn review_sized(
        &self,
        what: &str,
        sized: &Sized<'_>,
        previous: Option<Sized<'_>>,
        others: &Inventory,
        out: &mut Outcome,
    ) {
        let fields = [("spec.cpu", sized.cpu), ("spec.memory", sized.memory), ("spec.storage", Some(sized.storage))];
        for (field, q) in fields {
            match q.map(Amount::from_quantity) {
                Some(Err(e)) => out.violations.push(Violation { field: field.into(), message: e.to_string() }),
                Some(Ok(a)) if a == Amount::zero() => {
                    out.violations.push(Violation { field: field.into(), message: "must be more than 0".into() });
                }
                _ => {}
            }
        }
        let Some(needed) = self.sized_footprint(sized) else { return };
        let before = previous.and_then(|p| self.sized_footprint(&p));
        self.review_totals(what, &needed, before.as_ref(), others, |name| format!("spec.{name}"), out);
    }

    /// The Database with the plan's default CPU and memory limits filled in where unset.
    /// Idempotent; nothing the user set changes.
    pub fn default_database(&self, spec: &DatabaseSpec) -> DatabaseSpec {
        let mut out = spec.clone();
        self.default_size(&mut out.cpu, &mut out.memory);
        out
    }

    /// The Workspace with the plan's default CPU and memory limits filled in where unset.
    /// Idempotent; nothing the user set changes.
    pub fn default_workspace(&self, spec: &WorkspaceSpec) -> WorkspaceSpec {
        let mut out = spec.clone();
        self.default_size(&mut out.cpu, &mut out.memory);
        out
    }

    fn default_size(&self, cpu: &mut Option<Quantity>, memory: &mut Option<Quantity>) {
        cpu.get_or_insert_with(|| self.defaults.cpu_limit.to_quantity());
        memory.get_or_insert_with(|| self.defaults.memory_limit.to_quantity());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PlanCatalog;
    use slipway_crds::{AppSpec, DatabaseEngine, DatabaseExposeType, DatabaseExposure, DeletionPolicy};

    fn plan(name: &str) -> TenantPolicy {
        PlanCatalog::embedded().effective(name, None).unwrap()
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

    const ED25519: &str = include_str!("../tests/ssh-keys/ed25519.pub");

    fn workspace(storage: &str, keys: &[&str]) -> WorkspaceSpec {
        WorkspaceSpec {
            owner: "ada@example.com".into(),
            cpu: None,
            memory: None,
            storage: Quantity(storage.into()),
            ssh_keys: keys.iter().map(ToString::to_string).collect(),
            image: None,
        }
    }

    fn messages(o: &Outcome) -> Vec<String> {
        o.violations.iter().map(ToString::to_string).collect()
    }

    fn create<'a, S>(name: &'a str, spec: &'a S, others: &'a Inventory) -> ObjectReview<'a, S> {
        ObjectReview { name, spec, others, previous: None }
    }

    #[test]
    fn database_engine_exposure_and_count_follow_the_plan() {
        let free = plan("free");
        let none = Inventory::default();
        let ok = free.review_database(&create("orders", &database("17", "1Gi"), &none));
        assert!(ok.violations.is_empty(), "{:?}", ok.violations);
        assert_eq!(ok.warnings, [r#"this is the last Database the plan "free" allows (1 of 1)"#]);

        let mut exposed = database("9.6", "1Gi");
        exposed.expose = Some(DatabaseExposure { type_: DatabaseExposeType::NodePort });
        let denied = free.review_database(&create("orders", &exposed, &none));
        assert_eq!(
            messages(&denied),
            [
                r#"spec.version: postgres "9.6" is not offered by the plan "free" (offered: 16, 17)"#,
                r#"spec.expose.type: NodePort is not allowed for Databases by the plan "free"; use ClusterIP and connect from inside the cluster"#,
            ]
        );
        exposed.version = "17".into();
        assert!(plan("standard").review_database(&create("orders", &exposed, &none)).violations.is_empty());

        let one = Inventory { databases: [("old".to_string(), database("17", "1Gi"))].into(), ..Default::default() };
        let second = free.review_database(&create("orders", &database("17", "1Gi"), &one));
        assert_eq!(
            messages(&second),
            [r#"metadata.name: the tenant already has 1 Databases; the plan "free" allows 1 (0 left)"#]
        );
        // An UPDATE is never counted.
        let spec = database("17", "1Gi");
        let update = ObjectReview { previous: Some(&spec), ..create("orders", &spec, &one) };
        assert!(free.review_database(&update).violations.is_empty());
    }

    #[test]
    fn storage_is_a_tenant_total_across_kinds() {
        // free: 5Gi of storage. A 3Gi Workspace leaves 2Gi.
        let free = plan("free");
        let others =
            Inventory { workspaces: [("box".to_string(), workspace("3Gi", &[ED25519]))].into(), ..Default::default() };
        assert!(free.review_database(&create("orders", &database("17", "2Gi"), &others)).violations.is_empty());
        let over = free.review_database(&create("orders", &database("17", "3Gi"), &others));
        assert_eq!(
            messages(&over),
            [
                r#"spec.storage: this Database needs 3Gi but the tenant already uses 3Gi of the plan "free" storage limit of 5Gi (2Gi left)"#
            ]
        );
        let mut zero = database("17", "0");
        zero.cpu = Some(Quantity("lots".into()));
        let bad = free.review_database(&create("orders", &zero, &Inventory::default()));
        assert_eq!(bad.violations.iter().map(|v| v.field.as_str()).collect::<Vec<_>>(), ["spec.cpu", "spec.storage"]);
    }

    #[test]
    fn cpu_and_memory_totals_count_every_kind() {
        // free: 2 CPUs. Apps use 1500m; a Database on the 250m default fits, one of 1 CPU does not.
        let free = plan("free");
        let app = AppSpec {
            image: "nginx".into(),
            port: 8080,
            replicas: Some(3),
            env: vec![],
            resources: Some(slipway_crds::ComputeResources {
                requests: None,
                limits: Some(slipway_crds::ResourceAmounts { cpu: Some(Quantity("500m".into())), memory: None }),
            }),
            expose: None,
        };
        let others = Inventory { apps: [("web".to_string(), app)].into(), ..Default::default() };
        assert!(free.review_database(&create("orders", &database("17", "1Gi"), &others)).violations.is_empty());
        let mut big = database("17", "1Gi");
        big.cpu = Some(Quantity("1".into()));
        let over = free.review_database(&create("orders", &big, &others));
        assert_eq!(over.violations[0].field, "spec.cpu");
    }

    #[test]
    fn names_are_unique_across_kinds() {
        let standard = plan("standard");
        let app =
            AppSpec { image: "nginx".into(), port: 80, replicas: None, env: vec![], resources: None, expose: None };
        let others = Inventory { apps: [("orders-headless".to_string(), app)].into(), ..Default::default() };
        let clash = standard.review_database(&create("orders", &database("17", "1Gi"), &others));
        assert_eq!(
            messages(&clash),
            [
                r#"metadata.name: "orders" clashes with App "orders-headless" of this tenant (both would use Service "orders-headless"); choose another name"#
            ]
        );
    }

    #[test]
    fn workspace_keys_and_image_are_checked() {
        let free = plan("free");
        let none = Inventory::default();
        let ok = free.review_workspace(&create("box", &workspace("1Gi", &[ED25519]), &none));
        assert!(ok.violations.is_empty(), "{:?}", ok.violations);
        let mut bad = workspace("1Gi", &[ED25519, "ssh-dss AAAA"]);
        bad.image = Some("evil.example.com/miner".into());
        let denied = free.review_workspace(&create("box", &bad, &none));
        assert_eq!(
            denied.violations.iter().map(|v| v.field.as_str()).collect::<Vec<_>>(),
            ["spec.sshKeys[1]", "spec.image"]
        );
    }

    #[test]
    fn defaults_fill_cpu_and_memory_once() {
        let free = plan("free");
        let once = free.default_workspace(&workspace("1Gi", &[ED25519]));
        assert_eq!(once.cpu, Some(Quantity("250m".into())));
        assert_eq!(once.memory, Some(Quantity("128Mi".into())));
        assert_eq!(free.default_workspace(&once), once);
        let mut mine = database("17", "1Gi");
        mine.cpu = Some(Quantity("1".into()));
        assert_eq!(free.default_database(&mine).cpu, Some(Quantity("1".into())));
    }
}
