//! Idle timeout by use, not by traffic: russh's inactivity timer is reset by keepalive replies,
//! so a client that answers keepalives would never be idle. Requests and transferred data
//! touch `Activity`; a watchdog disconnects the connection once it has been unused for the
//! configured time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// When the client last used the connection (shared by its channels).
#[derive(Clone)]
pub struct Activity {
    origin: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    pub fn new() -> Self {
        Self { origin: Instant::now(), last_ms: Arc::default() }
    }

    pub fn touch(&self) {
        let now = self.origin.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(now, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.origin.elapsed().saturating_sub(last)
    }
}

/// Disconnects `handle` after `limit` without use.
pub async fn watch(activity: Activity, limit: Duration, handle: russh::server::Handle) {
    loop {
        let remaining = limit.saturating_sub(activity.idle_for());
        if remaining.is_zero() {
            tracing::debug!(?limit, "idle timeout");
            let _ =
                handle.disconnect(russh::Disconnect::ByApplication, "idle timeout".into(), "en".into()).await;
            return;
        }
        tokio::time::sleep(remaining).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn touching_resets_the_idle_time() {
        tokio::time::pause();
        let activity = Activity::new();
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(activity.idle_for(), Duration::from_secs(5));
        activity.touch();
        assert_eq!(activity.idle_for(), Duration::ZERO);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(activity.idle_for(), Duration::from_secs(2));
    }
}
