//! Validated configuration: one TOML file, `FERRY_<SECTION>__<KEY>` environment overrides,
//! human units, every error named by its dotted key. Leaf room: uses `types` only.
//!
//! Precedence: built-in default < file < environment < command line. Each section is read by
//! its own module; `parse` only hands the sections out.

mod audit;
mod auth;
mod env;
mod listen;
mod listeners;
#[cfg(test)]
mod props;
mod reader;
mod state;
mod storage;
pub mod units;

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Table;

pub use audit::{
    AuditConfig, AuditFileConfig, AuditHttpConfig, AuditSyslogConfig, OnFull, SinkConfig, SyslogTransport,
};
pub use auth::{AuthBackend, AuthConfig, AuthHttpConfig, AuthLdapConfig};
pub use listen::{ListenConfig, ProxyMode};
pub use listeners::{
    CIPHERS, DEFAULT_CIPHERS, DEFAULT_HOST_KEY_ALGORITHMS, DEFAULT_KEX_ALGORITHMS, DEFAULT_MACS, FtpConfig,
    FtpsConfig, HOST_KEY_ALGORITHMS, HttpConfig, HttpsConfig, KEX_ALGORITHMS, MACS, OpsConfig, ScpConfig,
    SftpConfig, TlsConfig, TlsVersion,
};
pub use reader::KeyError;
use reader::Reader;
pub use state::{PostgresConfig, StateBackend, StateConfig};
pub use storage::{
    AzureConfig, CrossMountRename, DEFAULT_STORAGE, GcsConfig, ObjectAttributes, ObjectTuning, S3Config,
    StorageConfig, StoreClient,
};

#[derive(Debug, Clone)]
pub struct Config {
    /// Where the configuration came from, for the `config.loaded` audit record: the file and
    /// the SHA-256 of its text, and the names (never the values) of environment overrides.
    pub source: String,
    /// Everything ferry keeps: files (by default), the SQLite state, generated host keys.
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub log: LogConfig,
    /// The default backend: users' homes live here.
    pub storage: StorageConfig,
    /// What a rename from one mount to another does (`storage.cross_mount_rename`).
    pub cross_mount_rename: CrossMountRename,
    /// Further backends by name, for users' mounts (`[storages.NAME]`).
    pub storages: Vec<(String, StorageConfig)>,
    pub state: StateConfig,
    pub auth: AuthConfig,
    pub audit: AuditConfig,
    pub sftp: SftpConfig,
    pub scp: ScpConfig,
    pub tls: TlsConfig,
    pub ftp: FtpConfig,
    pub ftps: FtpsConfig,
    pub https: HttpsConfig,
    /// Plain HTTP behind a TLS-terminating balancer.
    pub http: HttpConfig,
    pub ops: OpsConfig,
    pub limits: LimitsConfig,
    /// Things that load but should change (deprecated keys), each naming its keys; logged once
    /// the log is up and printed by `ferry config check`.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Names this replica in audit records.
    pub node_name: String,
    /// How long running transfers may go on after SIGTERM before connections are closed.
    pub shutdown_grace: Duration,
    /// Load balancers whose PROXY protocol headers are believed (`proxy_protocol` on a
    /// listener); a header from any other address is never read.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// A trusted proxy must send its whole header within this time of connecting.
    pub proxy_header_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    /// A tracing env-filter directive such as "info" or "ferry=debug".
    pub level: String,
    pub format: LogFormat,
}

/// `[limits]`: caps that hold across every listener.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// SSH and FTP connections one user may hold logged in at once; 0: no limit.
    pub max_sessions_per_user: usize,
}

/// What went wrong loading a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: invalid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<KeyError>),
}

impl Config {
    /// Loads `path` (or only defaults), then applies `FERRY_*` variables from `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let (table, file) = match path {
            None => (Table::new(), "built-in defaults".to_string()),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
                let table = text.parse::<Table>().map_err(|e| ConfigError::Syntax {
                    path: path.to_path_buf(),
                    message: e.to_string().trim().replace('\n', " "),
                })?;
                let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
                let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
                (table, format!("{} (sha256 {hex})", path.display()))
            }
        };
        let mut config = Self::from_table(table, env)?;
        config.source = match config.source.strip_prefix("built-in defaults") {
            Some(rest) => format!("{file}{rest}"),
            None => file,
        };
        Ok(config)
    }

    /// Built-in defaults with `FERRY_*` variables applied.
    pub fn from_table(
        mut table: Table,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut errors = Vec::new();
        let env: Vec<(String, String)> = env.into_iter().collect();
        let overrides = env::override_names(&env);
        let mut source = "built-in defaults".to_string();
        if !overrides.is_empty() {
            source.push_str(&format!(" with environment overrides {}", overrides.join(", ")));
        }
        env::apply(&mut table, env.clone(), &mut errors);
        let mut config = parse(table, &mut errors);
        config.source = source;
        if errors.is_empty() { Ok(config) } else { Err(ConfigError::Invalid(errors)) }
    }
}

