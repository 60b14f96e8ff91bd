//! The state store: users, keys, API keys, token revocations and the audit trail with each
//! node's chain head.
//! SQLite through sqlx with runtime queries, so a PostgreSQL twin can follow the same
//! operations. Uses `config` and `types`.

pub mod api_keys;
pub mod audit;
pub mod document;
mod migrate;
pub mod tokens;
pub mod users;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use users::{KeyRecord, MountRecord, NewUser, RuleRecord, UserChange, UserRecord};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("user `{0}` not found")]
    UserNotFound(String),
    #[error("user `{0}` already exists")]
    UserExists(String),
    #[error("key {0} is already authorized")]
    KeyExists(String),
    #[error("no key {0}")]
    KeyNotFound(String),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    #[error("state document: {0}")]
    Document(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// Handle to the state database; cheap to clone.
#[derive(Clone)]
pub struct State {
    pool: SqlitePool,
}

impl State {
    /// Opens (creating if missing) the SQLite database and applies pending migrations. WAL mode
    /// and a busy timeout let the `ferry user` commands write while the server runs.
    pub async fn open_sqlite(path: &Path) -> Result<Self, StateError> {
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
        migrate::apply(&pool).await?;
        Ok(Self { pool })
    }

    pub fn users(&self) -> users::Users<'_> {
        users::Users::new(&self.pool)
    }

    pub fn api_keys(&self) -> api_keys::ApiKeys<'_> {
        api_keys::ApiKeys::new(&self.pool)
    }

    pub fn audit(&self) -> audit::AuditLog<'_> {
        audit::AuditLog::new(&self.pool)
    }

    /// The whole store as one document (`ferry state export`).
    pub async fn export(&self) -> Result<document::StateDocument, StateError> {
        document::export(&self.pool).await
    }

    /// Loads a document into this store, which must have no users (`ferry state import`).
    pub async fn import(&self, doc: &document::StateDocument) -> Result<usize, StateError> {
        document::import(&self.pool, doc).await
    }

    pub fn tokens(&self) -> tokens::Tokens<'_> {
        tokens::Tokens::new(&self.pool)
    }
}
