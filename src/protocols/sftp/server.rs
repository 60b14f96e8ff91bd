//! The SSH side: our own accept loop feeding `russh::server::run_stream`, authentication
//! through the session layer, and one task per SFTP or SCP channel (handler callbacks never
//! block).

use std::borrow::Cow;
use std::collections::HashMap;
use std::os::fd::AsFd;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use russh::keys::{Algorithm, PrivateKey};
use russh::server::ChannelOpenHandle;
use russh::server::{Auth, Msg, PublicKeyOffer, Session as SshSession, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelOpenFailure, MethodKind, MethodSet, Preferred};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

use super::dispatch::{self, Limits, PerConnection};
use super::handles::{HandleCaps, UserHandles};
use super::idle::{self, Activity};
use super::intake::{QUEUE_CAP, Queued};
use super::replies::ByteBudget;
use super::scp;
use crate::config::{AuthConfig, SftpConfig};
use crate::net::{self, Admission};
use crate::protocols::Phase;
use crate::session::{ConnectionInfo, Credentials, Identity, SessionFactory};
use crate::telemetry::metrics::metrics;
use crate::types::{Protocol, Secret, SessionId};

/// A connection whose replies ever held this much gives the allocator's free pages back to the
/// system when it ends (OpenSSH's 64 × 32 KiB pipeline stays well below).
const TRIM_AFTER_BYTES: usize = 4 << 20;

/// Everything the SSH listener needs, built once from configuration.
#[derive(Clone)]
pub struct SshSettings {
    russh: Arc<russh::server::Config>,
    limits: Limits,
    scp_enabled: bool,
    max_channels: usize,
    banner: Option<String>,
    idle_timeout: Option<Duration>,
    login_grace_time: Option<Duration>,
    /// Failed password or key attempts before the connection is closed.
    max_attempts: u32,
    max_handles_per_connection: usize,
    max_handles_per_user: usize,
    /// Open handles per user, shared by every connection of this listener.
    user_handles: UserHandles,
    max_bytes_per_connection: usize,
}

/// A configured SSH algorithm russh does not offer.
#[derive(Debug, thiserror::Error)]
#[error("sftp.{key}: `{name}` unsupported")]
pub struct UnsupportedAlgorithm {
    key: &'static str,
    name: String,
}

fn unsupported(key: &'static str, name: &str) -> UnsupportedAlgorithm {
    UnsupportedAlgorithm { key, name: name.to_string() }
}

impl SshSettings {
    pub fn new(
        sftp: &SftpConfig,
        auth: &AuthConfig,
        scp_enabled: bool,
        keys: Vec<PrivateKey>,
    ) -> Result<Self, UnsupportedAlgorithm> {
        fn names(list: &[String]) -> impl Iterator<Item = &str> {
            list.iter().map(String::as_str)
        }
        let mut kex = Vec::new();
        for name in names(&sftp.kex) {
            kex.push(russh::kex::Name::try_from(name).map_err(|_| unsupported("kex", name))?);
        }
        // Extension negotiation and strict KEX (Terrapin) stay on whatever the list says.
        kex.extend([
            russh::kex::EXTENSION_SUPPORT_AS_SERVER,
            russh::kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
        ]);
        let mut cipher = Vec::new();
        for name in names(&sftp.ciphers) {
            cipher.push(russh::cipher::Name::try_from(name).map_err(|_| unsupported("ciphers", name))?);
        }
        let mut mac = Vec::new();
        for name in names(&sftp.macs) {
            mac.push(russh::mac::Name::try_from(name).map_err(|_| unsupported("macs", name))?);
        }
        let mut key = Vec::new();
        for name in names(&sftp.host_key_algorithms) {
            key.push(Algorithm::from_str(name).map_err(|_| unsupported("host_key_algorithms", name))?);
        }
        let preferred = Preferred {
            kex: Cow::Owned(kex),
            key: Cow::Owned(key),
            cipher: Cow::Owned(cipher),
            mac: Cow::Owned(mac),
            ..Preferred::default()
        };
        let russh = russh::server::Config {
            server_id: russh::SshId::Standard(Cow::Borrowed("SSH-2.0-ferry")),
            methods: MethodSet::from(&[MethodKind::PublicKey, MethodKind::Password][..]),
            // session::login delays every refused attempt; `none` queries and key probes,
            // which are not attempts, are answered at once (as sshd does).
            auth_rejection_time: Duration::ZERO,
            auth_rejection_time_initial: Some(Duration::ZERO),
            keys,
            window_size: sftp.window_size,
            maximum_packet_size: 65_536,
            channel_buffer_size: 256,
            preferred,
            // We count failures ourselves (OpenSSH's way: the initial `none` query is not one)
            // and disconnect at the limit; russh's own cap, one higher, is only a backstop.
            max_auth_attempts: auth.max_attempts as usize + 1,
            inactivity_timeout: sftp.idle_timeout,
            keepalive_interval: sftp.keepalive_interval,
            keepalive_max: sftp.keepalive_max,
            nodelay: true,
            ..Default::default()
        };
        Ok(Self {
            russh: Arc::new(russh),
            limits: Limits {
                max_in_flight: sftp.max_requests_in_flight,
                max_bytes: sftp.max_bytes_in_flight_per_channel,
                max_handles: sftp.max_handles_per_connection,
            },
            scp_enabled,
            max_channels: sftp.max_sessions_per_connection,
            banner: (!sftp.banner.is_empty()).then(|| sftp.banner.clone()),
            idle_timeout: sftp.idle_timeout,
            login_grace_time: sftp.login_grace_time,
            max_attempts: auth.max_attempts,
            max_handles_per_connection: sftp.max_handles_per_connection,
            max_handles_per_user: sftp.max_handles_per_user,
            user_handles: UserHandles::default(),
            max_bytes_per_connection: sftp.max_bytes_in_flight_per_connection,
        })
    }
}

