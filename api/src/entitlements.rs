//! Entitlements: what an account may have. Each account may own a number of tenants
//! (the platform's default, [`EntitlementsConfig::default_max_tenants`], unless a platform
//! admin set its own) and choose the plans the catalogue marks `selfService`, plus those a
//! platform admin granted it. Platform admins are the verified accounts whose addresses the
//! operator lists ([`EntitlementsConfig::admin_emails`]).

use crate::{
    AppState,
    db::{TenantRefusal, User},
    error::ApiError,
};
use serde::Serialize;
use slipway_policies::PlanCatalog;

/// The operator's settings of entitlements.
#[derive(Clone, Debug)]
pub struct EntitlementsConfig {
    /// Tenants an account may own unless a platform admin says otherwise (1 by default).
    pub default_max_tenants: u32,
    /// Addresses (lowercase) of the platform admins; an account is an admin once it has
    /// verified one of them.
    pub admin_emails: Vec<String>,
}

impl Default for EntitlementsConfig {
    fn default() -> Self {
        Self { default_max_tenants: 1, admin_emails: Vec::new() }
    }
}

impl EntitlementsConfig {
    /// Whether the account at `email` is a platform admin: verified, at a listed address.
    pub fn is_admin(&self, email: &str, verified: bool) -> bool {
        verified && self.admin_emails.iter().any(|a| a.eq_ignore_ascii_case(email))
    }
}

/// What one account may have, as `GET /me` and the admin endpoints show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Entitlements {
    /// Tenants it may own.
    pub max_tenants: u32,
    /// Plans it may choose: the self-service ones and those granted to it, by name.
    pub plans: Vec<String>,
}

/// The account's entitlements, from its row, its grants and the catalogue.
pub fn resolve(config: &EntitlementsConfig, catalog: &PlanCatalog, user: &User, granted: &[String]) -> Entitlements {
    let mut plans: Vec<String> =
        catalog.plans().filter(|p| p.self_service || granted.contains(&p.name)).map(|p| p.name.clone()).collect();
    plans.sort();
    Entitlements { max_tenants: user.max_tenants.unwrap_or(config.default_max_tenants), plans }
}

/// The entitlements of `user`.
///
/// # Errors
/// The database does not answer.
pub async fn of(state: &AppState, user: &User) -> Result<Entitlements, ApiError> {
    let granted = state.db.granted_plans(&user.id).await?;
    Ok(resolve(&state.entitlements, &state.plans, user, &granted))
}

/// Records (commits) tenant `name` on `plan` for `user`, if the account may have it; the
/// caller releases the claim if the Tenant cannot be created (see
/// [`crate::db::Database::claim_tenant`]).
///
/// # Errors
/// 422 for a plan that does not exist; 403 for a plan the account may not choose or when it
/// owns as many tenants as it may (saying which, and how to get more); 409 when the name is
/// taken; 401 when the account was deleted.
pub async fn claim_tenant(state: &AppState, user_id: &str, name: &str, plan: &str) -> Result<(), ApiError> {
    state.plans.plan(plan).map_err(|e| ApiError::invalid("plan", e.to_string()))?;
    let gone = || ApiError::Unauthorized("the account of this access token no longer exists".into());
    let user = state.db.user_by_id(user_id).await?.ok_or_else(gone)?;
    let entitled = of(state, &user).await?;
    if !entitled.plans.iter().any(|p| p == plan) {
        return Err(ApiError::Forbidden(format!(
            "the plan {plan:?} is not available to your account (yours: {}); a platform admin can grant it",
            entitled.plans.join(", ")
        )));
    }
    match state.db.claim_tenant(name, plan, &user.id, entitled.max_tenants).await? {
        Ok(()) => Ok(()),
        Err(TenantRefusal::AtLimit(owned)) => Err(ApiError::Forbidden(format!(
            "your account may own {} tenant(s) and owns {} ({}): delete one (DELETE /api/v1/tenants/NAME) or ask a \
             platform admin for more",
            entitled.max_tenants,
            owned.len(),
            owned.join(", ")
        ))),
        Err(TenantRefusal::NameTaken) => {
            Err(ApiError::Conflict(format!("the tenant name {name:?} is taken; choose another")))
        }
        Err(TenantRefusal::NoAccount) => Err(gone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(max_tenants: Option<u32>) -> User {
        User {
            id: "u".into(),
            email: "ada@example.com".into(),
            name: "Ada".into(),
            password_hash: String::new(),
            verified: true,
            max_tenants,
            suspended: false,
        }
    }

    #[test]
    fn self_service_plans_and_grants_make_the_entitlements() {
        let (config, catalog) = (EntitlementsConfig::default(), PlanCatalog::embedded());
        let plain = resolve(&config, &catalog, &user(None), &[]);
        assert_eq!(plain, Entitlements { max_tenants: 1, plans: vec!["free".into()] });
        let granted = resolve(&config, &catalog, &user(Some(3)), &["pro".into(), "gone".into()]);
        assert_eq!(granted, Entitlements { max_tenants: 3, plans: vec!["free".into(), "pro".into()] });
    }

    #[test]
    fn admins_are_listed_and_verified() {
        let config = EntitlementsConfig { admin_emails: vec!["root@example.com".into()], ..Default::default() };
        assert!(config.is_admin("Root@Example.com", true));
        assert!(!config.is_admin("root@example.com", false), "an unverified address proves nothing");
        assert!(!config.is_admin("ada@example.com", true));
    }
}
