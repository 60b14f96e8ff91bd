//! Validated configuration: one TOML file, `FERRY_<SECTION>__<KEY>` environment overrides,
//! human units, every error named by its dotted key. Leaf room: uses `types` only.
//!
//! Precedence: built-in default < file < environment < command line.

#[cfg(test)]
mod props;
mod reader;
pub mod units;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::{Table, Value};

pub use reader::KeyError;
use reader::Reader;

use crate::types::UploadMode;

/// Key-exchange algorithms ferry can offer; the first is preferred. Post-quantum hybrid first.
pub const KEX_ALGORITHMS: &[&str] = &[
    "mlkem768x25519-sha256",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "diffie-hellman-group-exchange-sha256",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group14-sha256",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
];
/// Ciphers ferry can offer: AEAD and CTR only, never CBC.
pub const CIPHERS: &[&str] = &[
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
];
/// MACs ferry can offer (used with CTR ciphers only): SHA-2, never SHA-1.
pub const MACS: &[&str] =
    &["hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com", "hmac-sha2-256", "hmac-sha2-512"];
/// Host-key algorithms: Ed25519 and ECDSA keys only (no DSA, no SHA-1 signatures).
pub const HOST_KEY_ALGORITHMS: &[&str] =
    &["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"];

/// Offered by default: what ssh-audit passes without a fail. The NIST-curve key exchanges and
/// ECDSA host keys (curves of unclear origin) and the 2048-bit group14 stay available by
/// configuration (FIPS, old clients).
pub const DEFAULT_KEX_ALGORITHMS: &[&str] = &[
    "mlkem768x25519-sha256",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
];
pub const DEFAULT_CIPHERS: &[&str] = &[
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
];
/// Encrypt-then-MAC first; the encrypt-and-MAC `hmac-sha2-*` follow (ssh-audit warns of them, it
/// does not fail them) because libssh2 before 1.11 (Debian 12's curl, PHP, many embedded clients)
/// knows no ETM MAC and no AEAD cipher: without them those clients cannot connect at all.
pub const DEFAULT_MACS: &[&str] =
    &["hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com", "hmac-sha2-256", "hmac-sha2-512"];
pub const DEFAULT_HOST_KEY_ALGORITHMS: &[&str] = &["ssh-ed25519"];

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
    pub ops: OpsConfig,
}

