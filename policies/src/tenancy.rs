//! What a tenant holds across kinds: its inventory of Apps, Databases and Workspaces, their
//! footprints against the plan's totals, and the Service names each one claims.

use crate::{Amount, TenantPolicy, Violation, check::Resource};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use slipway_crds::{AppSpec, DatabaseSpec, WorkspaceSpec};
use std::{collections::BTreeMap, fmt};

/// Usage at or above this fraction of a tenant total earns a warning (not a denial).
pub(crate) const WARN_FRACTION: f64 = 0.9;

/// The kinds a tenant asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `App`.
    App,
    /// `Database`.
    Database,
    /// `Workspace`.
    Workspace,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::App => "App",
            Kind::Database => "Database",
            Kind::Workspace => "Workspace",
        })
    }
}

impl Kind {
    /// Names of the Services an object of this kind called `name` gets. Every kind's objects
    /// share the tenant namespace, so these must not collide across kinds: an App `web`
    /// and a Database `web` would fight over Service `web`.
    pub fn service_names(self, name: &str) -> Vec<String> {
        match self {
            Kind::App | Kind::Workspace => vec![name.to_string()],
            Kind::Database => vec![name.to_string(), format!("{name}-headless")],
        }
    }
}

/// Everything a tenant holds besides the object under review, stored or reserved, by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inventory {
    /// Apps by name.
    pub apps: BTreeMap<String, AppSpec>,
    /// Databases by name.
    pub databases: BTreeMap<String, DatabaseSpec>,
    /// Workspaces by name.
    pub workspaces: BTreeMap<String, WorkspaceSpec>,
}

impl Inventory {
    /// How many objects of `kind` the inventory holds.
    pub fn count(&self, kind: Kind) -> u32 {
        let n = match kind {
            Kind::App => self.apps.len(),
            Kind::Database => self.databases.len(),
            Kind::Workspace => self.workspaces.len(),
        };
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// The inventory without the object `kind`/`name` (so an UPDATE is not judged against itself).
    pub fn without(mut self, kind: Kind, name: &str) -> Self {
        match kind {
            Kind::App => drop(self.apps.remove(name)),
            Kind::Database => drop(self.databases.remove(name)),
            Kind::Workspace => drop(self.workspaces.remove(name)),
        }
        self
    }

    /// Adds `other`'s entries that this inventory lacks (stored objects win over reservations).
    pub fn merge(&mut self, other: &Inventory) {
        for (n, s) in &other.apps {
            self.apps.entry(n.clone()).or_insert_with(|| s.clone());
        }
        for (n, s) in &other.databases {
            self.databases.entry(n.clone()).or_insert_with(|| s.clone());
        }
        for (n, s) in &other.workspaces {
            self.workspaces.entry(n.clone()).or_insert_with(|| s.clone());
        }
    }

    fn names(&self) -> impl Iterator<Item = (Kind, &str)> {
        let apps = self.apps.keys().map(|n| (Kind::App, n.as_str()));
        let dbs = self.databases.keys().map(|n| (Kind::Database, n.as_str()));
        apps.chain(dbs).chain(self.workspaces.keys().map(|n| (Kind::Workspace, n.as_str())))
    }
}

/// What an object may use of the tenant's totals: CPU cores, memory bytes, storage bytes.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Footprint {
    /// CPU (cores), over all of its pods' limits.
    pub cpu: Amount,
    /// Memory (bytes), over all of its pods' limits.
    pub memory: Amount,
    /// Persistent storage (bytes) it claims.
    pub storage: Amount,
}

/// One of the plan's tenant totals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Total {
    Cpu,
    Memory,
    Storage,
}

impl Total {
    const ALL: [Total; 3] = [Total::Cpu, Total::Memory, Total::Storage];

    fn name(self) -> &'static str {
        match self {
            Total::Cpu => "cpu",
            Total::Memory => "memory",
            Total::Storage => "storage",
        }
    }
}

impl Footprint {
    fn get(&self, total: Total) -> &Amount {
        match total {
            Total::Cpu => &self.cpu,
            Total::Memory => &self.memory,
            Total::Storage => &self.storage,
        }
    }

    fn plus(&self, other: &Footprint) -> Footprint {
        Footprint {
            cpu: self.cpu.plus(&other.cpu),
            memory: self.memory.plus(&other.memory),
            storage: self.storage.plus(&other.storage),
        }
    }
}

/// The CPU, memory and storage of a Database or Workspace spec, field by field.
pub(crate) struct Sized<'a> {
    pub cpu: Option<&'a Quantity>,
    pub memory: Option<&'a Quantity>,
    pub storage: &'a Quantity,
}

impl<'a> From<&'a DatabaseSpec> for Sized<'a> {
    fn from(s: &'a DatabaseSpec) -> Self {
        Sized { cpu: s.cpu.as_ref(), memory: s.memory.as_ref(), storage: &s.storage }
    }
}

impl<'a> From<&'a WorkspaceSpec> for Sized<'a> {
    fn from(s: &'a WorkspaceSpec) -> Self {
        Sized { cpu: s.cpu.as_ref(), memory: s.memory.as_ref(), storage: &s.storage }
    }
}

impl TenantPolicy {
    /// An App's footprint: replicas x limits, no storage. `None` when a limit does not parse.
    pub(crate) fn app_footprint(&self, spec: &AppSpec) -> Option<Footprint> {
        Some(Footprint {
            cpu: self.footprint(spec, Resource::Cpu)?,
            memory: self.footprint(spec, Resource::Memory)?,
            storage: Amount::zero(),
        })
    }

