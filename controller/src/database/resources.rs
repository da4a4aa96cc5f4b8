//! Pure builders of the objects a Database owns: credentials Secret, headless and client
//! Services, StatefulSet.

use super::engine::{self, DatabaseImages, profile};
use crate::{
    identity::{IMAGE_PULL_POLICY, Identity, restricted_container, restricted_pod_as},
    instance,
};
use k8s_openapi::{
    ByteString,
    api::{
        apps::v1::StatefulSet,
        core::v1::{Container, ContainerPort, PodSpec, Secret, Service, ServicePort, ServiceSpec, VolumeMount},
    },
    apimachinery::pkg::util::intstr::IntOrString,
};
use rand::{Rng, distr::Alphanumeric};
use slipway_crds::{DatabaseSpec, DeletionPolicy};
use std::collections::BTreeMap;

/// Length of generated passwords: 32 alphanumeric characters, about 190 bits of entropy
/// (OWASP asks for at least 64 bits for secrets a machine generates).
pub const PASSWORD_LENGTH: usize = 32;

pub use slipway_policies::rules::names::{credentials_secret as secret_name, headless_service as headless_name};

/// The in-cluster host name of the Database's client Service.
pub fn host(database: &str, namespace: &str) -> String {
    format!("{database}.{namespace}.svc.cluster.local")
}

/// A fresh random password from the operating system's CSPRNG (rand's `ThreadRng`, reseeded
/// from `getrandom`).
pub fn generate_password() -> String {
    rand::rng().sample_iter(&Alphanumeric).take(PASSWORD_LENGTH).map(char::from).collect()
}

/// Annotation on the credentials Secret naming the engine and version that initialized the
/// data, e.g. `postgres 17`: a retained volume must not be opened by another engine or major
/// version (PostgreSQL refuses data of another major version; MySQL would upgrade it in place).
pub const DATA_ANNOTATION: &str = "slipway.dev/data-format";

/// The engine and version a spec writes its data in: `<engine> <version>`.
pub fn data_format(spec: &DatabaseSpec) -> String {
    format!("{} {}", spec.engine, spec.version)
}

/// The data format recorded on a retained credentials Secret when it differs from what `spec`
/// asks for: the data volume next to it was written by another engine or version.
pub fn foreign_data(secret: Option<&Secret>, spec: &DatabaseSpec) -> Option<String> {
    let recorded = secret?.metadata.annotations.as_ref()?.get(DATA_ANNOTATION)?;
    (*recorded != data_format(spec)).then(|| recorded.clone())
}

/// The password stored in an existing credentials Secret, if any: a Secret outlives a
/// reconcile (and, with `Retain`, the Database), and the engine only reads the password when
/// it initializes its data, so the password must never change once generated.
pub fn existing_password(secret: Option<&Secret>) -> Option<String> {
    let bytes = secret?.data.as_ref()?.get("password")?;
    String::from_utf8(bytes.0.clone()).ok().filter(|p| !p.is_empty())
}

/// The credentials Secret with the keys applications expect: `username`, `password`, `host`,
/// `port`, `dbname`, `uri`. Owned by the Database only under `deletionPolicy: Delete`; with
/// `Retain` it outlives the Database together with the data it unlocks.
pub fn secret(id: &Identity<'_>, spec: &DatabaseSpec, password: &str) -> Secret {
    let p = profile(spec.engine);
    let host = host(id.name, id.namespace);
    let data = BTreeMap::from([
        ("username".to_string(), p.username.to_string()),
        ("password".to_string(), password.to_string()),
        ("host".to_string(), host.clone()),
        ("port".to_string(), p.port.to_string()),
        ("dbname".to_string(), p.dbname.to_string()),
        ("uri".to_string(), engine::uri(spec.engine, password, &host)),
    ]);
    let name = secret_name(id.name);
    let mut metadata = match spec.deletion_policy {
        DeletionPolicy::Delete => id.meta(&name),
        DeletionPolicy::Retain => id.unowned_meta(&name),
    };
    metadata.annotations = Some(BTreeMap::from([(DATA_ANNOTATION.to_string(), data_format(spec))]));
    Secret {
        metadata,
        type_: Some("Opaque".into()),
        data: Some(data.into_iter().map(|(k, v)| (k, ByteString(v.into_bytes()))).collect()),
        ..Default::default()
    }
}

