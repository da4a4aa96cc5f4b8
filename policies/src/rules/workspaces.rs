//! Workspace ownership and keys. A Workspace's keys open its owner's home directory and its
//! access instructions are mailed to its owner, so: the owner is one of the tenant's people
//! (an owner, admin or member),
//! at an email domain the platform allows; a member creates Workspaces only for themself and
//! changes nothing in another member's Workspace (an operator may); and every key is one
//! Slipway accepts (see [`check_ssh_public_key`]).

use crate::{Outcome, Review, Violation, check_ssh_public_key, review::Requester};
use slipway_crds::WorkspaceSpec;

/// Emails compare case-insensitively (Slipway stores them lowercase; a kubectl user's name
/// may not be).
fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// The keys: at least one, each accepted.
pub(crate) fn review_keys(spec: &WorkspaceSpec, out: &mut Outcome) {
    if spec.ssh_keys.is_empty() {
        out.deny(Violation::invalid(
            "spec.sshKeys",
            "add at least one public key, e.g. the content of ~/.ssh/id_ed25519.pub",
        ));
    }
    for (i, key) in spec.ssh_keys.iter().enumerate() {
        if let Err(message) = check_ssh_public_key(key) {
            out.deny(Violation::invalid(format!("spec.sshKeys[{i}]"), message));
        }
    }
}

/// Who owns the Workspace and who may change it.
pub(crate) fn review_ownership(review: &Review<'_, WorkspaceSpec>, out: &mut Outcome) {
    let owner = &review.spec.owner;
    if let Requester::Member(member) = review.requester {
        let refusal = match review.previous {
            None if !same(owner, member) => {
                Some(format!("members create Workspaces for themselves: set it to {member:?}"))
            }
            Some(previous) if previous != review.spec && !same(&previous.owner, member) => {
                Some(format!("only its owner {:?} may change this Workspace; you are {member:?}", previous.owner))
            }
            Some(previous) if !same(&previous.owner, owner) => {
                Some(format!("only an operator may give a Workspace to someone else; its keys stay yours ({member:?})"))
            }
            _ => None,
        };
        if let Some(message) = refusal {
            out.deny(Violation::forbidden("spec.owner", message));
        }
    }
    let people: Vec<&str> =
        review.owners.iter().map(|o| o.email.as_str()).chain(review.members.iter().map(|m| m.email.as_str())).collect();
    if !people.iter().any(|p| same(p, owner)) {
        out.deny(Violation::invalid(
            "spec.owner",
            format!("{owner:?} is not in tenant {:?} (its people: {})", review.tenant, people.join(", ")),
        ));
    }
    let domains = &review.platform.workspace_email_domains;
    let domain = owner.rsplit_once('@').map(|(_, d)| d);
    if !domains.is_empty() && !domain.is_some_and(|d| domains.iter().any(|a| same(a, d))) {
        let allowed = match domains.as_slice() {
            [one] => one.clone(),
            [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
            [] => unreachable!("checked above"),
        };
        out.deny(Violation::forbidden(
            "spec.owner",
            format!("workspaces are available to accounts at {allowed} only; {owner} is not such an account"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Inventory, Platform};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use slipway_crds::{MemberRole, TenantMember, TenantOwner};

    const ED25519: &str = include_str!("../../tests/ssh-keys/ed25519.pub");

    fn spec(owner: &str) -> WorkspaceSpec {
        WorkspaceSpec {
            owner: owner.into(),
            cpu: None,
            memory: None,
            storage: Quantity("1Gi".into()),
            ssh_keys: vec![ED25519.trim().into()],
            image: None,
        }
    }

    fn judge(
        spec: &WorkspaceSpec,
        previous: Option<&WorkspaceSpec>,
        requester: Requester<'_>,
        domains: &[&str],
    ) -> Outcome {
        let owners = [TenantOwner { email: "ada@uni.example".into() }];
        let members = [TenantMember { email: "bob@uni.example".into(), role: MemberRole::Member }];
        let platform = Platform::new("apps.example.com", domains);
        let review = Review {
            tenant: "lab",
            owners: &owners,
            members: &members,
            name: "box",
            spec,
            previous,
            requester,
            others: &Inventory::default(),
            hosts: &[],
            platform: &platform,
        };
        let mut out = Outcome::default();
        review_ownership(&review, &mut out);
        out
    }

    #[test]
    fn members_create_for_themselves_and_change_only_their_own() {
        let ada = spec("ada@uni.example");
        let bob = Requester::Member("bob@uni.example");
        assert!(judge(&ada, None, Requester::Member("Ada@Uni.Example"), &[]).allowed());
        let o = judge(&ada, None, bob, &[]);
        assert_eq!(o.message(), r#"spec.owner: members create Workspaces for themselves: set it to "bob@uni.example""#);
        assert_eq!(o.status_code(), 403);

        let mut resized = ada.clone();
        resized.cpu = Some(Quantity("2".into()));
        let o = judge(&resized, Some(&ada), bob, &[]);
        assert_eq!(
            o.message(),
            r#"spec.owner: only its owner "ada@uni.example" may change this Workspace; you are "bob@uni.example""#
        );
        assert!(judge(&ada, Some(&ada), bob, &[]).allowed(), "an unchanged spec (a label change) is not a change");
        assert!(judge(&resized, Some(&ada), Requester::Member("ada@uni.example"), &[]).allowed());
        assert!(judge(&resized, Some(&ada), Requester::Operator, &[]).allowed());
        let handed = spec("bob@uni.example");
        assert!(
            judge(&handed, Some(&ada), Requester::Member("ada@uni.example"), &[])
                .message()
                .contains("only an operator may give")
        );
        assert!(judge(&handed, Some(&ada), Requester::Operator, &[]).allowed());
    }

    #[test]
    fn the_owner_is_a_tenant_owner_at_an_allowed_domain() {
        let o = judge(&spec("eve@uni.example"), None, Requester::Operator, &[]);
        assert_eq!(
            o.message(),
            r#"spec.owner: "eve@uni.example" is not in tenant "lab" (its people: ada@uni.example, bob@uni.example)"#
        );
        assert_eq!(o.status_code(), 422);
        assert!(judge(&spec("ada@uni.example"), None, Requester::Operator, &["UNI.example"]).allowed());
        let o = judge(&spec("ada@uni.example"), None, Requester::Operator, &["a.example", "b.example", "c.example"]);
        assert_eq!(
            o.message(),
            "spec.owner: workspaces are available to accounts at a.example, b.example or c.example only; ada@uni.example is not such an account"
        );
        assert_eq!(o.status_code(), 403);
    }

    #[test]
    fn at_least_one_key_and_each_accepted() {
        let mut out = Outcome::default();
        review_keys(&WorkspaceSpec { ssh_keys: vec![], ..spec("ada@uni.example") }, &mut out);
        assert_eq!(out.violations[0].field, "spec.sshKeys");
        let mut out = Outcome::default();
        review_keys(&WorkspaceSpec { ssh_keys: vec![ED25519.into(), "ssh-dss AAAA".into()], ..spec("a@b") }, &mut out);
        assert_eq!(out.violations.iter().map(|v| v.field.as_str()).collect::<Vec<_>>(), ["spec.sshKeys[1]"]);
    }
}
