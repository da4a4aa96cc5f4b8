-- Teams (issue 10): a third role, `admin`, between owners and members. SQLite cannot alter a
-- CHECK constraint, so the table is rebuilt (the same statements work on PostgreSQL).
CREATE TABLE memberships_v2 (
    tenant     TEXT NOT NULL REFERENCES tenants (name) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant, user_id)
);

INSERT INTO memberships_v2 (tenant, user_id, role, created_at)
    SELECT tenant, user_id, role, created_at FROM memberships;

DROP TABLE memberships;
ALTER TABLE memberships_v2 RENAME TO memberships;
CREATE INDEX memberships_by_user ON memberships (user_id);

-- Invitations to a tenant: a single-use link mailed to `email`, kept only as its SHA-256,
-- accepted by the account that has (and verified) that address.
CREATE TABLE invitations (
    token_hash  TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL REFERENCES tenants (name) ON DELETE CASCADE,
    email       TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    invited_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    accepted_at TEXT
);

CREATE INDEX invitations_by_tenant ON invitations (tenant);
