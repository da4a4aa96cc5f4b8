//! Accounts: the rules and flows of an account's life, which `routes/` decode and encode.

pub mod address;
pub mod email_change;
pub mod emails;
pub mod one_time_token;
pub mod password_policy;
pub mod password_reset;
pub mod profile;
pub mod registration;
pub mod sessions;
pub mod verification;