/// The HTTPS listener: REST API (and later the web file manager), on the TLS settings of `[tls]`.
#[derive(Debug, Clone)]
pub struct HttpsConfig {
    pub enabled: bool,
    pub bind: SocketAddr,
    /// A plain-HTTP listener that only redirects to HTTPS; `None` is off.
    pub redirect_bind: Option<SocketAddr>,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Lifetime of bearer tokens from `POST /api/v1/auth/token`.
    pub token_ttl: Duration,
    /// A client must finish the TLS handshake, and send each request's headers, within this
    /// time (slow-loris defence).
    pub header_timeout: Duration,
    /// The longest a browser login lives, however active (its session slides within it).
    pub session_max_life: Duration,
    /// Deadline for the whole body of a request that is not a file upload (login, JSON).
    pub body_timeout: Duration,
    /// A file upload's body may pause this long between two pieces.
    pub upload_idle_timeout: Duration,
    /// A connection with no request in progress is closed after this (HTTP/1.1 and HTTP/2).
    pub idle_timeout: Duration,
    /// HTTP/2 pings a quiet peer this often, and closes the connection if a ping is not
    /// answered within the same time.
    pub keepalive_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Names this replica in audit records.
    pub node_name: String,
    /// How long running transfers may go on after SIGTERM before connections are closed.
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A duration that must be more than zero (a zero timeout would close every connection).
fn positive_duration(r: &mut Reader<'_>, key: &str, default: Duration) -> Duration {
    let value = r.duration(key, default);
    if value.is_zero() {
        r.fail(key, "must be more than 0s");
        return default;
    }
    value
}

/// The keys of one backend, shared by `[storage]` and each `[storages.NAME]`.
fn parse_storage(r: &mut Reader<'_>, default_root: PathBuf) -> StorageConfig {
    let backend = match r.string("backend", "local").as_str() {
        "local" => Backend::Local,
        "memory" => Backend::Memory,
        "s3" => Backend::S3,
        "gcs" => Backend::Gcs,
        "azure" => Backend::Azure,
        other => {
            r.fail("backend", format!("expected local, memory, s3, gcs or azure, found `{other}`"));
            Backend::Local
        }
    };
    let text = |r: &mut Reader<'_>, key: &str| Some(r.string(key, "")).filter(|s| !s.is_empty());
    let storage = StorageConfig {
        backend,
        root: r.path("root", default_root),
        bucket: r.string("bucket", ""),
        prefix: r.string("prefix", ""),
        endpoint: text(r, "endpoint"),
        region: text(r, "region"),
        allow_http: r.bool("allow_http", false),
        path_style: r.bool("path_style", false),
        checksum_sha256: match r.string("checksum", "").as_str() {
            "" => false,
            "sha256" => true,
            other => {
                r.fail("checksum", format!("expected \"sha256\" or \"\" (none), found `{other}`"));
                false
            }
        },
        account: text(r, "account"),
        service_account_file: text(r, "service_account_file").map(PathBuf::from),
        access_key_id: text(r, "access_key_id").map(crate::types::Secret::new),
        secret_access_key: text(r, "secret_access_key").map(crate::types::Secret::new),
        part_size: r.size("part_size", 8 << 20, 5 << 20, 5 << 30) as usize,
        parts_in_flight: r.integer("parts_in_flight", 2, 1, 64) as usize,
        reorder_window: r.size("reorder_window", 16 << 20, 1 << 20, 1 << 30) as usize,
        reorder_budget: r.size("reorder_budget", 256 << 20, 0, 1 << 40) as usize,
        read_block: r.size("read_block", 4 << 20, 64 << 10, 256 << 20) as usize,
        object_attributes: match r.string("object_attributes", "ignore").as_str() {
            "ignore" => ObjectAttributes::Ignore,
            "refuse" => ObjectAttributes::Refuse,
            other => {
                r.fail("object_attributes", format!("expected \"ignore\" or \"refuse\", found `{other}`"));
                ObjectAttributes::Ignore
            }
        },
        max_retries: r.integer("max_retries", 5, 0, 100) as usize,
        retry_timeout: r.duration("retry_timeout", Duration::from_secs(30)),
        request_timeout: r.duration("request_timeout", Duration::from_secs(30)),
        complete_timeout: r.duration("complete_timeout", Duration::from_secs(15 * 60)),
        cross_mount_rename: CrossMountRename::Copy,
    };
    if storage.request_timeout < Duration::from_secs(1) {
        r.fail("request_timeout", "at least 1s: a store request needs time to answer");
    }
    if storage.complete_timeout < storage.request_timeout {
        r.fail("complete_timeout", "at least request_timeout: completing a large upload takes longest");
    }
    if matches!(backend, Backend::S3 | Backend::Gcs | Backend::Azure) && storage.bucket.is_empty() {
        r.fail("bucket", "an object backend needs a bucket (container for Azure)");
    }
    storage
}

/// `[storages.NAME]` tables: further backends that users' mounts refer to by name.
fn parse_named_storages(
    prefix: &str,
    table: Table,
    data_dir: &Path,
    errors: &mut Vec<KeyError>,
) -> Vec<(String, StorageConfig)> {
    let mut named = Vec::new();
    let mut r = Reader::new(prefix, table, errors);
    for name in r.keys() {
        let valid = !name.is_empty()
            && name != DEFAULT_STORAGE
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        let section = r.section(&name);
        if !valid {
            r.fail(
                &name,
                format!(
                    "a storage name is lowercase letters, digits, `_` and `-`, and not `{DEFAULT_STORAGE}`"
                ),
            );
            continue;
        }
        let dotted = r.dotted(&name);
        let mut inner = Reader::new(&dotted, section, r.errors());
        let storage = parse_storage(&mut inner, data_dir.join(&name));
        inner.finish();
        named.push((name, storage));
    }
    r.finish();
    named
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    /// A tracing env-filter directive such as "info" or "ferry=debug".
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub backend: Backend,
    /// Root folder of the local backend; users' homes are inside it.
    pub root: PathBuf,
    /// Bucket (S3, GCS) or container (Azure) of an object backend.
    pub bucket: String,
    /// Key prefix inside the bucket under which users' homes live.
    pub prefix: String,
    /// S3-compatible or emulator endpoint (MinIO, moto, azurite); empty: the provider's.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Plain-HTTP endpoints (emulators only).
    pub allow_http: bool,
    /// S3 path-style requests (most S3-compatible stores and emulators need them).
    pub path_style: bool,
    /// Send an x-amz-checksum-sha256 with every S3 upload: buckets with Object Lock require an
    /// integrity checksum on writes (the audit trail's WORM export).
    pub checksum_sha256: bool,
    /// Azure storage account.
    pub account: Option<String>,
    /// GCS service account JSON; empty: the environment or GKE workload identity.
    pub service_account_file: Option<PathBuf>,
    /// Static credentials; empty: the environment or the platform (IMDSv2, IRSA, Pod Identity,
    /// ECS roles, GKE workload identity, Azure managed identity) through object_store.
    pub access_key_id: Option<crate::types::Secret<String>>,
    pub secret_access_key: Option<crate::types::Secret<String>>,
    pub part_size: usize,
    pub parts_in_flight: usize,
    pub reorder_window: usize,
    /// Bytes of early writes all uploads of the backend hold in memory together.
    pub reorder_budget: usize,
    pub read_block: usize,
    /// Time and mode changes on object backends (which cannot store them).
    pub object_attributes: ObjectAttributes,
    /// Retries of a failed store request, and how long retrying may take before the client gets
    /// an error (object_store's default is 3 minutes, which clients read as a hang).
    pub max_retries: usize,
    pub retry_timeout: Duration,
    /// Limit of one everyday store request (object_store's `timeout`).
    pub request_timeout: Duration,
    /// Limit of one multipart completion or server-side copy, which take as long as the object
    /// is big (S3 can spend minutes on one).
    pub complete_timeout: Duration,
    /// What a rename from one mount to another does (read from `[storage]` only).
    pub cross_mount_rename: CrossMountRename,
}

/// Setstat of times and modes on an object backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectAttributes {
    /// Succeed without effect: clients that preserve timestamps keep working.
    Ignore,
    /// Answer "unsupported".
    Refuse,
}

/// The name mounts use for `[storage]`.
pub const DEFAULT_STORAGE: &str = "default";

/// A rename between two mounts cannot be a backend rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrossMountRename {
    /// Copy the file to the other mount, then delete the original.
    Copy,
    /// Refuse, as if the backend could not rename.
    Refuse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Local,
    Memory,
    S3,
    Gcs,
    Azure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthBackend {
    Local,
    Http,
    Ldap,
}

