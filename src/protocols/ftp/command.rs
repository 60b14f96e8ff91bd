//! Control-channel command parsing (RFC 959 §4, RFC 2389 FEAT/OPTS, RFC 2428 EPSV/EPRT,
//! RFC 3659 SIZE/MDTM/MLST/REST, RFC 4217 AUTH/PBSZ/PROT/CCC). A line becomes a verb and its
//! argument; unknown verbs are kept so the state machine can answer 502.

/// One parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Upper-cased verb (`RETR`, `XPWD` normalised to `PWD`, …).
    pub verb: String,
    /// Everything after the first space, untrimmed on the right (file names may end in spaces).
    pub arg: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("line is not UTF-8")]
    NotUtf8,
    #[error("empty command")]
    Empty,
    #[error("command verb is not ASCII letters")]
    BadVerb,
}

/// Parses one line (without its CRLF).
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let line = std::str::from_utf8(line).map_err(|_| ParseError::NotUtf8)?;
    let line = line.trim_start();
    if line.is_empty() {
        return Err(ParseError::Empty);
    }
    let (verb, arg) = match line.split_once(' ') {
        Some((verb, arg)) => (verb, arg),
        None => (line, ""),
    };
    if verb.is_empty() || verb.len() > 8 || !verb.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(ParseError::BadVerb);
    }
    let verb = verb.to_ascii_uppercase();
    let verb = match verb.as_str() {
        "XPWD" => "PWD".to_string(),
        "XCWD" => "CWD".to_string(),
        "XCUP" => "CDUP".to_string(),
        "XMKD" => "MKD".to_string(),
        "XRMD" => "RMD".to_string(),
        _ => verb,
    };
    Ok(Command { verb, arg: arg.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_are_normalised_and_arguments_kept() {
        assert_eq!(
            parse(b"retr my file.txt ").unwrap(),
            Command { verb: "RETR".into(), arg: "my file.txt ".into() }
        );
        assert_eq!(parse(b"XPWD").unwrap().verb, "PWD");
        assert_eq!(parse(b"NOOP").unwrap().arg, "");
        assert_eq!(parse(b"\xff\xfe"), Err(ParseError::NotUtf8));
        assert_eq!(parse(b"   "), Err(ParseError::Empty));
        assert_eq!(parse(b"R3TR x"), Err(ParseError::BadVerb));
        assert_eq!(parse(b"STOR \xc3\xa9t\xc3\xa9.txt").unwrap().arg, "été.txt");
    }
}