/// Hands each section to its module; sections are read in one order so errors come out in it.
fn parse(table: Table, errors: &mut Vec<KeyError>) -> Config {
    let mut top = Reader::new("", table, errors);
    let data_dir = top.path("data_dir", PathBuf::from("./data"));
    let sections = [
        "server", "log", "storage", "storages", "state", "auth", "audit", "sftp", "scp", "tls", "ftp",
        "ftps", "https", "http", "ops", "limits",
    ]
    .map(|name| (name, top.section(name)));
    top.finish();
    let [
        server,
        log,
        storage,
        storages,
        state,
        auth,
        audit,
        sftp,
        scp,
        tls,
        ftp,
        ftps,
        https,
        http,
        ops,
        limits,
    ] = sections;

    let server = parse_server(server, errors);
    let log = parse_log(log, errors);
    let (storage, cross_mount_rename) = storage::parse_default(storage, &data_dir, errors);
    let storages = storage::parse_named(storages, &data_dir, errors);
    let mut r = Reader::new(state.0, state.1, errors);
    let state = state::parse(&mut r, &data_dir);
    r.finish();
    // `[ftp]` first: its deprecated `max_login_attempts` may stand in for `auth.max_attempts`.
    let (ftp, legacy_attempts) = listeners::ftp(ftp, errors);
    let mut warnings = Vec::new();
    let auth = auth::parse(auth, legacy_attempts, errors, &mut warnings);
    let audit = audit::parse(audit, &data_dir, errors);
    let config = Config {
        source: String::new(),
        server,
        log,
        storage,
        cross_mount_rename,
        storages,
        state,
        auth,
        audit,
        ops: listeners::ops(ops, errors),
        sftp: listeners::sftp(sftp, errors),
        scp: listeners::scp(scp, errors),
        tls: listeners::tls(tls, errors),
        ftp,
        ftps: listeners::ftps(ftps, errors),
        https: listeners::https(https, errors),
        http: listeners::http(http, errors),
        limits: parse_limits(limits, errors),
        data_dir,
        warnings,
    };
    check_proxies(&config, errors);
    config
}

/// A listener that reads PROXY headers needs someone to believe them from.
fn check_proxies(config: &Config, errors: &mut Vec<KeyError>) {
    if !config.server.trusted_proxies.is_empty() {
        return;
    }
    for (section, listen) in config.listens() {
        if listen.proxy_protocol != ProxyMode::Off {
            errors.push(KeyError {
                key: format!("{section}.proxy_protocol"),
                message: "needs server.trusted_proxies: the load balancers whose headers are believed".into(),
            });
        }
    }
}

impl Config {
    /// Every listener section's shared settings, by section name.
    pub fn listens(&self) -> [(&'static str, &ListenConfig); 6] {
        [
            ("sftp", &self.sftp.listen),
            ("ftp", &self.ftp.listen),
            ("ftps", &self.ftps.listen),
            ("https", &self.https.listen),
            ("http", &self.http.listen),
            ("ops", &self.ops.listen),
        ]
    }
}

fn parse_server(section: (&str, Table), errors: &mut Vec<KeyError>) -> ServerConfig {
    let mut r = Reader::new(section.0, section.1, errors);
    let server = ServerConfig {
        node_name: r.string("node_name", &default_node_name()),
        shutdown_grace: r.duration("shutdown_grace", Duration::from_secs(30)),
        trusted_proxies: listen::networks(&mut r, "trusted_proxies"),
        proxy_header_timeout: r.positive_duration("proxy_header_timeout", Duration::from_secs(5)),
    };
    r.finish();
    server
}

fn parse_limits(section: (&str, Table), errors: &mut Vec<KeyError>) -> LimitsConfig {
    let mut r = Reader::new(section.0, section.1, errors);
    let limits =
        LimitsConfig { max_sessions_per_user: r.integer("max_sessions_per_user", 0, 0, 1_000_000) as usize };
    r.finish();
    limits
}

fn parse_log(section: (&str, Table), errors: &mut Vec<KeyError>) -> LogConfig {
    let mut r = Reader::new(section.0, section.1, errors);
    let level = r.string("level", "info");
    let format = r.choice("format", LogFormat::Text, &[("text", LogFormat::Text), ("json", LogFormat::Json)]);
    r.finish();
    LogConfig { level, format }
}

fn default_node_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "ferry".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_serve_sftp_on_2222_from_data() {
        let config = Config::from_table(Table::new(), env(&[])).unwrap();
        assert_eq!(config.sftp.listen.bind.port(), 2222);
        assert_eq!(config.storage.local_root(), Some(std::path::Path::new("./data/files")));
        assert_eq!(config.sftp.ciphers[0], "aes128-gcm@openssh.com");
        assert_eq!(config.sftp.kex[0], "mlkem768x25519-sha256");
    }

