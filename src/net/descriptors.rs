//! A reserve of file descriptors, so that one client opening files cannot take the last ones
//! and leave the listeners unable to accept (a process out of descriptors stops answering
//! everyone). New file handles are refused first, new connections a little later, each with an
//! answer instead of a stall.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustix::process::{Resource, getrlimit};

/// What asks for a descriptor: handles give up earlier than connections, so that a client
/// that filled the handle budget still leaves room for others to connect and be told no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Handle,
    Connection,
}

/// How long a count of open descriptors is reused while far from the limit.
const SAMPLE_TTL: Duration = Duration::from_millis(100);

/// Descriptors one admitted handle or connection may take: a file handle of the local backend
/// holds its folder open as well as the file until it is closed.
const PER_GRANT: u64 = 2;

struct Sample {
    at: Instant,
    open: u64,
    /// Admissions since `open` was counted: they may have opened descriptors the count misses,
    /// so a fast client cannot run past the reserve between two counts.
    granted: u64,
}

impl Sample {
    fn estimate(&self) -> u64 {
        self.open.saturating_add(self.granted.saturating_mul(PER_GRANT))
    }
}

static SAMPLE: Mutex<Option<Sample>> = Mutex::new(None);

/// The descriptors kept free for `need` under a soft limit of `limit`: a sixteenth of it,
/// between 64 and 1,024; connections may use the upper half of that reserve.
pub fn reserve(limit: u64, need: Need) -> u64 {
    let reserve = (limit / 16).clamp(64, 1024);
    match need {
        Need::Handle => reserve,
        Need::Connection => reserve / 2,
    }
}

/// True while a new descriptor for `need` leaves the reserve intact.
pub fn available(need: Need) -> bool {
    let Some(limit) = getrlimit(Resource::Nofile).current else {
        return true; // unlimited
    };
    let keep = reserve(limit, need);
    let Ok(mut sample) = SAMPLE.lock() else {
        return true;
    };
    let fresh = sample.as_ref().is_some_and(|s| {
        // Near the limit every check counts again, so the reserve holds exactly.
        s.at.elapsed() < SAMPLE_TTL && s.estimate().saturating_add(2 * keep) < limit
    });
    if !fresh {
        match count_open() {
            Some(open) => *sample = Some(Sample { at: Instant::now(), open, granted: 0 }),
            None => return true,
        }
    }
    match sample.as_mut() {
        Some(s) if s.estimate().saturating_add(keep) < limit => {
            s.granted = s.granted.saturating_add(1);
            true
        }
        Some(_) => false,
        None => true,
    }
}

/// Descriptors this process has open now.
fn count_open() -> Option<u64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    // The directory handle itself is one of them.
    Some((entries.count() as u64).saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_scales_with_the_limit_within_bounds() {
        assert_eq!(reserve(1024, Need::Handle), 64);
        assert_eq!(reserve(1024, Need::Connection), 32);
        assert_eq!(reserve(20_000, Need::Handle), 1024);
        assert_eq!(reserve(1 << 20, Need::Handle), 1024);
    }

    #[test]
    fn this_process_has_room() {
        assert!(count_open().is_some_and(|n| n >= 3));
        assert!(available(Need::Connection));
    }
}
