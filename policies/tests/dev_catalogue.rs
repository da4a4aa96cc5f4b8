//! The dev cluster's plan catalogue (hack/dev/plans.yaml) is the embedded one with only the
//! engine versions and registries of the local images changed: it cannot drift from it.

use serde_yaml::Value;
use slipway_policies::PlanCatalog;

const EMBEDDED: &str = include_str!("../plans.yaml");
const DEV: &str = include_str!("../../hack/dev/plans.yaml");

/// The catalogue without the two fields the dev one may change.
fn without_local_fields(text: &str) -> Value {
    let mut catalogue: Value = serde_yaml::from_str(text).unwrap();
    for (_, plan) in catalogue["plans"].as_mapping_mut().unwrap().iter_mut() {
        let limits = plan["limits"].as_mapping_mut().unwrap();
        limits.remove("databaseEngines").expect("every plan lists its engines");
        limits.remove("allowedRegistries").expect("every plan lists its registries");
    }
    catalogue
}

#[test]
fn the_dev_catalogue_differs_only_in_engine_versions_and_registries() {
    PlanCatalog::from_yaml(DEV).expect("the dev catalogue is valid");
    assert_eq!(without_local_fields(DEV), without_local_fields(EMBEDDED));
}

#[test]
fn the_dev_catalogue_offers_exactly_the_local_images_versions() {
    let catalogue: Value = serde_yaml::from_str(DEV).unwrap();
    // hack/images.sh builds postgres:15, mariadb:10.11 and redis:7 from Debian bookworm.
    let local = [("postgres", "15"), ("mariadb", "10.11"), ("redis", "7")];
    for (name, plan) in catalogue["plans"].as_mapping().unwrap() {
        for (engine, versions) in plan["limits"]["databaseEngines"].as_mapping().unwrap() {
            let engine = engine.as_str().unwrap();
            for version in versions.as_sequence().unwrap() {
                let version = version.as_str().unwrap();
                assert!(
                    local.contains(&(engine, version)),
                    "{name:?} offers {engine} {version}, which no local image holds"
                );
            }
        }
        let registries = plan["limits"]["allowedRegistries"].as_sequence().unwrap();
        assert!(
            registries.contains(&Value::from("localhost")) || registries.contains(&Value::from("*")),
            "{name:?} must allow the local images' registry"
        );
    }
}
