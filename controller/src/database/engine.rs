//! What differs between engines: image, port, data directory, user, environment, readiness
//! probe and connection URI. Each follows the official Docker image's documentation
//! (<https://hub.docker.com/_/postgres>, `_/mysql`, `_/mariadb`, `_/redis`).

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ExecAction, Probe, SecretKeySelector};
use slipway_crds::DatabaseEngine;
use std::{collections::BTreeMap, str::FromStr};

/// Where each engine's images come from: the image of a Database is `<repository>:<version>`.
///
/// By default the official images on Docker Hub (`docker.io/library/<engine>`); an operator
/// replaces a repository with one that follows the same contract (environment, data
/// directory, uid 999 — see [`env`] and [`Profile`]), e.g. a mirror, or the images that
/// hack/images.sh builds offline for the dev cluster. The tag is always the Database's
/// version, so an image never claims a version it does not hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseImages(BTreeMap<DatabaseEngine, String>);

impl Default for DatabaseImages {
    fn default() -> Self {
        Self(
            [DatabaseEngine::Postgres, DatabaseEngine::Mysql, DatabaseEngine::Mariadb, DatabaseEngine::Redis]
                .into_iter()
                .map(|engine| (engine, format!("docker.io/library/{engine}")))
                .collect(),
        )
    }
}

impl DatabaseImages {
    /// The official images, with the given `(engine, repository)` replacements.
    pub fn with(overrides: impl IntoIterator<Item = RepositoryOverride>) -> Self {
        let mut images = Self::default();
        images.0.extend(overrides.into_iter().map(|o| (o.engine, o.repository)));
        images
    }

    /// The image that runs `version` of `engine`, e.g. `docker.io/library/postgres:17`.
    pub fn image(&self, engine: DatabaseEngine, version: &str) -> String {
        format!("{}:{version}", self.0[&engine])
    }
}

/// One `ENGINE=REPOSITORY` replacement, e.g. `postgres=registry.example/db/postgres`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepositoryOverride {
    /// The engine whose images come from elsewhere.
    pub engine: DatabaseEngine,
    /// Repository without tag; the Database's version becomes the tag.
    pub repository: String,
}

impl FromStr for RepositoryOverride {
    type Err = String;

    /// Parses `ENGINE=REPOSITORY`.
    ///
    /// # Errors
    /// No `=`, an unknown engine, an empty repository, or one with a tag or digest.
    fn from_str(text: &str) -> Result<Self, String> {
        let (engine, repository) = text.split_once('=').ok_or_else(|| format!("{text:?} is not ENGINE=REPOSITORY"))?;
        let engine: DatabaseEngine = serde_json::from_value(serde_json::Value::String(engine.trim().into()))
            .map_err(|_| format!("unknown engine {engine:?} (known: postgres, mysql, mariadb, redis)"))?;
        let repository = repository.trim();
        let last = repository.rsplit('/').next().unwrap_or_default();
        if repository.is_empty() || last.contains(':') || repository.contains('@') {
            return Err(format!(
                "repository {repository:?} must be non-empty, without tag or digest: the Database's version is the tag"
            ));
        }
        Ok(Self { engine, repository: repository.into() })
    }
}

/// How one engine is run and reached.
pub struct Profile {
    /// TCP port the engine listens on.
    pub port: i32,
    /// Where the data volume is mounted.
    pub data_dir: &'static str,
    /// The uid the official image's engine user has (999 in all four images): the pod runs as
    /// it, non-root, as the restricted Pod Security Standard demands.
    pub uid: i64,
    /// URI scheme, e.g. `postgresql`.
    pub scheme: &'static str,
    /// User the applications log in as.
    pub username: &'static str,
    /// Database the applications use (for Redis, the logical database number).
    pub dbname: &'static str,
}

/// The profile of `engine`.
pub fn profile(engine: DatabaseEngine) -> Profile {
    match engine {
        DatabaseEngine::Postgres => Profile {
            port: 5432,
            data_dir: "/var/lib/postgresql/data",
            uid: 999,
            scheme: "postgresql",
            username: "app",
            dbname: "app",
        },
        DatabaseEngine::Mysql | DatabaseEngine::Mariadb => Profile {
            port: 3306,
            data_dir: "/var/lib/mysql",
            uid: 999,
            scheme: "mysql",
            username: "app",
            dbname: "app",
        },
        DatabaseEngine::Redis => {
            Profile { port: 6379, data_dir: "/data", uid: 999, scheme: "redis", username: "default", dbname: "0" }
        }
    }
}

