//! Kubernetes quantities, parsed exactly and bounded, so hostile input can neither panic nor
//! wrap around.
//!
//! Grammar (<https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/>):
//! `<number><suffix>`, where the number is digits with an optional fraction and the suffix a
//! binary SI one (`Ki Mi Gi Ti Pi Ei`), a decimal SI one (`n u m k M G T P E`, or none), or a
//! decimal exponent (`e3`, `E-2`). Values are kept as whole nano-units in an `i128`; every
//! arithmetic step saturates. `kube_quantity` was tried first: its decimal arithmetic panics on
//! overflow (found by fuzzing: `1e26k`) and it reads `m` alone as zero.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::{cmp::Ordering, fmt};

/// Nano-units per unit.
const NANO: i128 = 1_000_000_000;

/// Largest accepted amount: 10^18 units (about 888 PiB, or a billion billion cores), far
/// beyond any real request and small enough that sums and products stay exact in `i128`.
const MAX_NANOS: i128 = 1_000_000_000_000_000_000 * NANO;

/// A parsed, comparable Kubernetes quantity that keeps the text it was written as, so messages
/// show users their own notation (`1Gi`, not `1073741824`).
#[derive(Clone, Debug)]
pub struct Amount {
    nanos: i128,
    /// What it was written as; `None` for a computed amount, whose canonical text is made
    /// only when shown (admission sums every object of a tenant in each review: formatting
    /// each partial sum cost more than the rest of the review).
    text: Option<Box<str>>,
}

/// A quantity string that is not valid Kubernetes notation, is negative, or is absurdly large.
#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not a Kubernetes quantity (examples: 500m, 2, 256Mi, 10Gi)")]
pub struct QuantityError {
    /// The text that failed to parse.
    pub text: String,
}

/// The multiplier of a suffix: (power of ten, power of 1024).
fn suffix(s: &str) -> Option<(i32, u32)> {
    Some(match s {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 1),
        "Mi" => (0, 2),
        "Gi" => (0, 3),
        "Ti" => (0, 4),
        "Pi" => (0, 5),
        "Ei" => (0, 6),
        _ => {
            // A decimal exponent: e or E, an optional sign, digits (small enough to matter).
            let exp = s.strip_prefix(['e', 'E'])?;
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (exp.parse().ok()?, 0)
        }
    })
}

/// Nano-units of `text`, or `None` when it is not a valid non-negative quantity within bounds.
fn parse_nanos(text: &str) -> Option<i128> {
    let unsigned = text.strip_prefix('+').unwrap_or(text);
    let split = unsigned.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(unsigned.len());
    let (number, suffix_text) = unsigned.split_at(split);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return None;
    }
    let (ten, binary) = suffix(suffix_text)?;
    // Significant digits beyond 40 cannot be represented and are never needed.
    let digits = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > 40 {
        return None;
    }
    let mantissa: i128 = if digits.is_empty() { 0 } else { digits.parse().ok()? };
    let fraction_len = i32::try_from(fraction.len()).ok()?;
    // value = mantissa * 10^(ten - fraction_len) * 1024^binary, in nano-units: * 10^9.
    let exp10 = ten - fraction_len + 9;
    let mut nanos = mantissa.checked_mul(1024_i128.checked_pow(binary)?)?;
    if exp10 >= 0 {
        nanos = nanos.checked_mul(10_i128.checked_pow(u32::try_from(exp10).ok()?)?)?;
    } else {
        // Below a nano-unit: round up, as Kubernetes does when it drops precision. A divisor
        // beyond i128 (an exponent below about -29) leaves one nano-unit of anything non-zero.
        // (Found by fuzzing: `1e-400` made the old `nanos + divisor - 1` overflow.)
        nanos = match 10_i128.checked_pow(u32::try_from(-exp10).ok()?) {
            Some(divisor) => nanos / divisor + i128::from(nanos % divisor != 0),
            None => i128::from(nanos != 0),
        };
    }
    (nanos <= MAX_NANOS).then_some(nanos)
}

