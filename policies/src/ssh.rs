//! SSH public keys users hand in for their Workspaces, checked before they reach a pod.

use ssh_key::{Algorithm, HashAlg, PublicKey, public::KeyData};

/// Shortest RSA modulus accepted, in bits: NIST SP 800-57 Part 1 (rev. 5) deems RSA below
/// 2048 bits unfit for protection past 2010, and OpenSSH refuses smaller RSA keys since 8.8.
pub const MIN_RSA_BITS: usize = 2048;

/// An accepted public key: what the API and emails can say about it without showing it whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshKey {
    /// Algorithm name as in authorized_keys, e.g. `ssh-ed25519`.
    pub algorithm: String,
    /// RSA modulus size in bits; `None` for other algorithms.
    pub rsa_bits: Option<usize>,
    /// OpenSSH SHA-256 fingerprint, e.g. `SHA256:...` (what `ssh-keygen -lf` prints).
    pub fingerprint: String,
    /// The key's comment, often the owner's email; may be empty.
    pub comment: String,
}

/// Checks one public key in OpenSSH authorized_keys form (`<type> <base64> [comment]`):
/// `ssh-ed25519`, `ecdsa-sha2-nistp256/384/521`, or `ssh-rsa` of at least [`MIN_RSA_BITS`].
/// DSA is refused (OpenSSH disabled it in 7.0), as are certificates, option prefixes
/// (`command=...`, which could run commands on login) and anything that is not one key.
///
/// # Errors
/// A message naming what is wrong and what to send instead.
pub fn check_ssh_public_key(line: &str) -> Result<SshKey, String> {
    let line = line.trim();
    if line.is_empty() {
        return Err("the key is empty; paste the content of a .pub file such as ~/.ssh/id_ed25519.pub".into());
    }
    if line.contains(['\n', '\r']) {
        return Err("send one key per entry, on one line".into());
    }
    let key = PublicKey::from_openssh(line).map_err(|e| {
        format!("not an OpenSSH public key ({e}); paste the content of a .pub file such as ~/.ssh/id_ed25519.pub, without options")
    })?;
    let rsa_bits = match key.key_data() {
        KeyData::Ed25519(_) | KeyData::Ecdsa(_) => None,
        KeyData::Rsa(rsa) => {
            let modulus = rsa.n.as_positive_bytes().unwrap_or_default();
            let bits = modulus.first().map_or(0, |b| modulus.len() * 8 - b.leading_zeros() as usize);
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "this RSA key has {bits} bits; use at least {MIN_RSA_BITS} bits, or better an Ed25519 key (ssh-keygen -t ed25519)"
                ));
            }
            Some(bits)
        }
        _ => {
            let algorithm = key.algorithm();
            let hint = if algorithm == Algorithm::Dsa { " (DSA is obsolete)" } else { "" };
            return Err(format!(
                "{} keys are not accepted{hint}; use ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa of at least {MIN_RSA_BITS} bits",
                algorithm.as_str()
            ));
        }
    };
    Ok(SshKey {
        algorithm: key.algorithm().as_str().to_string(),
        rsa_bits,
        fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
        comment: key.comment().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str = include_str!("../tests/ssh-keys/ed25519.pub");
    const ECDSA: &str = include_str!("../tests/ssh-keys/ecdsa-p256.pub");
    const RSA_2048: &str = include_str!("../tests/ssh-keys/rsa-2048.pub");
    const RSA_1024: &str = include_str!("../tests/ssh-keys/rsa-1024.pub");
    const DSA: &str = include_str!("../tests/ssh-keys/dsa.pub");

    #[test]
    fn accepts_modern_keys() {
        let ed = check_ssh_public_key(ED25519).unwrap();
        assert_eq!((ed.algorithm.as_str(), ed.comment.as_str(), ed.rsa_bits), ("ssh-ed25519", "ada@example.com", None));
        assert!(ed.fingerprint.starts_with("SHA256:"), "{}", ed.fingerprint);
        assert_eq!(check_ssh_public_key(ECDSA).unwrap().algorithm, "ecdsa-sha2-nistp256");
        assert_eq!(check_ssh_public_key(RSA_2048).unwrap().rsa_bits, Some(2048));
    }

    #[test]
    fn refuses_weak_obsolete_and_malformed_keys() {
        let short = check_ssh_public_key(RSA_1024).unwrap_err();
        assert!(short.starts_with("this RSA key has 1024 bits; use at least 2048 bits"), "{short}");
        let dsa = check_ssh_public_key(DSA).unwrap_err();
        assert!(dsa.starts_with("ssh-dss keys are not accepted (DSA is obsolete)"), "{dsa}");
        for bad in ["", "ssh-ed25519", "ssh-ed25519 AAAA", "hello world", "-----BEGIN OPENSSH PRIVATE KEY-----"] {
            assert!(check_ssh_public_key(bad).is_err(), "{bad:?}");
        }
        let with_options = format!("command=\"rm -rf ~\" {}", ED25519.trim());
        assert!(check_ssh_public_key(&with_options).is_err(), "authorized_keys options are refused");
        let two = format!("{}\n{}", ED25519.trim(), ECDSA.trim());
        assert_eq!(check_ssh_public_key(&two).unwrap_err(), "send one key per entry, on one line");
    }
}
