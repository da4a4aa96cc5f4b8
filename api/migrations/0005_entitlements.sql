-- Entitlements and suspension (issue 10).
-- max_tenants: how many tenants the account may own; NULL means the platform's default
-- (SLIPWAY_DEFAULT_MAX_TENANTS). suspended_at: set while a platform admin has suspended the
-- account; its tokens stop working, its tenants keep running.
ALTER TABLE users ADD COLUMN max_tenants BIGINT;
ALTER TABLE users ADD COLUMN suspended_at TEXT;

-- Plans a platform admin granted an account beyond the catalogue's self-service ones.
CREATE TABLE plan_grants (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    plan       TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    granted_at TEXT NOT NULL,
    PRIMARY KEY (user_id, plan)
);
