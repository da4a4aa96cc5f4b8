//! Parsed Kubernetes quantities that can be compared and added.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube_quantity::ParsedQuantity;
use std::{cmp::Ordering, fmt};

/// A parsed, comparable Kubernetes quantity that keeps the text it was written as, so messages
/// show users the notation they used (`1Gi`, not `1073741824`).
///
/// Notation: <https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/>.
#[derive(Clone, Debug)]
pub struct Amount {
    parsed: ParsedQuantity,
    text: String,
}

/// A quantity string that is not valid Kubernetes notation.
#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not a Kubernetes quantity (examples: 500m, 2, 256Mi, 10Gi)")]
pub struct QuantityError {
    /// The text that failed to parse.
    pub text: String,
}

impl Amount {
    /// Parses Kubernetes quantity notation.
    ///
    /// # Errors
    /// [`QuantityError`] when the text is not a quantity, or is negative.
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        let err = || QuantityError { text: text.to_string() };
        let parsed = ParsedQuantity::try_from(text).map_err(|_| err())?;
        if parsed < ParsedQuantity::default() {
            return Err(err());
        }
        Ok(Self { parsed, text: text.to_string() })
    }

    /// Parses a [`Quantity`] from a Kubernetes object.
    ///
    /// # Errors
    /// As [`Amount::parse`].
    pub fn from_quantity(q: &Quantity) -> Result<Self, QuantityError> {
        Self::parse(&q.0)
    }

    /// This amount times `n` (e.g. per-pod CPU times replicas).
    pub fn times(&self, n: i32) -> Self {
        let parsed = self.parsed.clone() * n;
        Self { text: parsed.to_string(), parsed }
    }

    /// The sum of two amounts.
    pub fn plus(&self, other: &Amount) -> Self {
        let parsed = self.parsed.clone() + other.parsed.clone();
        Self { text: parsed.to_string(), parsed }
    }

    /// `self - other`, or zero when `other` is larger.
    pub fn saturating_minus(&self, other: &Amount) -> Self {
        if other >= self {
            return Self::parse("0").expect("zero parses");
        }
        let parsed = self.parsed.clone() - other.parsed.clone();
        Self { text: parsed.to_string(), parsed }
    }

    /// The fraction `self / whole` (0.0 when `whole` is zero), for "close to the limit" warnings.
    pub fn fraction_of(&self, whole: &Amount) -> f64 {
        match (self.parsed.to_bytes_f64(), whole.parsed.to_bytes_f64()) {
            (Some(part), Some(whole)) if whole > 0.0 => part / whole,
            _ => 0.0,
        }
    }

    /// The amount as a Kubernetes [`Quantity`], in the notation it was written.
    pub fn to_quantity(&self) -> Quantity {
        Quantity(self.text.clone())
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for Amount {
    fn eq(&self, other: &Self) -> bool {
        self.parsed == other.parsed
    }
}

impl PartialOrd for Amount {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.parsed.cmp(&other.parsed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_across_notations() {
        assert!(Amount::parse("500m").unwrap() < Amount::parse("1").unwrap());
        assert!(Amount::parse("1Gi").unwrap() > Amount::parse("1G").unwrap());
        assert_eq!(Amount::parse("1024Mi").unwrap(), Amount::parse("1Gi").unwrap());
        assert_eq!(Amount::parse("250m").unwrap().times(4), Amount::parse("1").unwrap());
        assert_eq!(Amount::parse("1").unwrap().plus(&Amount::parse("500m").unwrap()), Amount::parse("1500m").unwrap());
        assert_eq!(
            Amount::parse("1").unwrap().saturating_minus(&Amount::parse("2").unwrap()),
            Amount::parse("0").unwrap()
        );
        assert!((Amount::parse("1536Mi").unwrap().fraction_of(&Amount::parse("2Gi").unwrap()) - 0.75).abs() < 1e-9);
    }

    #[test]
    fn rejects_garbage_and_negatives() {
        assert!(Amount::parse("lots").is_err());
        assert!(Amount::parse("-1").is_err());
        assert!(Amount::parse("").is_err());
    }
}
