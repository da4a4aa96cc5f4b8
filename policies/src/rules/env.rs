//! Environment variables of an App: each has one source.

use crate::{Outcome, Violation};
use slipway_crds::EnvVar;

/// Denies a variable that sets both a literal `value` and `valueFrom`: Kubernetes refuses
/// such a container, and the pods would never be created (the Deployment would only report
/// it). Names and Secret references are checked by the CRD schema; the Secret may be any in
/// the tenant's own namespace, which only the tenant's members can write.
pub(crate) fn review_env(env: &[EnvVar], out: &mut Outcome) {
    for (i, var) in env.iter().enumerate() {
        if !var.value.is_empty() && var.value_from.is_some() {
            out.deny(Violation::invalid(
                format!("spec.env[{i}]"),
                format!("{:?} sets both value and valueFrom: keep one", var.name),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(env: serde_json::Value) -> String {
        let env: Vec<EnvVar> = serde_json::from_value(env).unwrap();
        let mut out = Outcome::default();
        review_env(&env, &mut out);
        out.message()
    }

    #[test]
    fn a_variable_has_a_value_or_a_secret_key_never_both() {
        let secret = serde_json::json!({"secretKeyRef": {"name": "orders-credentials", "key": "uri"}});
        assert_eq!(judge(serde_json::json!([{"name": "A", "value": "1"}, {"name": "B", "valueFrom": secret}])), "");
        assert_eq!(judge(serde_json::json!([{"name": "EMPTY"}])), "");
        assert_eq!(
            judge(serde_json::json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2", "valueFrom": secret}])),
            r#"spec.env[1]: "B" sets both value and valueFrom: keep one"#
        );
    }
}
