//! Pure builders of the objects a Workspace owns: the authorized_keys Secret, the SSH
//! NodePort Service, the StatefulSet with the home volume.

use crate::{
    identity::{IMAGE_PULL_POLICY, Identity, restricted_container, restricted_pod_as},
    instance,
};
use k8s_openapi::{
    ByteString,
    api::{
        apps::v1::StatefulSet,
        core::v1::{
            Container, ContainerPort, EnvVar, PodSpec, Probe, Secret, SecretVolumeSource, Service, ServicePort,
            ServiceSpec, TCPSocketAction, Volume, VolumeMount,
        },
    },
    apimachinery::pkg::util::intstr::IntOrString,
};
use slipway_crds::WorkspaceSpec;
use std::collections::BTreeMap;

/// The user a Workspace logs in as; the image's non-root user (uid [`USER_ID`]).
pub const USER: &str = "dev";

/// The uid (and gid, and fsGroup) of [`USER`] in Slipway's workspace image.
pub const USER_ID: i64 = 1000;

/// The port sshd listens on inside the container: above 1024, since it runs without root.
pub const SSH_PORT: i32 = 2222;

/// Where the authorized keys are mounted; sshd's `AuthorizedKeysFile` points here.
pub const KEYS_DIR: &str = "/etc/slipway/ssh";

pub use slipway_policies::rules::names::ssh_keys_secret as keys_secret_name;

/// The `authorized_keys` Secret: one key per line, as sshd reads them. Mounted as a volume
/// (not through `subPath`), so the kubelet refreshes the file in the running pod when the keys
/// change (<https://kubernetes.io/docs/concepts/configuration/secret/#using-secrets-as-files-from-a-pod>):
/// rotating keys restarts nothing and the home volume stays.
pub fn keys_secret(id: &Identity<'_>, spec: &WorkspaceSpec) -> Secret {
    let mut keys = spec.ssh_keys.iter().map(|k| k.trim()).collect::<Vec<_>>().join("\n");
    keys.push('\n');
    Secret {
        metadata: id.meta(&keys_secret_name(id.name)),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([("authorized_keys".to_string(), ByteString(keys.into_bytes()))])),
        ..Default::default()
    }
}

/// The SSH Service: a NodePort on port 22 to the container's sshd; Kubernetes allocates the
/// node port.
pub fn ssh_service(id: &Identity<'_>) -> Service {
    Service {
        metadata: id.meta(id.name),
        spec: Some(ServiceSpec {
            type_: Some("NodePort".into()),
            selector: Some(id.selector()),
            ports: Some(vec![ServicePort {
                name: Some("ssh".into()),
                port: 22,
                target_port: Some(IntOrString::String("ssh".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The StatefulSet: one pod of `image` (the spec's, else `default_image`) running as
/// [`USER`], with the home volume `home` at `/home/dev` (deleted with the Workspace) and the
/// keys read-only at [`KEYS_DIR`].
pub fn stateful_set(id: &Identity<'_>, spec: &WorkspaceSpec, default_image: &str) -> StatefulSet {
    let home = format!("/home/{USER}");
    let container = Container {
        name: "workspace".into(),
        image: Some(spec.image.clone().unwrap_or_else(|| default_image.to_string())),
        image_pull_policy: Some(IMAGE_PULL_POLICY.into()),
        env: Some(vec![
            EnvVar { name: "HOME".into(), value: Some(home.clone()), ..Default::default() },
            EnvVar { name: "USER".into(), value: Some(USER.into()), ..Default::default() },
        ]),
        ports: Some(vec![ContainerPort { name: Some("ssh".into()), container_port: SSH_PORT, ..Default::default() }]),
        resources: Some(instance::guaranteed(spec.cpu.as_ref(), spec.memory.as_ref())),
        readiness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(SSH_PORT), ..Default::default() }),
            period_seconds: Some(5),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            VolumeMount { name: "home".into(), mount_path: home, ..Default::default() },
            VolumeMount {
                name: "ssh-keys".into(),
                mount_path: KEYS_DIR.into(),
                read_only: Some(true),
                ..Default::default()
            },
        ]),
        security_context: Some(restricted_container()),
        ..Default::default()
    };
    let pod = PodSpec {
        containers: vec![container],
        security_context: Some(restricted_pod_as(USER_ID)),
        volumes: Some(vec![Volume {
            name: "ssh-keys".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(keys_secret_name(id.name)),
                // Read-only for everyone: sshd's StrictModes refuses group- or world-writable keys.
                default_mode: Some(0o444),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ..Default::default()
    };
    instance::stateful_set(id, None, pod, "home", &spec.storage, true)
}

/// The command that connects: `ssh -p PORT dev@HOST`.
pub fn ssh_command(host: &str, node_port: i32) -> String {
    format!("ssh -p {node_port} {USER}@{host}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::OwnerReference};
    use slipway_crds::WORKSPACE_LABEL;

    fn id() -> Identity<'static> {
        Identity {
            name: "box",
            namespace: "tenant-acme",
            tenant: "acme",
            owner: OwnerReference { name: "box".into(), ..Default::default() },
            label: WORKSPACE_LABEL,
        }
    }

    fn spec(image: Option<&str>) -> WorkspaceSpec {
        WorkspaceSpec {
            owner: "ada@example.com".into(),
            cpu: Some(Quantity("1".into())),
            memory: Some(Quantity("1Gi".into())),
            storage: Quantity("5Gi".into()),
            ssh_keys: vec!["ssh-ed25519 AAAA a@b ".into(), "ssh-ed25519 BBBB c@d".into()],
            image: image.map(String::from),
        }
    }

    #[test]
    fn keys_become_one_authorized_keys_file() {
        let s = keys_secret(&id(), &spec(None));
        let text = String::from_utf8(s.data.unwrap()["authorized_keys"].0.clone()).unwrap();
        assert_eq!(text, "ssh-ed25519 AAAA a@b\nssh-ed25519 BBBB c@d\n");
    }

    #[test]
    fn pod_runs_as_the_user_with_home_and_keys_mounted() {
        let sts = stateful_set(&id(), &spec(None), "slipway/workspace:1").spec.unwrap();
        assert_eq!(sts.replicas, Some(1));
        assert_eq!(sts.persistent_volume_claim_retention_policy.unwrap().when_deleted.as_deref(), Some("Delete"));
        let pod = sts.template.spec.unwrap();
        assert_eq!(pod.security_context.unwrap().run_as_user, Some(USER_ID));
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some("slipway/workspace:1"));
        let mounts: Vec<_> = c.volume_mounts.as_ref().unwrap().iter().map(|m| m.mount_path.as_str()).collect();
        assert_eq!(mounts, ["/home/dev", KEYS_DIR]);
        let custom = stateful_set(&id(), &spec(Some("ghcr.io/me/box:2")), "slipway/workspace:1");
        assert_eq!(
            custom.spec.unwrap().template.spec.unwrap().containers[0].image.as_deref(),
            Some("ghcr.io/me/box:2")
        );
        assert_eq!(ssh_command("192.0.2.5", 30022), "ssh -p 30022 dev@192.0.2.5");
        assert_eq!(ssh_service(&id()).spec.unwrap().type_.as_deref(), Some("NodePort"));
    }
}
