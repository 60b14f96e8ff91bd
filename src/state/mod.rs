//! The state store: users, keys, API keys, token revocations and the audit trail with each
//! node's chain head. One narrow trait per table family, two stores on sqlx with runtime
//! queries: SQLite (the embedded default) and PostgreSQL (what replicas share). Both run the
//! same SQL text, written with `$N` placeholders, which SQLite reads too; each family's
//! implementation is one macro body expanded for both. Uses `config` and `types`.

pub mod api_keys;
pub mod audit;
pub mod document;
mod migrate;
mod postgres;
mod sqlite;
pub mod tokens;
pub mod users;

use std::path::Path;
use std::sync::Arc;

pub use api_keys::ApiKeyStore;
pub use audit::AuditStore;
pub use document::DocumentStore;
pub use tokens::TokenStore;
pub use users::{KeyRecord, MountRecord, NewUser, RuleRecord, UserChange, UserRecord, UserStore};

use crate::config::{StateBackend, StateConfig};

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
    #[error("{0}")]
    Config(String),
    #[error(
        "the state store's schema is version {found}, newer than this ferry knows ({known}): \
         upgrade this binary to the version the other replicas run"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

/// Every table family, and what the server asks of the store as a whole.
#[async_trait::async_trait]
pub trait Store: UserStore + ApiKeyStore + TokenStore + AuditStore + DocumentStore + Send + Sync {
    fn kind(&self) -> StoreKind;
    /// One round trip to the database (for `/readyz`).
    async fn ping(&self) -> Result<(), StateError>;
    async fn close(&self);
}

/// Handle to the state store; cheap to clone.
#[derive(Clone)]
pub struct State {
    store: Arc<dyn Store>,
}

impl State {
    /// The store `[state]` names, migrated to this binary's schema.
    pub async fn open(config: &StateConfig) -> Result<Self, StateError> {
        match &config.backend {
            StateBackend::Sqlite => Self::open_sqlite(&config.sqlite_path).await,
            StateBackend::Postgres(pg) => Ok(Self { store: Arc::new(postgres::PgStore::open(pg).await?) }),
        }
    }

    /// Opens (creating if missing) a SQLite store at `path`.
    pub async fn open_sqlite(path: &Path) -> Result<Self, StateError> {
        Ok(Self { store: Arc::new(sqlite::SqliteStore::open(path).await?) })
    }

    pub fn kind(&self) -> StoreKind {
        self.store.kind()
    }

    pub async fn ping(&self) -> Result<(), StateError> {
        self.store.ping().await
    }

    pub async fn close(&self) {
        self.store.close().await;
    }

    pub fn users(&self) -> &dyn UserStore {
        &*self.store
    }

    pub fn api_keys(&self) -> &dyn ApiKeyStore {
        &*self.store
    }

    pub fn audit(&self) -> &dyn AuditStore {
        &*self.store
    }

    pub fn tokens(&self) -> &dyn TokenStore {
        &*self.store
    }

    /// The whole store as one document (`ferry state export`).
    pub async fn export(&self) -> Result<document::StateDocument, StateError> {
        self.store.export().await
    }

    /// Loads a document into this store, which must have no users (`ferry state import`).
    pub async fn import(&self, doc: &document::StateDocument) -> Result<usize, StateError> {
        self.store.import(doc).await
    }
}