type Registry = Arc<Mutex<HashMap<u64, russh::server::Handle>>>;

/// Serves SSH on `listener` until `phase` reaches `Closing` and every connection has ended.
pub async fn serve(
    listener: TcpListener,
    admission: Admission,
    settings: SshSettings,
    sessions: SessionFactory,
    phase: watch::Receiver<Phase>,
) -> std::io::Result<()> {
    let registry: Registry = Arc::default();
    let next_id = AtomicU64::new(0);
    let refused = |peer, why: &str| sessions.connection_refused(peer, Protocol::Ssh, why);
    let handle = |accepted| {
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        connection(id, accepted, settings.clone(), sessions.clone(), Arc::clone(&registry))
    };
    let mut open = net::serve(listener, admission, refused, phase, Phase::Draining, handle).await?;
    let handles: Vec<_> = registry.lock().map(|r| r.values().cloned().collect()).unwrap_or_default();
    for handle in handles {
        let _ = handle
            .disconnect(russh::Disconnect::ByApplication, "server shutting down".into(), "en".into())
            .await;
    }
    // Give the connections a moment to flush their goodbyes.
    open.wait(Duration::from_secs(1)).await;
    open.detach();
    Ok(())
}

async fn connection(
    id: u64,
    accepted: net::Accepted,
    settings: SshSettings,
    sessions: SessionFactory,
    registry: Registry,
) {
    let net::Accepted { stream, peer, slot, .. } = accepted;
    let deadline = settings.login_grace_time.map(|grace| Instant::now() + grace);
    // The session task owns the stream; a second descriptor on the socket lets the grace
    // timer cut a login that takes too long (held only until authentication).
    let cutter =
        deadline.and_then(|_| stream.as_fd().try_clone_to_owned().ok()).map(std::net::TcpStream::from);
    let conn = ConnectionInfo { session_id: SessionId::new(), peer, protocol: Protocol::Ssh };
    let mut live = sessions.connection_opened(&conn);
    let activity = Activity::new();
    let (authenticated, authenticated_rx) = watch::channel(false);
    let ssh_handle = Arc::new(OnceLock::new());
    let handler = SshConnection {
        sessions: sessions.clone(),
        shared: PerConnection {
            bytes: ByteBudget::trimming_after(settings.max_bytes_per_connection, TRIM_AFTER_BYTES),
            queued: Queued::new(QUEUE_CAP),
            handles: HandleCaps {
                per_connection: settings.max_handles_per_connection,
                per_user: settings.max_handles_per_user,
                connection: Arc::default(),
                users: settings.user_handles.clone(),
            },
        },
        settings: settings.clone(),
        conn,
        identity: None,
        channels: HashMap::new(),
        active: Arc::default(),
        activity: activity.clone(),
        failures: 0,
        authenticated,
        ssh_handle: Arc::clone(&ssh_handle),
    };
    let started = russh::server::run_stream(Arc::clone(&settings.russh), stream, handler);
    let started = match deadline {
        Some(deadline) => match tokio::time::timeout_at(deadline, started).await {
            Ok(started) => started,
            Err(_) => {
                metrics().ssh_disconnects_total.with_label_values(&["login_grace"]).inc();
                tracing::info!(peer = %peer, "no SSH version line within the login grace time");
                Err(russh::Error::ConnectionTimeout)
            }
        },
        None => started.await,
    };
    match started {
        Ok(running) => {
            let _ = ssh_handle.set(running.handle());
            if let Ok(mut r) = registry.lock() {
                r.insert(id, running.handle());
            }
            let watchdog = settings
                .idle_timeout
                .map(|limit| tokio::spawn(idle::watch(activity, limit, running.handle())));
            let handle = running.handle();
            tokio::pin!(running);
            let ended = tokio::select! {
                ended = &mut running => ended,
                () = login_grace(deadline, authenticated_rx, cutter, peer) => running.await,
                () = live.terminated() => {
                    let _ = handle
                        .disconnect(russh::Disconnect::ByApplication, "ended by an administrator".into(), "en".into())
                        .await;
                    running.await
                }
            };
            if let Some(watchdog) = watchdog {
                watchdog.abort();
            }
            if let Err(e) = ended {
                tracing::debug!(peer = %peer, error = %e, "SSH connection ended with an error");
            }
            if let Ok(mut r) = registry.lock() {
                r.remove(&id);
            }
        }
        Err(e) => tracing::debug!(peer = %peer, error = %e, "SSH handshake failed"),
    }
    sessions.connection_closed(&conn);
    drop(slot);
}