/// Canonical text of a computed amount: binary suffixes for whole multiples of 1024 bytes,
/// plain units, milli-units, or nano-units, whichever is exact.
fn format_nanos(nanos: i128) -> String {
    if nanos % NANO == 0 {
        let units = nanos / NANO;
        for (suffix, factor) in
            [("Ei", 1_i128 << 60), ("Pi", 1 << 50), ("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20)]
        {
            if units >= factor && units % factor == 0 {
                return format!("{}{suffix}", units / factor);
            }
        }
        return units.to_string();
    }
    if nanos % 1_000_000 == 0 {
        return format!("{}m", nanos / 1_000_000);
    }
    format!("{nanos}n")
}

impl Amount {
    fn from_nanos(nanos: i128) -> Self {
        Self { nanos, text: None }
    }

    /// Parses Kubernetes quantity notation.
    ///
    /// # Errors
    /// [`QuantityError`] when the text is not a quantity, is negative, or exceeds 10^18 units.
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        let nanos = parse_nanos(text).ok_or_else(|| QuantityError { text: text.to_string() })?;
        Ok(Self { nanos, text: Some(text.into()) })
    }

    /// Parses a [`Quantity`] from a Kubernetes object.
    ///
    /// # Errors
    /// As [`Amount::parse`].
    pub fn from_quantity(q: &Quantity) -> Result<Self, QuantityError> {
        Self::parse(&q.0)
    }

    /// Zero.
    pub fn zero() -> Self {
        Self::from_nanos(0)
    }

    /// Whether this is zero.
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// This amount times `n` (e.g. per-pod CPU times replicas); negative `n` counts as zero.
    pub fn times(&self, n: i32) -> Self {
        Self::from_nanos(self.nanos.saturating_mul(i128::from(n.max(0))))
    }

    /// The sum of two amounts (saturating).
    pub fn plus(&self, other: &Amount) -> Self {
        Self::from_nanos(self.nanos.saturating_add(other.nanos))
    }

    /// The exact sum of two amounts, or `None` when it leaves `i128`'s range (only sums of
    /// hostile, near-maximal amounts can).
    pub fn checked_plus(&self, other: &Amount) -> Option<Self> {
        self.nanos.checked_add(other.nanos).map(Self::from_nanos)
    }

    /// The exact difference `self - other`, or `None` when it leaves `i128`'s range.
    pub fn checked_minus(&self, other: &Amount) -> Option<Self> {
        self.nanos.checked_sub(other.nanos).map(Self::from_nanos)
    }

    /// `self - other`, or zero when `other` is larger.
    pub fn saturating_minus(&self, other: &Amount) -> Self {
        Self::from_nanos((self.nanos - other.nanos).max(0))
    }

    /// The fraction `self / whole` (0.0 when `whole` is zero), for "close to the limit" warnings.
    #[allow(clippy::cast_precision_loss)] // A ratio for a percentage: f64 precision is plenty.
    pub fn fraction_of(&self, whole: &Amount) -> f64 {
        if whole.nanos == 0 { 0.0 } else { self.nanos as f64 / whole.nanos as f64 }
    }

    /// The amount as a Kubernetes [`Quantity`], in the notation it was written.
    pub fn to_quantity(&self) -> Quantity {
        Quantity(self.to_string())
    }
}

impl Default for Amount {
    /// Zero.
    fn default() -> Self {
        Self::zero()
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.text {
            Some(text) => f.write_str(text),
            None => f.write_str(&format_nanos(self.nanos)),
        }
    }
}

impl Serialize for Amount {
    /// As its text, e.g. `"500m"`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Amount {
    /// From quantity text; invalid text is an error.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Amount::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl PartialEq for Amount {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl PartialOrd for Amount {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.nanos.cmp(&other.nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Amount {
        Amount::parse(s).unwrap()
    }

    #[test]
    fn compares_across_notations() {
        assert!(a("500m") < a("1"));
        assert!(a("1Gi") > a("1G"));
        assert_eq!(a("1024Mi"), a("1Gi"));
        assert_eq!(a("1.5"), a("1500m"));
        assert_eq!(a("1e3"), a("1k"));
        assert_eq!(a("12E-1"), a("1200m"));
        assert_eq!(a(".5Gi"), a("512Mi"));
        assert_eq!(a("+2"), a("2"));
        assert_eq!(a("1n"), a("0.000000001"));
        assert_eq!(a("0.1n"), a("1n"), "below a nano-unit rounds up");
    }

    #[test]
    fn arithmetic_is_exact_and_prints_canonically() {
        assert_eq!(a("250m").times(4), a("1"));
        assert_eq!(a("250m").times(12).to_string(), "3");
        assert_eq!(a("128Mi").times(12).to_string(), "1536Mi");
        assert_eq!(a("1").plus(&a("500m")).to_string(), "1500m");
        assert_eq!(a("1").saturating_minus(&a("2")), Amount::zero());
        assert!((a("1536Mi").fraction_of(&a("2Gi")) - 0.75).abs() < 1e-9);
        assert_eq!(a("1").to_string(), "1", "parsed amounts keep their text");
    }

    #[test]
    fn rejects_what_kubernetes_rejects() {
        for bad in [
            "", "lots", "-1", "m", "Mi", "+", "-", ".", "1..2", "1.2.3", "1Ki2", "1e", "1e+", "1ee3", "1 Gi", "1gi",
            "0x10",
        ] {
            assert!(Amount::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn huge_values_are_refused_and_arithmetic_saturates() {
        // Found by fuzzing the previous implementation, which panicked on these.
        for huge in
            ["1e26k", "100000000000000000000000000k", "18012701963040358144.249Gi", "1e999", "2Ei", &"9".repeat(60)]
        {
            assert!(Amount::parse(huge).is_err(), "{huge} must be refused");
        }
        let max = a("1E");
        assert_eq!(max.times(i32::MAX).times(i32::MAX).plus(&max), Amount::from_nanos(i128::MAX));
    }

    #[test]
    fn tiny_exponents_round_up_to_a_nano_unit_without_overflow() {
        // `1e-400` overflowed the rounding (issue 8, finding 7).
        for tiny in ["1e-400", "9e-999", "1E-40", "123456789e-30", "0.1e-999", "+1e-30"] {
            assert_eq!(a(tiny), a("1n"), "{tiny}");
        }
        for zero in ["0e-400", "0.0e-999", "0E-1"] {
            assert_eq!(a(zero), Amount::zero(), "{zero}");
        }
        assert_eq!(a("15e-1"), a("1500m"));
        assert_eq!(a("1500000001e-18"), a("2n"), "rounds up, never down");
    }

    #[test]
    fn serializes_as_its_text() {
        let json = serde_json::to_string(&a("1.5Gi")).unwrap();
        assert_eq!(json, r#""1.5Gi""#);
        assert_eq!(serde_json::from_str::<Amount>(&json).unwrap(), a("1536Mi"));
        assert!(serde_json::from_str::<Amount>(r#""lots""#).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(20_000))]

        /// Anything at all: parse never panics.
        #[test]
        fn arbitrary_text_never_panics(text in ".{0,64}") {
            let _ = Amount::parse(&text);
        }

        /// Every shape of the grammar, exponents from -9999 to 9999 included: parse never
        /// panics, arithmetic saturates, and shrinking the exponent never grows the value.
        #[test]
        fn quantity_shapes_never_panic(
            sign in "[+-]?",
            whole in "[0-9]{0,45}",
            fraction in proptest::option::of("[0-9]{0,45}"),
            exponent in proptest::option::of(-9999_i32..=9999),
            suffix in "(|n|u|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)",
            replicas in proptest::num::i32::ANY,
        ) {
            let number = match &fraction { Some(f) => format!("{whole}.{f}"), None => whole.clone() };
            let text = match exponent {
                Some(e) => format!("{sign}{number}e{e}"),
                None => format!("{sign}{number}{suffix}"),
            };
            if let Ok(x) = Amount::parse(&text) {
                let _ = (x.times(replicas), x.plus(&x), x.saturating_minus(&x), x.fraction_of(&x), x.to_quantity());
                if let Some(e) = exponent.filter(|e| *e > -9999)
                    && let Ok(smaller) = Amount::parse(&format!("{sign}{number}e{}", e - 1))
                {
                    proptest::prop_assert!(smaller <= x, "{text}: one power of ten less grew the value");
                }
            }
        }
    }
}
