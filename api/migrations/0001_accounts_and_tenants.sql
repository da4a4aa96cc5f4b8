-- Portable between SQLite and PostgreSQL: TEXT ids (UUIDs) and RFC 3339 timestamps.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL
);

CREATE TABLE tenants (
    name       TEXT PRIMARY KEY,
    plan       TEXT NOT NULL,
    created_by TEXT NOT NULL REFERENCES users (id),
    created_at TEXT NOT NULL
);

CREATE TABLE memberships (
    tenant     TEXT NOT NULL REFERENCES tenants (name) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('owner', 'member')),
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant, user_id)
);

CREATE INDEX memberships_by_user ON memberships (user_id);
