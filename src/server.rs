//! Composition root: builds each room once, binds the enabled listeners, runs them on one
//! shutdown signal and drains transfers before closing. Used by `main` and the tests only.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::admin::{Admin, UserSpec};
use crate::audit::{Audit, EventKind, Fields, Outcome, SegmentExport};
use crate::auth::Authenticator;
use crate::auth::cache::Cached;
use crate::auth::chain::Chain;
use crate::auth::http::HttpAuthenticator;
use crate::auth::ldap::LdapAuthenticator;
use crate::auth::local::LocalAuthenticator;
use crate::auth::password::Hasher;
use crate::auth::timed::Timed;
use crate::auth::token::TokenKeys;
use crate::config::{AuthBackend, Config};
use crate::net::tls;
use crate::protocols::Phase;
use crate::protocols::ftp::{self, FtpSettings};
use crate::protocols::http;
use crate::protocols::sftp::{self, SshSettings, keys};
use crate::session::{DefenderSettings, SessionFactory};
use crate::state::State;
use crate::storage;
use crate::types::Secret;
use crate::vfs::Backends;

/// The first user, created when the store has none.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub user: String,
    /// `None`: generate one and print it once.
    pub password: Option<Secret<String>>,
}

/// A started server: its bound addresses and the task that runs it.
pub struct Running {
    pub sftp_addr: Option<SocketAddr>,
    /// FTP with explicit TLS (AUTH TLS).
    pub ftp_addr: Option<SocketAddr>,
    /// Implicit FTPS.
    pub ftps_addr: Option<SocketAddr>,
    /// HTTPS (REST API).
    pub https_addr: Option<SocketAddr>,
    /// The ops listener (/metrics, /healthz, /readyz).
    pub ops_addr: Option<SocketAddr>,
    pub audit: Audit,
    pub state: State,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Resolves when the server has shut down.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("server task panicked")?
    }
}

/// Opens the state store for the CLI and the server alike.
pub async fn open_state(config: &Config) -> anyhow::Result<State> {
    State::open_sqlite(&config.state.sqlite_path)
        .await
        .with_context(|| format!("opening state database {}", config.state.sqlite_path.display()))
}

