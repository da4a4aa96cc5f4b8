//! What a new password must be: 12 to 128 characters and hard to guess.
//!
//! Length follows OWASP ASVS 4.0 V2.1.1/V2.1.2 (at least 12, at most 128: the upper bound
//! caps hashing cost). Guessability is zxcvbn's estimate (Dropbox's algorithm, the `zxcvbn`
//! crate): its dictionaries hold the 30,000 most common passwords (xato's list), English
//! words, names and keyboard patterns, and the account's own email and name are added, so
//! `aaaaaaaaaaaa`, `password1234` or the email address itself are refused. A score of 3
//! ("safely unguessable: moderate protection from offline slow-hash scenario", about 10^8
//! guesses or more) is required, as zxcvbn's authors recommend for sign-up forms.

use crate::error::FieldError;

/// Shortest password accepted (OWASP ASVS 4.0 V2.1.1).
pub const MIN_CHARS: usize = 12;
/// Longest password accepted (OWASP ASVS 4.0 V2.1.2; bounds argon2's work).
pub const MAX_CHARS: usize = 128;
/// Lowest zxcvbn score accepted (0 to 4).
const MIN_SCORE: u8 = 3;

/// Checks a new password for the account of `email` and `name`; the problem for the field
/// `field` (e.g. `password`) says how to fix it.
///
/// # Errors
/// The password is too short, too long, or guessable, with zxcvbn's reason when it has one.
pub fn check(field: &str, password: &str, email: &str, name: &str) -> Result<(), FieldError> {
    let chars = password.chars().count();
    let problem = |message: String| FieldError { field: field.into(), message };
    if !(MIN_CHARS..=MAX_CHARS).contains(&chars) {
        return Err(problem(format!("use {MIN_CHARS} to {MAX_CHARS} characters (it has {chars})")));
    }
    // The whole address and name, and their parts (zxcvbn matches each input as one word).
    let mut own: Vec<&str> = vec![email, name];
    own.extend(email.split(['@', '.', '_', '-', '+']).chain(name.split_whitespace()).filter(|w| w.len() > 2));
    let estimate = zxcvbn::zxcvbn(password, &own);
    let score = u8::from(estimate.score());
    if score >= MIN_SCORE {
        return Ok(());
    }
    let why = estimate
        .feedback()
        .and_then(|f| f.warning())
        .map_or_else(|| "it is too easy to guess".to_string(), |w| w.to_string().trim_end_matches('.').to_lowercase());
    Err(problem(format!(
        "choose a harder password: {why} (strength {score} of 4, at least {MIN_SCORE} needed); a few unrelated words \
         make a strong one"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guessable_passwords_are_refused_with_a_reason() {
        for weak in ["aaaaaaaaaaaa", "password1234", "qwertyuiop123", "123456789012", "iloveyou2024!"] {
            let e = check("password", weak, "ada@example.com", "Ada").unwrap_err();
            assert!(e.message.starts_with("choose a harder password"), "{weak}: {}", e.message);
        }
    }

    #[test]
    fn the_accounts_own_email_does_not_make_a_password() {
        // Strong for anyone else (zxcvbn scores it 4 without the account's inputs).
        assert!(check("password", "ada.lovelace@example.com", "grace@example.com", "Grace").is_ok());
        assert!(check("password", "ada.lovelace@example.com", "ada.lovelace@example.com", "Ada").is_err());
    }

    #[test]
    fn length_is_bounded_both_ways() {
        let short = check("password", "Tr0ub4dor&3", "ada@example.com", "Ada").unwrap_err();
        assert_eq!(short.message, "use 12 to 128 characters (it has 11)");
        assert!(check("password", &"x".repeat(129), "ada@example.com", "Ada").is_err());
    }

    #[test]
    fn unrelated_words_pass() {
        check("password", "correct horse battery staple", "ada@example.com", "Ada").unwrap();
        check("password", "violet kettle marathon", "ada@example.com", "Ada").unwrap();
    }
}