fn value(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), ..Default::default() }
}

fn from_secret(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector { name: secret.into(), key: key.into(), optional: Some(false) }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The container's environment: user, database and the password from the credentials Secret
/// (never the password itself in the pod spec).
pub fn env(engine: DatabaseEngine, secret: &str) -> Vec<EnvVar> {
    let p = profile(engine);
    match engine {
        DatabaseEngine::Postgres => vec![
            value("POSTGRES_USER", p.username),
            value("POSTGRES_DB", p.dbname),
            from_secret("POSTGRES_PASSWORD", secret, "password"),
            // A subdirectory: the volume's root may hold lost+found, which initdb refuses.
            value("PGDATA", &format!("{}/pgdata", p.data_dir)),
        ],
        DatabaseEngine::Mysql => vec![
            value("MYSQL_USER", p.username),
            value("MYSQL_DATABASE", p.dbname),
            from_secret("MYSQL_PASSWORD", secret, "password"),
            value("MYSQL_RANDOM_ROOT_PASSWORD", "yes"),
        ],
        DatabaseEngine::Mariadb => vec![
            value("MARIADB_USER", p.username),
            value("MARIADB_DATABASE", p.dbname),
            from_secret("MARIADB_PASSWORD", secret, "password"),
            value("MARIADB_RANDOM_ROOT_PASSWORD", "yes"),
        ],
        DatabaseEngine::Redis => vec![from_secret("REDIS_PASSWORD", secret, "password")],
    }
}

/// Arguments of the container (Redis only: the password and append-only persistence).
pub fn args(engine: DatabaseEngine) -> Option<Vec<String>> {
    (engine == DatabaseEngine::Redis).then(|| {
        ["--requirepass", "$(REDIS_PASSWORD)", "--appendonly", "yes", "--dir", "/data"].map(String::from).to_vec()
    })
}

/// A readiness probe that asks the engine itself, not just its port: the images start a
/// temporary server during initialization, so an open port does not mean ready.
pub fn readiness(engine: DatabaseEngine) -> Probe {
    let command: Vec<String> = match engine {
        DatabaseEngine::Postgres => {
            ["pg_isready", "-h", "127.0.0.1", "-U", "app", "-d", "app"].map(String::from).to_vec()
        }
        // `ping` exits 0 whenever the server answers, even to a refused login.
        DatabaseEngine::Mysql => ["mysqladmin", "ping", "-h", "127.0.0.1"].map(String::from).to_vec(),
        DatabaseEngine::Mariadb => ["mariadb-admin", "ping", "-h", "127.0.0.1"].map(String::from).to_vec(),
        DatabaseEngine::Redis => vec![
            "sh".into(),
            "-c".into(),
            r#"redis-cli -a "$REDIS_PASSWORD" --no-auth-warning ping | grep -q PONG"#.into(),
        ],
    };
    Probe {
        exec: Some(ExecAction { command: Some(command) }),
        initial_delay_seconds: Some(5),
        period_seconds: Some(5),
        timeout_seconds: Some(3),
        ..Default::default()
    }
}

/// The connection URI applications expect, e.g. `postgresql://app:PASSWORD@HOST:5432/app`.
/// The password is alphanumeric (see [`super::resources::generate_password`]), so it needs
/// no percent-encoding.
pub fn uri(engine: DatabaseEngine, password: &str, host: &str) -> String {
    let p = profile(engine);
    format!("{}://{}:{password}@{host}:{}/{}", p.scheme, p.username, p.port, p.dbname)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_are_replaced_per_engine_and_tagged_with_the_version() {
        let images = DatabaseImages::with(["redis = localhost:5000/cache/redis".parse().unwrap()]);
        assert_eq!(images.image(DatabaseEngine::Redis, "7"), "localhost:5000/cache/redis:7");
        assert_eq!(images.image(DatabaseEngine::Postgres, "17"), "docker.io/library/postgres:17");
        let error = |text: &str| text.parse::<RepositoryOverride>().unwrap_err();
        assert_eq!(error("postgres"), r#""postgres" is not ENGINE=REPOSITORY"#);
        assert!(error("oracle=x/oracle").starts_with(r#"unknown engine "oracle""#));
        assert!(error("postgres=x/postgres:15").contains("without tag or digest"));
        assert!(error("postgres=x/postgres@sha256:00").contains("without tag or digest"));
        assert!(error("postgres=").contains("non-empty"));
    }
}
