//! API keys: id, owner, name and a hash of the secret (never the secret itself).

use serde::Serialize;

use super::StateError;

#[derive(Debug, Clone, Serialize)]
pub struct ApiKeyRecord {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

#[async_trait::async_trait]
pub trait ApiKeyStore: Send + Sync {
    async fn create(&self, user: &str, id: &str, name: &str, secret_sha256: &[u8]) -> Result<(), StateError>;
    async fn list(&self, user: &str) -> Result<Vec<ApiKeyRecord>, StateError>;
    /// Removes `user`'s key `id`; false if there was none.
    async fn remove(&self, user: &str, id: &str) -> Result<bool, StateError>;
    /// The owner's name and the stored hash of key `id`.
    async fn find(&self, id: &str) -> Result<Option<(String, Vec<u8>)>, StateError>;
    async fn touch(&self, id: &str) -> Result<(), StateError>;
}

/// `ApiKeyStore` for a store type with a `pool`.
macro_rules! impl_api_key_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::state::api_keys::ApiKeyStore for $store {
            async fn create(
                &self,
                user: &str,
                id: &str,
                name: &str,
                secret_sha256: &[u8],
            ) -> Result<(), $crate::state::StateError> {
                let done = sqlx::query(
                    "INSERT INTO api_keys (id, user_id, name, secret_sha256, created_at) \
                     SELECT $1, id, $2, $3, $4 FROM users WHERE name = $5",
                )
                .bind(id)
                .bind(name)
                .bind(secret_sha256)
                .bind(chrono::Utc::now().to_rfc3339())
                .bind(user)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::state::StateError::UserNotFound(user.to_string()));
                }
                Ok(())
            }

            async fn list(
                &self,
                user: &str,
            ) -> Result<Vec<$crate::state::api_keys::ApiKeyRecord>, $crate::state::StateError> {
                let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
                    "SELECT k.id, k.name, k.created_at, k.last_used_at FROM api_keys k \
                     JOIN users u ON u.id = k.user_id WHERE u.name = $1 ORDER BY k.created_at, k.id",
                )
                .bind(user)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(id, name, created_at, last_used_at)| $crate::state::api_keys::ApiKeyRecord {
                        id,
                        name,
                        created_at,
                        last_used_at,
                    })
                    .collect())
            }

            async fn remove(&self, user: &str, id: &str) -> Result<bool, $crate::state::StateError> {
                let done = sqlx::query(
                    "DELETE FROM api_keys WHERE id = $1 AND user_id = (SELECT id FROM users WHERE name = $2)",
                )
                .bind(id)
                .bind(user)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn find(&self, id: &str) -> Result<Option<(String, Vec<u8>)>, $crate::state::StateError> {
                let row: Option<(String, Vec<u8>)> = sqlx::query_as(
                    "SELECT u.name, k.secret_sha256 FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row)
            }

            async fn touch(&self, id: &str) -> Result<(), $crate::state::StateError> {
                sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
                    .bind(chrono::Utc::now().to_rfc3339())
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
        }
    };
}
pub(super) use impl_api_key_store;
