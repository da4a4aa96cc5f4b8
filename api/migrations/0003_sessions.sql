-- Sessions: each login starts a family of refresh tokens. Using a refresh token rotates it
-- (it is spent and a new one of the family is issued); presenting a spent one again means it
-- leaked, and revokes the whole family (OAuth 2.0 Security Best Current Practice, RFC 9700
-- §4.14.2). Access tokens name their family (`sid`), so revoking it ends them too.
CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

CREATE INDEX sessions_by_user ON sessions (user_id);

-- Only hashes are kept, as for email tokens.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    spent_at   TEXT
);

CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);
