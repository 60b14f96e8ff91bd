//! From credentials to a `Session`: authentication with audit and metrics, then the session
//! itself (vfs rooted at the home, compiled permission rules).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::time::Instant;

use tracing::Instrument as _;

use super::defender::{Defender, DefenderSettings};
use super::live::{LiveConnection, LiveRegistry, LiveSession};
use super::{Context, Session, SessionError, Transfers};
use crate::audit::{Audit, EventKind, Fields, Outcome};
use crate::auth::token::{TokenKeys, VerifyError};
use crate::auth::{AuthContext, AuthError, Authenticator, Credentials, Identity};
use crate::config::CrossMountRename;
use crate::telemetry::metrics;
use crate::types::{PeerAddr, Protocol, SessionId};
use crate::vfs::{Backends, MountSpec, Vfs, VirtualPath};

/// One client connection, as audit records describe it.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionInfo {
    pub session_id: SessionId,
    pub peer: PeerAddr,
    pub protocol: Protocol,
}

impl ConnectionInfo {
    pub fn fields(&self) -> Fields {
        Fields {
            session: Some(self.session_id),
            protocol: Some(self.protocol),
            peer: Some(self.peer),
            ..Fields::default()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Wrong credentials, unknown user, disabled account: the client learns nothing more.
    #[error("authentication failed")]
    Denied,
    #[error("authentication unavailable")]
    Unavailable,
    /// The credentials were right, but the user already holds `limits.max_sessions_per_user`
    /// SSH or FTP connections.
    #[error("too many sessions for this user")]
    TooManySessions(usize),
}

/// Builds sessions; one per server, shared by every protocol.
#[derive(Clone)]
pub struct SessionFactory {
    auth: Arc<dyn Authenticator>,
    backends: Backends,
    cross_mount_rename: CrossMountRename,
    audit: Audit,
    transfers: Arc<Transfers>,
    tokens: Option<Arc<TokenKeys>>,
    live: LiveRegistry,
    defender: Option<Arc<Defender>>,
    rejection_delay: Duration,
    /// SSH and FTP connections one user may hold logged in at once; 0: no limit.
    max_sessions_per_user: usize,
}

/// A bearer token handed to a client.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub expires_in: std::time::Duration,
}

impl SessionFactory {
    pub fn new(
        auth: Arc<dyn Authenticator>,
        backends: Backends,
        cross_mount_rename: CrossMountRename,
        audit: Audit,
    ) -> Self {
        Self {
            auth,
            backends,
            cross_mount_rename,
            audit,
            transfers: Arc::new(Transfers::default()),
            tokens: None,
            live: LiveRegistry::default(),
            defender: None,
            rejection_delay: Duration::from_secs(1),
            max_sessions_per_user: 0,
        }
    }

    /// Caps the SSH and FTP connections one user holds logged in at once (0: no cap).
    pub fn with_session_limit(mut self, max_sessions_per_user: usize) -> Self {
        self.max_sessions_per_user = max_sessions_per_user;
        self
    }

    /// How long every rejected login takes, counted from the start of the attempt
    /// (`auth.rejection_delay`).
    pub fn with_rejection_delay(mut self, delay: Duration) -> Self {
        self.rejection_delay = delay;
        self
    }

    /// Counts failed logins per address across every protocol and refuses addresses that fail
    /// too often.
    pub fn with_defender(mut self, settings: DefenderSettings) -> Self {
        self.defender = Some(Arc::new(Defender::new(settings)));
        self
    }

    /// Whether `ip` is banned now (checked at accept by every listener, and again at login).
    pub fn is_banned(&self, ip: std::net::IpAddr) -> bool {
        self.defender.as_ref().is_some_and(|defender| defender.is_banned(ip))
    }

