//! Translations between SFTP v3 (draft-ietf-secsh-filexfer-02) types and the session API. The
//! only place that knows SFTP status codes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use russh_sftp::protocol::{File, FileAttributes, StatusCode};

use crate::session::{EntryKind, Metadata, PathError, SessionError, SetAttrs};

impl From<&SessionError> for StatusCode {
    fn from(e: &SessionError) -> Self {
        match e {
            SessionError::NotFound(_) => StatusCode::NoSuchFile,
            SessionError::PermissionDenied { .. } | SessionError::Escapes(_) => StatusCode::PermissionDenied,
            SessionError::InvalidPath(PathError::Escapes) => StatusCode::PermissionDenied,
            SessionError::InvalidPath(_) => StatusCode::BadMessage,
            SessionError::Unsupported(_) => StatusCode::OpUnsupported,
            SessionError::AlreadyExists(_)
            | SessionError::NotADirectory(_)
            | SessionError::IsADirectory(_)
            | SessionError::NotEmpty(_)
            | SessionError::NoSpace
            | SessionError::ShuttingDown
            | SessionError::Storage(_) => StatusCode::Failure,
        }
    }
}

/// OpenSSH sftp-server's text for each code, which clients and scripts match on.
pub fn status_text(code: StatusCode) -> &'static str {
    match code {
        StatusCode::Ok => "Success",
        StatusCode::Eof => "End of file",
        StatusCode::NoSuchFile => "No such file",
        StatusCode::PermissionDenied => "Permission denied",
        StatusCode::Failure => "Failure",
        StatusCode::BadMessage => "Bad message",
        StatusCode::NoConnection => "No connection",
        StatusCode::ConnectionLost => "Connection lost",
        StatusCode::OpUnsupported => "Operation unsupported",
    }
}

/// The STATUS message: OpenSSH's text first, ferry's detail after it (`No such file:
/// /inbox/a.csv: no such file or folder`).
pub fn status_message(code: StatusCode, detail: &str) -> String {
    let text = status_text(code);
    if detail.is_empty() || detail == text { text.to_string() } else { format!("{text}: {detail}") }
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

fn unix_secs(t: Option<SystemTime>) -> Option<u32> {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs().min(u64::from(u32::MAX)) as u32)
}

pub fn attrs(meta: &Metadata) -> FileAttributes {
    let (type_bits, default_mode) = match meta.kind {
        EntryKind::Dir => (S_IFDIR, 0o755),
        EntryKind::File => (S_IFREG, 0o644),
        EntryKind::Symlink => (S_IFLNK, 0o777),
        EntryKind::Other => (0, 0o644),
    };
    FileAttributes {
        size: Some(meta.size),
        uid: None,
        user: None,
        gid: None,
        group: None,
        permissions: Some(type_bits | meta.mode.unwrap_or(default_mode)),
        atime: unix_secs(meta.accessed.or(meta.modified)),
        mtime: unix_secs(meta.modified),
    }
}

/// One READDIR entry with an `ls -l` style long name (what OpenSSH's `ls -l` prints).
pub fn listing_entry(name: String, meta: &Metadata, owner: &str) -> File {
    let attrs = attrs(meta);
    let mode = attrs.permissions.unwrap_or(0);
    let kind = match meta.kind {
        EntryKind::Dir => 'd',
        EntryKind::Symlink => 'l',
        _ => '-',
    };
    let rwx = |bits: u32| {
        [(4, 'r'), (2, 'w'), (1, 'x')]
            .iter()
            .map(|(bit, c)| if bits & bit != 0 { *c } else { '-' })
            .collect::<String>()
    };
    let date = meta
        .modified
        .and_then(crate::types::calendar_time)
        .map(|t| t.format("%b %e %H:%M").to_string())
        .unwrap_or_else(|| "Jan  1  1970".to_string());
    let longname = format!(
        "{kind}{}{}{} 1 {owner:<8} {owner:<8} {:>8} {date} {name}",
        rwx(mode >> 6),
        rwx(mode >> 3),
        rwx(mode),
        meta.size,
    );
    File { filename: name, longname, attrs }
}

/// The changes a SETSTAT/FSETSTAT asks for (uid/gid are ignored: users own their files).
pub fn set_attrs(attrs: &FileAttributes) -> SetAttrs {
    let time = |secs: u32| UNIX_EPOCH + Duration::from_secs(u64::from(secs));
    SetAttrs {
        size: attrs.size,
        mode: attrs.permissions.map(|m| m & 0o7777),
        times: match (attrs.atime, attrs.mtime) {
            (Some(a), Some(m)) => Some((time(a), time(m))),
            (None, Some(m)) => Some((time(m), time(m))),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_messages_start_with_openssh_wording() {
        assert_eq!(status_message(StatusCode::Ok, ""), "Success");
        assert_eq!(status_message(StatusCode::Eof, ""), "End of file");
        assert_eq!(status_message(StatusCode::NoSuchFile, "/a: gone"), "No such file: /a: gone");
        assert_eq!(status_message(StatusCode::OpUnsupported, "x"), "Operation unsupported: x");
        assert_eq!(status_message(StatusCode::Failure, "Failure"), "Failure");
    }

    #[test]
    fn long_names_look_like_ls() {
        let meta = Metadata {
            kind: EntryKind::File,
            size: 42,
            modified: Some(UNIX_EPOCH + Duration::from_secs(86_400 * 365)),
            accessed: None,
            mode: Some(0o640),
        };
        let entry = listing_entry("a b.txt".into(), &meta, "alice");
        assert!(entry.longname.starts_with("-rw-r----- 1 alice"), "{}", entry.longname);
        assert!(entry.longname.ends_with(" a b.txt"));
        assert_eq!(entry.attrs.permissions, Some(0o100640));
    }
}