/// A directory to log users in against (docs/auth-ldap.md).
#[derive(Debug, Clone)]
pub struct AuthLdapConfig {
    pub url: String,
    pub starttls: bool,
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
    /// Direct bind: the user's DN with `{user}` (escaped), e.g. `uid={user},ou=people,dc=x`.
    pub bind_dn: Option<String>,
    /// Search mode: a service account finds the user's DN under `base_dn` with `user_filter`.
    pub service_dn: Option<String>,
    pub service_password: Option<crate::types::Secret<String>>,
    pub base_dn: String,
    pub user_filter: String,
    /// Groups are found under this DN with `group_filter` (`{dn}` is the user's DN); their `cn`.
    pub group_base_dn: Option<String>,
    pub group_filter: String,
    pub ssh_key_attribute: String,
    /// The home, with `{user}`.
    pub home: String,
    /// `GROUP: PATH=perm,perm` — rules for members of GROUP; users in no listed group get
    /// `default_rules`.
    pub group_rules: Vec<String>,
    /// `GROUP: /home/with/{user}` — the first listed group the user is in sets the home.
    pub group_homes: Vec<String>,
    /// `GROUP: PATH=STORAGE[:PREFIX]` — mounts for members of GROUP (`{user}` allowed).
    pub group_mounts: Vec<String>,
    pub default_rules: Vec<String>,
}

/// An external service that answers logins: POST JSON, fail closed (docs/auth-http.md).
#[derive(Debug, Clone)]
pub struct AuthHttpConfig {
    pub url: String,
    pub timeout: Duration,
    /// CA certificate(s) to trust for the service, in addition to the system's.
    pub ca_file: Option<PathBuf>,
    /// Sent as `Authorization: Bearer …` so the service knows the caller.
    pub bearer_secret: Option<crate::types::Secret<String>>,
}

#[derive(Debug, Clone)]
pub struct StateConfig {
    pub sqlite_path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Authenticators asked in order; the first definitive answer wins.
    pub chain: Vec<AuthBackend>,
    /// The HTTP authentication service (`[auth.http]`).
    pub http: AuthHttpConfig,
    /// The LDAP / Active Directory authenticator (`[auth.ldap]`).
    pub ldap: AuthLdapConfig,
    /// How long a success of an external authenticator is reused; zero is off.
    pub cache_ttl: Duration,
    /// Failed logins from one address (any protocol) within `ban_window` that get it refused
    /// for `ban_time`; 0 turns this off.
    pub ban_after_failures: u32,
    pub ban_window: Duration,
    pub ban_time: Duration,
    /// Authentication attempts allowed on one connection before it is closed.
    pub max_attempts: u32,
    /// Every rejection takes this long, whatever the reason, so timing reveals nothing.
    pub rejection_delay: Duration,
    /// Upload mode for users that do not set their own.
    pub default_upload_mode: UploadMode,
    /// OS threads that check passwords (argon2id), apart from the runtime's pools.
    pub hash_threads: usize,
    /// Password checks that may wait for a thread; beyond it a login is refused at once.
    pub hash_queue: usize,
}

#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Records per checkpoint (a signed chain position); a checkpoint is also made every
    /// `checkpoint_interval` while records arrive, and at shutdown.
    pub checkpoint_every: u64,
    pub checkpoint_interval: Duration,
    /// The node's Ed25519 signing key (PKCS#8), generated on first start.
    pub node_key: PathBuf,
    /// Spilled records of sinks with `on_full = "spill"` wait here.
    pub spool_dir: PathBuf,
    pub stdout: SinkConfig,
    pub file: SinkConfig,
    pub file_settings: AuditFileConfig,
    pub database: SinkConfig,
    /// Database records older than this are purged; zero keeps them.
    pub database_retention: Duration,
    pub syslog: SinkConfig,
    pub syslog_settings: AuditSyslogConfig,
    pub http: SinkConfig,
    pub http_settings: AuditHttpConfig,
}

/// What every sink has: whether it runs, its queue and what a full queue does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkConfig {
    pub enabled: bool,
    pub queue_size: usize,
    pub on_full: OnFull,
}

/// A sink's queue is full: lose the record (counted) or spill it to disk and replay it later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFull {
    Drop,
    Spill,
}

