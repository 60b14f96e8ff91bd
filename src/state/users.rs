//! Named operations on local users and their keys.

use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;

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
enum Value {
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

type UserRow = (i64, String, Option<String>, String, bool, Option<String>, String, String, bool, i64);

pub struct Users<'a> {
    pool: &'a SqlitePool,
}

impl<'a> Users<'a> {
    pub(super) fn new(pool: &'a SqlitePool) -> Self {
        Self { pool }
    }

    pub async fn create(&self, user: &NewUser) -> Result<(), StateError> {
        let now = chrono::Utc::now().to_rfc3339();
        let rules = serde_json::to_string(&user.rules).map_err(|e| StateError::Corrupt(e.to_string()))?;
        let result = sqlx::query(
            "INSERT INTO users (name, password_hash, home, enabled, upload_mode, rules, created_at, updated_at, \
             tokens_after) VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?)",
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
        .execute(self.pool)
        .await;
        match result {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StateError::UserExists(user.name.clone()))
            }
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    pub async fn count(&self) -> Result<i64, StateError> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users").fetch_one(self.pool).await?;
        Ok(n)
    }

    /// The user with keys and rules, or `None` (callers decide how unknown users are answered).
    pub async fn find(&self, name: &str) -> Result<Option<UserRecord>, StateError> {
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT id, name, password_hash, home, enabled, upload_mode, rules, mounts, admin, tokens_after FROM users WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(self.pool)
        .await?;
        match row {
            None => Ok(None),
            Some(row) => self.hydrate(row).await.map(Some),
        }
    }

    pub async fn get(&self, name: &str) -> Result<UserRecord, StateError> {
        self.find(name).await?.ok_or_else(|| StateError::UserNotFound(name.to_string()))
    }

    pub async fn list(&self) -> Result<Vec<UserRecord>, StateError> {
        let rows: Vec<UserRow> = sqlx::query_as(
            "SELECT id, name, password_hash, home, enabled, upload_mode, rules, mounts, admin, tokens_after FROM users ORDER BY name",
        )
        .fetch_all(self.pool)
        .await?;
        let mut users = Vec::with_capacity(rows.len());
        for row in rows {
            users.push(self.hydrate(row).await?);
        }
        Ok(users)
    }

    pub async fn remove(&self, name: &str) -> Result<(), StateError> {
        let done = sqlx::query("DELETE FROM users WHERE name = ?").bind(name).execute(self.pool).await?;
        if done.rows_affected() == 0 {
            return Err(StateError::UserNotFound(name.to_string()));
        }
        Ok(())
    }

    /// Also voids every token issued before: a new password logs the old logins out.
    pub async fn set_password(&self, name: &str, hash: &str) -> Result<(), StateError> {
        self.update(name, "password_hash", Some(hash.to_string())).await?;
        self.void_tokens(name).await
    }

    pub async fn set_admin(&self, name: &str, admin: bool) -> Result<(), StateError> {
        self.update(name, "admin", admin).await
    }

    pub async fn set_upload_mode(&self, name: &str, mode: Option<UploadMode>) -> Result<(), StateError> {
        self.update(name, "upload_mode", mode.map(|m| m.as_str().to_string())).await
    }

    /// Disabling also voids every token issued before (enabling again does not revive them).
    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), StateError> {
        self.update(name, "enabled", enabled).await?;
        if enabled { Ok(()) } else { self.void_tokens(name).await }
    }

    /// Tokens of `name`'s logins until now stop working on every replica.
    pub async fn void_tokens(&self, name: &str) -> Result<(), StateError> {
        self.update(name, "tokens_after", chrono::Utc::now().timestamp_millis()).await
    }

    pub async fn set_rules(&self, name: &str, rules: &[RuleRecord]) -> Result<(), StateError> {
        let json = serde_json::to_string(rules).map_err(|e| StateError::Corrupt(e.to_string()))?;
        self.update(name, "rules", Some(json)).await
    }

    pub async fn set_mounts(&self, name: &str, mounts: &[MountRecord]) -> Result<(), StateError> {
        let json = serde_json::to_string(mounts).map_err(|e| StateError::Corrupt(e.to_string()))?;
        self.update(name, "mounts", Some(json)).await
    }

    pub async fn set_home(&self, name: &str, home: &str) -> Result<(), StateError> {
        self.update(name, "home", Some(home.to_string())).await
    }

    /// Applies every change of `change` in one transaction: all of them or none. Disabling
    /// voids the user's tokens, as `set_enabled` does.
    pub async fn change(&self, name: &str, change: &UserChange) -> Result<(), StateError> {
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
        let now = chrono::Utc::now().to_rfc3339();
        // IMMEDIATE: take the write lock before the read, or a write by the audit sink in between
        // fails the upgrade at once with SQLITE_BUSY, whatever the busy timeout.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let (found,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users WHERE name = ?")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
        if found == 0 {
            return Err(StateError::UserNotFound(name.to_string()));
        }
        for (column, value) in columns {
            // `column` is one of the fixed names above.
            let sql = format!("UPDATE users SET {column} = ?, updated_at = ? WHERE name = ?");
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

    async fn update<T>(&self, name: &str, column: &'static str, value: T) -> Result<(), StateError>
    where
        T: for<'q> sqlx::Encode<'q, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite> + Send + 'static,
    {
        let sql = format!("UPDATE users SET {column} = ?, updated_at = ? WHERE name = ?");
        // `column` is one of a fixed set of names chosen by the callers above.
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(value)
            .bind(chrono::Utc::now().to_rfc3339())
            .bind(name)
            .execute(self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StateError::UserNotFound(name.to_string()));
        }
        Ok(())
    }

    pub async fn add_key(&self, name: &str, key: &KeyRecord) -> Result<(), StateError> {
        let (id,): (i64,) = sqlx::query_as("SELECT id FROM users WHERE name = ?")
            .bind(name)
            .fetch_optional(self.pool)
            .await?
            .ok_or_else(|| StateError::UserNotFound(name.to_string()))?;
        let result = sqlx::query(
            "INSERT INTO user_keys (user_id, fingerprint, public_key, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(id)
        .bind(&key.fingerprint)
        .bind(&key.public_key)
        .bind(chrono::Utc::now().to_rfc3339())
        .execute(self.pool)
        .await;
        match result {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StateError::KeyExists(key.fingerprint.clone()))
            }
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    /// Removes the key whose fingerprint is `fingerprint`.
    pub async fn remove_key(&self, name: &str, fingerprint: &str) -> Result<(), StateError> {
        let done = sqlx::query(
            "DELETE FROM user_keys WHERE fingerprint = ? AND user_id = (SELECT id FROM users WHERE name = ?)",
        )
        .bind(fingerprint)
        .bind(name)
        .execute(self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StateError::KeyNotFound(fingerprint.to_string()));
        }
        Ok(())
    }

    async fn hydrate(&self, row: UserRow) -> Result<UserRecord, StateError> {
        let (id, name, password_hash, home, enabled, upload_mode, rules, mounts, admin, tokens_after) = row;
        let keys: Vec<(String, String)> =
            sqlx::query_as("SELECT fingerprint, public_key FROM user_keys WHERE user_id = ? ORDER BY id")
                .bind(id)
                .fetch_all(self.pool)
                .await?;
        let rules: Vec<RuleRecord> = serde_json::from_str(&rules)
            .map_err(|e| StateError::Corrupt(format!("rules of `{name}`: {e}")))?;
        let mounts: Vec<MountRecord> = serde_json::from_str(&mounts)
            .map_err(|e| StateError::Corrupt(format!("mounts of `{name}`: {e}")))?;
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
}
