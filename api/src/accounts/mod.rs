//! Accounts: the rules and flows of an account's life, which `routes/` decode and encode.

pub mod password_policy;