#[derive(Debug, Clone)]
pub struct AuditFileConfig {
    pub dir: PathBuf,
    pub rotate_size: u64,
    pub rotate_interval: Duration,
    /// Sealed segments older than this are deleted; zero keeps them.
    pub retention: Duration,
    /// At most this many sealed segments are kept; zero means no limit.
    pub max_files: usize,
    /// A storage backend (`default` or a `[storages.NAME]`) that sealed segments are copied to.
    pub export_storage: Option<String>,
    /// Key prefix of exported segments inside that backend.
    pub export_prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogTransport {
    Udp,
    Tcp,
    Tls,
}

#[derive(Debug, Clone)]
pub struct AuditSyslogConfig {
    pub transport: SyslogTransport,
    /// `host:port` of the receiver.
    pub address: String,
    /// Name checked against the receiver's certificate (TLS); default: the host of `address`.
    pub server_name: Option<String>,
    /// CA certificates (PEM) for TLS; default: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Syslog facility number (RFC 5424 table 1), e.g. 13 (log audit) or 16 (local0).
    pub facility: u8,
    pub app_name: String,
}

#[derive(Debug, Clone)]
pub struct AuditHttpConfig {
    pub url: String,
    pub bearer_secret: Option<crate::types::Secret<String>>,
    pub timeout: Duration,
}

/// The ops listener: plain HTTP with /metrics, /healthz and /readyz, on its own port.
#[derive(Debug, Clone)]
pub struct OpsConfig {
    pub enabled: bool,
    pub bind: SocketAddr,
    /// Opt-in per-user transfer counters, capped at `per_user_metrics_max` distinct users.
    pub per_user_metrics: bool,
    pub per_user_metrics_max: usize,
}

#[derive(Debug, Clone)]
pub struct SftpConfig {
    pub enabled: bool,
    pub bind: SocketAddr,
    /// Host private keys (OpenSSH format). Empty: Ed25519 and ECDSA keys generated once into
    /// `data_dir/host_keys`. Give files so that every replica presents one identity.
    pub host_keys: Vec<PathBuf>,
    pub kex: Vec<String>,
    pub ciphers: Vec<String>,
    pub macs: Vec<String>,
    pub host_key_algorithms: Vec<String>,
    pub idle_timeout: Option<Duration>,
    pub keepalive_interval: Option<Duration>,
    pub keepalive_max: usize,
    /// Text shown to clients before authentication.
    pub banner: String,
    /// Channels (sftp, scp) one SSH connection may hold open at once.
    pub max_sessions_per_connection: usize,
    /// SSH channel window: the bytes a client may send before waiting for an adjust.
    pub window_size: u32,
    /// SFTP requests served concurrently per channel (reads and writes in flight).
    pub max_requests_in_flight: usize,
    /// Connections served at once; the next ones are closed at accept.
    pub max_connections: usize,
    /// Connections from one client address at once (authenticated or not).
    pub max_connections_per_ip: usize,
    /// Time from accept to successful authentication (version exchange included); `None`: no
    /// limit. OpenSSH's `LoginGraceTime`.
    pub login_grace_time: Option<Duration>,
    /// Open SFTP file and folder handles per SSH connection (all its channels).
    pub max_handles_per_connection: usize,
    /// Open SFTP handles per user across all their connections on this node.
    pub max_handles_per_user: usize,
    /// READ reply and WRITE data bytes held per SFTP channel until the reply is written.
    pub max_bytes_in_flight_per_channel: usize,
    /// The same, for all channels of one SSH connection together.
    pub max_bytes_in_flight_per_connection: usize,
}

#[derive(Debug, Clone)]
pub struct ScpConfig {
    pub enabled: bool,
}

/// TLS shared by FTPS (and HTTPS later).
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// PEM certificate chain; with `key_file`. Both empty: a self-signed certificate is
    /// generated once into `data_dir/tls/` (fine for tests, not for partners).
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    /// IANA names (e.g. TLS13_AES_128_GCM_SHA256); empty: the provider's modern defaults.
    pub cipher_suites: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// FTP with explicit TLS (AUTH TLS) on `bind`; the same settings serve implicit FTPS.
#[derive(Debug, Clone)]
pub struct FtpConfig {
    pub enabled: bool,
    pub bind: SocketAddr,
    /// Refuse USER/PASS and data transfers that are not protected by TLS.
    pub require_tls: bool,
    /// Allow USER/PASS in clear text even though `require_tls` is set (trusted networks only).
    pub dangerous_allow_plaintext_login: bool,
    /// Passive data ports, inclusive.
    pub passive_ports: (u16, u16),
    /// Address announced in PASV/EPSV replies: an IP or a DNS name resolved per connection.
    /// Empty: the local address of the control connection.
    pub passive_address: Option<String>,
    /// PORT/EPRT (the server connects to the client); only ever to the client's own address.
    pub active_mode: bool,
    pub idle_timeout: Duration,
    /// How long to wait for a client to open a data connection.
    pub data_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_login_attempts: u32,
    /// Passive ports one client address may hold at once (waiting for their data connection).
    pub max_passive_ports_per_ip: usize,
    /// A protected data connection must resume a TLS session negotiated by a control
    /// connection of the same login (vsftpd's `require_ssl_reuse`); a fresh handshake gets 522.
    pub require_tls_session_reuse: bool,
    pub banner: String,
}

#[derive(Debug, Clone)]
pub struct FtpsConfig {
    pub enabled: bool,
    pub bind: SocketAddr,
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
        let overrides: Vec<&str> = env
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| name.starts_with("FERRY_") && (name.contains("__") || *name == "FERRY_DATA_DIR"))
            .collect();
        let mut source = "built-in defaults".to_string();
        if !overrides.is_empty() {
            source.push_str(&format!(" with environment overrides {}", overrides.join(", ")));
        }
        apply_env(&mut table, env.clone(), &mut errors);
        let mut config = parse(table, &mut errors);
        config.source = source;
        if errors.is_empty() { Ok(config) } else { Err(ConfigError::Invalid(errors)) }
    }
}

/// `FERRY_SFTP__BIND=…` sets `sftp.bind`; `FERRY_DATA_DIR` sets `data_dir`. Values that read as
/// TOML literals (`true`, `30`, `["a"]`) keep their type; everything else is a string.
fn apply_env(table: &mut Table, env: impl IntoIterator<Item = (String, String)>, errors: &mut Vec<KeyError>) {
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix("FERRY_") else {
            continue;
        };
        let value = toml::from_str::<Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(Value::String(raw.clone()));
        if rest == "DATA_DIR" {
            table.insert("data_dir".into(), Value::String(raw));
            continue;
        }
        // `FERRY_AUDIT__FILE__ENABLED` sets `audit.file.enabled`: each `__` goes one table down.
        let path: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
        let Some((key, tables)) = path.split_last().filter(|(_, tables)| !tables.is_empty()) else {
            continue;
        };
        if let Err(depth) = insert_at(table, tables, key, value) {
            let blocked = tables[..=depth].join(".");
            errors.push(KeyError {
                key: blocked.clone(),
                message: format!("{name} needs `{blocked}` to be a table"),
            });
        }
    }
}

