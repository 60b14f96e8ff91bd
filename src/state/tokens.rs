//! Shared secrets and revoked bearer tokens: what lets any replica verify a token another one
//! issued, and all of them honour a logout.

use super::StateError;

#[async_trait::async_trait]
pub trait TokenStore: Send + Sync {
    /// The secret called `name`, created from `fresh` by whichever replica asks first.
    async fn secret(&self, name: &str, fresh: &[u8]) -> Result<Vec<u8>, StateError>;
    async fn revoke(&self, token_id: &str, expires_at: i64) -> Result<(), StateError>;
    async fn is_revoked(&self, token_id: &str) -> Result<bool, StateError>;
}

/// `TokenStore` for a store type with a `pool`.
macro_rules! impl_token_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::state::tokens::TokenStore for $store {
            async fn secret(&self, name: &str, fresh: &[u8]) -> Result<Vec<u8>, $crate::state::StateError> {
                sqlx::query(
                    "INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(name)
                .bind(fresh)
                .bind(chrono::Utc::now().to_rfc3339())
                .execute(&self.pool)
                .await?;
                let (value,): (Vec<u8>,) = sqlx::query_as("SELECT value FROM secrets WHERE name = $1")
                    .bind(name)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(value)
            }

            async fn revoke(&self, token_id: &str, expires_at: i64) -> Result<(), $crate::state::StateError> {
                let now = chrono::Utc::now().timestamp();
                sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                sqlx::query(
                    "INSERT INTO revoked_tokens (token_id, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .bind(token_id)
                .bind(expires_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn is_revoked(&self, token_id: &str) -> Result<bool, $crate::state::StateError> {
                let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM revoked_tokens WHERE token_id = $1")
                    .bind(token_id)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(n > 0)
            }
        }
    };
}
pub(super) use impl_token_store;
