//! Composition root: builds each room once (`rooms`), binds the enabled listeners (`listeners`),
//! runs them on one shutdown signal and drains transfers before closing (`shutdown`). Used by
//! `main` and the tests only.

mod export;
mod listeners;
mod probe;
mod rooms;
mod shutdown;

use std::net::SocketAddr;

use anyhow::Context as _;
use tokio::sync::watch;
use tokio::task::JoinSet;

use self::rooms::Rooms;
use self::shutdown::Shutdown;
use crate::audit::{Audit, EventKind, Fields, Outcome};
use crate::config::Config;
use crate::protocols::Phase;
use crate::state::State;
use crate::types::Secret;

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
    /// Plain HTTP for a TLS-terminating balancer (`[http]`, off by default).
    pub http_addr: Option<SocketAddr>,
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
    let what = match &config.state.backend {
        crate::config::StateBackend::Sqlite => {
            format!("state database {}", config.state.sqlite_path.display())
        }
        // The URL may hold a password: never in a message.
        crate::config::StateBackend::Postgres(_) => "the PostgreSQL state store (state.url)".to_string(),
    };
    State::open(&config.state).await.with_context(|| format!("opening {what}"))
}

/// Builds and binds everything, then runs until `shutdown` turns true.
pub async fn start(
    config: Config,
    bootstrap: Option<Bootstrap>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Running> {
    let rooms = Rooms::build(&config, bootstrap).await?;
    let (phase_tx, phase_rx) = watch::channel(Phase::Running);
    let mut listeners = JoinSet::new();
    let addresses = listeners::spawn_all(&config, &rooms, &phase_rx, &mut listeners).await?;
    crate::telemetry::metrics::metrics().ready.set(1.0);
    let Rooms { state, audit, audit_tasks, sessions, store_up } = rooms;
    listeners.spawn(probe::watch_state(state.clone(), store_up, phase_rx.clone()));
    audit.emit(
        EventKind::ServerStarted,
        Outcome::Ok,
        Fields { reason: Some(format!("ferry {}", env!("CARGO_PKG_VERSION"))), ..Fields::default() },
    );
    let sequence = Shutdown {
        grace: config.server.shutdown_grace,
        audit: audit.clone(),
        audit_tasks,
        sessions,
        phase: phase_tx,
        listeners,
    };
    let task = tokio::spawn(sequence.run(shutdown));
    Ok(Running {
        sftp_addr: addresses.sftp,
        ftp_addr: addresses.ftp,
        ftps_addr: addresses.ftps,
        https_addr: addresses.https,
        http_addr: addresses.http,
        ops_addr: addresses.ops,
        audit,
        state,
        task,
    })
}
