//! Tenant plans: the one place that knows what a tenant may have and who may change what.
//!
//! ```text
//!  plans.yaml ──PlanCatalog::effective(plan, overrides)──▶ TenantPolicy
//!     review_app / review_database / review_workspace(Review) ──▶ Outcome   (webhook enforces, API previews)
//!     default_app / default_database / default_workspace           (mutating webhook)
//!     Spec::footprint, grows, node_port_quota, limit_of             (ledger, controller)
//!
//!  Review = spec (+ previous on UPDATE) + requester + tenant's Inventory + hosts + Platform
//!  rules/: names · counts · sizes · totals · exposure · images · engines · workspaces
//! ```
//!
//! Every rule lives once, here, as a free function of its family's module under `rules/`;
//! [`TenantPolicy`]'s `review_*` methods compose them per kind. Everything is pure: no
//! Kubernetes client, no I/O beyond reading the catalogue text, so the admission webhook (the
//! enforcement point), the API (a preview with precise errors) and the controller evaluate
//! exactly the same rules.
#![forbid(unsafe_code)]

mod catalog;
mod defaults;
mod inventory;
mod policy;
mod quantity;
mod review;
pub mod rules;
mod ssh;

pub use catalog::{Defaults, EMBEDDED_PLANS, Limits, Minimums, Plan, PlanCatalog, PlanError};
pub use inventory::{Footprint, Footprints, Inventory, Total};
pub use policy::{Spec, TenantPolicy};
pub use quantity::{Amount, QuantityError};
pub use review::{HostClaim, Outcome, Platform, Reason, Requester, Review, Violation};
pub use slipway_crds::Kind;
pub use ssh::{MIN_RSA_BITS, SshKey, check_ssh_public_key};
