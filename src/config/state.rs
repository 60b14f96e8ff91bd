//! `[state]`: which store holds users, keys, tokens and the audit table.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::reader::Reader;

#[derive(Debug, Clone)]
pub struct StateConfig {
    /// Which store `url` names.
    pub backend: StateBackend,
    /// The SQLite file (`sqlite://PATH` or `sqlite_path`; default `<data_dir>/ferry.db`).
    pub sqlite_path: PathBuf,
}

#[derive(Debug, Clone)]
pub enum StateBackend {
    Sqlite,
    Postgres(PostgresConfig),
}

/// `[state]` for a `postgres://` URL: what replicas share.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// May hold the password, so never printed.
    pub url: crate::types::Secret<String>,
    pub password_file: Option<PathBuf>,
    pub pool_size: u32,
    pub connect_timeout: Duration,
    /// `disable` | `allow` | `prefer` | `require` | `verify-ca` | `verify-full`; `None`: the URL's.
    pub sslmode: Option<String>,
    pub ca_file: Option<PathBuf>,
}

/// `[state]`: `url` empty or `sqlite://PATH` for the embedded store, `postgres://…` for the
/// shared one.
pub(super) fn parse(r: &mut Reader<'_>, data_dir: &Path) -> StateConfig {
    let mut sqlite_path = r.path("sqlite_path", data_dir.join("ferry.db"));
    let url = r.optional_secret("url");
    let password_file = r.optional_path("password_file");
    let pool_size = r.integer("pool_size", 16, 1, 1000) as u32;
    let connect_timeout = r.positive_duration("connect_timeout", Duration::from_secs(30));
    let sslmode = r.optional_string("sslmode");
    let modes = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];
    if let Some(mode) = &sslmode
        && !modes.contains(&mode.as_str())
    {
        r.fail("sslmode", format!("expected one of {}, found `{mode}`", modes.join(", ")));
    }
    let ca_file = r.optional_path("ca_file");
    let backend = match url {
        None => StateBackend::Sqlite,
        Some(url) if url.expose().starts_with("sqlite://") => {
            let path = &url.expose()["sqlite://".len()..];
            if path.is_empty() {
                r.fail("url", "sqlite:// needs a path, e.g. sqlite:///data/ferry.db");
            } else {
                sqlite_path = PathBuf::from(path);
            }
            StateBackend::Sqlite
        }
        Some(url) if url.expose().starts_with("postgres://") || url.expose().starts_with("postgresql://") => {
            StateBackend::Postgres(PostgresConfig {
                url,
                password_file,
                pool_size,
                connect_timeout,
                sslmode,
                ca_file,
            })
        }
        // Not echoed: the value may hold a password.
        Some(_) => {
            r.fail("url", "expected empty, sqlite://PATH or postgres://USER@HOST:PORT/DATABASE");
            StateBackend::Sqlite
        }
    };
    StateConfig { backend, sqlite_path }
}
