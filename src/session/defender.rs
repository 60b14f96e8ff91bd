//! Brute-force accounting shared by every protocol: failed logins are counted per client
//! address, wherever they came from (SSH, FTP, HTTPS), and an address with too many in a window
//! is refused for a while without its credentials even being checked. IPv6 clients are counted
//! per /64, the block one subscriber gets: counting each /128 would let one host walk through
//! 2^64 fresh addresses.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use ipnet::IpNet;
use tokio::time::Instant;

/// Addresses tracked at most; the oldest quiet ones go first beyond this.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone)]
pub struct DefenderSettings {
    /// Failures within `window` that ban an address; 0 turns the defender off.
    pub max_failures: u32,
    pub window: Duration,
    pub ban: Duration,
    /// Never counted, never banned (`auth.allow_addresses`).
    pub never_ban: Vec<IpNet>,
}

struct Record {
    failures: u32,
    window_start: Instant,
    banned_until: Option<Instant>,
}

pub struct Defender {
    settings: DefenderSettings,
    records: Mutex<HashMap<IpAddr, Record>>,
}

/// The unit failures are counted in: the IPv4 address (also when IPv4-mapped), or the /64 of
/// an IPv6 address.
fn counted_as(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

impl Defender {
    pub fn new(settings: DefenderSettings) -> Self {
        Self { settings, records: Mutex::new(HashMap::new()) }
    }

    pub fn is_banned(&self, ip: IpAddr) -> bool {
        let ip = counted_as(ip);
        let now = Instant::now();
        self.records
            .lock()
            .ok()
            .and_then(|records| records.get(&ip).and_then(|r| r.banned_until))
            .is_some_and(|until| until > now)
    }

    /// Counts a failed login; true when this failure bans the address.
    pub fn failure(&self, ip: IpAddr) -> bool {
        if self.settings.max_failures == 0 {
            return false;
        }
        let canonical = ip.to_canonical();
        if self.settings.never_ban.iter().any(|net| net.contains(&canonical)) {
            return false;
        }
        let ip = counted_as(ip);
        let now = Instant::now();
        let Ok(mut records) = self.records.lock() else { return false };
        if records.len() >= MAX_TRACKED && !records.contains_key(&ip) {
            let window = self.settings.window;
            records.retain(|_, r| r.banned_until.is_some_and(|u| u > now) || now - r.window_start < window);
        }
        let record =
            records.entry(ip).or_insert(Record { failures: 0, window_start: now, banned_until: None });
        if now - record.window_start > self.settings.window {
            record.failures = 0;
            record.window_start = now;
        }
        record.failures += 1;
        if record.failures >= self.settings.max_failures && record.banned_until.is_none_or(|u| u <= now) {
            record.banned_until = Some(now + self.settings.ban);
            record.failures = 0;
            record.window_start = now;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn too_many_failures_ban_an_address_for_a_while() {
        let defender = Defender::new(DefenderSettings {
            max_failures: 3,
            window: Duration::from_secs(60),
            ban: Duration::from_secs(300),
            never_ban: Vec::new(),
        });
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        assert!(!defender.failure(a) && !defender.failure(a));
        assert!(defender.failure(a), "the third failure bans");
        assert!(defender.is_banned(a) && !defender.is_banned(b));
        tokio::time::advance(Duration::from_secs(301)).await;
        assert!(!defender.is_banned(a), "bans end");
        // Failures spread beyond the window do not add up.
        defender.failure(b);
        defender.failure(b);
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(!defender.failure(b));
        assert!(!defender.is_banned(b));
    }

    /// Failures from different addresses of one IPv6 /64 add up; another /64 is apart.
    #[tokio::test(start_paused = true)]
    async fn ipv6_addresses_count_per_64() {
        let defender = Defender::new(DefenderSettings {
            max_failures: 3,
            window: Duration::from_secs(60),
            ban: Duration::from_secs(300),
            never_ban: Vec::new(),
        });
        let one = |last: &str| -> IpAddr { format!("2001:db8:1:2:{last}").parse().unwrap() };
        assert!(!defender.failure(one("0:0:0:1")));
        assert!(!defender.failure(one("dead:beef:0:2")));
        assert!(defender.failure(one("ffff:ffff:ffff:ffff")), "the third failure in the /64 bans it");
        assert!(defender.is_banned(one("1234:0:0:9")), "the whole /64 is refused");
        assert!(!defender.is_banned("2001:db8:1:3::1".parse().unwrap()), "the next /64 is not");
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        defender.failure(mapped);
        defender.failure("192.0.2.7".parse().unwrap());
        assert!(defender.failure(mapped), "an IPv4-mapped address counts as its IPv4 address");
        assert!(defender.is_banned("192.0.2.7".parse().unwrap()));
    }

    #[tokio::test(start_paused = true)]
    async fn allowed_addresses_are_never_counted() {
        let defender = Defender::new(DefenderSettings {
            max_failures: 1,
            window: Duration::from_secs(60),
            ban: Duration::from_secs(300),
            never_ban: vec!["10.0.0.0/8".parse().unwrap()],
        });
        let (ours, theirs): (IpAddr, IpAddr) = ("10.1.2.3".parse().unwrap(), "192.0.2.7".parse().unwrap());
        for _ in 0..5 {
            assert!(!defender.failure(ours));
        }
        assert!(!defender.is_banned(ours));
        assert!(!defender.is_banned("::ffff:10.1.2.3".parse().unwrap()));
        assert!(defender.failure(theirs), "others are banned as before");
        assert!(defender.is_banned(theirs));
    }
}
