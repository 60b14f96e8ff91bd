//! Named operations on local users and their keys: the `UserStore` trait and the one body of
//! SQL both stores share (written with `$N` placeholders, which SQLite reads too).

use serde::{Deserialize, Serialize};

use super::StateError;
use crate::types::UploadMode;

/// A permission rule as stored: a glob over virtual paths and the operations it grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRecord {
    pub path: String,
    pub permissions: Vec<String>,
}

/// A mount as stored: the virtual folder `path` shows `prefix` of the backend named `storage`
/// (`default` is `[storage]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountRecord {
    pub path: String,
    pub storage: String,
    #[serde(default)]
    pub prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyRecord {
    pub fingerprint: String,
    pub public_key: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserRecord {
    pub name: String,
    #[serde(skip)]
    pub password_hash: Option<String>,
    pub has_password: bool,
    pub home: String,
    pub enabled: bool,
    /// May use the admin API.
    pub admin: bool,
    pub upload_mode: Option<UploadMode>,
    pub rules: Vec<RuleRecord>,
    pub mounts: Vec<MountRecord>,
    pub keys: Vec<KeyRecord>,
    /// Tokens of logins that began before this (Unix milliseconds) are void.
    #[serde(skip)]
    pub tokens_after: i64,
}

/// Changes to one user, applied together or not at all (`Users::change`); `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub home: Option<String>,
    pub rules: Option<Vec<RuleRecord>>,
    pub mounts: Option<Vec<MountRecord>>,
    /// `Some(None)` returns the user to the server's default upload mode.
    pub upload_mode: Option<Option<UploadMode>>,
    pub enabled: Option<bool>,
    pub admin: Option<bool>,
}

/// A column value of a `UserChange`.
pub(super) enum Value {
    Text(Option<String>),
    Flag(bool),
    Number(i64),
}

/// Rules and mounts as their stored JSON.
pub(super) fn to_json<T: Serialize>(value: &T) -> Result<String, StateError> {
    serde_json::to_string(value).map_err(|e| StateError::Corrupt(e.to_string()))
}

/// What `create` needs; keys are added afterwards.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub name: String,
    pub password_hash: Option<String>,
    pub home: String,
    pub upload_mode: Option<UploadMode>,
    pub rules: Vec<RuleRecord>,
}

pub(super) type UserRow =
    (i64, String, Option<String>, String, bool, Option<String>, String, String, bool, i64);

/// Local users and their SSH keys.
#[async_trait::async_trait]
pub trait UserStore: Send + Sync {
    async fn create(&self, user: &NewUser) -> Result<(), StateError>;
    async fn count(&self) -> Result<i64, StateError>;
    /// The user with keys and rules, or `None` (callers decide how unknown users are answered).
    async fn find(&self, name: &str) -> Result<Option<UserRecord>, StateError>;
    async fn list(&self) -> Result<Vec<UserRecord>, StateError>;
    async fn remove(&self, name: &str) -> Result<(), StateError>;
    /// Applies every change of `change` in one transaction: all of them or none. Disabling
    /// voids the user's tokens.
    async fn change(&self, name: &str, change: &UserChange) -> Result<(), StateError>;
    /// Sets the password hash and voids every token issued before: a new password logs the
    /// old logins out.
    async fn set_password(&self, name: &str, hash: &str) -> Result<(), StateError>;
    /// Tokens of `name`'s logins until now stop working on every replica.
    async fn void_tokens(&self, name: &str) -> Result<(), StateError>;
    async fn add_key(&self, name: &str, key: &KeyRecord) -> Result<(), StateError>;
    /// Removes the key whose fingerprint is `fingerprint`.
    async fn remove_key(&self, name: &str, fingerprint: &str) -> Result<(), StateError>;

    async fn get(&self, name: &str) -> Result<UserRecord, StateError> {
        self.find(name).await?.ok_or_else(|| StateError::UserNotFound(name.to_string()))
    }

    async fn set_admin(&self, name: &str, admin: bool) -> Result<(), StateError> {
        self.change(name, &UserChange { admin: Some(admin), ..UserChange::default() }).await
    }

    async fn set_upload_mode(&self, name: &str, mode: Option<UploadMode>) -> Result<(), StateError> {
        self.change(name, &UserChange { upload_mode: Some(mode), ..UserChange::default() }).await
    }

