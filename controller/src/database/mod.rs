//! Database reconciler: credentials Secret, headless and client Services, StatefulSet with its
//! data volume, status, and one "ready" email to the tenant's owners.

mod engine;

pub use engine::{DatabaseImages, RepositoryOverride};
mod resources;

/// The user and database name applications of `engine` connect with.
pub fn connection_profile(engine: slipway_crds::DatabaseEngine) -> (&'static str, &'static str) {
    let p = engine::profile(engine);
    (p.username, p.dbname)
}

use crate::{
    Context, Result,
    apply::{apply, apply_status},
    cache::delete_if_cached,
    identity::{Identity, expose_policy, expose_policy_name},
    instance, lookup, notify,
};
use k8s_openapi::api::{
    core::v1::{Secret, Service},
    networking::v1::NetworkPolicy,
};
use kube::{
    Api, Resource, ResourceExt,
    runtime::{controller::Action, events::EventType},
};
use slipway_crds::{DATABASE_LABEL, Database, DatabaseStatus, ResourcePhase};
use std::sync::Arc;

/// Brings the Database's objects and status to what its spec asks for.
pub async fn reconcile(db: Arc<Database>, ctx: Arc<Context>) -> Result<Action> {
    ctx.track(db.as_ref(), reconcile_inner(&db, &ctx)).await
}

async fn reconcile_inner(db: &Database, ctx: &Context) -> Result<Action> {
    if db.meta().deletion_timestamp.is_some() {
        // Owned objects carry owner references: the garbage collector removes them; the data
        // volume and Secret follow spec.deletionPolicy (see resources::secret, stateful_set).
        return Ok(Action::await_change());
    }
    let name = db.name_any();
    let ns = db.namespace().expect("Database is namespaced");
    let client = &ctx.client;
    let dbs: Api<Database> = Api::namespaced(client.clone(), &ns);
    let previous = db.status.clone().unwrap_or_default();
    let generation = db.meta().generation;

    let tenant = match lookup::tenant_or_condition(ctx, &ns, &previous.conditions, generation).await? {
        Ok(tenant) => tenant,
        Err(not_ready) => {
            let status =
                DatabaseStatus { observed_generation: generation, conditions: vec![not_ready], ..Default::default() };
            apply_status(&dbs, &name, &status).await?;
            return Ok(Action::await_change());
        }
    };
    let tenant_name = tenant.name_any();
    let id = Identity {
        name: &name,
        namespace: &ns,
        tenant: &tenant_name,
        owner: db.controller_owner_ref(&()).expect("Database has a name and uid"),
        label: DATABASE_LABEL,
    };

    // The password is generated once and then read back: it must survive every reconcile.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let stored = secrets.get_opt(&resources::secret_name(&name)).await?;
    if let Some(found) = resources::foreign_data(stored.as_ref(), &db.spec) {
        // A retained volume of another engine or version: starting on it would fail or
        // convert the data. Refuse until the user decides.
        let message = format!(
            "the retained volume data-{name}-0 and Secret {} hold {found} data, not {}; delete both to start empty, or create the Database as {found}",
            resources::secret_name(&name),
            resources::data_format(&db.spec)
        );
        let phase = (ResourcePhase::Pending, "RetainedDataMismatch", message.clone());
        let conditions = vec![instance::ready_condition(&previous.conditions, phase, generation)];
        let status = DatabaseStatus { observed_generation: generation, conditions, ..Default::default() };
        if (DatabaseStatus { ready_notified_at: None, ..previous.clone() }) != status {
            apply_status(&dbs, &name, &status).await?;
            ctx.publish(db, EventType::Warning, "RetainedDataMismatch", message).await;
        }
        return Ok(Action::await_change());
    }
    let password = resources::existing_password(stored.as_ref()).unwrap_or_else(resources::generate_password);
    apply(&secrets, &resources::secret(&id, &db.spec, &password)).await?;

    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    apply(&services, &resources::headless_service(&id, &db.spec)).await?;
    let service = apply(&services, &resources::client_service(&id, &db.spec)).await?;
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &ns);
    let port = engine::profile(db.spec.engine).port;
    if db.spec.node_port() {
        apply(&policies, &expose_policy(&id, port)).await?;
    } else {
        delete_if_cached(&ctx.caches.database_policies, &policies, &ns, &expose_policy_name(&name)).await?;
    }
    let sts =
        apply(&Api::namespaced(client.clone(), &ns), &resources::stateful_set(&id, &db.spec, &ctx.database_images))
            .await?;

    let node_port = service.spec.as_ref().and_then(|s| s.ports.as_ref()?.first()?.node_port);
    let phase = instance::phase(&sts);
    let status = DatabaseStatus {
        phase: phase.0,
        observed_generation: generation,
        host: Some(resources::host(&name, &ns)),
        port: Some(port),
        node_port,
        secret_name: Some(resources::secret_name(&name)),
        conditions: vec![instance::ready_condition(&previous.conditions, phase, generation)],
        ready_notified_at: None,
    };
    let unchanged = DatabaseStatus { ready_notified_at: None, ..previous.clone() } == status;
    let written = if unchanged { db.clone() } else { apply_status(&dbs, &name, &status).await? };
    if status.phase != previous.phase {
        ctx.publish(db, EventType::Normal, &format!("{:?}", status.phase), status.conditions[0].message.clone()).await;
    }
    if status.phase == ResourcePhase::Ready && previous.ready_notified_at.is_none() {
        let node_address = match node_port {
            Some(_) => lookup::node_address(ctx).await?,
            None => None,
        };
        let email = notify::database_ready(&notify::DatabaseReady {
            name: &name,
            tenant: &tenant_name,
            spec: &db.spec,
            status: &status,
            node_address: node_address.as_deref(),
            uid: db.uid().as_deref(),
        });
        let recipients: Vec<&str> = tenant.spec.owners.iter().map(|o| o.email.as_str()).collect();
        if !crate::ready::notify_once(ctx, &dbs, &written, &recipients, &email).await? {
            // Lost the claim to a newer version of the Database: look again with fresh data.
            return Ok(Action::requeue(std::time::Duration::from_secs(1)));
        }
    }
    Ok(Action::await_change())
}
