-- Server-wide secrets shared by every replica (e.g. the key that signs bearer tokens).
CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    created_at TEXT NOT NULL
);

-- Bearer tokens revoked before they expire (logout); rows past `expires_at` can go.
CREATE TABLE revoked_tokens (
    token_id TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
