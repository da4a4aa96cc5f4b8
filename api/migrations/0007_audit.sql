-- The audit trail (issue 10): one row per state-changing API call, appended and never
-- changed (the API has no statement that updates or deletes these rows; they outlive the
-- tenants and accounts they name). `time` is RFC 3339 UTC with microseconds, fixed width, so
-- it sorts as text; `id` (a UUID) breaks ties.
CREATE TABLE audit_events (
    id       TEXT PRIMARY KEY,
    time     TEXT NOT NULL,
    actor    TEXT NOT NULL,
    actor_id TEXT,
    action   TEXT NOT NULL,
    tenant   TEXT,
    object   TEXT NOT NULL,
    status   BIGINT NOT NULL,
    client   TEXT NOT NULL
);

CREATE INDEX audit_events_by_tenant ON audit_events (tenant, time, id);
CREATE INDEX audit_events_by_time ON audit_events (time, id);