    #[test]
    fn env_overrides_the_file_and_keeps_types() {
        let table: Table = "[sftp]\nbind = \"0.0.0.0:1\"\n".parse().unwrap();
        let config = Config::from_table(
            table,
            env(&[
                ("FERRY_SFTP__BIND", "127.0.0.1:2200"),
                ("FERRY_SFTP__IDLE_TIMEOUT", "45s"),
                ("FERRY_SCP__ENABLED", "false"),
                ("FERRY_DATA_DIR", "/srv/ferry"),
                ("FERRY_ADMIN_USER", "ignored"),
            ]),
        )
        .unwrap();
        assert_eq!(config.sftp.listen.bind, "127.0.0.1:2200".parse().unwrap());
        assert_eq!(config.sftp.idle_timeout, Some(Duration::from_secs(45)));
        assert!(!config.scp.enabled);
        assert_eq!(config.storage.local_root(), Some(std::path::Path::new("/srv/ferry/files")));
    }

    #[test]
    fn env_reaches_nested_sink_tables() {
        let config = Config::from_table(
            Table::new(),
            env(&[
                ("FERRY_AUDIT__FILE__ENABLED", "true"),
                ("FERRY_AUDIT__SYSLOG__ADDRESS", "127.0.0.1:6514"),
                ("FERRY_AUDIT__STDOUT", "false"),
                ("FERRY_OPS__BIND", "127.0.0.1:9999"),
            ]),
        )
        .unwrap();
        assert!(config.audit.file.enabled && !config.audit.stdout.enabled);
        assert_eq!(config.audit.syslog_settings.address, "127.0.0.1:6514");
        assert_eq!(config.ops.listen.bind, "127.0.0.1:9999".parse().unwrap());
        assert!(config.source.contains("FERRY_AUDIT__FILE__ENABLED"), "{}", config.source);
        let Err(ConfigError::Invalid(errors)) =
            Config::from_table(Table::new(), env(&[("FERRY_AUDIT__FILE__ON_FULL", "block")]))
        else {
            panic!("expected an error");
        };
        assert_eq!(errors[0].key, "audit.file.on_full");
    }

    #[test]
    fn weak_algorithms_and_unknown_keys_are_refused_by_name() {
        let table: Table = "colour = 1\n[sftp]\nciphers = [\"aes128-cbc\"]\nmacs = [\"hmac-sha1\"]\n[nope]\n"
            .parse()
            .unwrap();
        let Err(ConfigError::Invalid(errors)) = Config::from_table(table, env(&[])) else {
            panic!("expected errors");
        };
        let keys: Vec<_> = errors.iter().map(|e| e.key.as_str()).collect();
        assert!(keys.contains(&"colour"), "{keys:?}");
        assert!(keys.contains(&"nope"), "{keys:?}");
        assert!(keys.contains(&"sftp.ciphers"), "{keys:?}");
        assert!(keys.contains(&"sftp.macs"), "{keys:?}");
    }

    #[test]
    fn ftp_max_login_attempts_is_a_deprecated_alias_of_auth_max_attempts() {
        let config = Config::from_table(Table::new(), env(&[])).unwrap();
        assert_eq!((config.auth.max_attempts, config.warnings.len()), (6, 0));

        let alone: Table = "[ftp]\nmax_login_attempts = 2\n".parse().unwrap();
        let config = Config::from_table(alone, env(&[])).unwrap();
        assert_eq!(config.auth.max_attempts, 2, "the alias stands in for auth.max_attempts");
        assert_eq!(config.warnings.len(), 1);
        assert!(
            config.warnings[0].contains("ftp.max_login_attempts")
                && config.warnings[0].contains("auth.max_attempts"),
            "{:?}",
            config.warnings
        );

        let both: Table = "[auth]\nmax_attempts = 4\n[ftp]\nmax_login_attempts = 2\n".parse().unwrap();
        let config = Config::from_table(both, env(&[])).unwrap();
        assert_eq!(config.auth.max_attempts, 4, "the new key wins");
        assert!(
            config.warnings[0].contains("ftp.max_login_attempts")
                && config.warnings[0].contains("auth.max_attempts")
        );

        let config =
            Config::from_table(Table::new(), env(&[("FERRY_FTP__MAX_LOGIN_ATTEMPTS", "5")])).unwrap();
        assert_eq!((config.auth.max_attempts, config.warnings.len()), (5, 1));

        let bad: Table = "[ftp]\nmax_login_attempts = 0\n".parse().unwrap();
        let Err(ConfigError::Invalid(errors)) = Config::from_table(bad, env(&[])) else {
            panic!("0 attempts accepted");
        };
        assert_eq!(errors[0].key, "ftp.max_login_attempts");
    }
}