/// Cuts the connection when it is still not authenticated at `deadline` (OpenSSH's
/// LoginGraceTime: sshd closes without a goodbye); never resolves once it is.
async fn login_grace(
    deadline: Option<Instant>,
    mut authenticated: watch::Receiver<bool>,
    cutter: Option<std::net::TcpStream>,
    peer: crate::types::PeerAddr,
) {
    let Some(deadline) = deadline else {
        return std::future::pending().await;
    };
    tokio::select! {
        () = tokio::time::sleep_until(deadline) => {}
        () = async { drop(authenticated.wait_for(|done| *done).await) } => {
            drop(cutter);
            return std::future::pending().await;
        }
    }
    let done = *authenticated.borrow();
    if done {
        drop(cutter);
        return std::future::pending().await;
    }
    metrics().ssh_disconnects_total.with_label_values(&["login_grace"]).inc();
    tracing::info!(peer = %peer, "not authenticated within the login grace time; closing");
    if let Some(cutter) = cutter {
        let _ = cutter.shutdown(std::net::Shutdown::Both);
    }
}

struct SshConnection {
    sessions: SessionFactory,
    settings: SshSettings,
    conn: ConnectionInfo,
    identity: Option<Identity>,
    /// Session channels opened but not yet given a subsystem or command.
    channels: HashMap<ChannelId, Channel<Msg>>,
    /// SFTP and SCP channels being served right now.
    active: Arc<AtomicUsize>,
    /// Last use of the connection, for the idle timeout.
    activity: Activity,
    /// Budgets and handle counts shared by this connection's channels.
    shared: PerConnection,
    /// Rejected password and key attempts so far.
    failures: u32,
    authenticated: watch::Sender<bool>,
    /// The running session, to disconnect it after too many failures.
    ssh_handle: Arc<OnceLock<russh::server::Handle>>,
}

/// SHA-1 RSA signatures (`ssh-rsa`) are refused; rsa-sha2-256/512 are fine.
fn weak_signature(algorithm: &Algorithm) -> bool {
    algorithm.as_str() == "ssh-rsa"
}

impl SshConnection {
    /// Serves a channel on its own task, counted against `max_sessions_per_connection`.
    fn spawn_channel(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        let active = Arc::clone(&self.active);
        active.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            work.await;
            active.fetch_sub(1, Ordering::SeqCst);
        });
    }

    async fn login(&mut self, user: &str, credentials: Credentials) -> Auth {
        // At the limit the connection is being closed (the disconnect is queued behind the last
        // failure's answer); an attempt the client sent meanwhile is not even checked, or the
        // right password could still get in after `max_attempts` failures.
        if self.failures >= self.settings.max_attempts {
            return rejection();
        }
        match self.sessions.login(&self.conn, user, &credentials).await {
            Ok(identity) => {
                self.identity = Some(identity);
                self.authenticated.send_replace(true);
                Auth::Accept
            }
            Err(_) => self.failed_attempt(),
        }
    }

    /// A rejected password or key: answered (after the rejection delay) with every method
    /// still on offer, and at `max_attempts` failures the connection is closed with a reason,
    /// as sshd's MaxAuthTries does. (`Auth::reject()` would make russh drop the method from
    /// the list, and OpenSSH's client then stops asking for the password.)
    fn failed_attempt(&mut self) -> Auth {
        self.failures = self.failures.saturating_add(1);
        if self.failures >= self.settings.max_attempts
            && let Some(handle) = self.ssh_handle.get().cloned()
        {
            metrics().ssh_disconnects_total.with_label_values(&["auth_attempts"]).inc();
            tracing::info!(peer = %self.conn.peer, failures = self.failures, "too many authentication failures");
            // Queued behind the USERAUTH_FAILURE russh writes once this returns.
            tokio::spawn(async move {
                let _ = handle
                    .disconnect(
                        russh::Disconnect::NoMoreAuthMethodsAvailable,
                        "Too many authentication failures".into(),
                        "en".into(),
                    )
                    .await;
            });
        }
        rejection()
    }
}