fn port(number: i32) -> ServicePort {
    ServicePort {
        name: Some("db".into()),
        port: number,
        target_port: Some(IntOrString::String("db".into())),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

/// The headless Service that gives the StatefulSet's pod its stable DNS name.
pub fn headless_service(id: &Identity<'_>, spec: &DatabaseSpec) -> Service {
    Service {
        metadata: id.meta(&headless_name(id.name)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(id.selector()),
            ports: Some(vec![port(profile(spec.engine).port)]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The client Service `<name>`: ClusterIP, or NodePort when `spec.expose.type` asks for it
/// (Kubernetes allocates the node port).
pub fn client_service(id: &Identity<'_>, spec: &DatabaseSpec) -> Service {
    Service {
        metadata: id.meta(id.name),
        spec: Some(ServiceSpec {
            type_: Some(if spec.node_port() { "NodePort" } else { "ClusterIP" }.into()),
            selector: Some(id.selector()),
            ports: Some(vec![port(profile(spec.engine).port)]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The StatefulSet: one engine pod of the engine's image from `images`, non-root as the
/// image's engine user, with the data volume `data` (deleted with the Database only under
/// `deletionPolicy: Delete`).
pub fn stateful_set(id: &Identity<'_>, spec: &DatabaseSpec, images: &DatabaseImages) -> StatefulSet {
    let p = profile(spec.engine);
    let container = Container {
        name: spec.engine.as_str().into(),
        image: Some(images.image(spec.engine, &spec.version)),
        image_pull_policy: Some(IMAGE_PULL_POLICY.into()),
        args: engine::args(spec.engine),
        env: Some(engine::env(spec.engine, &secret_name(id.name))),
        ports: Some(vec![ContainerPort { name: Some("db".into()), container_port: p.port, ..Default::default() }]),
        resources: Some(instance::guaranteed(spec.cpu.as_ref(), spec.memory.as_ref())),
        readiness_probe: Some(engine::readiness(spec.engine)),
        volume_mounts: Some(vec![VolumeMount {
            name: "data".into(),
            mount_path: p.data_dir.into(),
            ..Default::default()
        }]),
        security_context: Some(restricted_container()),
        ..Default::default()
    };
    let pod =
        PodSpec { containers: vec![container], security_context: Some(restricted_pod_as(p.uid)), ..Default::default() };
    let delete = spec.deletion_policy == DeletionPolicy::Delete;
    instance::stateful_set(id, Some(headless_name(id.name)), pod, "data", &spec.storage, delete)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::OwnerReference};
    use slipway_crds::{DATABASE_LABEL, DatabaseEngine, DatabaseExposeType, DatabaseExposure};

    fn id() -> Identity<'static> {
        Identity {
            name: "orders",
            namespace: "tenant-acme",
            tenant: "acme",
            owner: OwnerReference { name: "orders".into(), ..Default::default() },
            label: DATABASE_LABEL,
        }
    }

    fn spec(engine: DatabaseEngine, policy: DeletionPolicy) -> DatabaseSpec {
        DatabaseSpec {
            engine,
            version: "17".into(),
            storage: Quantity("2Gi".into()),
            cpu: Some(Quantity("500m".into())),
            memory: Some(Quantity("512Mi".into())),
            expose: None,
            deletion_policy: policy,
        }
    }

    fn text(secret: &Secret, key: &str) -> String {
        String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
    }

    #[test]
    fn secret_holds_what_applications_expect_and_follows_the_policy() {
        let password = generate_password();
        assert_eq!(password.len(), PASSWORD_LENGTH);
        assert!(password.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(password, generate_password());
        let s = secret(&id(), &spec(DatabaseEngine::Postgres, DeletionPolicy::Retain), &password);
        assert_eq!(text(&s, "host"), "orders.tenant-acme.svc.cluster.local");
        assert_eq!(text(&s, "port"), "5432");
        assert_eq!(
            text(&s, "uri"),
            format!("postgresql://app:{password}@orders.tenant-acme.svc.cluster.local:5432/app")
        );
        assert!(s.metadata.owner_references.is_none(), "Retain: the Secret outlives the Database");
        assert_eq!(existing_password(Some(&s)), Some(password));
        assert_eq!(foreign_data(Some(&s), &spec(DatabaseEngine::Postgres, DeletionPolicy::Retain)), None);
        let mut other = spec(DatabaseEngine::Postgres, DeletionPolicy::Retain);
        other.version = "16".into();
        assert_eq!(foreign_data(Some(&s), &other).as_deref(), Some("postgres 17"));
        assert_eq!(foreign_data(None, &other), None);
        let owned = secret(&id(), &spec(DatabaseEngine::Redis, DeletionPolicy::Delete), "pw");
        assert!(owned.metadata.owner_references.is_some());
        assert_eq!(text(&owned, "uri"), "redis://default:pw@orders.tenant-acme.svc.cluster.local:6379/0");
    }

    #[test]
    fn stateful_set_keeps_or_deletes_its_volume_and_never_shows_the_password() {
        let sts =
            stateful_set(&id(), &spec(DatabaseEngine::Postgres, DeletionPolicy::Retain), &DatabaseImages::default());
        let s = sts.spec.unwrap();
        assert_eq!(s.service_name.as_deref(), Some("orders-headless"));
        assert_eq!(s.persistent_volume_claim_retention_policy.unwrap().when_deleted.as_deref(), Some("Retain"));
        let claim = &s.volume_claim_templates.unwrap()[0];
        assert_eq!(
            claim.spec.as_ref().unwrap().resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0,
            "2Gi"
        );
        let pod = s.template.spec.unwrap();
        assert_eq!(pod.security_context.unwrap().run_as_user, Some(999));
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some("docker.io/library/postgres:17"));
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"), "the node's image is used when present");
        let password = c.env.as_ref().unwrap().iter().find(|e| e.name == "POSTGRES_PASSWORD").unwrap();
        assert!(password.value.is_none() && password.value_from.is_some());
        let images = DatabaseImages::with(["mysql=localhost/slipway-dev/mysql".parse().unwrap()]);
        let deleting = stateful_set(&id(), &spec(DatabaseEngine::Mysql, DeletionPolicy::Delete), &images).spec.unwrap();
        assert_eq!(deleting.persistent_volume_claim_retention_policy.unwrap().when_deleted.as_deref(), Some("Delete"));
        let image = deleting.template.spec.unwrap().containers[0].image.clone();
        assert_eq!(image.as_deref(), Some("localhost/slipway-dev/mysql:17"));
    }

    #[test]
    fn node_port_only_when_asked() {
        let mut s = spec(DatabaseEngine::Postgres, DeletionPolicy::Retain);
        assert_eq!(client_service(&id(), &s).spec.unwrap().type_.as_deref(), Some("ClusterIP"));
        s.expose = Some(DatabaseExposure { type_: DatabaseExposeType::NodePort });
        assert_eq!(client_service(&id(), &s).spec.unwrap().type_.as_deref(), Some("NodePort"));
        assert_eq!(headless_service(&id(), &s).spec.unwrap().cluster_ip.as_deref(), Some("None"));
    }
}
