//! The listeners' settings: `[sftp]` (with the SSH algorithm lists), `[scp]`, `[tls]`, `[ftp]`,
//! `[ftps]`, `[https]` and `[ops]`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use toml::Table;

use super::auth::LegacyFtpAttempts;
use super::listen::{self, Limits, ListenConfig};
use super::reader::{KeyError, Reader};

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
/// Every cipher ferry can offer passes ssh-audit: all are offered by default.
pub const DEFAULT_CIPHERS: &[&str] = CIPHERS;
/// Encrypt-then-MAC first; the encrypt-and-MAC `hmac-sha2-*` follow (ssh-audit warns of them, it
/// does not fail them) because libssh2 before 1.11 (Debian 12's curl, PHP, many embedded clients)
/// knows no ETM MAC and no AEAD cipher: without them those clients cannot connect at all.
pub const DEFAULT_MACS: &[&str] = MACS;
pub const DEFAULT_HOST_KEY_ALGORITHMS: &[&str] = &["ssh-ed25519"];

/// The HTTPS listener: REST API (and later the web file manager), on the TLS settings of `[tls]`.
#[derive(Debug, Clone)]
pub struct HttpsConfig {
    pub enabled: bool,
    pub listen: ListenConfig,
    /// A plain-HTTP listener that only redirects to HTTPS; `None` is off.
    pub redirect_bind: Option<SocketAddr>,
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

/// `[http]`: the API and file manager over plain HTTP, for an L7 balancer that terminates TLS
/// in front of ferry (off by default).
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub enabled: bool,
    pub listen: ListenConfig,
    /// Serve clients that are not `server.trusted_proxies` too (and requests a proxy says came
    /// over plain HTTP): credentials then cross the network in clear.
    pub dangerous_allow_plaintext: bool,
}

/// The ops listener: plain HTTP with /metrics, /healthz and /readyz, on its own port.
#[derive(Debug, Clone)]
pub struct OpsConfig {
    pub enabled: bool,
    pub listen: ListenConfig,
    /// Opt-in per-user transfer counters, capped at `per_user_metrics_max` distinct users.
    pub per_user_metrics: bool,
    pub per_user_metrics_max: usize,
}

#[derive(Debug, Clone)]
pub struct SftpConfig {
    pub enabled: bool,
    pub listen: ListenConfig,
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

/// TLS shared by FTPS and HTTPS.
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
    pub listen: ListenConfig,
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
    pub listen: ListenConfig,
}

