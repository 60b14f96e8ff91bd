//! The store as one versioned JSON document (`ferry state export` / `ferry state import`):
//! users with their password hashes, flags, homes, rules, mounts and SSH keys, and their API
//! keys as hashes. Secrets stay hashed; the token signing key is not exported (a new store makes
//! its own, so tokens of the old one end), nor the audit trail (its sinks export it).
//! An import goes into an empty store in one transaction: all of it or nothing.

use super::StateError;
use super::users::{MountRecord, RuleRecord};
use serde::{Deserialize, Serialize};

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

pub(super) type UserRow = (i64, String, Option<String>, String, bool, bool, Option<String>, String, String);

/// Export and import of the whole store.
#[async_trait::async_trait]
pub trait DocumentStore: Send + Sync {
    /// The whole store as one document (`ferry state export`).
    async fn export(&self) -> Result<StateDocument, StateError>;
    /// Loads a document into this store, which must have no users (`ferry state import`).
    async fn import(&self, doc: &StateDocument) -> Result<usize, StateError>;
}

/// A stored user row with its keys and API keys as the document has it.
pub(super) fn exported(
    row: UserRow,
    keys: Vec<(String, String)>,
    api_keys: Vec<(String, String, Vec<u8>, String)>,
) -> Result<ExportedUser, StateError> {
    let (_, name, password_hash, home, enabled, admin, upload_mode, rules, mounts) = row;
    let corrupt = |what: &str, e: serde_json::Error| StateError::Corrupt(format!("{what} of {name}: {e}"));
    let rules = serde_json::from_str(&rules).map_err(|e| corrupt("rules", e))?;
    let mounts = serde_json::from_str(&mounts).map_err(|e| corrupt("mounts", e))?;
    Ok(ExportedUser {
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
    })
}

pub(super) fn document(users: Vec<ExportedUser>) -> StateDocument {
    StateDocument {
        format: FORMAT.into(),
        version: VERSION,
        exported_at: chrono::Utc::now().to_rfc3339(),
        users,
    }
}

/// The document's format and version, checked before anything is written.
pub(super) fn check_format(doc: &StateDocument) -> Result<(), StateError> {
    if doc.format != FORMAT || doc.version != VERSION {
        return Err(StateError::Document(format!(
            "expected format `{FORMAT}` version {VERSION}, found `{}` version {}",
            doc.format, doc.version
        )));
    }
    Ok(())
}

/// The API key's stored hash from its hex form.
pub(super) fn api_key_hash(user: &ExportedUser, key: &ExportedApiKey) -> Result<Vec<u8>, StateError> {
    crate::types::unhex(&key.secret_sha256).filter(|h| h.len() == 32).ok_or_else(|| {
        StateError::Document(format!(
            "API key {} of {}: secret_sha256 is not 64 hex digits",
            key.id, user.name
        ))
    })
}

/// `DocumentStore` for a store type with a `pool` and `begin_write`.
macro_rules! impl_document_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::state::document::DocumentStore for $store {
            async fn export(&self) -> Result<$crate::state::document::StateDocument, $crate::state::StateError> {
                let rows: Vec<$crate::state::document::UserRow> = sqlx::query_as(
                    "SELECT id, name, password_hash, home, enabled, admin, upload_mode, rules, mounts \
                     FROM users ORDER BY name",
                )
                .fetch_all(&self.pool)
                .await?;
                let mut users = Vec::with_capacity(rows.len());
                for row in rows {
                    let keys: Vec<(String, String)> = sqlx::query_as(
                        "SELECT fingerprint, public_key FROM user_keys WHERE user_id = $1 ORDER BY fingerprint",
                    )
                    .bind(row.0)
                    .fetch_all(&self.pool)
                    .await?;
                    let api_keys: Vec<(String, String, Vec<u8>, String)> = sqlx::query_as(
                        "SELECT id, name, secret_sha256, created_at FROM api_keys WHERE user_id = $1 ORDER BY id",
                    )
                    .bind(row.0)
                    .fetch_all(&self.pool)
                    .await?;
                    users.push($crate::state::document::exported(row, keys, api_keys)?);
                }
                Ok($crate::state::document::document(users))
            }

            async fn import(
                &self,
                doc: &$crate::state::document::StateDocument,
            ) -> Result<usize, $crate::state::StateError> {
                use $crate::state::StateError;
                use $crate::state::users::to_json;
                $crate::state::document::check_format(doc)?;
                // One write transaction: the count and the inserts together.
                let mut tx = self.begin_write().await?;
                let (existing,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users").fetch_one(&mut *tx).await?;
                if existing > 0 {
                    return Err(StateError::Document(format!(
                        "the store already has {existing} users; import only into an empty one"
                    )));
                }
                let now = chrono::Utc::now();
                for user in &doc.users {
                    let inserted: Result<(i64,), sqlx::Error> = sqlx::query_as(
                        "INSERT INTO users (name, password_hash, home, enabled, admin, upload_mode, rules, mounts, \
                         created_at, updated_at, tokens_after) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                         RETURNING id",
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
                    .fetch_one(&mut *tx)
                    .await;
                    let id = match inserted {
                        Ok((id,)) => id,
                        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                            return Err(StateError::UserExists(user.name.clone()));
                        }
                        Err(e) => return Err(e.into()),
                    };
                    for key in &user.keys {
                        sqlx::query(
                            "INSERT INTO user_keys (user_id, fingerprint, public_key, created_at) VALUES ($1, $2, $3, $4)",
                        )
                        .bind(id)
                        .bind(&key.fingerprint)
                        .bind(&key.public_key)
                        .bind(now.to_rfc3339())
                        .execute(&mut *tx)
                        .await?;
                    }
                    for key in &user.api_keys {
                        let hash = $crate::state::document::api_key_hash(user, key)?;
                        sqlx::query(
                            "INSERT INTO api_keys (id, user_id, name, secret_sha256, created_at) VALUES ($1, $2, $3, $4, $5)",
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
        }
    };
}
pub(super) use impl_document_store;