    /// Lets the HTTPS API issue and accept bearer tokens (the authenticator must accept them too).
    pub fn with_tokens(mut self, tokens: Arc<TokenKeys>) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// A bearer token for a user who just logged in.
    pub fn issue_token(&self, identity: &Identity) -> Option<IssuedToken> {
        let tokens = self.tokens.as_ref()?;
        let (token, _) = tokens.issue(identity);
        Some(IssuedToken { token, expires_in: tokens.ttl() })
    }

    /// Whose token this claims to be (signature checked; expiry and revocation are checked by
    /// the login that follows).
    pub fn token_subject(&self, token: &str) -> Option<String> {
        self.tokens.as_ref()?.decode(token).ok().map(|claims| claims.sub)
    }

    /// The login a token belongs to (the same across its refreshes), if its signature holds.
    pub fn token_login_id(&self, token: &str) -> Option<String> {
        self.tokens.as_ref()?.decode(token).ok().map(|claims| claims.sid)
    }

    /// A fresh token for the same login when the current one is past half its life and still
    /// valid (signature, expiry, revocation, the user's record). A user of an external source
    /// is asked about again: the fresh token carries what the source says now, and a source
    /// that refuses them ends the login on every replica.
    pub async fn refresh_token(&self, token: &str, conn: &ConnectionInfo) -> Option<IssuedToken> {
        let tokens = self.tokens.as_ref()?;
        let claims = tokens.verify(token).await.ok()?;
        if !tokens.wants_refresh(&claims) {
            return None;
        }
        let context = AuthContext { protocol: conn.protocol, peer: conn.peer };
        let credentials = Credentials::Token(crate::types::Secret::new(token.to_string()));
        let mut identity = self.auth.authenticate(&claims.sub, &credentials, &context).await.ok()?;
        if identity.source != "local" {
            identity = match self.auth.recheck(&identity, &context).await {
                Ok(now) => now,
                Err(AuthError::Denied(denial)) => {
                    let mut fields = conn.fields();
                    fields.user = Some(claims.sub.clone());
                    fields.reason = Some(format!("session not renewed: {denial} at {}", identity.source));
                    self.audit.emit(EventKind::LoginFailed, Outcome::Denied, fields);
                    let _ = tokens.revoke_login(&claims).await;
                    return None;
                }
                Err(AuthError::Unavailable(why)) => {
                    tracing::warn!(%why, user = %claims.sub, "cannot re-check a session's user; not renewed");
                    return None;
                }
            };
        }
        let (token, _) = tokens.refresh(&claims, &identity)?;
        Some(IssuedToken { token, expires_in: tokens.ttl() })
    }

    /// Logs a token out on every replica.
    pub async fn revoke_token(&self, token: &str) -> Result<(), LoginError> {
        let tokens = self.tokens.as_ref().ok_or(LoginError::Denied)?;
        tokens.revoke(token).await.map_err(|e| match e {
            VerifyError::Denied(_) => LoginError::Denied,
            VerifyError::Store(_) => LoginError::Unavailable,
        })
    }

    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// Records a client connecting and leaving (protocols never touch audit directly). The
    /// protocol keeps the returned handle and ends the connection when it says so.
    pub fn connection_opened(&self, conn: &ConnectionInfo) -> LiveConnection {
        self.audit.emit(EventKind::ConnectionOpened, Outcome::Ok, conn.fields());
        let m = metrics::metrics();
        m.connections_total.with_label_values(&[conn.protocol.as_str()]).inc();
        m.connections_active.with_label_values(&[conn.protocol.as_str()]).inc();
        self.live.open(conn)
    }

    /// The connections this replica serves now.
    pub fn live_sessions(&self) -> Vec<LiveSession> {
        self.live.list()
    }

    /// Ends connection `id` (a session id as listed); false if there is none.
    /// Ends connection `id` on behalf of administrator `by` (audited); false if there is none.
    pub fn terminate(&self, id: &str, by: &str) -> bool {
        let ended = self.live.terminate(id);
        if ended {
            let fields = Fields {
                session: uuid::Uuid::parse_str(id).ok().map(SessionId),
                protocol: Some(Protocol::Https),
                user: Some(by.to_string()),
                reason: Some(format!("ended by administrator {by}")),
                ..Fields::default()
            };
            self.audit.emit(EventKind::SessionTerminated, Outcome::Ok, fields);
        }
        ended
    }