/// Builds and binds everything, then runs until `shutdown` turns true.
pub async fn start(
    config: Config,
    bootstrap: Option<Bootstrap>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Running> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let state = open_state(&config).await?;
    let mut backends = Backends::new(storage::open(&config.storage).map_err(anyhow::Error::msg)?);
    for (name, storage_config) in &config.storages {
        let backend = storage::open(storage_config).map_err(|e| anyhow::anyhow!("storages.{name}: {e}"))?;
        backends.insert(name, backend);
    }
    let export = match &config.audit.file_settings.export_storage {
        None => None,
        Some(name) => {
            let backend = backends
                .get(name)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("audit.file.export_storage: no storage named `{name}`"))?;
            Some(
                Arc::new(StorageExport { backend, prefix: config.audit.file_settings.export_prefix.clone() })
                    as Arc<dyn SegmentExport>,
            )
        }
    };
    let (audit, audit_tasks) = Audit::start(&config.audit, &config.server.node_name, &state, export)
        .await
        .map_err(anyhow::Error::msg)?;
    audit.emit(
        EventKind::ConfigLoaded,
        Outcome::Ok,
        Fields { reason: Some(config.source.clone()), ..Fields::default() },
    );
    if let Some(bootstrap) = bootstrap {
        ensure_first_user(&Admin::new(state.clone(), audit.clone()), bootstrap).await?;
    }
    if config.ops.per_user_metrics {
        crate::telemetry::metrics::enable_per_user(config.ops.per_user_metrics_max);
    }
    let tokens = Arc::new(
        TokenKeys::load(state.clone(), config.https.token_ttl)
            .await
            .context("loading the token signing key")?
            .with_max_life(config.https.session_max_life),
    );
    let auth = authenticators(&config, &state, &tokens)?;
    let sessions = SessionFactory::new(auth, backends, config.storage.cross_mount_rename, audit.clone())
        .with_tokens(tokens)
        .with_rejection_delay(config.auth.rejection_delay)
        .with_defender(DefenderSettings {
            max_failures: config.auth.ban_after_failures,
            window: config.auth.ban_window,
            ban: config.auth.ban_time,
        });

    let (phase_tx, phase_rx) = watch::channel(Phase::Running);
    let mut listeners = JoinSet::new();
    let mut sftp_addr = None;
    if config.sftp.enabled {
        let host_keys = keys::host_keys(&config.sftp.host_keys, &config.data_dir.join("host_keys"))?;
        let settings = SshSettings::new(&config.sftp, &config.auth, config.scp.enabled, host_keys)
            .map_err(anyhow::Error::msg)?;
        let listener = TcpListener::bind(config.sftp.bind)
            .await
            .with_context(|| format!("sftp.bind: cannot listen on {}", config.sftp.bind))?;
        sftp_addr = Some(listener.local_addr()?);
        tracing::info!(addr = %listener.local_addr()?, scp = config.scp.enabled, "SFTP/SCP listening");
        listeners.spawn(sftp::serve(listener, settings, sessions.clone(), phase_rx.clone()));
    }
    let mut ftp_addr = None;
    let mut ftps_addr = None;
    if config.ftp.enabled || config.ftps.enabled {
        let tls = tls::server_config(&config.tls, &config.data_dir)?;
        let settings = Arc::new(FtpSettings::new(config.ftp.clone(), Some(tls)));
        for (enabled, bind, implicit, key) in [
            (config.ftp.enabled, config.ftp.bind, false, "ftp.bind"),
            (config.ftps.enabled, config.ftps.bind, true, "ftps.bind"),
        ] {
            if !enabled {
                continue;
            }
            let listener =
                TcpListener::bind(bind).await.with_context(|| format!("{key}: cannot listen on {bind}"))?;
            let addr = listener.local_addr()?;
            tracing::info!(%addr, implicit_tls = implicit, "FTP listening");
            if implicit {
                ftps_addr = Some(addr);
            } else {
                ftp_addr = Some(addr);
            }
            listeners.spawn(ftp::serve(
                listener,
                Arc::clone(&settings),
                sessions.clone(),
                implicit,
                phase_rx.clone(),
            ));
        }
    }
    let mut https_addr = None;
    if config.https.enabled {
        let tls = tls::server_config(&config.tls, &config.data_dir)?;
        let bind = config.https.bind;
        let listener =
            TcpListener::bind(bind).await.with_context(|| format!("https.bind: cannot listen on {bind}"))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, "HTTPS listening");
        https_addr = Some(addr);
        let app = http::AppState {
            sessions: sessions.clone(),
            admin: Arc::new(
                Admin::new(state.clone(), audit.clone()).with_protocol(crate::types::Protocol::Https),
            ),
            settings: Arc::new(http::HttpSettings::new(&config.https)),
        };
        listeners.spawn(http::serve(listener, tls, app, phase_rx.clone()));
        if let Some(bind) = config.https.redirect_bind {
            let redirect = TcpListener::bind(bind)
                .await
                .with_context(|| format!("https.redirect_bind: cannot listen on {bind}"))?;
            tracing::info!(addr = %redirect.local_addr()?, "HTTP redirect to HTTPS listening");
            listeners.spawn(http::serve_redirect(redirect, addr.port(), phase_rx.clone()));
        }
    }
    let mut ops_addr = None;
    if config.ops.enabled {
        let bind = config.ops.bind;
        let listener =
            TcpListener::bind(bind).await.with_context(|| format!("ops.bind: cannot listen on {bind}"))?;
        ops_addr = Some(listener.local_addr()?);
        tracing::info!(addr = %listener.local_addr()?, "ops listening (/metrics, /healthz, /readyz)");
        listeners.spawn(http::ops::serve(listener, phase_rx.clone()));
    }
    crate::telemetry::metrics::metrics().ready.set(1.0);
    audit.emit(
        EventKind::ServerStarted,
        Outcome::Ok,
        Fields { reason: Some(format!("ferry {}", env!("CARGO_PKG_VERSION"))), ..Fields::default() },
    );

    let grace = config.server.shutdown_grace;
    let task_audit = audit.clone();
    let task = tokio::spawn(async move {
        let mut shutdown = shutdown;
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
        task_audit.emit(EventKind::ServerStopping, Outcome::Ok, Fields::default());
        crate::telemetry::metrics::metrics().ready.set(0.0);
        tracing::info!(active = sessions.transfers().active(), ?grace, "shutting down: draining transfers");
        sessions.transfers().drain();
        let _ = phase_tx.send(Phase::Draining);
        if tokio::time::timeout(grace, sessions.transfers().wait_idle()).await.is_err() {
            tracing::warn!(active = sessions.transfers().active(), "grace period over; closing transfers");
        }
        let _ = phase_tx.send(Phase::Closing);
        while let Some(joined) = listeners.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "listener failed"),
                Err(e) => tracing::error!(error = %e, "listener panicked"),
            }
        }
        audit_tasks.close().await;
        tracing::info!("stopped");
        Ok(())
    });
    Ok(Running { sftp_addr, ftp_addr, ftps_addr, https_addr, ops_addr, audit, state, task })
}

/// Copies sealed audit segments into a storage backend, once each, never overwriting: with S3
/// Object Lock (default retention on the bucket) they cannot be changed or deleted after.
struct StorageExport {
    backend: Arc<dyn storage::Storage>,
    prefix: String,
}

