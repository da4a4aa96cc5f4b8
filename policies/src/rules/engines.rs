//! Database engines: the engines and versions a plan offers (`limits.databaseEngines`).

use crate::{Outcome, TenantPolicy, Violation};
use slipway_crds::DatabaseSpec;

/// Database engines Slipway knows how to run (`DatabaseEngine` names).
pub const KNOWN_ENGINES: [&str; 4] = ["postgres", "mysql", "mariadb", "redis"];

/// Denies an engine, or a version of it, that the plan does not offer.
pub(crate) fn review_engine(policy: &TenantPolicy, spec: &DatabaseSpec, out: &mut Outcome) {
    let (engine, version) = (spec.engine.as_str(), &spec.version);
    let engines = &policy.limits.database_engines;
    let Some(versions) = engines.get(engine) else {
        let offered: Vec<_> = engines.keys().map(String::as_str).collect();
        return out.deny(Violation::invalid(
            "spec.engine",
            format!("{engine:?} is not offered by the plan \"{}\" (offered: {})", policy.plan, offered.join(", ")),
        ));
    };
    if !versions.iter().any(|v| v == version) {
        out.deny(Violation::invalid(
            "spec.version",
            format!(
                "{engine} {version:?} is not offered by the plan \"{}\" (offered: {})",
                policy.plan,
                versions.join(", ")
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PlanCatalog;

    fn judge(plan: &str, engine: &str, version: &str) -> String {
        let spec: DatabaseSpec =
            serde_json::from_value(serde_json::json!({"engine": engine, "version": version})).unwrap();
        let mut out = Outcome::default();
        review_engine(&PlanCatalog::embedded().effective(plan, None).unwrap(), &spec, &mut out);
        out.message()
    }

    #[test]
    fn engines_and_versions_come_from_the_plan() {
        assert_eq!(judge("free", "postgres", "17"), "");
        assert_eq!(
            judge("free", "postgres", "9.6"),
            r#"spec.version: postgres "9.6" is not offered by the plan "free" (offered: 16, 17)"#
        );
        assert_eq!(
            judge("free", "mysql", "8.4"),
            r#"spec.engine: "mysql" is not offered by the plan "free" (offered: postgres, redis)"#
        );
        assert_eq!(judge("pro", "mysql", "8.4"), "");
    }
}
