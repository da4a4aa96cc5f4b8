//! Tenant plans: the one place that knows what a tenant may use.
//!
//! ```text
//!   plans.yaml ──load+validate──▶ PlanCatalog ──effective(plan, overrides)──▶ TenantPolicy
//!                                                                              ├─ quota/limit-range inputs (controller)
//!                                                                              ├─ review_app / review_database / review_workspace
//!                                                                              │    (spec, Inventory of the tenant) → Outcome (API, webhook)
//!                                                                              └─ default_app / default_database / default_workspace
//! ```
//!
//! Everything here is pure: no Kubernetes client, no I/O beyond reading the catalogue text,
//! so the controller, the API and the admission webhook evaluate exactly the same rules.
#![forbid(unsafe_code)]

mod admission;
mod catalog;
mod check;
mod objects;
mod quantity;
mod ssh;
mod tenancy;

pub use admission::{AppReview, HostClaim, Outcome, image_registry};
pub use catalog::{Defaults, Limits, Plan, PlanCatalog, PlanError, TenantPolicy};
pub use check::{AppUsage, Violation};
pub use objects::ObjectReview;
pub use quantity::{Amount, QuantityError};
pub use ssh::{MIN_RSA_BITS, SshKey, check_ssh_public_key};
pub use tenancy::{Inventory, Kind};