/// Sets `tables.….key`, creating missing tables; `Err(i)` when `tables[i]` is not a table.
fn insert_at(table: &mut Table, tables: &[String], key: &str, value: Value) -> Result<(), usize> {
    let Some((first, rest)) = tables.split_first() else {
        table.insert(key.to_string(), value);
        return Ok(());
    };
    match table.entry(first.clone()).or_insert_with(|| Value::Table(Table::new())) {
        Value::Table(inner) => insert_at(inner, rest, key, value).map_err(|depth| depth + 1),
        _ => Err(0),
    }
}

fn parse(table: Table, errors: &mut Vec<KeyError>) -> Config {
    let mut top = Reader::new("", table, errors);
    let data_dir = top.path("data_dir", PathBuf::from("./data"));
    let sections = [
        "server", "log", "storage", "storages", "state", "auth", "audit", "sftp", "scp", "tls", "ftp",
        "ftps", "https", "ops",
    ]
    .map(|name| (name, top.section(name)));
    top.finish();
    let [server, log, storage, storages, state, auth, audit, sftp, scp, tls, ftp, ftps, https, ops] =
        sections;

    let mut r = Reader::new(server.0, server.1, errors);
    let server = ServerConfig {
        node_name: r.string("node_name", &default_node_name()),
        shutdown_grace: r.duration("shutdown_grace", Duration::from_secs(30)),
    };
    r.finish();

    let mut r = Reader::new(log.0, log.1, errors);
    let level = r.string("level", "info");
    let format = match r.string("format", "text").as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            r.fail("format", format!("expected \"text\" or \"json\", found `{other}`"));
            LogFormat::Text
        }
    };
    r.finish();
    let log = LogConfig { level, format };

    let mut r = Reader::new(storage.0, storage.1, errors);
    let storage = parse_storage(&mut r, data_dir.join("files"));
    let cross_mount_rename = match r.string("cross_mount_rename", "copy").as_str() {
        "copy" => CrossMountRename::Copy,
        "refuse" => CrossMountRename::Refuse,
        other => {
            r.fail("cross_mount_rename", format!("expected \"copy\" or \"refuse\", found `{other}`"));
            CrossMountRename::Copy
        }
    };
    let storage = StorageConfig { cross_mount_rename, ..storage };
    r.finish();

    let storages = parse_named_storages(storages.0, storages.1, &data_dir, errors);

    let mut r = Reader::new(state.0, state.1, errors);
    let state = StateConfig { sqlite_path: r.path("sqlite_path", data_dir.join("ferry.db")) };
    r.finish();

    let mut r = Reader::new(auth.0, auth.1, errors);
    let max_attempts = r.integer("max_attempts", 6, 1, 100) as u32;
    let rejection_delay = r.duration("rejection_delay", Duration::from_secs(1));
    let mode = r.string("default_upload_mode", "atomic");
    let default_upload_mode = UploadMode::parse(&mode).unwrap_or_else(|| {
        r.fail("default_upload_mode", format!("expected \"atomic\" or \"in_place\", found `{mode}`"));
        UploadMode::Atomic
    });
    let ban_after_failures = r.integer("ban_after_failures", 20, 0, 1_000_000) as u32;
    let ban_window = r.duration("ban_window", Duration::from_secs(600));
    let ban_time = r.duration("ban_time", Duration::from_secs(900));
    let chain: Vec<AuthBackend> = r
        .strings("chain", &["local"])
        .iter()
        .filter_map(|name| match name.as_str() {
            "local" => Some(AuthBackend::Local),
            "http" => Some(AuthBackend::Http),
            "ldap" => Some(AuthBackend::Ldap),
            other => {
                r.fail("chain", format!("unknown authenticator `{other}` (local, http, ldap)"));
                None
            }
        })
        .collect();
    if chain.is_empty() {
        r.fail("chain", "name at least one authenticator");
    }
    let cache_ttl = r.duration("cache_ttl", Duration::ZERO);
    let hash_threads = r.integer("hash_threads", 2, 1, 256) as usize;
    let hash_queue = r.integer("hash_queue", 32, 0, 100_000) as usize;
    let mut h = r.nested("http");
    let url = h.string("url", "");
    let http = AuthHttpConfig {
        timeout: h.duration("timeout", Duration::from_secs(5)),
        ca_file: optional_path(&mut h, "ca_file"),
        bearer_secret: Some(h.string("bearer_secret", ""))
            .filter(|s| !s.is_empty())
            .map(crate::types::Secret::new),
        url: url.clone(),
    };
    let wants_http = chain.contains(&AuthBackend::Http);
    if wants_http && !(url.starts_with("https://") || url.starts_with("http://")) {
        h.fail("url", "the http authenticator needs an http(s):// URL");
    }
    h.finish();
    let mut l = r.nested("ldap");
    let text = |l: &mut Reader<'_>, key: &str| Some(l.string(key, "")).filter(|s| !s.is_empty());
    let ldap = AuthLdapConfig {
        url: l.string("url", ""),
        starttls: l.bool("starttls", false),
        ca_file: optional_path(&mut l, "ca_file"),
        timeout: l.duration("timeout", Duration::from_secs(5)),
        bind_dn: text(&mut l, "bind_dn"),
        service_dn: text(&mut l, "service_dn"),
        service_password: text(&mut l, "service_password").map(crate::types::Secret::new),
        base_dn: l.string("base_dn", ""),
        user_filter: l.string("user_filter", "(uid={user})"),
        group_base_dn: text(&mut l, "group_base_dn"),
        group_filter: l.string("group_filter", "(member={dn})"),
        ssh_key_attribute: l.string("ssh_key_attribute", "sshPublicKey"),
        home: l.string("home", "/{user}"),
        group_rules: l.strings("group_rules", &[]),
        group_homes: l.strings("group_homes", &[]),
        group_mounts: l.strings("group_mounts", &[]),
        default_rules: l.strings("default_rules", &["/=*"]),
    };
    if chain.contains(&AuthBackend::Ldap) {
        if !(ldap.url.starts_with("ldap://") || ldap.url.starts_with("ldaps://")) {
            l.fail("url", "the ldap authenticator needs an ldap:// or ldaps:// URL");
        }
        if ldap.bind_dn.is_none() && (ldap.service_dn.is_none() || ldap.base_dn.is_empty()) {
            l.fail(
                "bind_dn",
                "give bind_dn (direct bind) or service_dn, service_password and base_dn (search)",
            );
        }
    }
    l.finish();
    r.finish();
    let auth = AuthConfig {
        max_attempts,
        rejection_delay,
        default_upload_mode,
        ban_after_failures,
        ban_window,
        ban_time,
        chain,
        http,
        ldap,
        cache_ttl,
        hash_threads,
        hash_queue,
    };

    let audit = parse_audit(audit, &data_dir, errors);

    let mut r = Reader::new(ops.0, ops.1, errors);
    let ops = OpsConfig {
        enabled: r.bool("enabled", true),
        bind: r.socket_addr("bind", "0.0.0.0:9180"),
        per_user_metrics: r.bool("per_user_metrics", false),
        per_user_metrics_max: r.integer("per_user_metrics_max", 100, 1, 100_000) as usize,
    };
    r.finish();

    let mut r = Reader::new(sftp.0, sftp.1, errors);
    let sftp = SftpConfig {
        enabled: r.bool("enabled", true),
        bind: r.socket_addr("bind", "0.0.0.0:2222"),
        host_keys: r.strings("host_keys", &[]).into_iter().map(PathBuf::from).collect(),
        kex: allowed(&mut r, "kex", KEX_ALGORITHMS, DEFAULT_KEX_ALGORITHMS),
        ciphers: allowed(&mut r, "ciphers", CIPHERS, DEFAULT_CIPHERS),
        macs: allowed(&mut r, "macs", MACS, DEFAULT_MACS),
        host_key_algorithms: allowed(
            &mut r,
            "host_key_algorithms",
            HOST_KEY_ALGORITHMS,
            DEFAULT_HOST_KEY_ALGORITHMS,
        ),
        idle_timeout: r.optional_duration("idle_timeout", Some(Duration::from_secs(600))),
        keepalive_interval: r.optional_duration("keepalive_interval", Some(Duration::from_secs(30))),
        keepalive_max: r.integer("keepalive_max", 3, 1, 1000) as usize,
        banner: r.string("banner", ""),
        max_sessions_per_connection: r.integer("max_sessions_per_connection", 10, 1, 1000) as usize,
        window_size: r.size("window_size", 16 << 20, 64 << 10, u64::from(u32::MAX)) as u32,
        max_requests_in_flight: r.integer("max_requests_in_flight", 64, 1, 4096) as usize,
        max_connections: r.integer("max_connections", 10_000, 1, 1_000_000) as usize,
        max_connections_per_ip: r.integer("max_connections_per_ip", 100, 1, 1_000_000) as usize,
        login_grace_time: r.optional_duration("login_grace_time", Some(Duration::from_secs(30))),
        max_handles_per_connection: r.integer("max_handles_per_connection", 256, 1, 100_000) as usize,
        max_handles_per_user: r.integer("max_handles_per_user", 1024, 1, 1_000_000) as usize,
        max_bytes_in_flight_per_channel: r.size(
            "max_bytes_in_flight_per_channel",
            8 << 20,
            256 << 10,
            1 << 30,
        ) as usize,
        max_bytes_in_flight_per_connection: r.size(
            "max_bytes_in_flight_per_connection",
            16 << 20,
            256 << 10,
            4 << 30,
        ) as usize,
    };
    r.finish();

    let mut r = Reader::new(scp.0, scp.1, errors);
    let scp = ScpConfig { enabled: r.bool("enabled", true) };
    r.finish();

    let mut r = Reader::new(tls.0, tls.1, errors);
    let cert_file = optional_path(&mut r, "cert_file");
    let key_file = optional_path(&mut r, "key_file");
    if cert_file.is_some() != key_file.is_some() {
        r.fail("cert_file", "cert_file and key_file go together: give both or neither");
    }
    let min_version = tls_version(&mut r, "min_version", "1.2");
    let max_version = tls_version(&mut r, "max_version", "1.3");
    if min_version > max_version {
        r.fail("min_version", "is above max_version");
    }
    let tls = TlsConfig {
        cert_file,
        key_file,
        min_version,
        max_version,
        cipher_suites: r.strings("cipher_suites", &[]),
    };
    r.finish();

    let mut r = Reader::new(ftp.0, ftp.1, errors);
    let ports_raw = r.string("passive_ports", "50000-50100");
    let passive_ports = parse_port_range(&ports_raw).unwrap_or_else(|e| {
        r.fail("passive_ports", e);
        (50000, 50100)
    });
    let passive_address = Some(r.string("passive_address", "")).filter(|s| !s.is_empty());
    let ftp = FtpConfig {
        enabled: r.bool("enabled", true),
        bind: r.socket_addr("bind", "0.0.0.0:2121"),
        require_tls: r.bool("require_tls", true),
        dangerous_allow_plaintext_login: r.bool("dangerous_allow_plaintext_login", false),
        passive_ports,
        passive_address,
        active_mode: r.bool("active_mode", false),
        idle_timeout: r.duration("idle_timeout", Duration::from_secs(300)),
        data_timeout: r.duration("data_timeout", Duration::from_secs(30)),
        max_connections: r.integer("max_connections", 10_000, 1, 1_000_000) as usize,
        max_connections_per_ip: r.integer("max_connections_per_ip", 100, 1, 1_000_000) as usize,
        max_login_attempts: r.integer("max_login_attempts", 3, 1, 100) as u32,
        max_passive_ports_per_ip: r.integer("max_passive_ports_per_ip", 16, 1, 65_536) as usize,
        require_tls_session_reuse: r.bool("require_tls_session_reuse", true),
        banner: r.string("banner", "ferry FTP server ready"),
    };
    r.finish();

    let mut r = Reader::new(ftps.0, ftps.1, errors);
    let ftps = FtpsConfig { enabled: r.bool("enabled", true), bind: r.socket_addr("bind", "0.0.0.0:9990") };
    r.finish();

    let mut r = Reader::new(https.0, https.1, errors);
    let https = HttpsConfig {
        enabled: r.bool("enabled", true),
        bind: r.socket_addr("bind", "0.0.0.0:8443"),
        redirect_bind: {
            let raw = r.string("redirect_bind", "");
            if raw.is_empty() {
                None
            } else {
                match raw.parse() {
                    Ok(addr) => Some(addr),
                    Err(_) => {
                        r.fail("redirect_bind", format!("expected host:port or \"\" (off), found `{raw}`"));
                        None
                    }
                }
            }
        },
        max_connections: r.integer("max_connections", 10_000, 1, 1_000_000) as usize,
        max_connections_per_ip: r.integer("max_connections_per_ip", 100, 1, 1_000_000) as usize,
        token_ttl: r.duration("token_ttl", Duration::from_secs(900)),
        header_timeout: r.duration("header_timeout", Duration::from_secs(10)),
        session_max_life: positive_duration(&mut r, "session_max_life", Duration::from_secs(12 * 3600)),
        body_timeout: positive_duration(&mut r, "body_timeout", Duration::from_secs(30)),
        upload_idle_timeout: positive_duration(&mut r, "upload_idle_timeout", Duration::from_secs(120)),
        idle_timeout: positive_duration(&mut r, "idle_timeout", Duration::from_secs(300)),
        keepalive_interval: positive_duration(&mut r, "keepalive_interval", Duration::from_secs(60)),
    };
    r.finish();

    Config {
        source: String::new(),
        data_dir,
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
        ops,
    }
}

