//! Email addresses as accounts hold them.

/// Lowercased, trimmed email if it looks like `local@domain.tld` (RFC 5321 caps it at 254).
pub fn normalize(email: &str) -> Option<String> {
    let email = email.trim().to_ascii_lowercase();
    let (local, domain) = email.split_once('@')?;
    let ok = email.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then_some(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(normalize(" Ada@Example.COM ").as_deref(), Some("ada@example.com"));
        for bad in ["", "ada", "ada@", "@example.com", "ada@example", "a b@example.com", "a@b@example.com", "ada@.com"]
        {
            assert_eq!(normalize(bad), None, "{bad}");
        }
    }
}
