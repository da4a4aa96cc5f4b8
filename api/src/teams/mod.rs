//! Teams: the people of a tenant and their roles, invitations, and the Kubernetes side of
//! both. Each role is a Kubernetes group the API impersonates (`slipway:tenant:<t>:<role>`,
//! besides `slipway:tenant:<t>`), bound by the controller to what the role may do there:
//!
//! | role | in the namespace (RBAC) | in the API |
//! | --- | --- | --- |
//! | `member` | Apps, Databases, Workspaces; read what runs | list the people |
//! | `admin` | + delete pods and volume claims | + invite, change and remove admins and members |
//! | `owner` | + get and delete the Tenant itself | + the same for owners; delete the tenant |
//!
//! A tenant always keeps one owner: the last one can neither leave nor be demoted or removed.

pub mod invitations;
pub mod members;
mod people;

use crate::{AppState, auth::AuthUser, db::Membership, error::ApiError};
use serde::{Deserialize, Serialize};
use std::fmt;

pub use people::publish;

/// A role in a tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, the tenant itself included.
    Owner,
    /// Manages the tenant's admins and members.
    Admin,
    /// Works in the tenant.
    Member,
}

impl Role {
    /// The stored and serialized name: `owner`, `admin`, `member`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    /// The role a stored name names; an unknown one (never written) counts as the least.
    pub fn parse(name: &str) -> Role {
        match name {
            "owner" => Role::Owner,
            "admin" => Role::Admin,
            _ => Role::Member,
        }
    }

    /// Whether someone of this role may invite, change or remove someone of role `other`
    /// (or give that role): owners anyone, admins admins and members, members nobody.
    pub fn manages(self, other: Role) -> bool {
        match self {
            Role::Owner => true,
            Role::Admin => other != Role::Owner,
            Role::Member => false,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The caller's membership of `tenant`, if any: 404 (never 403) for non-members, so the
/// existence of other people's tenants is not revealed.
///
/// # Errors
/// 404 for non-members; the database does not answer.
pub async fn membership(state: &AppState, user: &AuthUser, tenant: &str) -> Result<Membership, ApiError> {
    state
        .db
        .membership(&user.id, tenant)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("tenant {tenant:?} not found")))
}

/// The caller's role in `tenant`, which must manage people of role `target`.
///
/// # Errors
/// 404 for non-members; 403 saying who may.
pub async fn manager(state: &AppState, user: &AuthUser, tenant: &str, target: Role) -> Result<Role, ApiError> {
    let role = Role::parse(&membership(state, user, tenant).await?.role);
    match role {
        _ if role.manages(target) => Ok(role),
        Role::Member => Err(ApiError::Forbidden(format!(
            "members cannot manage the people of tenant {tenant:?}; ask one of its admins or owners"
        ))),
        _ => Err(ApiError::Forbidden(format!("only owners of tenant {tenant:?} may manage its owners"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_manage_everyone_admins_all_but_owners_members_nobody() {
        use Role::*;
        let table: Vec<(Role, Vec<bool>)> = [Owner, Admin, Member]
            .into_iter()
            .map(|r| (r, [Owner, Admin, Member].map(|o| r.manages(o)).to_vec()))
            .collect();
        assert_eq!(
            table,
            [(Owner, vec![true, true, true]), (Admin, vec![false, true, true]), (Member, vec![false, false, false])]
        );
        assert_eq!(Role::parse("admin"), Admin);
        assert_eq!(Admin.to_string(), "admin");
    }
}
