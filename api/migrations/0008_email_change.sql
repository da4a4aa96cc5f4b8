-- Changing an account's address mails a link to the new one: a third purpose of email
-- tokens (the token's `email` is the new address). Rebuilt as in 0004, for SQLite.
CREATE TABLE email_tokens_v3 (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL CHECK (purpose IN ('verify-email', 'reset-password', 'change-email')),
    email      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
);

INSERT INTO email_tokens_v3 (token_hash, user_id, purpose, email, created_at, expires_at, used_at)
    SELECT token_hash, user_id, purpose, email, created_at, expires_at, used_at FROM email_tokens;

DROP TABLE email_tokens;
ALTER TABLE email_tokens_v3 RENAME TO email_tokens;
CREATE INDEX email_tokens_by_user ON email_tokens (user_id, purpose);
