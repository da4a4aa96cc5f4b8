//! The plan rules on arbitrary Databases and Workspaces, next to arbitrary other objects of the
//! tenant: [`TenantPolicy::review_database`], [`TenantPolicy::review_workspace`] and their
//! defaults.
//!
//! Invariants: nothing panics (quantities, SSH keys and versions are arbitrary text); defaults
//! are idempotent and never change what the spec set; an UPDATE that changes nothing is judged
//! the same whatever else the tenant holds (no count, name or total can deny it).
#![no_main]

use arbitrary::Arbitrary;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use libfuzzer_sys::fuzz_target;
use slipway_crds::{DatabaseEngine, DatabaseExposeType, DatabaseExposure, DatabaseSpec, DeletionPolicy, WorkspaceSpec};
use slipway_policies::{Inventory, ObjectReview, PlanCatalog};
use std::sync::OnceLock;

const PLANS: &[&str] = &["free", "standard", "pro"];
const SUFFIXES: &[&str] = &["", "m", "k", "M", "G", "Ki", "Mi", "Gi", "Ti", "e3", "x"];
const ENGINES: [DatabaseEngine; 4] =
    [DatabaseEngine::Postgres, DatabaseEngine::Mysql, DatabaseEngine::Mariadb, DatabaseEngine::Redis];
const VERSIONS: &[&str] = &["17", "16", "8.4", "11.4", "7", "9.6"];
const KEY: &str = include_str!("../../../policies/tests/ssh-keys/ed25519.pub");

/// A quantity: mostly well-formed (so the arithmetic is reached), sometimes arbitrary text.
#[derive(Arbitrary, Debug)]
enum Q {
    Shaped { mantissa: u32, suffix: u8 },
    Raw(String),
}

impl Q {
    fn quantity(&self) -> Quantity {
        Quantity(match self {
            Q::Shaped { mantissa, suffix } => format!("{mantissa}{}", SUFFIXES[usize::from(*suffix) % SUFFIXES.len()]),
            Q::Raw(s) => s.clone(),
        })
    }
}

#[derive(Arbitrary, Debug)]
struct Sizes {
    cpu: Option<Q>,
    memory: Option<Q>,
    storage: Q,
}

#[derive(Arbitrary, Debug)]
struct Db {
    engine: u8,
    version: u8,
    raw_version: Option<String>,
    sizes: Sizes,
    node_port: bool,
}

impl Db {
    fn build(&self) -> DatabaseSpec {
        DatabaseSpec {
            engine: ENGINES[usize::from(self.engine) % ENGINES.len()],
            version: self
                .raw_version
                .clone()
                .unwrap_or_else(|| VERSIONS[usize::from(self.version) % VERSIONS.len()].into()),
            storage: self.sizes.storage.quantity(),
            cpu: self.sizes.cpu.as_ref().map(Q::quantity),
            memory: self.sizes.memory.as_ref().map(Q::quantity),
            expose: self.node_port.then_some(DatabaseExposure { type_: DatabaseExposeType::NodePort }),
            deletion_policy: DeletionPolicy::Retain,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Ws {
    sizes: Sizes,
    keys: Vec<Option<String>>,
    image: Option<String>,
}

impl Ws {
    fn build(&self) -> WorkspaceSpec {
        WorkspaceSpec {
            owner: "ada@example.com".into(),
            cpu: self.sizes.cpu.as_ref().map(Q::quantity),
            memory: self.sizes.memory.as_ref().map(Q::quantity),
            storage: self.sizes.storage.quantity(),
            // `None` stands for a valid key, so accepted keys are reached too.
            ssh_keys: self.keys.iter().take(8).map(|k| k.clone().unwrap_or_else(|| KEY.trim().into())).collect(),
            image: self.image.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    plan: u8,
    name: String,
    database: Db,
    workspace: Ws,
    other_databases: Vec<(String, Db)>,
    other_workspaces: Vec<(String, Ws)>,
}

fn catalog() -> &'static PlanCatalog {
    static CATALOG: OnceLock<PlanCatalog> = OnceLock::new();
    CATALOG.get_or_init(PlanCatalog::embedded)
}

fuzz_target!(|input: Input| {
    let policy = catalog().effective(PLANS[usize::from(input.plan) % PLANS.len()], None).expect("embedded plans");
    let others = Inventory {
        apps: Default::default(),
        databases: input.other_databases.iter().take(16).map(|(n, d)| (n.clone(), d.build())).collect(),
        workspaces: input.other_workspaces.iter().take(16).map(|(n, w)| (n.clone(), w.build())).collect(),
    };
    let nothing = Inventory::default();

    let db = input.database.build();
    let once = policy.default_database(&db);
    assert_eq!(policy.default_database(&once), once, "default_database is not idempotent");
    assert!(db.cpu.is_none() || db.cpu == once.cpu, "defaulting changed the user's CPU");
    let create = ObjectReview { name: &input.name, spec: &once, others: &others, previous: None };
    let _ = policy.review_database(&create);
    let update = policy.review_database(&ObjectReview { previous: Some(&once), ..create });
    let alone = policy.review_database(&ObjectReview { others: &nothing, previous: Some(&once), ..create });
    assert_eq!(update, alone, "an unchanged Database was judged by the tenant's other objects");

    let ws = input.workspace.build();
    let once = policy.default_workspace(&ws);
    assert_eq!(policy.default_workspace(&once), once, "default_workspace is not idempotent");
    let create = ObjectReview { name: &input.name, spec: &once, others: &others, previous: None };
    let _ = policy.review_workspace(&create);
    let update = policy.review_workspace(&ObjectReview { previous: Some(&once), ..create });
    let alone = policy.review_workspace(&ObjectReview { others: &nothing, previous: Some(&once), ..create });
    assert_eq!(update, alone, "an unchanged Workspace was judged by the tenant's other objects");
});
