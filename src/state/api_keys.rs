//! API keys: id, owner, name and a hash of the secret (never the secret itself).

use serde::Serialize;
use sqlx::SqlitePool;

use super::StateError;

#[derive(Debug, Clone, Serialize)]
pub struct ApiKeyRecord {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

pub struct ApiKeys<'a> {
    pool: &'a SqlitePool,
}

impl<'a> ApiKeys<'a> {
    pub(super) fn new(pool: &'a SqlitePool) -> Self {
        Self { pool }
    }

    pub async fn create(
        &self,
        user: &str,
        id: &str,
        name: &str,
        secret_sha256: &[u8],
    ) -> Result<(), StateError> {
        let done = sqlx::query(
            "INSERT INTO api_keys (id, user_id, name, secret_sha256, created_at) \
             SELECT ?, id, ?, ?, ? FROM users WHERE name = ?",
        )
        .bind(id)
        .bind(name)
        .bind(secret_sha256)
        .bind(chrono::Utc::now().to_rfc3339())
        .bind(user)
        .execute(self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StateError::UserNotFound(user.to_string()));
        }
        Ok(())
    }

    pub async fn list(&self, user: &str) -> Result<Vec<ApiKeyRecord>, StateError> {
        let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
            "SELECT k.id, k.name, k.created_at, k.last_used_at FROM api_keys k JOIN users u ON u.id = k.user_id \
             WHERE u.name = ? ORDER BY k.created_at",
        )
        .bind(user)
        .fetch_all(self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, created_at, last_used_at)| ApiKeyRecord { id, name, created_at, last_used_at })
            .collect())
    }

    /// Removes `user`'s key `id`; false if there was none.
    pub async fn remove(&self, user: &str, id: &str) -> Result<bool, StateError> {
        let done = sqlx::query(
            "DELETE FROM api_keys WHERE id = ? AND user_id = (SELECT id FROM users WHERE name = ?)",
        )
        .bind(id)
        .bind(user)
        .execute(self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The owner's name and the stored hash of key `id`.
    pub async fn find(&self, id: &str) -> Result<Option<(String, Vec<u8>)>, StateError> {
        let row: Option<(String, Vec<u8>)> = sqlx::query_as(
            "SELECT u.name, k.secret_sha256 FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.id = ?",
        )
        .bind(id)
        .fetch_optional(self.pool)
        .await?;
        Ok(row)
    }

    pub async fn touch(&self, id: &str) -> Result<(), StateError> {
        sqlx::query("UPDATE api_keys SET last_used_at = ? WHERE id = ?")
            .bind(chrono::Utc::now().to_rfc3339())
            .bind(id)
            .execute(self.pool)
            .await?;
        Ok(())
    }
}
