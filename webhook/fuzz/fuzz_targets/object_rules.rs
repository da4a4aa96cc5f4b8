//! The plan rules on arbitrary Databases and Workspaces, next to arbitrary other objects of the
//! tenant: [`TenantPolicy::review_database`], [`TenantPolicy::review_workspace`] and their
//! defaults.
//!
//! Invariants: nothing panics (quantities, SSH keys, versions, images and owners are arbitrary
//! text); defaults are idempotent and never change what the spec set; an UPDATE that changes
//! nothing is judged the same whatever else the tenant holds (no count, name or total can deny
//! it), and so is any UPDATE that grows nothing (the webhook takes no reservation for it).
#![no_main]

use arbitrary::Arbitrary;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use libfuzzer_sys::fuzz_target;
use slipway_crds::{DatabaseEngine, DatabaseExposeType, DatabaseExposure, DatabaseSpec, DeletionPolicy, WorkspaceSpec};
use slipway_policies::{Inventory, PlanCatalog, Platform, Requester, Review, Spec, TenantPolicy};
use std::sync::OnceLock;

const PLANS: &[&str] = &["free", "standard", "pro"];
const SUFFIXES: &[&str] = &["", "m", "k", "M", "G", "Ki", "Mi", "Gi", "Ti", "e3", "e-400", "x"];
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
    member: Option<String>,
    email_domains: Vec<String>,
    database: Db,
    previous_database: Db,
    previous_workspace: Ws,
    workspace: Ws,
    other_databases: Vec<(String, Db)>,
    other_workspaces: Vec<(String, Ws)>,
}

fn catalog() -> &'static PlanCatalog {
    static CATALOG: OnceLock<PlanCatalog> = OnceLock::new();
    CATALOG.get_or_init(PlanCatalog::embedded)
}

/// What a CREATE in tenant `acme` is judged with, for any kind.
struct Creating<'a> {
    owners: &'a [slipway_crds::TenantOwner],
    name: &'a str,
    requester: Requester<'a>,
    others: &'a Inventory,
    platform: &'a Platform,
}

impl<'a> Creating<'a> {
    fn of<S>(&self, spec: &'a S) -> Review<'a, S> {
        Review {
            tenant: "acme",
            owners: self.owners,
            name: self.name,
            spec,
            previous: None,
            requester: self.requester,
            others: self.others,
            hosts: &[],
            platform: self.platform,
        }
    }
}

/// Judges `spec` as a CREATE, as an unchanged UPDATE and as an UPDATE from `previous`, with
/// and without `others`, and checks the invariants.
fn judge<S: Spec + std::fmt::Debug>(policy: &TenantPolicy, review: Review<'_, S>, previous: &S) {
    let nothing = Inventory::default();
    let _ = S::review(policy, &review);
    let unchanged = Review { previous: Some(review.spec), ..review };
    assert_eq!(
        S::review(policy, &unchanged),
        S::review(policy, &Review { others: &nothing, ..unchanged }),
        "an unchanged {:?} was judged by the tenant's other objects",
        S::KIND
    );
    let update = Review { previous: Some(previous), ..review };
    let verdict = S::review(policy, &update);
    if !policy.grows(previous, review.spec) {
        assert_eq!(
            verdict,
            S::review(policy, &Review { others: &nothing, ..update }),
            "an UPDATE that grows nothing was judged by the tenant's other objects"
        );
    }
}

fuzz_target!(|input: Input| {
    let policy = catalog().effective(PLANS[usize::from(input.plan) % PLANS.len()], None).expect("embedded plans");
    let mut others = Inventory::default();
    for (n, d) in input.other_databases.iter().take(16) {
        others.insert_spec(&policy, n.clone(), &d.build());
    }
    for (n, w) in input.other_workspaces.iter().take(16) {
        others.insert_spec(&policy, n.clone(), &w.build());
    }
    let owners = [slipway_crds::TenantOwner { email: "ada@example.com".into() }];
    let platform = Platform::new("apps.example.com", input.email_domains.iter().take(4));
    let requester = input.member.as_deref().map_or(Requester::Operator, Requester::Member);
    let create = Creating { owners: &owners, name: &input.name, requester, others: &others, platform: &platform };

    let db = input.database.build();
    let once = policy.default_database(&db);
    assert_eq!(policy.default_database(&once), once, "default_database is not idempotent");
    assert!(db.cpu.is_none() || db.cpu == once.cpu, "defaulting changed the user's CPU");
    judge(&policy, create.of(&once), &policy.default_database(&input.previous_database.build()));

    let ws = input.workspace.build();
    let once = policy.default_workspace(&ws);
    assert_eq!(policy.default_workspace(&once), once, "default_workspace is not idempotent");
    judge(&policy, create.of(&once), &policy.default_workspace(&input.previous_workspace.build()));
});