/// A rejection that keeps both methods on offer.
fn rejection() -> Auth {
    Auth::Reject {
        proceed_with_methods: Some(MethodSet::from(&[MethodKind::PublicKey, MethodKind::Password][..])),
        partial_success: false,
    }
}

impl russh::server::Handler for SshConnection {
    type Error = russh::Error;

    async fn authentication_banner(&mut self) -> Result<Option<String>, Self::Error> {
        Ok(self.settings.banner.clone())
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        Ok(self.login(user, Credentials::Password(Secret::new(password.to_string()))).await)
    }

    async fn auth_publickey_offered(
        &mut self,
        _user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        if weak_signature(offer.algorithm) {
            return Ok(rejection());
        }
        Ok(Auth::Accept)
    }

    async fn auth_publickey(&mut self, user: &str, key: VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        if weak_signature(key.algorithm) {
            return Ok(self.failed_attempt());
        }
        let Ok(line) = key.public_key.to_openssh() else {
            return Ok(self.failed_attempt());
        };
        let mut fields = line.split_whitespace();
        let (Some(kind), Some(blob)) = (fields.next(), fields.next()) else {
            return Ok(self.failed_attempt());
        };
        Ok(self.login(user, Credentials::PublicKey(format!("{kind} {blob}"))).await)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        let open = self.channels.len() + self.active.load(Ordering::SeqCst);
        if self.identity.is_none() || open >= self.settings.max_channels {
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        reply.accept().await;
        self.channels.insert(channel.id(), channel);
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel_id: ChannelId,
        name: &str,
        session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        let channel = self.channels.remove(&channel_id);
        let (Some(channel), Some(identity), "sftp") = (channel, &self.identity, name) else {
            refuse(channel_id, session)?;
            return Ok(());
        };
        match self.sessions.open(identity, &self.conn, Protocol::Sftp).await {
            Ok(file_session) => {
                session.channel_success(channel_id)?;
                let activity = self.activity.clone();
                let shared = self.shared.clone();
                self.spawn_channel(dispatch::serve(
                    channel,
                    file_session,
                    self.settings.limits,
                    shared,
                    activity,
                ));
            }
            Err(e) => {
                tracing::error!(user = %identity.user, error = %e, "cannot open a file session");
                refuse(channel_id, session)?;
            }
        }
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel_id: ChannelId,
        data: &[u8],
        session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        let channel = self.channels.remove(&channel_id);
        let command = std::str::from_utf8(data).ok().and_then(scp::Command::parse);
        let (Some(channel), Some(identity), Some(command), true) =
            (channel, &self.identity, command, self.settings.scp_enabled)
        else {
            refuse(channel_id, session)?;
            return Ok(());
        };
        match self.sessions.open(identity, &self.conn, Protocol::Scp).await {
            Ok(file_session) => {
                session.channel_success(channel_id)?;
                let activity = self.activity.clone();
                self.spawn_channel(scp::run(channel, file_session, command, activity));
            }
            Err(e) => {
                tracing::error!(user = %identity.user, error = %e, "cannot open a file session");
                refuse(channel_id, session)?;
            }
        }
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel_id: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        // No terminals; the shell request that follows is refused and closes the channel.
        session.channel_failure(channel_id)?;
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel_id: ChannelId,
        session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        // No shells here: refuse and drop the channel so it cannot stall the connection.
        self.channels.remove(&channel_id);
        refuse(channel_id, session)
    }
}

/// Answers a refused request and closes its channel, so the client does not wait on it.
fn refuse(channel_id: ChannelId, session: &mut SshSession) -> Result<(), russh::Error> {
    session.channel_failure(channel_id)?;
    session.exit_status_request(channel_id, 1)?;
    session.eof(channel_id)?;
    session.close(channel_id)
}
