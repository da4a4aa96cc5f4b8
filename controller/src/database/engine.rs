//! What differs between engines: image, port, data directory, user, environment, readiness
//! probe and connection URI. Each follows the official Docker image's documentation
//! (<https://hub.docker.com/_/postgres>, `_/mysql`, `_/mariadb`, `_/redis`).

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ExecAction, Probe, SecretKeySelector};
use slipway_crds::DatabaseEngine;

/// How one engine is run and reached.
pub struct Profile {
    /// Image repository on Docker Hub; the tag is the Database's version.
    pub image: &'static str,
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
            image: "docker.io/library/postgres",
            port: 5432,
            data_dir: "/var/lib/postgresql/data",
            uid: 999,
            scheme: "postgresql",
            username: "app",
            dbname: "app",
        },
        DatabaseEngine::Mysql | DatabaseEngine::Mariadb => Profile {
            image: if engine == DatabaseEngine::Mysql {
                "docker.io/library/mysql"
            } else {
                "docker.io/library/mariadb"
            },
            port: 3306,
            data_dir: "/var/lib/mysql",
            uid: 999,
            scheme: "mysql",
            username: "app",
            dbname: "app",
        },
        DatabaseEngine::Redis => Profile {
            image: "docker.io/library/redis",
            port: 6379,
            data_dir: "/data",
            uid: 999,
            scheme: "redis",
            username: "default",
            dbname: "0",
        },
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
