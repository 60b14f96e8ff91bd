//! Leaf newtypes shared by several rooms. Uses nothing from the crate.

use std::fmt;
use std::net::SocketAddr;

use serde::Serialize;

/// Identifies one client session for its whole life; appears in audit records and spans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct SessionId(pub uuid::Uuid);

impl SessionId {
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4())
    }
}

impl Default for SessionId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The wire protocol a session speaks. A bounded label for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Ssh,
    Sftp,
    Scp,
    Ftp,
    Ftps,
    Https,
    Cli,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Ssh => "ssh",
            Protocol::Sftp => "sftp",
            Protocol::Scp => "scp",
            Protocol::Ftp => "ftp",
            Protocol::Ftps => "ftps",
            Protocol::Https => "https",
            Protocol::Cli => "cli",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The real address of the peer (the socket's; a PROXY protocol header will be able to tell it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct PeerAddr(pub Option<SocketAddr>);

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => addr.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// A value that must never be logged. `Debug` prints `<secret>`; `.expose()` is greppable.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// How an upload reaches its final name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadMode {
    /// Write to a hidden temporary name and rename into place on close: a dropped connection
    /// never leaves a half file under the final name.
    Atomic,
    /// Write straight to the final name, so an interrupted upload can be resumed by offset.
    InPlace,
}

impl UploadMode {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "atomic" => Some(Self::Atomic),
            "in_place" => Some(Self::InPlace),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Atomic => "atomic",
            Self::InPlace => "in_place",
        }
    }
}

/// WinSCP's upload convention, named once for every room: a client uploads `NAME.filepart` and
/// renames it to `NAME` when done. Object storage writes such an upload straight to `NAME`;
/// the session checks `NAME`'s rules for it and lets the final rename replace `NAME`.
pub mod filepart {
    /// The suffix of a part upload's temporary name.
    pub const SUFFIX: &str = ".filepart";

    /// `NAME` for a part upload named `NAME.filepart` (never empty).
    pub fn final_name(name: &str) -> Option<&str> {
        name.strip_suffix(SUFFIX).filter(|name| !name.is_empty())
    }
}

/// A file operation a rule can grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    List,
    Download,
    Upload,
    Overwrite,
    Delete,
    Rename,
    Mkdir,
    Rmdir,
    SetStat,
    Symlink,
}

impl Op {
    pub const ALL: [Op; 10] = [
        Op::List,
        Op::Download,
        Op::Upload,
        Op::Overwrite,
        Op::Delete,
        Op::Rename,
        Op::Mkdir,
        Op::Rmdir,
        Op::SetStat,
        Op::Symlink,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Op::List => "list",
            Op::Download => "download",
            Op::Upload => "upload",
            Op::Overwrite => "overwrite",
            Op::Delete => "delete",
            Op::Rename => "rename",
            Op::Mkdir => "mkdir",
            Op::Rmdir => "rmdir",
            Op::SetStat => "setstat",
            Op::Symlink => "symlink",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.as_str() == raw)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lowercase hex of `bytes` (hashes and keys in records, documents and files).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// The bytes of hex `text` (either case); `None` for an odd length or a non-hex digit.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| text.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_hides_the_value() {
        let secret = Secret::new("hunter2".to_string());
        assert_eq!(format!("{secret:?}"), "<secret>");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn a_part_upload_names_its_final_file() {
        assert_eq!(filepart::final_name("report.csv.filepart"), Some("report.csv"));
        assert_eq!(filepart::final_name(".filepart"), None);
        assert_eq!(filepart::final_name("report.csv"), None);
    }
}

/// A stored time as a calendar time; `None` beyond chrono's range. A store can hold any time
/// (a client may set one with SETSTAT, MFMT or `touch`), and `DateTime::from(SystemTime)`
/// panics outside that range.
pub fn calendar_time(time: std::time::SystemTime) -> Option<chrono::DateTime<chrono::Utc>> {
    let (secs, nanos) = match time.duration_since(std::time::UNIX_EPOCH) {
        Ok(after) => (i64::try_from(after.as_secs()).ok()?, after.subsec_nanos()),
        Err(before) => {
            let before = before.duration();
            let secs = i64::try_from(before.as_secs()).ok()?.checked_neg()?;
            match before.subsec_nanos() {
                0 => (secs, 0),
                nanos => (secs.checked_sub(1)?, 1_000_000_000 - nanos),
            }
        }
    };
    chrono::DateTime::from_timestamp(secs, nanos)
}

#[cfg(test)]
mod calendar_time_tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::calendar_time;

    #[test]
    fn times_beyond_the_calendar_are_none_and_never_panic() {
        let far = UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
        assert_eq!(calendar_time(far), None);
        let before = UNIX_EPOCH - Duration::from_millis(1_500);
        assert_eq!(calendar_time(before).map(|t| t.timestamp_millis()), Some(-1_500));
        let now = SystemTime::now();
        let secs = now.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        assert_eq!(calendar_time(now).map(|t| t.timestamp()), Some(secs));
    }
}
