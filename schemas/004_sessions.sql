-- 004: browser sessions. The cookie holds a random token; only its SHA-256 is stored.
CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY,
    key_ref     INTEGER NOT NULL REFERENCES keys(id),
    csrf_token  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  INTEGER NOT NULL   -- unix seconds
);
CREATE INDEX sessions_expiry ON sessions(expires_at);
