//! How often refused connections are reported. Every refusal is counted in
//! `ferry_connections_refused_total`, but a flood of them (a banned address reconnecting in a
//! loop, a full listener) must not become a flood of audit records and log lines that costs more
//! than the refusals: each listener reports one per address and reason per `QUIET`, and notes how
//! many it left out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::Refusal;

/// One report per address and reason per this long.
pub const QUIET: Duration = Duration::from_secs(10);
/// Addresses remembered at most; beyond it the quiet ones are forgotten, and while it is full of
/// recent ones new addresses go unreported (they are still counted).
const MAX_TRACKED: usize = 10_000;

#[derive(Default)]
pub struct RefusalReports {
    last: HashMap<(IpAddr, Refusal), (Instant, u64)>,
}

impl RefusalReports {
    /// Whether to report this refusal now; `Some(n)`: report it, `n` earlier ones were left out.
    pub fn report(&mut self, ip: IpAddr, refusal: Refusal, now: Instant) -> Option<u64> {
        if let Some((at, skipped)) = self.last.get_mut(&(ip, refusal)) {
            if now.duration_since(*at) < QUIET {
                *skipped += 1;
                return None;
            }
            let left_out = *skipped;
            *at = now;
            *skipped = 0;
            return Some(left_out);
        }
        if self.last.len() >= MAX_TRACKED {
            self.last.retain(|_, (at, _)| now.duration_since(*at) < QUIET);
            if self.last.len() >= MAX_TRACKED {
                return None;
            }
        }
        self.last.insert((ip, refusal), (now, 0));
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_report_per_address_and_reason_per_quiet_period() {
        let mut reports = RefusalReports::default();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let start = Instant::now();
        assert_eq!(reports.report(a, Refusal::Banned, start), Some(0));
        for _ in 0..5 {
            assert_eq!(reports.report(a, Refusal::Banned, start + Duration::from_secs(1)), None);
        }
        assert_eq!(reports.report(a, Refusal::Limit, start), Some(0), "another reason is reported");
        assert_eq!(reports.report(b, Refusal::Banned, start), Some(0), "another address is reported");
        assert_eq!(reports.report(a, Refusal::Banned, start + QUIET), Some(5), "then with what was left out");
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut reports = RefusalReports::default();
        let now = Instant::now();
        for n in 0..(MAX_TRACKED as u32 + 50) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            let _ = reports.report(ip, Refusal::Limit, now);
        }
        assert_eq!(reports.last.len(), MAX_TRACKED);
        let later = IpAddr::from(std::net::Ipv4Addr::new(192, 0, 2, 9));
        assert_eq!(reports.report(later, Refusal::Limit, now + QUIET), Some(0), "quiet ones are forgotten");
        assert_eq!(reports.last.len(), 1);
    }
}