    pub fn connection_refused(&self, peer: PeerAddr, protocol: Protocol, reason: &str) {
        let fields = Fields {
            protocol: Some(protocol),
            peer: Some(peer),
            reason: Some(reason.to_string()),
            ..Fields::default()
        };
        self.audit.emit(EventKind::ConnectionRefused, Outcome::Denied, fields);
    }

    pub fn connection_closed(&self, conn: &ConnectionInfo) {
        self.live.close(conn.session_id);
        self.audit.emit(EventKind::ConnectionClosed, Outcome::Ok, conn.fields());
        metrics::metrics().connections_active.with_label_values(&[conn.protocol.as_str()]).dec();
    }

    pub fn transfers(&self) -> &Arc<Transfers> {
        &self.transfers
    }

    /// Authenticates `user` for every protocol alike. A refusal (wrong credentials, unknown user,
    /// ban, backend down) is answered no earlier than `rejection_delay` after the attempt
    /// started, however long the backend took, so timing tells a client nothing about why.
    pub async fn login(
        &self,
        conn: &ConnectionInfo,
        user: &str,
        credentials: &Credentials,
    ) -> Result<Identity, LoginError> {
        let started = Instant::now();
        let result = self.attempt(conn, user, credentials).await;
        if result.is_err() {
            tokio::time::sleep_until(started + self.rejection_delay).await;
        }
        result
    }

    async fn attempt(
        &self,
        conn: &ConnectionInfo,
        user: &str,
        credentials: &Credentials,
    ) -> Result<Identity, LoginError> {
        let method = credentials.method();
        let mut fields = conn.fields();
        fields.user = Some(user.to_string());
        let ip = conn.peer.0.map(|addr| addr.ip());
        if let (Some(defender), Some(ip)) = (&self.defender, ip)
            && defender.is_banned(ip)
        {
            fields.reason = Some(format!("{method}: address banned after repeated failures"));
            self.audit.emit(EventKind::LoginFailed, Outcome::Denied, fields);
            metrics::login(conn.protocol, method, "none", "banned");
            return Err(LoginError::Denied);
        }
        let context = AuthContext { protocol: conn.protocol, peer: conn.peer };
        let span = tracing::info_span!(parent: &self.live.span(conn.session_id), "login", method, user);
        let result = self.auth.authenticate(user, credentials, &context).instrument(span.clone()).await;
        let _entered = span.enter();
        match result {
            Ok(identity) => {
                // An API key names its user; record who it turned out to be.
                fields.user = Some(identity.user.clone());
                let limit = self.max_sessions_per_user;
                if !self.live.claim(conn.session_id, &identity.user, conn.protocol, limit) {
                    fields.reason = Some(format!(
                        "{method}: the user already holds {limit} sessions (limits.max_sessions_per_user)"
                    ));
                    self.audit.emit(EventKind::LoginFailed, Outcome::Denied, fields);
                    metrics::login(conn.protocol, method, "none", "session_limit");
                    return Err(LoginError::TooManySessions(limit));
                }
                if continues_a_login(credentials) {
                    return Ok(identity);
                }
                fields.reason = Some(format!("{method} via {}", identity.source));
                self.audit.emit(EventKind::LoginSucceeded, Outcome::Ok, fields);
                metrics::login(conn.protocol, method, identity.source, "ok");
                tracing::debug!(user = %identity.user, backend = identity.source, "login succeeded");
                Ok(identity)
            }
            Err(AuthError::Denied(denial)) => {
                fields.reason = Some(format!("{method}: {denial}"));
                let banned_now =
                    matches!((&self.defender, ip), (Some(defender), Some(ip)) if defender.failure(ip));
                if banned_now {
                    let mut ban = conn.fields();
                    ban.reason = Some("too many failed logins".into());
                    self.audit.emit(EventKind::AddressBanned, Outcome::Denied, ban);
                    metrics::metrics().bans_total.inc();
                }
                self.audit.emit(EventKind::LoginFailed, Outcome::Denied, fields);
                metrics::login(conn.protocol, method, "none", "denied");
                Err(LoginError::Denied)
            }
            Err(AuthError::Unavailable(why)) => {
                tracing::error!(%why, "authentication backend unavailable");
                let mut backend = conn.fields();
                backend.user = fields.user.clone();
                backend.reason = Some(why.to_string());
                self.audit.emit(EventKind::AuthBackendError, Outcome::Failed, backend);
                fields.reason = Some(format!("{method}: backend unavailable"));
                self.audit.emit(EventKind::LoginFailed, Outcome::Failed, fields);
                metrics::login(conn.protocol, method, "none", "error");
                Err(LoginError::Unavailable)
            }
        }
    }

