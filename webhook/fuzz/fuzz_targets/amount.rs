//! Kubernetes quantity strings, arbitrary or shaped like quantities with huge mantissas and
//! exponents: parsing must never panic, and neither may the arithmetic the rules do on
//! parsed amounts (compare, add, multiply by replicas, subtract, fraction).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use slipway_policies::Amount;

/// The suffixes Kubernetes accepts, plus a few it does not.
const SUFFIXES: &[&str] =
    &["", "m", "n", "u", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "e", "E3", "e-9", "x"];

/// One quantity text: raw, or assembled from parts so the parser's number paths are reached.
#[derive(Arbitrary, Debug)]
enum Text {
    Raw(String),
    Shaped { sign: Option<bool>, mantissa: u128, fraction: Option<u64>, exponent: Option<i16>, suffix: u8 },
}

impl Text {
    fn render(&self) -> String {
        match self {
            Text::Raw(s) => s.clone(),
            Text::Shaped { sign, mantissa, fraction, exponent, suffix } => {
                let mut s = String::new();
                match sign {
                    Some(true) => s.push('+'),
                    Some(false) => s.push('-'),
                    None => {}
                }
                s.push_str(&mantissa.to_string());
                if let Some(f) = fraction {
                    s.push('.');
                    s.push_str(&f.to_string());
                }
                if let Some(e) = exponent {
                    s.push('e');
                    s.push_str(&e.to_string());
                }
                s.push_str(SUFFIXES[usize::from(*suffix) % SUFFIXES.len()]);
                s
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    a: Text,
    b: Text,
    replicas: i32,
}

fuzz_target!(|input: Input| {
    let (a, b) = (input.a.render(), input.b.render());
    let Ok(x) = Amount::parse(&a) else { return };
    let _ = x.times(input.replicas);
    let Ok(y) = Amount::parse(&b) else { return };
    let _ = x.partial_cmp(&y);
    let sum = x.plus(&y);
    assert!(sum >= x && sum >= y, "{a:?} + {b:?} is smaller than a summand");
    let _ = sum.saturating_minus(&y);
    let _ = x.fraction_of(&y);
    let _ = x.to_quantity();
});
