//! The listeners the configuration enables: one table, one bind helper, the shared pieces
//! (SSH settings, the TLS server config for FTPS and HTTPS) built once before anything binds.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::rooms::Rooms;
use crate::admin::Admin;
use crate::config::{Config, ListenConfig};
use crate::net::{AddressFilter, Admission, BanCheck, ConnectionLimit, ProxyPolicy, tls};
use crate::protocols::Phase;
use crate::protocols::ftp::{self, FtpSettings};
use crate::protocols::http;
use crate::protocols::sftp::{self, SshSettings, keys};
use crate::types::Protocol;

/// The listener tasks; each returns when the server has closed.
pub(super) type ListenerTasks = JoinSet<std::io::Result<()>>;

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sftp,
    /// FTP with explicit TLS (AUTH TLS).
    Ftp,
    /// Implicit FTPS.
    Ftps,
    Https,
    /// The HTTPS app over plain HTTP, behind a balancer that terminates TLS.
    Http,
    /// Plain HTTP answering with a redirect to the HTTPS listener (bound after it).
    Redirect,
    Ops,
}

/// One enabled listener: what it serves, the config key of its address, the address, and how
/// its connections are vetted.
struct Enabled {
    kind: Kind,
    key: &'static str,
    bind: SocketAddr,
    admission: Admission,
}

/// The addresses the enabled listeners are bound to (port 0 in a config gets a real port).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Addresses {
    pub(super) sftp: Option<SocketAddr>,
    pub(super) ftp: Option<SocketAddr>,
    pub(super) ftps: Option<SocketAddr>,
    pub(super) https: Option<SocketAddr>,
    pub(super) http: Option<SocketAddr>,
    pub(super) ops: Option<SocketAddr>,
}

/// The enabled listeners in bind order (the redirect needs the HTTPS port).
fn enabled(config: &Config, banned: &BanCheck) -> Vec<Enabled> {
    let redirect = config.https.redirect_bind.filter(|_| config.https.enabled);
    let (sftp, ftp, ftps, https, ops) = (
        &config.sftp.listen,
        &config.ftp.listen,
        &config.ftps.listen,
        &config.https.listen,
        &config.ops.listen,
    );
    // Listeners that serve users refuse banned addresses at accept.
    let limited = |listen: &ListenConfig| {
        let limit = ConnectionLimit::new(listen.max_connections, listen.max_connections_per_ip);
        admission(config, listen, Admission::limited(limit).with_bans(BanCheck::clone(banned)))
    };
    [
        (config.sftp.enabled.then_some(sftp.bind), Kind::Sftp, "sftp.bind", limited(sftp)),
        (config.ftp.enabled.then_some(ftp.bind), Kind::Ftp, "ftp.bind", limited(ftp)),
        (config.ftps.enabled.then_some(ftps.bind), Kind::Ftps, "ftps.bind", limited(ftps)),
        (config.https.enabled.then_some(https.bind), Kind::Https, "https.bind", limited(https)),
        (
            config.http.enabled.then_some(config.http.listen.bind),
            Kind::Http,
            "http.bind",
            plain(config, limited),
        ),
        // The redirect holds no session: no limits, but the HTTPS listener's PROXY and filter.
        (redirect, Kind::Redirect, "https.redirect_bind", admission(config, https, Admission::open())),
        // Probes must get through a busy server: no limits.
        (
            config.ops.enabled.then_some(ops.bind),
            Kind::Ops,
            "ops.bind",
            admission(config, ops, Admission::open()),
        ),
    ]
    .into_iter()
    .filter_map(|(bind, kind, key, admission)| bind.map(|bind| Enabled { kind, key, bind, admission }))
    .collect()
}

/// The plain-HTTP listener: as every listener, and only for trusted proxies unless the operator
/// allowed plain text.
fn plain(config: &Config, limited: impl Fn(&ListenConfig) -> Admission) -> Admission {
    let admission = limited(&config.http.listen);
    if config.http.dangerous_allow_plaintext {
        return admission;
    }
    admission.only(&config.server.trusted_proxies)
}

/// `base` with the PROXY protocol and the address filter of `listen`.
fn admission(config: &Config, listen: &ListenConfig, base: Admission) -> Admission {
    let server = &config.server;
    base.with_proxy(ProxyPolicy::new(
        listen.proxy_protocol,
        &server.trusted_proxies,
        server.proxy_header_timeout,
    ))
    .with_filter(AddressFilter::new(&listen.allow, &listen.deny))
}