/// `[audit]` and its sink tables.
fn parse_audit(section: (&str, Table), data_dir: &Path, errors: &mut Vec<KeyError>) -> AuditConfig {
    let mut r = Reader::new(section.0, section.1, errors);
    let queue_size = r.integer("queue_size", 65_536, 16, 16_777_216) as usize;
    let checkpoint_every = r.integer("checkpoint_every", 10_000, 1, 1 << 40);
    let checkpoint_interval = r.duration("checkpoint_interval", Duration::from_secs(300));
    let node_key = r.path("node_key", data_dir.join("audit/node.key"));
    let spool_dir = r.path("spool_dir", data_dir.join("audit/spool"));

    // `stdout = false` (a bool) is the short form of `[audit.stdout] enabled = false`.
    let stdout_table = match r.value("stdout") {
        None => Table::new(),
        Some(Value::Table(table)) => table,
        Some(Value::Boolean(enabled)) => Table::from_iter([("enabled".to_string(), Value::Boolean(enabled))]),
        Some(Value::String(s)) if s == "true" || s == "false" => {
            Table::from_iter([("enabled".to_string(), Value::Boolean(s == "true"))])
        }
        Some(other) => {
            r.fail("stdout", format!("expected a table or true/false, found {}", other.type_str()));
            Table::new()
        }
    };
    let dotted = r.dotted("stdout");
    let mut s = Reader::new(&dotted, stdout_table, r.errors());
    let stdout = sink_config(&mut s, true, queue_size, OnFull::Drop);
    s.finish();

    let mut f = r.nested("file");
    let file = sink_config(&mut f, false, queue_size, OnFull::Spill);
    let export_storage = Some(f.string("export_storage", "")).filter(|s| !s.is_empty());
    let file_settings = AuditFileConfig {
        dir: f.path("dir", data_dir.join("audit/trail")),
        rotate_size: f.size("rotate_size", 64 << 20, 4 << 10, 1 << 40),
        rotate_interval: f.duration("rotate_interval", Duration::from_secs(86_400)),
        retention: f.duration("retention", Duration::ZERO),
        max_files: f.integer("max_files", 0, 0, 1_000_000) as usize,
        export_storage,
        export_prefix: f.string("export_prefix", "audit/"),
    };
    if file_settings.rotate_interval.is_zero() {
        f.fail("rotate_interval", "must be above zero");
    }
    f.finish();

    let mut d = r.nested("database");
    let database = sink_config(&mut d, true, queue_size, OnFull::Spill);
    let database_retention = d.duration("retention", Duration::ZERO);
    d.finish();

    let mut y = r.nested("syslog");
    let syslog = sink_config(&mut y, false, queue_size, OnFull::Drop);
    let transport = match y.string("transport", "udp").as_str() {
        "udp" => SyslogTransport::Udp,
        "tcp" => SyslogTransport::Tcp,
        "tls" => SyslogTransport::Tls,
        other => {
            y.fail("transport", format!("expected udp, tcp or tls, found `{other}`"));
            SyslogTransport::Udp
        }
    };
    let address = y.string("address", "127.0.0.1:514");
    if syslog.enabled && address.rsplit_once(':').is_none_or(|(_, port)| port.parse::<u16>().is_err()) {
        y.fail("address", format!("expected host:port, found `{address}`"));
    }
    let syslog_settings = AuditSyslogConfig {
        transport,
        address,
        server_name: Some(y.string("server_name", "")).filter(|s| !s.is_empty()),
        ca_file: optional_path(&mut y, "ca_file"),
        facility: syslog_facility(&mut y),
        app_name: y.string("app_name", "ferry"),
    };
    y.finish();

    let mut h = r.nested("http");
    let http = sink_config(&mut h, false, queue_size, OnFull::Drop);
    let http_settings = AuditHttpConfig {
        url: h.string("url", ""),
        bearer_secret: Some(h.string("bearer_secret", ""))
            .filter(|s| !s.is_empty())
            .map(crate::types::Secret::new),
        timeout: h.duration("timeout", Duration::from_secs(10)),
    };
    if http.enabled
        && !(http_settings.url.starts_with("https://") || http_settings.url.starts_with("http://"))
    {
        h.fail("url", "the http audit sink needs an http(s):// URL");
    }
    h.finish();
    r.finish();
    AuditConfig {
        checkpoint_every,
        checkpoint_interval,
        node_key,
        spool_dir,
        stdout,
        file,
        file_settings,
        database,
        database_retention,
        syslog,
        syslog_settings,
        http,
        http_settings,
    }
}

