-- Per-user mounts: JSON list of {"path": virtual folder, "storage": backend name, "prefix": key prefix}.
ALTER TABLE users ADD COLUMN mounts TEXT NOT NULL DEFAULT '[]';
