//! The embedded store: one SQLite file in the data directory, what a single node needs.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::{StateError, migrate};

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database and applies pending migrations. WAL mode and a
    /// busy timeout let the `ferry user` commands write while the server runs.
    pub async fn open(path: &Path) -> Result<Self, StateError> {
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
        let mut conn = pool.acquire().await?;
        migrate::apply_migrations!(&mut *conn, migrate::SQLITE, "BEGIN IMMEDIATE")?;
        drop(conn);
        Ok(Self { pool })
    }

    /// A transaction that reads and then writes. IMMEDIATE takes the write lock first, or a
    /// write by the audit sink in between fails the upgrade at once with SQLITE_BUSY, whatever
    /// the busy timeout.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }
}

#[async_trait::async_trait]
impl super::Store for SqliteStore {
    fn kind(&self) -> super::StoreKind {
        super::StoreKind::Sqlite
    }

    async fn ping(&self) -> Result<(), StateError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

super::users::impl_user_store!(SqliteStore, sqlx::Sqlite);
super::api_keys::impl_api_key_store!(SqliteStore);
super::tokens::impl_token_store!(SqliteStore);
super::audit::impl_audit_store!(SqliteStore, sqlx::Sqlite);
super::document::impl_document_store!(SqliteStore);
