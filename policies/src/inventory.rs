//! What a tenant holds across kinds: each object's kind, name and [`Footprint`], which is all
//! that counts, names and totals depend on. The webhook builds it from its watch caches and
//! reservations, the API from its own reads.

use crate::{Amount, Spec, TenantPolicy};
use serde::{Deserialize, Serialize};
use slipway_crds::Kind;
use std::{collections::BTreeMap, sync::Arc};

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

/// One kind's objects of a namespace, by name, with their footprints: a map the webhook's
/// caches keep up to date from their watches and share with every review, so a review does
/// not copy (or recompute) what the namespace holds.
pub type Footprints = Arc<BTreeMap<String, Footprint>>;

/// Everything a tenant holds besides the object under review, stored or reserved, by kind and
/// name.
///
/// Two layers: maps shared with a cache, one per kind at most ([`Inventory::share`]), and the
/// entries recorded on top of them ([`Inventory::insert`], [`Inventory::remove`],
/// [`Inventory::overlay`]), which win. Looking an object up costs O(log n); [`Inventory::usage`]
/// adds up every footprint once, without allocating, so a review costs no copy of the tenant's
/// objects (issue 13: building that copy took more than half of the webhook's CPU with 1,000
/// Apps in a namespace).
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    shared: BTreeMap<Kind, Footprints>,
    /// Per kind, by name: `Some` adds or replaces, `None` removes.
    changes: BTreeMap<Kind, BTreeMap<String, Option<Footprint>>>,
}

impl Inventory {
    /// Records `kind`/`name` with `footprint`, replacing what was recorded for it.
    pub fn insert(&mut self, kind: Kind, name: impl Into<String>, footprint: Footprint) {
        self.changes.entry(kind).or_default().insert(name.into(), Some(footprint));
    }

    /// Records the object `name` of spec `spec` with its footprint under `policy`; an object
    /// whose amounts do not parse counts as zero (such a spec is refused at admission and
    /// cannot run).
    pub fn insert_spec<S: Spec>(&mut self, policy: &TenantPolicy, name: impl Into<String>, spec: &S) {
        self.insert(S::KIND, name, spec.footprint(policy).unwrap_or_default());
    }

    /// Holds every object of `footprints` as objects of `kind`, without copying them. Entries
    /// recorded for `kind` before or after still win; a second shared map of the same kind is
    /// copied in as recorded entries.
    pub fn share(&mut self, kind: Kind, footprints: Footprints) {
        match self.shared.entry(kind) {
            std::collections::btree_map::Entry::Vacant(slot) => drop(slot.insert(footprints)),
            std::collections::btree_map::Entry::Occupied(_) => {
                let changes = self.changes.entry(kind).or_default();
                for (name, footprint) in footprints.iter() {
                    changes.entry(name.clone()).or_insert_with(|| Some(footprint.clone()));
                }
            }
        }
    }

    /// Forgets `kind`/`name` (so an UPDATE is not judged against itself).
    pub fn remove(&mut self, kind: Kind, name: &str) {
        self.changes.entry(kind).or_default().insert(name.to_string(), None);
    }

    /// Replaces or adds every entry of `newer`: reservations stand for objects newer than
    /// what the caches hold.
    pub fn overlay(&mut self, newer: Inventory) {
        for (kind, footprints) in newer.shared {
            for (name, footprint) in footprints.iter() {
                self.insert(kind, name.clone(), footprint.clone());
            }
        }
        // Moved, not copied: a tenant's reservations can be many (its whole plan at once).
        for (kind, changes) in newer.changes {
            self.changes.entry(kind).or_default().extend(changes);
        }
    }

    /// The footprint of `kind`/`name`, if it holds that object.
    pub fn get(&self, kind: Kind, name: &str) -> Option<&Footprint> {
        match self.changes.get(&kind).and_then(|c| c.get(name)) {
            Some(recorded) => recorded.as_ref(),
            None => self.shared.get(&kind)?.get(name),
        }
    }

    /// Whether it holds `kind`/`name`.
    pub fn contains(&self, kind: Kind, name: &str) -> bool {
        self.get(kind, name).is_some()
    }

