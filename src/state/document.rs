//! The store as one versioned JSON document (`ferry state export` / `ferry state import`):
//! users with their password hashes, flags, homes, rules, mounts and SSH keys, and their API
//! keys as hashes. Secrets stay hashed; the token signing key is not exported (a new store makes
//! its own, so tokens of the old one end), nor the audit trail (its sinks export it).
//! An import goes into an empty store in one transaction: all of it or nothing.

use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;

use super::StateError;
use super::users::{MountRecord, RuleRecord, to_json};

/// What `format` must say; `version` is bumped when the shape changes.
pub const FORMAT: &str = "ferry-state";
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateDocument {
    pub format: String,
    pub version: u32,
    pub exported_at: String,
    pub users: Vec<ExportedUser>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedUser {
    pub name: String,
    /// The argon2id PHC string; `None`: key-only.
    pub password_hash: Option<String>,
    pub home: String,
    pub enabled: bool,
    pub admin: bool,
    pub upload_mode: Option<String>,
    pub rules: Vec<RuleRecord>,
    pub mounts: Vec<MountRecord>,
    pub keys: Vec<ExportedKey>,
    pub api_keys: Vec<ExportedApiKey>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedKey {
    pub fingerprint: String,
    pub public_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedApiKey {
    pub id: String,
    pub name: String,
    /// SHA-256 of the secret part, hex.
    pub secret_sha256: String,
    pub created_at: String,
}

type UserRow = (i64, String, Option<String>, String, bool, bool, Option<String>, String, String);

pub async fn export(pool: &SqlitePool) -> Result<StateDocument, StateError> {
    let rows: Vec<UserRow> = sqlx::query_as(
        "SELECT id, name, password_hash, home, enabled, admin, upload_mode, rules, mounts FROM users ORDER BY name",
    )
    .fetch_all(pool)
    .await?;
    let mut users = Vec::with_capacity(rows.len());
    for (id, name, password_hash, home, enabled, admin, upload_mode, rules, mounts) in rows {
        let corrupt =
            |what: &str, e: serde_json::Error| StateError::Corrupt(format!("{what} of {name}: {e}"));
        let rules = serde_json::from_str(&rules).map_err(|e| corrupt("rules", e))?;
        let mounts = serde_json::from_str(&mounts).map_err(|e| corrupt("mounts", e))?;
        let keys: Vec<(String, String)> = sqlx::query_as(
            "SELECT fingerprint, public_key FROM user_keys WHERE user_id = ? ORDER BY fingerprint",
        )
        .bind(id)
        .fetch_all(pool)
        .await?;
        let api_keys: Vec<(String, String, Vec<u8>, String)> = sqlx::query_as(
            "SELECT id, name, secret_sha256, created_at FROM api_keys WHERE user_id = ? ORDER BY id",
        )
        .bind(id)
        .fetch_all(pool)
        .await?;
        users.push(ExportedUser {
            name,
            password_hash,
            home,
            enabled,
            admin,
            upload_mode,
            rules,
            mounts,
            keys: keys
                .into_iter()
                .map(|(fingerprint, public_key)| ExportedKey { fingerprint, public_key })
                .collect(),
            api_keys: api_keys
                .into_iter()
                .map(|(id, name, hash, created_at)| ExportedApiKey {
                    id,
                    name,
                    secret_sha256: crate::types::hex(&hash),
                    created_at,
                })
                .collect(),
        });
    }
    Ok(StateDocument {
        format: FORMAT.into(),
        version: VERSION,
        exported_at: chrono::Utc::now().to_rfc3339(),
        users,
    })
}

/// Loads `doc` into a store that has no users yet, all in one transaction.
pub async fn import(pool: &SqlitePool, doc: &StateDocument) -> Result<usize, StateError> {
    if doc.format != FORMAT || doc.version != VERSION {
        return Err(StateError::Document(format!(
            "expected format `{FORMAT}` version {VERSION}, found `{}` version {}",
            doc.format, doc.version
        )));
    }
    // IMMEDIATE: the count and the inserts under one write lock (see `Users::change`).
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let (existing,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users").fetch_one(&mut *tx).await?;
    if existing > 0 {
        return Err(StateError::Document(format!(
            "the store already has {existing} users; import only into an empty one"
        )));
    }
    let now = chrono::Utc::now();
    for user in &doc.users {
        let inserted = sqlx::query(
            "INSERT INTO users (name, password_hash, home, enabled, admin, upload_mode, rules, mounts, created_at, \
             updated_at, tokens_after) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&user.name)
        .bind(&user.password_hash)
        .bind(&user.home)
        .bind(user.enabled)
        .bind(user.admin)
        .bind(&user.upload_mode)
        .bind(to_json(&user.rules)?)
        .bind(to_json(&user.mounts)?)
        .bind(now.to_rfc3339())
        .bind(now.to_rfc3339())
        .bind(now.timestamp_millis())
        .execute(&mut *tx)
        .await;
        let id = match inserted {
            Ok(done) => done.last_insert_rowid(),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StateError::UserExists(user.name.clone()));
            }
            Err(e) => return Err(e.into()),
        };
        for key in &user.keys {
            sqlx::query(
                "INSERT INTO user_keys (user_id, fingerprint, public_key, created_at) VALUES (?, ?, ?, ?)",
            )
            .bind(id)
            .bind(&key.fingerprint)
            .bind(&key.public_key)
            .bind(now.to_rfc3339())
            .execute(&mut *tx)
            .await?;
        }
        for key in &user.api_keys {
            let hash =
                crate::types::unhex(&key.secret_sha256).filter(|h| h.len() == 32).ok_or_else(|| {
                    StateError::Document(format!(
                        "API key {} of {}: secret_sha256 is not 64 hex digits",
                        key.id, user.name
                    ))
                })?;
            sqlx::query(
                "INSERT INTO api_keys (id, user_id, name, secret_sha256, created_at) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&key.id)
            .bind(id)
            .bind(&key.name)
            .bind(hash)
            .bind(&key.created_at)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(doc.users.len())
}
