//! Watches the state store: one round trip every few seconds, its outcome in
//! `store_up` (which `/readyz` follows) and `ferry_state_store_up`, so a balancer moves new connections away
//! from a replica that cannot reach the database. Only an error marks it down; a slow answer
//! leaves the last outcome standing (the store's own `connect_timeout` bounds the wait).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::protocols::Phase;
use crate::state::State;
use crate::telemetry::metrics::metrics;

const EVERY: Duration = Duration::from_secs(2);

/// Runs until the server starts closing.
pub(super) async fn watch_state(
    state: State,
    store_up: Arc<AtomicBool>,
    mut phase: watch::Receiver<Phase>,
) -> std::io::Result<()> {
    let mut down = false;
    loop {
        match state.ping().await {
            Ok(()) => {
                if down {
                    tracing::info!("state store reachable again");
                }
                down = false;
                store_up.store(true, Ordering::Relaxed);
                metrics().state_store_up.set(1.0);
            }
            Err(e) => {
                if !down {
                    tracing::error!(error = %e, "state store unreachable: /readyz answers 503");
                }
                down = true;
                store_up.store(false, Ordering::Relaxed);
                metrics().state_store_up.set(0.0);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow() == Phase::Closing {
                    return Ok(());
                }
            }
        }
    }
}