/// `[sftp]`: the SSH listener (SFTP and SCP) and its algorithm lists.
pub(super) fn sftp(section: (&str, Table), errors: &mut Vec<KeyError>) -> SftpConfig {
    let mut r = Reader::new(section.0, section.1, errors);
    let sftp = SftpConfig {
        enabled: r.bool("enabled", true),
        listen: listen::read(&mut r, "0.0.0.0:2222", Limits::Read),
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
    sftp
}

/// `[scp]`.
pub(super) fn scp(section: (&str, Table), errors: &mut Vec<KeyError>) -> ScpConfig {
    let mut r = Reader::new(section.0, section.1, errors);
    let scp = ScpConfig { enabled: r.bool("enabled", true) };
    r.finish();
    scp
}

/// `[tls]`: the certificate and versions of FTPS and HTTPS.
pub(super) fn tls(section: (&str, Table), errors: &mut Vec<KeyError>) -> TlsConfig {
    let mut r = Reader::new(section.0, section.1, errors);
    let cert_file = r.optional_path("cert_file");
    let key_file = r.optional_path("key_file");
    if cert_file.is_some() != key_file.is_some() {
        r.fail("cert_file", "cert_file and key_file go together: give both or neither");
    }
    let min_version = tls_version(&mut r, "min_version", TlsVersion::Tls12);
    let max_version = tls_version(&mut r, "max_version", TlsVersion::Tls13);
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
    tls
}

/// `[ftp]`, with the deprecated `max_login_attempts` handed back for `[auth]` to weigh.
pub(super) fn ftp(section: (&str, Table), errors: &mut Vec<KeyError>) -> (FtpConfig, LegacyFtpAttempts) {
    let mut r = Reader::new(section.0, section.1, errors);
    let ports_raw = r.string("passive_ports", "50000-50100");
    let passive_ports = parse_port_range(&ports_raw).unwrap_or_else(|e| {
        r.fail("passive_ports", e);
        (50000, 50100)
    });
    let passive_address = r.optional_string("passive_address");
    let legacy = r.contains("max_login_attempts").then(|| r.integer("max_login_attempts", 3, 1, 100) as u32);
    let ftp = FtpConfig {
        enabled: r.bool("enabled", true),
        listen: listen::read(&mut r, "0.0.0.0:2121", Limits::Read),
        require_tls: r.bool("require_tls", true),
        dangerous_allow_plaintext_login: r.bool("dangerous_allow_plaintext_login", false),
        passive_ports,
        passive_address,
        active_mode: r.bool("active_mode", false),
        idle_timeout: r.duration("idle_timeout", Duration::from_secs(300)),
        data_timeout: r.duration("data_timeout", Duration::from_secs(30)),
        max_passive_ports_per_ip: r.integer("max_passive_ports_per_ip", 16, 1, 65_536) as usize,
        require_tls_session_reuse: r.bool("require_tls_session_reuse", true),
        banner: r.string("banner", "ferry FTP server ready"),
    };
    r.finish();
    (ftp, LegacyFtpAttempts(legacy))
}

/// `[ftps]`: implicit FTPS.
pub(super) fn ftps(section: (&str, Table), errors: &mut Vec<KeyError>) -> FtpsConfig {
    let mut r = Reader::new(section.0, section.1, errors);
    let ftps = FtpsConfig {
        enabled: r.bool("enabled", true),
        listen: listen::read(&mut r, "0.0.0.0:9990", Limits::Read),
    };
    r.finish();
    ftps
}

/// `[https]`.
pub(super) fn https(section: (&str, Table), errors: &mut Vec<KeyError>) -> HttpsConfig {
    let mut r = Reader::new(section.0, section.1, errors);
    let https = HttpsConfig {
        enabled: r.bool("enabled", true),
        listen: listen::read(&mut r, "0.0.0.0:8443", Limits::Read),
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
        token_ttl: r.duration("token_ttl", Duration::from_secs(900)),
        header_timeout: r.duration("header_timeout", Duration::from_secs(10)),
        session_max_life: r.positive_duration("session_max_life", Duration::from_secs(12 * 3600)),
        body_timeout: r.positive_duration("body_timeout", Duration::from_secs(30)),
        upload_idle_timeout: r.positive_duration("upload_idle_timeout", Duration::from_secs(120)),
        idle_timeout: r.positive_duration("idle_timeout", Duration::from_secs(300)),
        keepalive_interval: r.positive_duration("keepalive_interval", Duration::from_secs(60)),
    };
    r.finish();
    https
}

/// `[http]`.
pub(super) fn http(section: (&str, Table), errors: &mut Vec<KeyError>) -> HttpConfig {
    let mut r = Reader::new(section.0, section.1, errors);
    let http = HttpConfig {
        enabled: r.bool("enabled", false),
        listen: listen::read(&mut r, "0.0.0.0:8080", Limits::Read),
        dangerous_allow_plaintext: r.bool("dangerous_allow_plaintext", false),
    };
    r.finish();
    http
}

/// `[ops]`: metrics and health checks.
pub(super) fn ops(section: (&str, Table), errors: &mut Vec<KeyError>) -> OpsConfig {
    let mut r = Reader::new(section.0, section.1, errors);
    let ops = OpsConfig {
        enabled: r.bool("enabled", true),
        listen: listen::read(&mut r, "0.0.0.0:9180", Limits::None),
        per_user_metrics: r.bool("per_user_metrics", false),
        per_user_metrics_max: r.integer("per_user_metrics_max", 100, 1, 100_000) as usize,
    };
    r.finish();
    ops
}

fn tls_version(r: &mut Reader<'_>, key: &str, default: TlsVersion) -> TlsVersion {
    let versions = [("1.2", TlsVersion::Tls12), ("1.3", TlsVersion::Tls13)];
    r.choice_because(key, default, &versions, "older versions are refused")
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
