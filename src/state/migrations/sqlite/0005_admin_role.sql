-- Users who may use the admin API (users, keys, rules). The first user is one.
ALTER TABLE users ADD COLUMN admin INTEGER NOT NULL DEFAULT 0;
