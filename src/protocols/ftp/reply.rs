//! The only place that knows FTP reply codes for session errors (RFC 959 §4.2).

use crate::session::{PathError, SessionError};

/// (code, text) for a failed file operation.
pub fn for_error(e: &SessionError) -> (u16, String) {
    let code = match e {
        SessionError::NotFound(_)
        | SessionError::PermissionDenied { .. }
        | SessionError::Escapes(_)
        | SessionError::AlreadyExists(_)
        | SessionError::NotADirectory(_)
        | SessionError::IsADirectory(_)
        | SessionError::NotEmpty(_) => 550,
        SessionError::InvalidPath(PathError::Escapes) => 550,
        SessionError::InvalidPath(_) => 553,
        SessionError::Unsupported(_) => 504,
        SessionError::NoSpace => 452,
        SessionError::ShuttingDown => 421,
        SessionError::Storage(_) => 451,
    };
    (code, e.to_string())
}

/// Formats a reply; multi-line text uses the `code-` continuation form.
pub fn format(code: u16, text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    match lines.as_slice() {
        [] => format!("{code} \r\n"),
        [one] => format!("{code} {one}\r\n"),
        [first, middle @ .., last] => {
            let mut out = format!("{code}-{first}\r\n");
            for line in middle {
                out.push(' ');
                out.push_str(line);
                out.push_str("\r\n");
            }
            out.push_str(&format!("{code} {last}\r\n"));
            out
        }
    }
}

/// Quotes a path for 257 replies: embedded double quotes are doubled (RFC 959 appendix II).
pub fn quote_path(path: &str) -> String {
    format!("\"{}\"", path.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_replies_and_quoting() {
        assert_eq!(format(200, "ok"), "200 ok\r\n");
        assert_eq!(format(211, "Features:\nUTF8\nEnd"), "211-Features:\r\n UTF8\r\n211 End\r\n");
        assert_eq!(quote_path("/a \"b\""), "\"/a \"\"b\"\"\"");
    }
}
