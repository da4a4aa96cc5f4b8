//! Status conditions per the Kubernetes API conventions
//! (<https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md#typical-status-properties>).

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};

/// Builds a condition for `generation`; keeps `lastTransitionTime` from `previous` when the
/// status did not change, so the time records the last transition, not the last reconcile.
pub fn condition(
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_string();
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or_else(|| Time(Timestamp::now()), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.into(),
        status,
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time,
    }
}

/// Whether `conditions` hold `type_` with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions.iter().any(|c| c.type_ == type_ && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_transition_time_while_status_holds() {
        let first = condition(&[], "Ready", false, "Pending", "", Some(1));
        let again = condition(std::slice::from_ref(&first), "Ready", false, "Pending", "", Some(2));
        assert_eq!(first.last_transition_time, again.last_transition_time);
        assert_eq!(again.observed_generation, Some(2));
        let flipped = condition(&[again], "Ready", true, "Available", "", Some(2));
        assert!(is_true(&[flipped], "Ready"));
    }
}
