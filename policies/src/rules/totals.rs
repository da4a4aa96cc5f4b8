//! Totals: the tenant's CPU, memory and storage over every object of every kind (`limits.cpu`,
//! `memory`, `storage`), with a warning from 90 % on.

use crate::{Footprint, Inventory, Outcome, TenantPolicy, Total, Violation};

/// Usage at or above this fraction of a tenant total earns a warning (not a denial).
pub const WARN_FRACTION: f64 = 0.9;

/// Checks that `needed`, the footprint of `what` (e.g. "this Database"), fits in the plan's
/// totals next to `others`. A total that `before` (the stored footprint, on UPDATE) already
/// covers is not judged: shrinking, or keeping a size, is always allowed. Denials go under
/// `field(total)` unless a more precise rule already reported that field.
pub(crate) fn review_totals(
    policy: &TenantPolicy,
    what: &str,
    needed: &Footprint,
    before: Option<&Footprint>,
    others: &Inventory,
    field: impl Fn(Total) -> String,
    out: &mut Outcome,
) {
    let used = others.usage();
    for total in Total::ALL {
        let (name, limit, need) = (total.name(), policy.limit_of(total), needed.get(total));
        if out.reported(&field(total)) || before.is_some_and(|b| need <= b.get(total)) || need.is_zero() {
            continue;
        }
        let (used, after) = (used.get(total), used.get(total).plus(need));
        if after > *limit {
            out.deny(Violation::invalid(
                field(total),
                format!(
                    "{what} needs {need} but the tenant already uses {used} of the plan \"{}\" {name} limit of {limit} ({} left)",
                    policy.plan,
                    limit.saturating_minus(used)
                ),
            ));
        } else if after.fraction_of(limit) >= WARN_FRACTION {
            out.warn(format!(
                "the tenant will use {after} of the plan \"{}\" {name} limit of {limit} ({:.0}%)",
                policy.plan,
                after.fraction_of(limit) * 100.0
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Amount, PlanCatalog};
    use slipway_crds::Kind;

    fn footprint(cpu: &str, storage: &str) -> Footprint {
        let a = |s: &str| Amount::parse(s).unwrap();
        Footprint { cpu: a(cpu), memory: a("64Mi"), storage: a(storage) }
    }

    fn judge(needed: &Footprint, before: Option<&Footprint>, others: &Inventory) -> Outcome {
        let free = PlanCatalog::embedded().effective("free", None).unwrap();
        let mut out = Outcome::default();
        review_totals(&free, "this App", needed, before, others, |t| format!("spec.{}", t.name()), &mut out);
        out
    }

    #[test]
    fn exactly_at_the_limit_is_admitted_one_over_is_not() {
        // free: 2 CPUs, 5Gi. Others use 1500m and 3Gi.
        let others: Inventory = [
            (Kind::App, "web".to_string(), footprint("1500m", "0")),
            (Kind::Workspace, "box".to_string(), footprint("0", "3Gi")),
        ]
        .into_iter()
        .collect();
        let at = judge(&footprint("500m", "0"), None, &others);
        assert!(at.allowed());
        assert_eq!(at.warnings, [r#"the tenant will use 2 of the plan "free" cpu limit of 2 (100%)"#]);
        let over = judge(&footprint("501m", "3Gi"), None, &others);
        assert_eq!(
            over.message(),
            [
                r#"spec.cpu: this App needs 501m but the tenant already uses 1500m of the plan "free" cpu limit of 2 (500m left)"#,
                r#"spec.storage: this App needs 3Gi but the tenant already uses 3Gi of the plan "free" storage limit of 5Gi (2Gi left)"#,
            ]
            .join("; ")
        );
    }

    #[test]
    fn an_update_that_does_not_grow_a_total_is_not_judged_on_it() {
        // Others alone are over the total (the plan shrank): keeping or lowering is fine.
        let others: Inventory = [(Kind::App, "web".to_string(), footprint("3", "0"))].into_iter().collect();
        let before = footprint("1", "0");
        assert!(judge(&footprint("500m", "0"), Some(&before), &others).allowed());
        assert!(judge(&footprint("1", "0"), Some(&before), &others).allowed());
        assert!(!judge(&footprint("1100m", "0"), Some(&before), &others).allowed());
    }
}
