//! Schema migrations embedded in the binary and applied in order at start, each once.

use sqlx::SqlitePool;

use super::StateError;

/// (version, description, SQL). Append only: never edit a released migration.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "users and keys", include_str!("migrations/0001_users.sql")),
    (2, "user mounts", include_str!("migrations/0002_user_mounts.sql")),
    (3, "token secrets and revocations", include_str!("migrations/0003_tokens.sql")),
    (4, "api keys", include_str!("migrations/0004_api_keys.sql")),
    (5, "admin role", include_str!("migrations/0005_admin_role.sql")),
    (6, "audit trail", include_str!("migrations/0006_audit.sql")),
    (7, "token epoch per user", include_str!("migrations/0007_token_epoch.sql")),
];

pub async fn apply(pool: &SqlitePool) -> Result<(), StateError> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, \
         description TEXT NOT NULL, applied_at TEXT NOT NULL)",
    )
    .execute(pool)
    .await?;
    for (version, description, sql) in MIGRATIONS {
        // IMMEDIATE: a running server's writes cannot fail this read-then-write transaction.
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let done: Option<(i64,)> = sqlx::query_as("SELECT version FROM schema_migrations WHERE version = ?")
            .bind(version)
            .fetch_optional(&mut *tx)
            .await?;
        if done.is_some() {
            continue;
        }
        sqlx::raw_sql(*sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)")
            .bind(version)
            .bind(description)
            .bind(chrono::Utc::now().to_rfc3339())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(())
}
