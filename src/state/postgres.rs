//! The shared store: PostgreSQL, what replicas behind one balancer have in common.
//! Migrations run under an advisory lock, so replicas starting together do not race.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};

use super::{StateError, migrate};
use crate::config::PostgresConfig;

/// The advisory lock key migrations hold ("ferry" in ASCII).
const MIGRATION_LOCK: i64 = 0x0066_6572_7279;

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn open(config: &PostgresConfig) -> Result<Self, StateError> {
        let options = connect_options(config)?;
        let pool = PgPoolOptions::new()
            .max_connections(config.pool_size)
            .acquire_timeout(config.connect_timeout)
            .connect_with(options)
            .await?;
        let mut conn = pool.acquire().await?;
        sqlx::query("SELECT pg_advisory_lock($1)").bind(MIGRATION_LOCK).execute(&mut *conn).await?;
        let applied = migrate::apply_migrations!(&mut *conn, migrate::POSTGRES, "BEGIN");
        // Released on every path; a lost connection releases it too.
        let unlocked =
            sqlx::query("SELECT pg_advisory_unlock($1)").bind(MIGRATION_LOCK).execute(&mut *conn).await;
        applied?;
        unlocked?;
        drop(conn);
        Ok(Self { pool })
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.pool.begin().await
    }
}

/// The URL with the settings of `[state]` applied: a password from `password_file` (else the
/// URL's, else `PGPASSWORD`), `sslmode` and `ca_file` when given.
fn connect_options(config: &PostgresConfig) -> Result<PgConnectOptions, StateError> {
    let mut options = PgConnectOptions::from_str(config.url.expose())
        .map_err(|e| StateError::Config(format!("state.url is not a PostgreSQL URL: {}", no_url(e))))?
        .application_name("ferry");
    if let Some(path) = &config.password_file {
        let password = std::fs::read_to_string(path)
            .map_err(|e| StateError::Config(format!("state.password_file {}: {e}", path.display())))?;
        options = options.password(password.trim_end_matches(['\r', '\n']));
    }
    if let Some(mode) = &config.sslmode {
        let mode =
            PgSslMode::from_str(mode).map_err(|e| StateError::Config(format!("state.sslmode: {e}")))?;
        options = options.ssl_mode(mode);
    }
    if let Some(ca) = &config.ca_file {
        options = options.ssl_root_cert(ca);
    }
    Ok(options)
}

/// A parse error's text without the URL it may quote (which may hold a password).
fn no_url(e: sqlx::Error) -> String {
    match e {
        sqlx::Error::Configuration(inner) => {
            let text = inner.to_string();
            if text.contains('@') { "malformed".to_string() } else { text }
        }
        _ => "malformed".to_string(),
    }
}

#[async_trait::async_trait]
impl super::Store for PgStore {
    fn kind(&self) -> super::StoreKind {
        super::StoreKind::Postgres
    }

    async fn ping(&self) -> Result<(), StateError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

super::users::impl_user_store!(PgStore, sqlx::Postgres);
super::api_keys::impl_api_key_store!(PgStore);
super::tokens::impl_token_store!(PgStore);
super::audit::impl_audit_store!(PgStore, sqlx::Postgres);
super::document::impl_document_store!(PgStore);