fn sink_config(r: &mut Reader<'_>, enabled: bool, queue_size: usize, on_full: OnFull) -> SinkConfig {
    let enabled = r.bool("enabled", enabled);
    let queue_size = r.integer("queue_size", queue_size as u64, 16, 16_777_216) as usize;
    let default = if on_full == OnFull::Spill { "spill" } else { "drop" };
    let on_full = match r.string("on_full", default).as_str() {
        "drop" => OnFull::Drop,
        "spill" => OnFull::Spill,
        other => {
            r.fail("on_full", format!("expected \"drop\" or \"spill\", found `{other}`"));
            on_full
        }
    };
    SinkConfig { enabled, queue_size, on_full }
}

/// A facility by name (`local0`, `auth`, `audit`…) or number (0-23).
fn syslog_facility(r: &mut Reader<'_>) -> u8 {
    const NAMES: [&str; 24] = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp",
        "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4", "local5",
        "local6", "local7",
    ];
    let raw = r.string("facility", "local0");
    if let Some(number) = NAMES.iter().position(|name| *name == raw) {
        return number as u8;
    }
    match raw.parse::<u8>() {
        Ok(number) if number < 24 => number,
        _ => {
            r.fail(
                "facility",
                format!("expected a facility name (local0..local7, auth, audit…) or 0-23, found `{raw}`"),
            );
            16
        }
    }
}

