//! What a tenant holds across kinds: each object's kind, name and [`Footprint`], which is all
//! that counts, names and totals depend on. The webhook builds it from its watch caches and
//! reservations, the API from its own reads.

use crate::{Amount, Spec, TenantPolicy};
use serde::{Deserialize, Serialize};
use slipway_crds::Kind;
use std::collections::BTreeMap;

/// One of the plan's tenant totals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Total {
    /// CPU, in cores.
    Cpu,
    /// Memory, in bytes.
    Memory,
    /// Persistent storage, in bytes.
    Storage,
}

impl Total {
    /// Every total.
    pub const ALL: [Total; 3] = [Total::Cpu, Total::Memory, Total::Storage];
    /// The totals a pod's requests and limits draw on.
    pub const COMPUTE: [Total; 2] = [Total::Cpu, Total::Memory];

    /// Lowercase name, as in `spec.resources.limits.<name>` and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Total::Cpu => "cpu",
            Total::Memory => "memory",
            Total::Storage => "storage",
        }
    }
}

/// What one object may use of the tenant's totals.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Footprint {
    /// CPU (cores) over all of its pods' limits.
    pub cpu: Amount,
    /// Memory (bytes) over all of its pods' limits.
    pub memory: Amount,
    /// Persistent storage (bytes) it claims.
    pub storage: Amount,
}

impl Footprint {
    /// The amount of `total`.
    pub fn get(&self, total: Total) -> &Amount {
        match total {
            Total::Cpu => &self.cpu,
            Total::Memory => &self.memory,
            Total::Storage => &self.storage,
        }
    }

    /// The sum of two footprints (saturating).
    pub fn plus(&self, other: &Footprint) -> Footprint {
        Footprint {
            cpu: self.cpu.plus(&other.cpu),
            memory: self.memory.plus(&other.memory),
            storage: self.storage.plus(&other.storage),
        }
    }

    /// Whether any total of `self` is above that of `other`.
    pub fn exceeds(&self, other: &Footprint) -> bool {
        Total::ALL.into_iter().any(|t| self.get(t) > other.get(t))
    }
}

/// Everything a tenant holds besides the object under review, stored or reserved, by kind and
/// name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inventory {
    objects: BTreeMap<(Kind, String), Footprint>,
}

impl Inventory {
    /// Records `kind`/`name` with `footprint`, replacing what was recorded for it.
    pub fn insert(&mut self, kind: Kind, name: impl Into<String>, footprint: Footprint) {
        self.objects.insert((kind, name.into()), footprint);
    }

    /// Records the object `name` of spec `spec` with its footprint under `policy`; an object
    /// whose amounts do not parse counts as zero (such a spec is refused at admission and
    /// cannot run).
    pub fn insert_spec<S: Spec>(&mut self, policy: &TenantPolicy, name: impl Into<String>, spec: &S) {
        self.insert(S::KIND, name, spec.footprint(policy).unwrap_or_default());
    }

    /// Forgets `kind`/`name` (so an UPDATE is not judged against itself).
    pub fn remove(&mut self, kind: Kind, name: &str) {
        self.objects.remove(&(kind, name.to_string()));
    }

    /// Replaces or adds every entry of `newer`: reservations stand for objects newer than
    /// what the caches hold.
    pub fn overlay(&mut self, newer: Inventory) {
        self.objects.extend(newer.objects);
    }

    /// Whether it holds `kind`/`name`.
    pub fn contains(&self, kind: Kind, name: &str) -> bool {
        self.objects.contains_key(&(kind, name.to_string()))
    }

    /// How many objects of `kind` it holds.
    pub fn count(&self, kind: Kind) -> u32 {
        u32::try_from(self.objects.keys().filter(|(k, _)| *k == kind).count()).unwrap_or(u32::MAX)
    }

    /// Every object's kind and name.
    pub fn names(&self) -> impl Iterator<Item = (Kind, &str)> {
        self.objects.keys().map(|(k, n)| (*k, n.as_str()))
    }

    /// The sum of every object's footprint.
    pub fn usage(&self) -> Footprint {
        self.objects.values().fold(Footprint::default(), |sum, f| sum.plus(f))
    }
}

impl FromIterator<(Kind, String, Footprint)> for Inventory {
    fn from_iter<T: IntoIterator<Item = (Kind, String, Footprint)>>(iter: T) -> Self {
        Self { objects: iter.into_iter().map(|(k, n, f)| ((k, n), f)).collect() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn footprint(cpu: &str, memory: &str, storage: &str) -> Footprint {
        let a = |s: &str| Amount::parse(s).unwrap();
        Footprint { cpu: a(cpu), memory: a(memory), storage: a(storage) }
    }

    #[test]
    fn counts_sums_and_overlays() {
        let mut stored: Inventory = [
            (Kind::App, "web".to_string(), footprint("500m", "128Mi", "0")),
            (Kind::Database, "pg".to_string(), footprint("250m", "128Mi", "1Gi")),
        ]
        .into_iter()
        .collect();
        assert_eq!((stored.count(Kind::App), stored.count(Kind::Workspace)), (1, 0));
        assert_eq!(stored.usage(), footprint("750m", "256Mi", "1Gi"));
        // A reservation of a scale-up replaces the cached footprint of the same App.
        let reserved: Inventory = [(Kind::App, "web".to_string(), footprint("1", "256Mi", "0"))].into_iter().collect();
        stored.overlay(reserved);
        assert_eq!(stored.usage(), footprint("1250m", "384Mi", "1Gi"));
        stored.remove(Kind::App, "web");
        assert_eq!(stored.names().collect::<Vec<_>>(), [(Kind::Database, "pg")]);
    }

    #[test]
    fn footprints_serialize_as_quantities() {
        let f = footprint("1500m", "1Gi", "0");
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(json, r#"{"cpu":"1500m","memory":"1Gi","storage":"0"}"#);
        assert_eq!(serde_json::from_str::<Footprint>(&json).unwrap(), f);
        assert!(footprint("2", "1Gi", "0").exceeds(&f) && !f.exceeds(&f));
    }
}
