//! Schema migrations embedded in the binary and applied in order at start, each once. Each
//! store has its own list (append only: never edit a released migration); a store whose schema
//! is newer than this binary knows is refused, so an old replica cannot write to it.

use super::StateError;

/// (version, description, SQL).
pub type Migration = (i64, &'static str, &'static str);

pub const SQLITE: &[Migration] = &[
    (1, "users and keys", include_str!("migrations/sqlite/0001_users.sql")),
    (2, "user mounts", include_str!("migrations/sqlite/0002_user_mounts.sql")),
    (3, "token secrets and revocations", include_str!("migrations/sqlite/0003_tokens.sql")),
    (4, "api keys", include_str!("migrations/sqlite/0004_api_keys.sql")),
    (5, "admin role", include_str!("migrations/sqlite/0005_admin_role.sql")),
    (6, "audit trail", include_str!("migrations/sqlite/0006_audit.sql")),
    (7, "token epoch per user", include_str!("migrations/sqlite/0007_token_epoch.sql")),
];

pub const POSTGRES: &[Migration] =
    &[(1, "users, keys, tokens, api keys, audit trail", include_str!("migrations/postgres/0001_schema.sql"))];

pub const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, \
     description TEXT NOT NULL, applied_at TEXT NOT NULL)";

/// Refuses a schema newer than `known`: a migration this binary does not have was applied.
pub fn check_not_newer(applied: Option<i64>, known: &[Migration]) -> Result<(), StateError> {
    let newest = known.last().map_or(0, |m| m.0);
    match applied {
        Some(found) if found > newest => Err(StateError::SchemaTooNew { found, known: newest }),
        _ => Ok(()),
    }
}

/// Applies every migration of `$list` not yet applied on the connection `$conn` (a `&mut`
/// to one connection), each in its own transaction begun with `$begin` ("BEGIN IMMEDIATE" on
/// SQLite, so a running server's writes cannot fail the read-then-write).
macro_rules! apply_migrations {
    ($conn:expr, $list:expr, $begin:expr) => {{
        use sqlx::Connection;
        let conn = $conn;
        sqlx::query($crate::state::migrate::CREATE_TABLE).execute(&mut *conn).await?;
        let (applied,): (Option<i64>,) =
            sqlx::query_as("SELECT MAX(version) FROM schema_migrations").fetch_one(&mut *conn).await?;
        $crate::state::migrate::check_not_newer(applied, $list)?;
        for (version, description, sql) in $list {
            let mut tx = conn.begin_with($begin).await?;
            let done: Option<(i64,)> =
                sqlx::query_as("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(version)
                    .fetch_optional(&mut *tx)
                    .await?;
            if done.is_some() {
                continue;
            }
            sqlx::raw_sql(*sql).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO schema_migrations (version, description, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(version)
            .bind(description)
            .bind(chrono::Utc::now().to_rfc3339())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Ok::<(), $crate::state::StateError>(())
    }};
}
pub(super) use apply_migrations;
