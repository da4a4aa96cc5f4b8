//! The list of Slipway's namespaced kinds, defined once: everything that enumerates them
//! (admission rules, the webhook's registration and dispatch, the reservation ledger, the
//! member ClusterRole) goes through [`Kind`].

use crate::{App, Database, Workspace};
use kube::Resource;
use std::{borrow::Cow, fmt};

/// The kinds a tenant asks for, all namespaced in the tenant's namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// [`App`].
    App,
    /// [`Database`].
    Database,
    /// [`Workspace`].
    Workspace,
}

impl Kind {
    /// Every kind, in a fixed order.
    pub const ALL: [Kind; 3] = [Kind::App, Kind::Database, Kind::Workspace];

    /// The kind's name as Kubernetes spells it (`App`), from the custom resource itself.
    pub fn name(self) -> Cow<'static, str> {
        match self {
            Kind::App => App::kind(&()),
            Kind::Database => Database::kind(&()),
            Kind::Workspace => Workspace::kind(&()),
        }
    }

    /// The resource's plural (`apps`), as in URLs, RBAC rules and webhook rules.
    pub fn plural(self) -> Cow<'static, str> {
        match self {
            Kind::App => App::plural(&()),
            Kind::Database => Database::plural(&()),
            Kind::Workspace => Workspace::plural(&()),
        }
    }

    /// The kind named `name` (as [`Kind::name`] spells it), if it is one of Slipway's.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_plurals_come_from_the_custom_resources() {
        assert_eq!(Kind::ALL.map(|k| k.plural().into_owned()), ["apps", "databases", "workspaces"]);
        assert_eq!(Kind::from_name("Database"), Some(Kind::Database));
        assert_eq!(Kind::from_name("database"), None);
        assert_eq!(Kind::Workspace.to_string(), "Workspace");
    }
}