    /// Opens a file session for an authenticated identity (counted as a new session); creates
    /// the home if missing.
    pub async fn open(
        &self,
        identity: &Identity,
        conn: &ConnectionInfo,
        protocol: Protocol,
    ) -> Result<Session, SessionError> {
        let session = self.resume(identity, conn, protocol).await?;
        metrics::metrics().sessions_total.with_label_values(&[protocol.as_str()]).inc();
        Ok(session)
    }

    /// Opens the file session of a request that continues a login (an HTTPS bearer token or
    /// browser cookie, see [`continues_a_login`]): the login's session was counted when it was
    /// opened, so this one is not counted again (it is active while the request runs).
    pub async fn resume(
        &self,
        identity: &Identity,
        conn: &ConnectionInfo,
        protocol: Protocol,
    ) -> Result<Session, SessionError> {
        let home = VirtualPath::parse(&identity.home)?;
        let mounts = identity
            .mounts
            .iter()
            .map(|m| {
                Ok(MountSpec {
                    path: VirtualPath::parse(&m.path)?,
                    storage: m.storage.clone(),
                    prefix: VirtualPath::root().resolve(&m.prefix)?,
                })
            })
            .collect::<Result<Vec<_>, SessionError>>()?;
        let vfs = Vfs::new(&self.backends, &home, &mounts).map_err(|e| {
            tracing::error!(session_id = %conn.session_id, user = %identity.user, error = %e, "cannot build the user's file tree");
            SessionError::from_storage(e, &home)
        })?;
        let m = metrics::metrics();
        // Decremented when the session's context (held by it and its open files) is dropped.
        m.sessions_active.with_label_values(&[protocol.as_str()]).inc();
        let span = tracing::info_span!(
            parent: &self.live.span(conn.session_id),
            "session",
            session_id = %conn.session_id,
            protocol = protocol.as_str(),
            user = identity.user.as_str(),
        );
        Ok(Session {
            ctx: Arc::new(Context {
                span,
                audit: self.audit.clone(),
                protocol,
                session_id: conn.session_id,
                peer: conn.peer,
                user: identity.user.clone(),
                seq: AtomicU64::new(0),
            }),
            vfs,
            permissions: identity.rules.clone(),
            upload_mode: identity.upload_mode,
            cross_mount_rename: self.cross_mount_rename,
            transfers: Arc::clone(&self.transfers),
        })
    }
}

/// A bearer token (HTTPS `Authorization: Bearer` or the browser's session cookie) continues the
/// login that issued it: it is checked on every request like any credential, and a refusal is a
/// failed login, but an accepted one is not a new login (no `login.succeeded`, no login or
/// session counted). Every other credential (a password, a key, an API key) is a login of its
/// own, also when HTTP Basic sends it with every request.
pub fn continues_a_login(credentials: &Credentials) -> bool {
    matches!(credentials, Credentials::Token(_))
}
