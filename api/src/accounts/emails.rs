//! The account emails, composed (pure). The verification email goes to an address nobody has
//! proven yet, so it holds nothing the registrant wrote (not even the name they gave):
//! registering someone else's address can only make Slipway send that person these fixed
//! words and a link.

use slipway_mail::Email;

/// How long a verification link works, in hours.
pub const VERIFY_HOURS: i64 = 24;

/// "Confirm your address": the link that verifies the account.
pub fn verify_address(link: &str) -> Email {
    Email {
        subject: "Confirm your email address for Slipway".into(),
        body: format!(
            "Hello,\n\nConfirm that this address is yours to start using Slipway:\n\n    {link}\n\n\
             The link works once, for {VERIFY_HOURS} hours. If you did not sign up, ignore this email: \
             nothing happens without it.\n\n-- Slipway\n"
        ),
        message_id: None,
    }
}

/// "Someone tried to register with your address": sent instead of a second account, so
/// registration answers the same whether or not an address has an account. `name` is the
/// existing account's, never the new registrant's.
pub fn registration_attempt(name: &str, login_url: &str) -> Email {
    Email {
        subject: "Someone tried to sign up for Slipway with your address".into(),
        body: format!(
            "Hello {name},\n\nSomeone tried to create a Slipway account with this address, which already has \
             one. Nothing was changed.\n\nIf it was you, log in instead: POST {login_url}\n\
             If it was not, you can ignore this email.\n\n-- Slipway\n"
        ),
        message_id: None,
    }
}

/// How long a password reset link works, in minutes (OWASP Forgot Password Cheat Sheet:
/// short-lived).
pub const RESET_MINUTES: i64 = 30;

/// "Reset your password": the link to choose a new one. Sent only to an account's own,
/// stored address.
pub fn reset_password(name: &str, link: &str) -> Email {
    Email {
        subject: "Reset your Slipway password".into(),
        body: format!(
            "Hello {name},\n\nSomeone asked to reset the password of your Slipway account. To choose a new one, \
             POST the token of this link with your new password to /api/v1/auth/password-reset/confirm:\n\n    \
             {link}\n\nThe link works once, for {RESET_MINUTES} minutes; using it logs out every session of the \
             account. If you did not ask, ignore this email: your password stays as it is.\n\n-- Slipway\n"
        ),
        message_id: None,
    }
}

/// "Your address is being changed": to the old address, when someone logged in to the
/// account (with its password) asked to move it to `new_email`.
pub fn address_change_notice(name: &str, new_email: &str) -> Email {
    Email {
        subject: "Your Slipway address is being changed".into(),
        body: format!(
            "Hello {name},\n\nSomeone logged in to your Slipway account asked to change its address to \
             {new_email}. The change happens only once that address confirms it.\n\nIf it was not you, reset \
             your password now (POST /api/v1/auth/password-reset): that ends every session.\n\n-- Slipway\n"
        ),
        message_id: None,
    }
}

/// "You are invited": the link to join `tenant` as `role`, from `inviter` (their verified
/// address). Everything in it is Slipway's words or checked names: a tenant name is a DNS
/// label, an address was verified.
pub fn invitation(tenant: &str, inviter: &str, role: &str, link: &str) -> Email {
    Email {
        subject: format!("You are invited to the Slipway tenant {tenant}"),
        body: format!(
            "Hello,\n\n{inviter} invited this address to the Slipway tenant \"{tenant}\" as {role}.\n\n\
             To join, log in to Slipway with this address (sign up with it first if you have no account), then \
             POST the token of this link to /api/v1/invitations/accept:\n\n    {link}\n\n\
             The link works once, for {days} days. If you do not want to join, ignore this email.\n\n-- Slipway\n",
            days = crate::teams::invitations::INVITATION_DAYS
        ),
        message_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verification_email_holds_the_link_and_its_lifetime() {
        let email = verify_address("https://slipway.example/api/v1/auth/verify?token=abc");
        assert!(email.body.contains("\n    https://slipway.example/api/v1/auth/verify?token=abc\n"), "{}", email.body);
        assert!(email.body.contains("for 24 hours"), "{}", email.body);
    }

    #[test]
    fn the_attempt_notice_points_at_login() {
        let email = registration_attempt("Ada", "https://slipway.example/api/v1/auth/login");
        assert!(email.subject.contains("tried to sign up"));
        assert!(email.body.contains("POST https://slipway.example/api/v1/auth/login"), "{}", email.body);
    }
}