    /// A single-instance footprint (Database, Workspace): its CPU and memory (the plan's default
    /// limits when unset) and its storage. `None` when an amount does not parse.
    pub(crate) fn sized_footprint(&self, s: &Sized<'_>) -> Option<Footprint> {
        let or = |q: Option<&Quantity>, default: &Amount| match q {
            Some(q) => Amount::from_quantity(q).ok(),
            None => Some(default.clone()),
        };
        Some(Footprint {
            cpu: or(s.cpu, &self.defaults.cpu_limit)?,
            memory: or(s.memory, &self.defaults.memory_limit)?,
            storage: Amount::from_quantity(s.storage).ok()?,
        })
    }

    /// Sum of the footprints of everything in `inventory` (unreadable amounts count as zero:
    /// they were refused at admission and cannot run).
    pub(crate) fn usage(&self, inventory: &Inventory) -> Footprint {
        let apps = inventory.apps.values().filter_map(|s| self.app_footprint(s));
        let dbs = inventory.databases.values().filter_map(|s| self.sized_footprint(&s.into()));
        let wss = inventory.workspaces.values().filter_map(|s| self.sized_footprint(&s.into()));
        apps.chain(dbs).chain(wss).fold(Footprint::default(), |a, b| a.plus(&b))
    }

    fn limit_of(&self, total: Total) -> &Amount {
        match total {
            Total::Cpu => &self.limits.cpu,
            Total::Memory => &self.limits.memory,
            Total::Storage => &self.limits.storage,
        }
    }

    /// Checks that `needed` (the footprint of the object `what`, e.g. "this Database") fits in
    /// the plan's totals next to `others`. When `before` (the stored footprint on UPDATE) is
    /// at least `needed` for a total, that total is not judged: shrinking is always allowed.
    /// Denials go to `violations` under `field(total)`; use at 90 % or more to `warnings`.
    pub(crate) fn review_totals(
        &self,
        what: &str,
        needed: &Footprint,
        before: Option<&Footprint>,
        others: &Inventory,
        field: impl Fn(&str) -> String,
        out: &mut crate::Outcome,
    ) {
        let used = self.usage(others);
        for total in Total::ALL {
            let (name, limit, need) = (total.name(), self.limit_of(total), needed.get(total));
            let reported = out.violations.iter().any(|v| v.field == field(name));
            if reported || before.is_some_and(|b| need <= b.get(total)) || *need == Amount::zero() {
                continue;
            }
            let (used, after) = (used.get(total), used.get(total).plus(need));
            if after > *limit {
                out.violations.push(Violation {
                    field: field(name),
                    message: format!(
                        "{what} needs {need} but the tenant already uses {used} of the plan \"{}\" {name} limit of {limit} ({} left)",
                        self.plan,
                        limit.saturating_minus(used)
                    ),
                });
            } else if after.fraction_of(limit) >= WARN_FRACTION {
                out.warnings.push(format!(
                    "the tenant will use {after} of the plan \"{}\" {name} limit of {limit} ({:.0}%)",
                    self.plan,
                    after.fraction_of(limit) * 100.0
                ));
            }
        }
    }

    /// The count rule of `kind`: with `have` other objects of that kind, one more is denied
    /// past the plan's maximum.
    pub(crate) fn count_violation(&self, kind: Kind, have: u32) -> Option<Violation> {
        let (max, plural) = self.max_of(kind);
        (have >= max).then(|| Violation {
            field: "metadata.name".into(),
            message: format!(
                "the tenant already has {have} {plural}; the plan \"{}\" allows {max} (0 left)",
                self.plan
            ),
        })
    }

    /// The count rule of `kind` on CREATE, next to `others`: denied past the plan's maximum,
    /// warned on the last one.
    pub(crate) fn review_count(&self, kind: Kind, others: &Inventory, out: &mut crate::Outcome) {
        let (max, _) = self.max_of(kind);
        let have = others.count(kind);
        if let Some(violation) = self.count_violation(kind, have) {
            out.violations.push(violation);
        } else if have + 1 == max {
            out.warnings.push(format!(
                "this is the last {kind} the plan \"{}\" allows ({} of {max})",
                self.plan,
                have + 1
            ));
        }
    }

    fn max_of(&self, kind: Kind) -> (u32, &'static str) {
        match kind {
            Kind::App => (self.limits.max_apps, "Apps"),
            Kind::Database => (self.limits.max_databases, "Databases"),
            Kind::Workspace => (self.limits.max_workspaces, "Workspaces"),
        }
    }
}

/// Denies `kind`/`name` when one of its Service names is already claimed by another object of
/// the tenant (see [`Kind::service_names`]).
pub(crate) fn review_name(kind: Kind, name: &str, others: &Inventory, out: &mut Vec<Violation>) {
    let mine = kind.service_names(name);
    let holder = others.names().find(|(k, n)| k.service_names(n).iter().any(|s| mine.contains(s)));
    if let Some((k, n)) = holder {
        out.push(Violation {
            field: "metadata.name".into(),
            message: format!(
                "{name:?} clashes with {k} {n:?} of this tenant (both would use Service {:?}); choose another name",
                k.service_names(n).into_iter().find(|s| mine.contains(s)).unwrap_or_default()
            ),
        });
    }
}
