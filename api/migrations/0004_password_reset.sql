-- Password reset links are email tokens too: widen the purpose check. SQLite cannot alter a
-- CHECK constraint, so the table is rebuilt (the same statements work on PostgreSQL).
CREATE TABLE email_tokens_v2 (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL CHECK (purpose IN ('verify-email', 'reset-password')),
    email      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
);

INSERT INTO email_tokens_v2 (token_hash, user_id, purpose, email, created_at, expires_at, used_at)
    SELECT token_hash, user_id, purpose, email, created_at, expires_at, used_at FROM email_tokens;

DROP TABLE email_tokens;
ALTER TABLE email_tokens_v2 RENAME TO email_tokens;
CREATE INDEX email_tokens_by_user ON email_tokens (user_id, purpose);
