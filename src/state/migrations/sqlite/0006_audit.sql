-- The audit trail as the database sink writes it: the exact line (what the hash chain covers)
-- plus the columns queries filter on. Rows are appended in chain order; `row` keeps that order.
CREATE TABLE audit_events (
    row INTEGER PRIMARY KEY AUTOINCREMENT,
    node TEXT NOT NULL,
    chain_seq INTEGER NOT NULL,
    event_id INTEGER NOT NULL,
    event TEXT NOT NULL,
    ts TEXT NOT NULL,
    session TEXT,
    protocol TEXT,
    user TEXT,
    peer TEXT,
    path TEXT,
    outcome TEXT NOT NULL,
    hash TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX audit_events_node_seq ON audit_events(node, chain_seq);
CREATE INDEX audit_events_ts ON audit_events(ts);
CREATE INDEX audit_events_user_ts ON audit_events(user, ts);
CREATE INDEX audit_events_event_ts ON audit_events(event, ts);

-- Each node's public key (for `ferry audit verify --db`), its chain head at its last clean
-- shutdown (`head_*`: every record before it was written, so verify can catch a cut-off end),
-- and at its last checkpoint (`signed_*`: where a restart after a crash continues at least).
CREATE TABLE audit_nodes (
    node TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    head_seq INTEGER,
    head_hash TEXT,
    signed_seq INTEGER,
    signed_hash TEXT,
    updated_at TEXT NOT NULL
);