    /// Disabling also voids every token issued before (enabling again does not revive them).
    async fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), StateError> {
        self.change(name, &UserChange { enabled: Some(enabled), ..UserChange::default() }).await
    }

    async fn set_rules(&self, name: &str, rules: &[RuleRecord]) -> Result<(), StateError> {
        self.change(name, &UserChange { rules: Some(rules.to_vec()), ..UserChange::default() }).await
    }

    async fn set_mounts(&self, name: &str, mounts: &[MountRecord]) -> Result<(), StateError> {
        self.change(name, &UserChange { mounts: Some(mounts.to_vec()), ..UserChange::default() }).await
    }

    async fn set_home(&self, name: &str, home: &str) -> Result<(), StateError> {
        self.change(name, &UserChange { home: Some(home.to_string()), ..UserChange::default() }).await
    }
}

/// The columns `change` writes, in order.
pub(super) fn change_columns(change: &UserChange) -> Result<Vec<(&'static str, Value)>, StateError> {
    let mut columns: Vec<(&'static str, Value)> = Vec::new();
    if let Some(home) = &change.home {
        columns.push(("home", Value::Text(Some(home.clone()))));
    }
    if let Some(rules) = &change.rules {
        columns.push(("rules", Value::Text(Some(to_json(rules)?))));
    }
    if let Some(mounts) = &change.mounts {
        columns.push(("mounts", Value::Text(Some(to_json(mounts)?))));
    }
    if let Some(mode) = change.upload_mode {
        columns.push(("upload_mode", Value::Text(mode.map(|m| m.as_str().to_string()))));
    }
    if let Some(enabled) = change.enabled {
        columns.push(("enabled", Value::Flag(enabled)));
        if !enabled {
            columns.push(("tokens_after", Value::Number(chrono::Utc::now().timestamp_millis())));
        }
    }
    if let Some(admin) = change.admin {
        columns.push(("admin", Value::Flag(admin)));
    }
    Ok(columns)
}

/// A user row and its keys as a record.
pub(super) fn hydrate(row: UserRow, keys: Vec<(String, String)>) -> Result<UserRecord, StateError> {
    let (_, name, password_hash, home, enabled, upload_mode, rules, mounts, admin, tokens_after) = row;
    let rules: Vec<RuleRecord> =
        serde_json::from_str(&rules).map_err(|e| StateError::Corrupt(format!("rules of `{name}`: {e}")))?;
    let mounts: Vec<MountRecord> =
        serde_json::from_str(&mounts).map_err(|e| StateError::Corrupt(format!("mounts of `{name}`: {e}")))?;
    Ok(UserRecord {
        has_password: password_hash.is_some(),
        password_hash,
        home,
        enabled,
        admin,
        upload_mode: upload_mode.as_deref().and_then(UploadMode::parse),
        rules,
        mounts,
        keys: keys
            .into_iter()
            .map(|(fingerprint, public_key)| KeyRecord { fingerprint, public_key })
            .collect(),
        name,
        tokens_after,
    })
}

pub(super) const FIND_USER: &str = "SELECT id, name, password_hash, home, enabled, upload_mode, rules, mounts, \
     admin, tokens_after FROM users WHERE name = $1";
pub(super) const LIST_USERS: &str = "SELECT id, name, password_hash, home, enabled, upload_mode, rules, mounts, \
     admin, tokens_after FROM users ORDER BY name";

/// `UserStore` for a store type `$store` (with a `pool` and `begin_write`) on database `$db`.
macro_rules! impl_user_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::state::users::UserStore for $store {
            async fn create(&self, user: &$crate::state::users::NewUser) -> Result<(), $crate::state::StateError> {
                use $crate::types::UploadMode;
                let now = chrono::Utc::now().to_rfc3339();
                let rules = $crate::state::users::to_json(&user.rules)?;
                let result = sqlx::query(
                    "INSERT INTO users (name, password_hash, home, enabled, upload_mode, rules, created_at, \
                     updated_at, tokens_after) VALUES ($1, $2, $3, TRUE, $4, $5, $6, $7, $8)",
                )
                .bind(&user.name)
                .bind(&user.password_hash)
                .bind(&user.home)
                .bind(user.upload_mode.map(UploadMode::as_str))
                .bind(rules)
                .bind(&now)
                .bind(&now)
                // A user re-created under an old name never inherits the old one's tokens.
                .bind(chrono::Utc::now().timestamp_millis())
                .execute(&self.pool)
                .await;
                match result {
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                        Err($crate::state::StateError::UserExists(user.name.clone()))
                    }
                    other => other.map(|_| ()).map_err(Into::into),
                }
            }

            async fn count(&self) -> Result<i64, $crate::state::StateError> {
                let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users").fetch_one(&self.pool).await?;
                Ok(n)
            }

            async fn find(&self, name: &str) -> Result<Option<$crate::state::UserRecord>, $crate::state::StateError> {
                let row: Option<$crate::state::users::UserRow> =
                    sqlx::query_as($crate::state::users::FIND_USER).bind(name).fetch_optional(&self.pool).await?;
                match row {
                    None => Ok(None),
                    Some(row) => {
                        let keys = self.user_keys(row.0).await?;
                        $crate::state::users::hydrate(row, keys).map(Some)
                    }
                }
            }

            async fn list(&self) -> Result<Vec<$crate::state::UserRecord>, $crate::state::StateError> {
                let rows: Vec<$crate::state::users::UserRow> =
                    sqlx::query_as($crate::state::users::LIST_USERS).fetch_all(&self.pool).await?;
                let mut users = Vec::with_capacity(rows.len());
                for row in rows {
                    let keys = self.user_keys(row.0).await?;
                    users.push($crate::state::users::hydrate(row, keys)?);
                }
                Ok(users)
            }

            async fn remove(&self, name: &str) -> Result<(), $crate::state::StateError> {
                let done = sqlx::query("DELETE FROM users WHERE name = $1").bind(name).execute(&self.pool).await?;
                if done.rows_affected() == 0 {
                    return Err($crate::state::StateError::UserNotFound(name.to_string()));
                }
                Ok(())
            }

            async fn change(
                &self,
                name: &str,
                change: &$crate::state::UserChange,
            ) -> Result<(), $crate::state::StateError> {
                use $crate::state::users::Value;
                let columns = $crate::state::users::change_columns(change)?;
                let now = chrono::Utc::now().to_rfc3339();
                let mut tx = self.begin_write().await?;
                let (found,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users WHERE name = $1")
                    .bind(name)
                    .fetch_one(&mut *tx)
                    .await?;
                if found == 0 {
                    return Err($crate::state::StateError::UserNotFound(name.to_string()));
                }
                for (column, value) in columns {
                    // `column` is one of the fixed names of `change_columns`.
                    let sql = format!("UPDATE users SET {column} = $1, updated_at = $2 WHERE name = $3");
                    let query = sqlx::query(sqlx::AssertSqlSafe(sql));
                    let query = match value {
                        Value::Text(text) => query.bind(text),
                        Value::Flag(flag) => query.bind(flag),
                        Value::Number(number) => query.bind(number),
                    };
                    query.bind(&now).bind(name).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn set_password(&self, name: &str, hash: &str) -> Result<(), $crate::state::StateError> {
                let done = sqlx::query(
                    "UPDATE users SET password_hash = $1, tokens_after = $2, updated_at = $3 WHERE name = $4",
                )
                .bind(hash)
                .bind(chrono::Utc::now().timestamp_millis())
                .bind(chrono::Utc::now().to_rfc3339())
                .bind(name)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::state::StateError::UserNotFound(name.to_string()));
                }
                Ok(())
            }

            async fn void_tokens(&self, name: &str) -> Result<(), $crate::state::StateError> {
                let done = sqlx::query("UPDATE users SET tokens_after = $1, updated_at = $2 WHERE name = $3")
                    .bind(chrono::Utc::now().timestamp_millis())
                    .bind(chrono::Utc::now().to_rfc3339())
                    .bind(name)
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::state::StateError::UserNotFound(name.to_string()));
                }
                Ok(())
            }

            async fn add_key(
                &self,
                name: &str,
                key: &$crate::state::KeyRecord,
            ) -> Result<(), $crate::state::StateError> {
                let (id,): (i64,) = sqlx::query_as("SELECT id FROM users WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(|| $crate::state::StateError::UserNotFound(name.to_string()))?;
                let result = sqlx::query(
                    "INSERT INTO user_keys (user_id, fingerprint, public_key, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(id)
                .bind(&key.fingerprint)
                .bind(&key.public_key)
                .bind(chrono::Utc::now().to_rfc3339())
                .execute(&self.pool)
                .await;
                match result {
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                        Err($crate::state::StateError::KeyExists(key.fingerprint.clone()))
                    }
                    other => other.map(|_| ()).map_err(Into::into),
                }
            }

            async fn remove_key(&self, name: &str, fingerprint: &str) -> Result<(), $crate::state::StateError> {
                let done = sqlx::query(
                    "DELETE FROM user_keys WHERE fingerprint = $1 AND user_id = (SELECT id FROM users WHERE name = $2)",
                )
                .bind(fingerprint)
                .bind(name)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::state::StateError::KeyNotFound(fingerprint.to_string()));
                }
                Ok(())
            }
        }

        impl $store {
            async fn user_keys(&self, id: i64) -> Result<Vec<(String, String)>, sqlx::Error> {
                sqlx::query_as("SELECT fingerprint, public_key FROM user_keys WHERE user_id = $1 ORDER BY id")
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await
            }
        }
    };
}
pub(super) use impl_user_store;
