//! Listing formats: `LIST` in the Unix `ls -l` shape that clients parse, `NLST` names, and
//! machine-readable `MLSD`/`MLST` facts (RFC 3659 §7: type, size, modify, perm).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};

use crate::session::{EntryKind, Metadata};

/// `-rw-r--r-- 1 owner owner 1234 Nov 25 13:07 name` (year instead of time when older than
/// six months or in the future, as ls does).
pub fn list_line(name: &str, meta: &Metadata, owner: &str, now: SystemTime) -> String {
    let kind = match meta.kind {
        EntryKind::Dir => 'd',
        EntryKind::Symlink => 'l',
        _ => '-',
    };
    let mode = meta.mode.unwrap_or(if meta.kind == EntryKind::Dir { 0o755 } else { 0o644 });
    let rwx = |bits: u32| {
        [(4, 'r'), (2, 'w'), (1, 'x')]
            .iter()
            .map(|(bit, c)| if bits & bit != 0 { *c } else { '-' })
            .collect::<String>()
    };
    let modified = meta.modified.unwrap_or(UNIX_EPOCH);
    let half_year = Duration::from_secs(182 * 86_400);
    let recent = modified <= now && now.duration_since(modified).map(|d| d < half_year).unwrap_or(false);
    // A time beyond the calendar (any stored time is possible) shows as the epoch.
    let time = crate::types::calendar_time(modified).unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    let date = if recent { time.format("%b %e %H:%M") } else { time.format("%b %e  %Y") };
    format!(
        "{kind}{}{}{} 1 {owner} {owner} {:>12} {date} {name}\r\n",
        rwx(mode >> 6),
        rwx(mode >> 3),
        rwx(mode),
        meta.size
    )
}

/// `YYYYMMDDHHMMSS` in UTC (MDTM, MLSD `modify`).
pub fn timestamp(t: Option<SystemTime>) -> String {
    let time = t.and_then(crate::types::calendar_time).unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    time.format("%Y%m%d%H%M%S").to_string()
}

/// Parses `YYYYMMDDHHMMSS[.sss]` (MFMT).
pub fn parse_timestamp(raw: &str) -> Option<SystemTime> {
    let digits = raw.split('.').next()?;
    if digits.len() != 14 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let naive = chrono::NaiveDateTime::parse_from_str(digits, "%Y%m%d%H%M%S").ok()?;
    let secs = u64::try_from(naive.and_utc().timestamp()).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// MLSD/MLST facts followed by a space and the name. `perm` letters say what the user could
/// try (RFC 3659 §7.5.5); the session still decides.
pub fn mlsx_facts(name: &str, meta: &Metadata) -> String {
    let (kind, perm) = match meta.kind {
        EntryKind::Dir => ("dir", "elcmpf"),
        _ => ("file", "adfrw"),
    };
    let kind = match name {
        "." => "cdir",
        ".." => "pdir",
        _ => kind,
    };
    format!("type={kind};size={};modify={};perm={perm}; {name}", meta.size, timestamp(meta.modified))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(kind: EntryKind, size: u64, secs: u64) -> Metadata {
        Metadata {
            kind,
            size,
            modified: Some(UNIX_EPOCH + Duration::from_secs(secs)),
            accessed: None,
            mode: Some(0o640),
        }
    }

    #[test]
    fn list_lines_follow_ls() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let recent = list_line("a b.txt", &meta(EntryKind::File, 42, 1_699_990_000), "alice", now);
        assert_eq!(recent, "-rw-r----- 1 alice alice           42 Nov 14 19:26 a b.txt\r\n");
        let old = list_line("d", &meta(EntryKind::Dir, 0, 1_600_000_000), "alice", now);
        assert!(old.starts_with("drw-r----- 1 alice alice"), "{old}");
        assert!(old.contains("Sep 13  2020 d"), "{old}");
    }

    #[test]
    fn mlsd_facts_and_timestamps() {
        let line = mlsx_facts("x.csv", &meta(EntryKind::File, 7, 1_700_000_000));
        assert_eq!(line, "type=file;size=7;modify=20231114221320;perm=adfrw; x.csv");
        assert_eq!(parse_timestamp("20231114221320"), Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)));
        assert_eq!(parse_timestamp("2023111422132"), None);
    }
}
