//! `[audit]` and its sink tables (`stdout`, `file`, `database`, `syslog`, `http`): where the
//! signed audit chain goes, and what each sink does when its queue is full.

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::{Table, Value};

use super::reader::{KeyError, Reader};
use crate::types::Secret;

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
    pub bearer_secret: Option<Secret<String>>,
    pub timeout: Duration,
}

/// `[audit]` and its sink tables.
pub(super) fn parse(section: (&str, Table), data_dir: &Path, errors: &mut Vec<KeyError>) -> AuditConfig {
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
    let export_storage = f.optional_string("export_storage");
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
    let transport = y.choice(
        "transport",
        SyslogTransport::Udp,
        &[("udp", SyslogTransport::Udp), ("tcp", SyslogTransport::Tcp), ("tls", SyslogTransport::Tls)],
    );
    let address = y.string("address", "127.0.0.1:514");
    if syslog.enabled && address.rsplit_once(':').is_none_or(|(_, port)| port.parse::<u16>().is_err()) {
        y.fail("address", format!("expected host:port, found `{address}`"));
    }
    let syslog_settings = AuditSyslogConfig {
        transport,
        address,
        server_name: y.optional_string("server_name"),
        ca_file: y.optional_path("ca_file"),
        facility: syslog_facility(&mut y),
        app_name: y.string("app_name", "ferry"),
    };
    y.finish();

    let mut h = r.nested("http");
    let http = sink_config(&mut h, false, queue_size, OnFull::Drop);
    let http_settings = AuditHttpConfig {
        url: h.string("url", ""),
        bearer_secret: h.optional_secret("bearer_secret"),
        timeout: h.duration("timeout", Duration::from_secs(10)),
    };
    if http.enabled
        && !(http_settings.url.starts_with("https://") || http_settings.url.starts_with("http://"))
    {
        h.fail("url", "the http audit sink is enabled and needs an http(s):// URL");
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
    let on_full = r.choice("on_full", on_full, &[("drop", OnFull::Drop), ("spill", OnFull::Spill)]);
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