#[async_trait::async_trait]
impl SegmentExport for StorageExport {
    async fn export(&self, path: &std::path::Path, name: &str) -> Result<(), String> {
        use tokio::io::AsyncReadExt;
        let segments: Vec<&str> =
            self.prefix.split('/').filter(|s| !s.is_empty() && *s != "." && *s != "..").collect();
        let key = storage::Key::from_segments(segments.iter().copied().chain([name]));
        let options = storage::WriteOptions {
            create: true,
            exclusive: true,
            atomic: true,
            ..storage::WriteOptions::default()
        };
        let mut opened = self.backend.open_write(&key, options).await;
        if matches!(opened, Err(storage::StorageError::NotFound)) {
            // A folder store (local disk) needs the folders first; object stores never get here,
            // so no folder markers end up in a locked bucket.
            for depth in 1..=segments.len() {
                let folder = storage::Key::from_segments(segments[..depth].iter().copied());
                match self.backend.mkdir(&folder).await {
                    Ok(()) | Err(storage::StorageError::AlreadyExists) => {}
                    Err(e) => return Err(format!("{}: {e}", folder.as_str())),
                }
            }
            opened = self.backend.open_write(&key, options).await;
        }
        let handle = match opened {
            Ok(handle) => handle,
            // Exported before (the marker was lost): the copy there is the one that counts.
            Err(storage::StorageError::AlreadyExists) => return Ok(()),
            Err(e) => return Err(format!("{}: {e}", key.as_str())),
        };
        let mut file = tokio::fs::File::open(path).await.map_err(|e| e.to_string())?;
        let mut offset = 0u64;
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buffer).await.map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            let chunk = bytes::Bytes::copy_from_slice(&buffer[..n]);
            if let Err(e) = handle.write_at(offset, chunk).await {
                handle.abort().await;
                return Err(e.to_string());
            }
            offset += n as u64;
        }
        handle.commit().await.map_err(|e| e.to_string())
    }
}

/// An external authenticator behind the positive cache, when `auth.cache_ttl` is set.
fn cached(inner: Arc<dyn Authenticator>, config: &Config) -> Arc<dyn Authenticator> {
    if config.auth.cache_ttl.is_zero() { inner } else { Arc::new(Cached::new(inner, config.auth.cache_ttl)) }
}

/// The configured authenticators, in order (`[auth] chain`).
fn authenticators(
    config: &Config,
    state: &State,
    tokens: &Arc<TokenKeys>,
) -> anyhow::Result<Arc<dyn Authenticator>> {
    let mut chain: Vec<Arc<dyn Authenticator>> = Vec::new();
    // One pool of password-hashing threads for the server, apart from tokio's blocking pool.
    let hasher = Hasher::new(config.auth.hash_threads, config.auth.hash_queue);
    for backend in &config.auth.chain {
        chain.push(match backend {
            AuthBackend::Local => Timed::wrap(
                Arc::new(
                    LocalAuthenticator::new(
                        state.clone(),
                        Arc::clone(&hasher),
                        config.auth.default_upload_mode,
                    )
                    .with_tokens(Arc::clone(tokens)),
                ),
                "local",
            ),
            AuthBackend::Http => {
                let http: Arc<dyn Authenticator> = Arc::new(
                    HttpAuthenticator::new(&config.auth.http, config.auth.default_upload_mode)
                        .map_err(anyhow::Error::msg)?,
                );
                Timed::wrap(cached(http, config), "http")
            }
            AuthBackend::Ldap => {
                let ldap: Arc<dyn Authenticator> = Arc::new(
                    LdapAuthenticator::new(&config.auth.ldap, config.auth.default_upload_mode)
                        .map_err(anyhow::Error::msg)?,
                );
                Timed::wrap(cached(ldap, config), "ldap")
            }
        });
    }
    if !config.auth.chain.contains(&AuthBackend::Local) {
        // Bearer tokens are issued to every user and answered by the local authenticator.
        let tokens_only =
            LocalAuthenticator::new(state.clone(), Arc::clone(&hasher), config.auth.default_upload_mode)
                .with_tokens(Arc::clone(tokens))
                .tokens_only();
        chain.insert(0, Arc::new(tokens_only));
    }
    Ok(if chain.len() == 1 { chain.remove(0) } else { Arc::new(Chain::new(chain)) })
}

async fn ensure_first_user(admin: &Admin, bootstrap: Bootstrap) -> anyhow::Result<()> {
    if admin.count_users().await? > 0 {
        return Ok(());
    }
    let (password, generated) = match bootstrap.password {
        Some(password) => (password, false),
        None => {
            use rand::distr::{Alphanumeric, SampleString};
            (Secret::new(Alphanumeric.sample_string(&mut rand::rng(), 24)), true)
        }
    };
    let spec = UserSpec {
        name: bootstrap.user.clone(),
        password: Some(password.clone()),
        home: Some("/".to_string()),
        admin: true,
        ..UserSpec::default()
    };
    admin.create_user(spec).await.context("creating the first user")?;
    if generated {
        // Shown once: the store keeps only the argon2id hash.
        eprintln!(
            "ferry: created user `{}` with password: {}\nferry: this password is shown only once.",
            bootstrap.user,
            password.expose()
        );
    } else {
        eprintln!("ferry: created user `{}` from FERRY_ADMIN_USER/FERRY_ADMIN_PASSWORD", bootstrap.user);
    }
    Ok(())
}
