-- Email verification. An account is verified once someone followed the link mailed to its
-- address; until then it may log in and verify, nothing else. Accounts made before this
-- migration start unverified and ask for a new link (POST /api/v1/auth/verify/resend).
ALTER TABLE users ADD COLUMN email_verified_at TEXT;

-- Single-use tokens mailed to an address. Only their SHA-256 is kept: a copy of the
-- database does not let anyone verify or reset anything.
CREATE TABLE email_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL CHECK (purpose IN ('verify-email')),
    -- The address the token was mailed to: it proves that address only.
    email      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
);

CREATE INDEX email_tokens_by_user ON email_tokens (user_id, purpose);
