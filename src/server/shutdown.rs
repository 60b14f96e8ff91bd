//! The shutdown sequence: stop taking connections (`Draining`), let transfers finish within
//! `server.shutdown_grace`, end every connection (`Closing`), join the listeners, then close the
//! audit writers so that the last records reach the sinks.

use std::time::Duration;

use tokio::sync::watch;

use super::listeners::ListenerTasks;
use crate::audit::{Audit, AuditTasks, EventKind, Fields, Outcome};
use crate::protocols::Phase;
use crate::session::SessionFactory;

/// What the shutdown task drives and waits for.
pub(super) struct Shutdown {
    pub(super) grace: Duration,
    pub(super) audit: Audit,
    pub(super) audit_tasks: AuditTasks,
    pub(super) sessions: SessionFactory,
    pub(super) phase: watch::Sender<Phase>,
    pub(super) listeners: ListenerTasks,
}

impl Shutdown {
    /// Waits for `signal` to turn true, then shuts down in order.
    pub(super) async fn run(self, mut signal: watch::Receiver<bool>) -> anyhow::Result<()> {
        let Self { grace, audit, audit_tasks, sessions, phase, mut listeners } = self;
        while !*signal.borrow() {
            if signal.changed().await.is_err() {
                break;
            }
        }
        audit.emit(EventKind::ServerStopping, Outcome::Ok, Fields::default());
        crate::telemetry::metrics::metrics().ready.set(0.0);
        tracing::info!(active = sessions.transfers().active(), ?grace, "shutting down: draining transfers");
        sessions.transfers().drain();
        let _ = phase.send(Phase::Draining);
        if tokio::time::timeout(grace, sessions.transfers().wait_idle()).await.is_err() {
            tracing::warn!(active = sessions.transfers().active(), "grace period over; closing transfers");
        }
        let _ = phase.send(Phase::Closing);
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
    }
}