fn optional_path(r: &mut Reader<'_>, key: &str) -> Option<PathBuf> {
    let path = r.path(key, PathBuf::new());
    (!path.as_os_str().is_empty()).then_some(path)
}

fn tls_version(r: &mut Reader<'_>, key: &str, default: &str) -> TlsVersion {
    match r.string(key, default).as_str() {
        "1.2" => TlsVersion::Tls12,
        "1.3" => TlsVersion::Tls13,
        other => {
            r.fail(key, format!("expected \"1.2\" or \"1.3\" (older versions are refused), found `{other}`"));
            TlsVersion::Tls12
        }
    }
}

/// "50000-50100" → (50000, 50100).
fn parse_port_range(raw: &str) -> Result<(u16, u16), String> {
    let bad = || format!("expected a range such as \"50000-50100\", found `{raw}`");
    let (low, high) = raw.split_once('-').ok_or_else(bad)?;
    let low: u16 = low.trim().parse().map_err(|_| bad())?;
    let high: u16 = high.trim().parse().map_err(|_| bad())?;
    if low == 0 || low > high {
        return Err(bad());
    }
    Ok((low, high))
}

/// A list whose every entry must be in `known` (order kept: the first is preferred).
fn allowed(r: &mut Reader<'_>, key: &str, known: &[&str], default: &[&str]) -> Vec<String> {
    let list = r.strings(key, default);
    for name in &list {
        if !known.contains(&name.as_str()) {
            r.fail(key, format!("`{name}` is not supported; choose from {}", known.join(", ")));
        }
    }
    if list.is_empty() {
        r.fail(key, "must name at least one algorithm");
    }
    list
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
        assert_eq!(config.sftp.bind.port(), 2222);
        assert_eq!(config.storage.root, PathBuf::from("./data/files"));
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
        assert_eq!(config.sftp.bind, "127.0.0.1:2200".parse().unwrap());
        assert_eq!(config.sftp.idle_timeout, Some(Duration::from_secs(45)));
        assert!(!config.scp.enabled);
        assert_eq!(config.storage.root, PathBuf::from("/srv/ferry/files"));
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
        assert_eq!(config.ops.bind, "127.0.0.1:9999".parse().unwrap());
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
}
