//! Properties of the FTP command-line parser on generated lines (proptest; case count from
//! `PROPTEST_CASES`): no line panics it, what it accepts is a clean verb, and a verb with its
//! argument comes back exactly as sent.

use proptest::prelude::*;

use super::command::{Command, ParseError, parse};

/// Verbs clients send, plus the X-aliases and arbitrary letter runs.
fn verb() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("USER".to_string()),
        Just("pass".to_string()),
        Just("Retr".to_string()),
        Just("XPWD".to_string()),
        Just("xcwd".to_string()),
        Just("XCUP".to_string()),
        Just("XMKD".to_string()),
        Just("XRMD".to_string()),
        "[A-Za-z]{1,8}",
    ]
}

proptest! {
    /// Arbitrary bytes (an attacker's line): an answer, never a panic; an accepted verb is
    /// 1-8 upper-case ASCII letters and the argument is text from the line.
    #[test]
    fn any_bytes_parse_or_are_refused(line in prop::collection::vec(any::<u8>(), 0..300)) {
        match parse(&line) {
            Ok(Command { verb, arg }) => {
                let verb = verb.name();
                prop_assert!((1..=8).contains(&verb.len()), "verb {verb:?}");
                prop_assert!(verb.bytes().all(|b| b.is_ascii_uppercase()), "verb {verb:?}");
                let text = std::str::from_utf8(&line).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(text.ends_with(&arg), "argument {arg:?} not from {text:?}");
            }
            Err(ParseError::NotUtf8) => prop_assert!(std::str::from_utf8(&line).is_err()),
            Err(ParseError::Empty) => {
                let text = std::str::from_utf8(&line).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(text.trim_start().is_empty(), "{text:?} is not empty");
            }
            Err(ParseError::BadVerb) => {}
        }
    }

    /// Text lines with control characters, Telnet bytes and odd spacing: still no panic.
    #[test]
    fn any_text_parses_or_is_refused(line in "\\PC{0,40}|[ \\t\\r\\x00-\\x1f]{0,5}[A-Za-z0-9 ]{0,20}") {
        let _ = parse(line.as_bytes());
    }

    /// `VERB arg` round-trips: the verb upper-cased (X-aliases mapped), the argument exact,
    /// including leading and trailing spaces (file names may have them).
    #[test]
    fn verb_and_argument_round_trip(verb in verb(), arg in "[^\\r\\n]{0,60}", lead in " {0,3}") {
        let line = format!("{lead}{verb} {arg}");
        let cmd = parse(line.as_bytes());
        let upper = verb.to_ascii_uppercase();
        let expected = match upper.as_str() {
            "XPWD" => "PWD",
            "XCWD" => "CWD",
            "XCUP" => "CDUP",
            "XMKD" => "MKD",
            "XRMD" => "RMD",
            other => other,
        };
        let cmd = cmd.map(|Command { verb, arg }| (verb.name().to_string(), arg));
        prop_assert_eq!(cmd, Ok((expected.to_string(), arg)));
    }

    /// A verb alone has an empty argument.
    #[test]
    fn verb_alone_has_no_argument(verb in "[A-Za-z]{1,8}") {
        let cmd = parse(verb.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(cmd.arg, "");
    }

    /// Verbs longer than eight letters, or with anything but letters, are refused.
    #[test]
    fn bad_verbs_are_refused(verb in "[A-Za-z]{9,20}|[A-Za-z]{0,3}[0-9_\\-*.][A-Za-z0-9]{0,3}", arg in "[a-z ]{0,10}") {
        prop_assert_eq!(parse(format!("{verb} {arg}").as_bytes()), Err(ParseError::BadVerb));
    }
}