/// Connections the kernel completes and queues for a listener before ferry accepts them.
/// tokio's default (128) overflows under a connection flood, and an overflow drops the SYNs of
/// everyone, legitimate clients too; the kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr`, naming the config key that asked for it when that fails.
async fn bind(key: &str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let listen = || -> std::io::Result<TcpListener> {
        let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    listen().with_context(|| format!("{key}: cannot listen on {addr}"))
}

/// What the listeners share, built once before anything binds.
struct Shared {
    ssh: Option<SshSettings>,
    ftp: Option<Arc<FtpSettings>>,
    https: Option<(Arc<rustls::ServerConfig>, http::AppState)>,
}

impl Shared {
    fn build(config: &Config, rooms: &Rooms, listeners: &[Enabled]) -> anyhow::Result<Self> {
        let wants = |kinds: &[Kind]| listeners.iter().any(|l| kinds.contains(&l.kind));
        let ssh = if wants(&[Kind::Sftp]) {
            let host_keys = keys::host_keys(&config.sftp.host_keys, &config.data_dir.join("host_keys"))?;
            Some(SshSettings::new(&config.sftp, &config.auth, config.scp.enabled, host_keys)?)
        } else {
            None
        };
        // FTPS and HTTPS present the same certificate: loaded (or generated) once, with a
        // session cache per protocol as before.
        let tls = if wants(&[Kind::Ftp, Kind::Ftps, Kind::Https, Kind::Http]) {
            Some(tls::server_config(&config.tls, &config.data_dir)?)
        } else {
            None
        };
        let ftp = wants(&[Kind::Ftp, Kind::Ftps])
            .then(|| Arc::new(FtpSettings::new(config.ftp.clone(), tls.clone(), config.auth.max_attempts)));
        let https = match tls.filter(|_| wants(&[Kind::Https, Kind::Http])) {
            Some(tls) => Some((
                tls::with_own_resumption(&tls)?,
                http::AppState {
                    sessions: rooms.sessions.clone(),
                    admin: Arc::new(
                        Admin::new(rooms.state.clone(), rooms.audit.clone()).with_protocol(Protocol::Https),
                    ),
                    settings: Arc::new(http::HttpSettings::new(
                        &config.https,
                        &config.server.trusted_proxies,
                    )),
                },
            )),
            None => None,
        };
        Ok(Self { ssh, ftp, https })
    }
}

/// Binds every enabled listener and spawns it on `phase`.
pub(super) async fn spawn_all(
    config: &Config,
    rooms: &Rooms,
    phase: &watch::Receiver<Phase>,
    tasks: &mut ListenerTasks,
) -> anyhow::Result<Addresses> {
    let sessions = rooms.sessions.clone();
    let banned: BanCheck = Arc::new(move |ip| sessions.is_banned(ip));
    let listeners = enabled(config, &banned);
    let shared = Shared::build(config, rooms, &listeners)?;
    let mut addresses = Addresses::default();
    for Enabled { kind, key, bind: wanted, admission } in listeners {
        let listener = bind(key, wanted).await?;
        let addr = listener.local_addr()?;
        let phase = phase.clone();
        match (kind, &shared) {
            (Kind::Sftp, Shared { ssh: Some(settings), .. }) => {
                tracing::info!(%addr, scp = config.scp.enabled, "SFTP/SCP listening");
                addresses.sftp = Some(addr);
                tasks.spawn(sftp::serve(
                    listener,
                    admission,
                    settings.clone(),
                    rooms.sessions.clone(),
                    phase,
                ));
            }
            (Kind::Ftp | Kind::Ftps, Shared { ftp: Some(settings), .. }) => {
                let implicit = kind == Kind::Ftps;
                tracing::info!(%addr, implicit_tls = implicit, "FTP listening");
                *(if implicit { &mut addresses.ftps } else { &mut addresses.ftp }) = Some(addr);
                let sessions = rooms.sessions.clone();
                tasks.spawn(ftp::serve(listener, admission, Arc::clone(settings), sessions, implicit, phase));
            }
            (Kind::Https, Shared { https: Some((tls, app)), .. }) => {
                tracing::info!(%addr, "HTTPS listening");
                addresses.https = Some(addr);
                tasks.spawn(http::serve(listener, admission, Arc::clone(tls), app.clone(), phase));
            }
            (Kind::Http, Shared { https: Some((_, app)), .. }) => {
                tracing::info!(%addr, "plain HTTP for a TLS-terminating balancer listening");
                addresses.http = Some(addr);
                let refuse_plain = !config.http.dangerous_allow_plaintext;
                tasks.spawn(http::serve_plain(listener, admission, app.clone(), refuse_plain, phase));
            }
            (Kind::Redirect, _) => {
                let https_port = addresses.https.map_or(443, |https| https.port());
                tracing::info!(%addr, "HTTP redirect to HTTPS listening");
                tasks.spawn(http::serve_redirect(listener, admission, https_port, phase));
            }
            (Kind::Ops, _) => {
                tracing::info!(%addr, "ops listening (/metrics, /healthz, /readyz)");
                addresses.ops = Some(addr);
                tasks.spawn(http::ops::serve(listener, admission, phase, rooms.store_up.clone()));
            }
            (kind, _) => anyhow::bail!("{kind:?} listener without its settings"),
        }
    }
    Ok(addresses)
}
