//! Counts: how many objects of each kind the plan allows a tenant (`limits.maxApps`,
//! `maxDatabases`, `maxWorkspaces`). Judged on CREATE only: an UPDATE never changes how many
//! there are, so a tenant over a shrunken plan can still change what it has.

use crate::{Inventory, Outcome, TenantPolicy, Violation};
use slipway_crds::Kind;

/// The plan's maximum of `kind`.
pub fn max_of(policy: &TenantPolicy, kind: Kind) -> u32 {
    match kind {
        Kind::App => policy.limits.max_apps,
        Kind::Database => policy.limits.max_databases,
        Kind::Workspace => policy.limits.max_workspaces,
    }
}

/// One more `kind` next to `others`: denied past the plan's maximum, warned on the last one.
pub(crate) fn review_count(policy: &TenantPolicy, kind: Kind, others: &Inventory, out: &mut Outcome) {
    let (max, have) = (max_of(policy, kind), others.count(kind));
    if have >= max {
        out.deny(Violation::invalid(
            "metadata.name",
            format!("the tenant already has {have} {kind}s; the plan \"{}\" allows {max} (0 left)", policy.plan),
        ));
    } else if have + 1 == max {
        out.warn(format!("this is the last {kind} the plan \"{}\" allows ({} of {max})", policy.plan, have + 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Footprint, PlanCatalog};

    fn apps(n: usize) -> Inventory {
        (0..n).map(|i| (Kind::App, format!("app{i}"), Footprint::default())).collect()
    }

    #[test]
    fn warns_on_the_last_and_denies_past_it() {
        let free = PlanCatalog::embedded().effective("free", None).unwrap();
        let mut out = Outcome::default();
        review_count(&free, Kind::App, &apps(1), &mut out);
        assert!(out.allowed() && out.warnings.is_empty());
        review_count(&free, Kind::App, &apps(2), &mut out);
        assert_eq!(out.warnings, [r#"this is the last App the plan "free" allows (3 of 3)"#]);
        review_count(&free, Kind::App, &apps(3), &mut out);
        assert_eq!(out.message(), r#"metadata.name: the tenant already has 3 Apps; the plan "free" allows 3 (0 left)"#);
        let mut out = Outcome::default();
        review_count(&free, Kind::Database, &apps(3), &mut out);
        assert!(out.allowed(), "counts are per kind");
    }
}
