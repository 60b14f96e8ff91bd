//! Counts transfers in progress so a graceful shutdown can wait for them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;

#[derive(Default)]
pub struct Transfers {
    active: AtomicUsize,
    idle: Notify,
    /// Set at shutdown: running transfers finish, new ones are refused.
    draining: AtomicBool,
}

impl Transfers {
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub fn begin(self: &Arc<Self>) -> TransferGuard {
        self.active.fetch_add(1, Ordering::SeqCst);
        TransferGuard(Arc::clone(self))
    }

    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// Resolves once no transfer is running.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.active() == 0 {
                return;
            }
            notified.await;
        }
    }
}

pub struct TransferGuard(Arc<Transfers>);

impl Drop for TransferGuard {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}
