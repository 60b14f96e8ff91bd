-- Local users, their authorized SSH keys and permission rules.
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    -- argon2id PHC string; NULL means key-only login.
    password_hash TEXT,
    -- Virtual home inside the storage root, e.g. "/alice".
    home TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    -- "atomic" | "in_place"; NULL follows auth.default_upload_mode.
    upload_mode TEXT,
    -- JSON list of {"path": glob, "permissions": [..]}.
    rules TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE user_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- SHA256 fingerprint as OpenSSH prints it.
    fingerprint TEXT NOT NULL,
    -- The public key in authorized_keys form ("ssh-ed25519 AAAA… comment").
    public_key TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (user_id, fingerprint)
);
