//! Shared secrets and revoked bearer tokens: what lets any replica verify a token another one
//! issued, and all of them honour a logout.

use sqlx::SqlitePool;

use super::StateError;

pub struct Tokens<'a> {
    pool: &'a SqlitePool,
}

impl<'a> Tokens<'a> {
    pub(super) fn new(pool: &'a SqlitePool) -> Self {
        Self { pool }
    }

    /// The secret called `name`, created from `fresh` by whichever replica asks first.
    pub async fn secret(&self, name: &str, fresh: &[u8]) -> Result<Vec<u8>, StateError> {
        sqlx::query("INSERT OR IGNORE INTO secrets (name, value, created_at) VALUES (?, ?, ?)")
            .bind(name)
            .bind(fresh)
            .bind(chrono::Utc::now().to_rfc3339())
            .execute(self.pool)
            .await?;
        let (value,): (Vec<u8>,) = sqlx::query_as("SELECT value FROM secrets WHERE name = ?")
            .bind(name)
            .fetch_one(self.pool)
            .await?;
        Ok(value)
    }

    pub async fn revoke(&self, token_id: &str, expires_at: i64) -> Result<(), StateError> {
        let now = chrono::Utc::now().timestamp();
        sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < ?").bind(now).execute(self.pool).await?;
        sqlx::query("INSERT OR IGNORE INTO revoked_tokens (token_id, expires_at) VALUES (?, ?)")
            .bind(token_id)
            .bind(expires_at)
            .execute(self.pool)
            .await?;
        Ok(())
    }

    pub async fn is_revoked(&self, token_id: &str) -> Result<bool, StateError> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM revoked_tokens WHERE token_id = ?")
            .bind(token_id)
            .fetch_optional(self.pool)
            .await?;
        Ok(row.is_some())
    }
}
