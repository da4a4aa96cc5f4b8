//! The rules, one module per family. Each is a set of free functions over a
//! [`TenantPolicy`](crate::TenantPolicy) and the object under review that add
//! [`Violation`](crate::Violation)s and warnings to an [`Outcome`](crate::Outcome); the
//! `review_*` methods of `TenantPolicy` compose them per kind.

pub mod counts;
pub mod engines;
pub mod env;
pub mod exposure;
pub mod images;
pub mod names;
pub mod sizes;
pub mod totals;
pub mod workspaces;