    /// How many objects of `kind` it holds.
    pub fn count(&self, kind: Kind) -> u32 {
        let shared = self.shared.get(&kind);
        let mut count = shared.map_or(0, |s| s.len());
        for (name, recorded) in self.changes.get(&kind).into_iter().flatten() {
            match (shared.is_some_and(|s| s.contains_key(name)), recorded.is_some()) {
                (false, true) => count += 1,
                (true, false) => count -= 1,
                _ => {}
            }
        }
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// Every object's kind, name and footprint, in order of kind, then name.
    pub fn entries(&self) -> impl Iterator<Item = (Kind, &str, &Footprint)> {
        Kind::ALL.into_iter().flat_map(move |kind| {
            let changes = self.changes.get(&kind);
            let shared = self.shared.get(&kind).into_iter().flat_map(|s| s.iter());
            let kept = shared.filter(move |(name, _)| changes.is_none_or(|c| !c.contains_key(name.as_str())));
            let recorded = changes.into_iter().flatten().filter_map(|(name, f)| Some((name, f.as_ref()?)));
            let mut merged: Vec<(&String, &Footprint)> = kept.chain(recorded).collect();
            if changes.is_some() {
                merged.sort_by(|a, b| a.0.cmp(b.0));
            }
            merged.into_iter().map(move |(name, footprint)| (kind, name.as_str(), footprint))
        })
    }

    /// Every object's kind and name, in order of kind, then name.
    pub fn names(&self) -> impl Iterator<Item = (Kind, &str)> {
        self.entries().map(|(kind, name, _)| (kind, name))
    }

    /// The sum of every object's footprint.
    pub fn usage(&self) -> Footprint {
        let mut sum = Footprint::default();
        for (kind, shared) in &self.shared {
            let changes = self.changes.get(kind);
            for (name, footprint) in shared.iter() {
                if changes.is_none_or(|c| !c.contains_key(name.as_str())) {
                    sum = sum.plus(footprint);
                }
            }
        }
        for footprint in self.changes.values().flat_map(|c| c.values()).flatten() {
            sum = sum.plus(footprint);
        }
        sum
    }
}

/// Equal when they hold the same objects with the same footprints, however they are layered.
impl PartialEq for Inventory {
    fn eq(&self, other: &Self) -> bool {
        self.entries().eq(other.entries())
    }
}

impl FromIterator<(Kind, String, Footprint)> for Inventory {
    fn from_iter<T: IntoIterator<Item = (Kind, String, Footprint)>>(iter: T) -> Self {
        let mut inventory = Inventory::default();
        for (kind, name, footprint) in iter {
            inventory.insert(kind, name, footprint);
        }
        inventory
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
    fn recorded_entries_win_over_a_shared_map() {
        let apps: BTreeMap<String, Footprint> =
            [("a".into(), footprint("1", "1Gi", "0")), ("b".into(), footprint("2", "1Gi", "0"))].into_iter().collect();
        let apps = Arc::new(apps);
        let mut layered = Inventory::default();
        layered.share(Kind::App, apps.clone());
        layered.insert(Kind::Database, "pg", footprint("500m", "256Mi", "1Gi"));
        layered.remove(Kind::App, "a");
        layered.remove(Kind::App, "nobody");
        layered.overlay(
            [
                (Kind::App, "b".to_string(), footprint("4", "2Gi", "0")),
                (Kind::App, "c".to_string(), footprint("1", "0", "0")),
            ]
            .into_iter()
            .collect(),
        );

        let copied: Inventory = [
            (Kind::App, "b".to_string(), footprint("4", "2Gi", "0")),
            (Kind::App, "c".to_string(), footprint("1", "0", "0")),
            (Kind::Database, "pg".to_string(), footprint("500m", "256Mi", "1Gi")),
        ]
        .into_iter()
        .collect();
        assert_eq!(layered, copied, "the same objects however they are held");
        assert_eq!((layered.count(Kind::App), layered.count(Kind::Database)), (2, 1));
        assert_eq!(layered.usage(), footprint("5500m", "2304Mi", "1Gi"));
        assert_eq!(layered.names().collect::<Vec<_>>(), [(Kind::App, "b"), (Kind::App, "c"), (Kind::Database, "pg")]);
        assert!(!layered.contains(Kind::App, "a") && layered.get(Kind::App, "b") == Some(&footprint("4", "2Gi", "0")));
        assert_eq!(apps.len(), 2, "the shared map is never written");

        // A second map of a kind already shared is copied in under the recorded entries.
        layered.share(
            Kind::App,
            Arc::new(
                [("c".into(), footprint("9", "0", "0")), ("d".into(), footprint("1", "0", "0"))].into_iter().collect(),
            ),
        );
        assert_eq!(layered.get(Kind::App, "c"), Some(&footprint("1", "0", "0")));
        assert_eq!(layered.count(Kind::App), 3);
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
