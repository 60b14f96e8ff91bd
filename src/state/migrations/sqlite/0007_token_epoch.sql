-- Bearer tokens of a login that began before this instant (Unix milliseconds) are void: set
-- when the user is created, changes password or is disabled, so none of those keeps old tokens.
ALTER TABLE users ADD COLUMN tokens_after INTEGER NOT NULL DEFAULT 0;
