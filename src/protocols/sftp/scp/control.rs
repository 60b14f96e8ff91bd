//! The control lines a sink receives (the rcp protocol): `C<mode> <size> <name>` announces a
//! file, `D<mode> 0 <name>` enters a folder, `E` leaves it, `T<mtime> <usec> <atime> <usec>`
//! gives the times of the next entry, and `\x01`/`\x02` carry the peer's error messages. Every
//! number here is the peer's: digits only, bounded, never converted or added unchecked.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Largest size a `C` line may announce: what a file offset holds (`off_t`, as OpenSSH's scp).
pub const MAX_SIZE: u64 = i64::MAX as u64;
/// Latest time a `T` line may set: 9999-12-31T23:59:59Z, the last second that every protocol's
/// time format (HTTP dates, FTP `MDTM`, RFC 3339 listings) can show.
pub const MAX_TIME: u64 = 253_402_300_799;
/// Longest name shown back to the peer in an error message.
const SHOWN: usize = 64;

#[derive(Debug, PartialEq, Eq)]
pub enum Control<'a> {
    File {
        mode: u32,
        size: u64,
        name: &'a str,
    },
    Dir {
        mode: u32,
        name: &'a str,
    },
    EndDir,
    Times(Times),
    /// `\x01 message`: the peer could not send an entry and goes on.
    Warning(String),
    /// `\x02 message`: the peer gives up.
    Fatal(String),
}

/// The times a `T` line sets on the entry after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    pub modified: SystemTime,
    pub accessed: SystemTime,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// Not what the protocol says: the session cannot go on (OpenSSH's sink exits too).
    #[error("protocol error: {0}")]
    Malformed(String),
    /// Well formed but not storable (a time or size out of range, a name that is not UTF-8):
    /// this entry is refused with a warning, and the peer skips it.
    #[error("{0}")]
    Refused(String),
}

/// Parses one control line (without its `\n`).
pub fn parse(line: &[u8]) -> Result<Control<'_>, ControlError> {
    let Some((&kind, rest)) = line.split_first() else {
        return Err(malformed("empty control line"));
    };
    match kind {
        b'C' | b'D' => entry(kind, rest, line),
        b'E' if rest.is_empty() => Ok(Control::EndDir),
        b'T' => times(rest, line),
        1 => Ok(Control::Warning(message(rest))),
        2 => Ok(Control::Fatal(message(rest))),
        _ => Err(malformed(&format!("unexpected control line `{}`", shown(line)))),
    }
}

fn malformed(what: &str) -> ControlError {
    ControlError::Malformed(what.to_string())
}

/// Up to `SHOWN` characters of peer bytes, escaped so an error line stays one line.
fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text.chars().take(SHOWN).flat_map(char::escape_debug).collect();
    if text.chars().count() > SHOWN {
        out.push('…');
    }
    out
}

fn message(rest: &[u8]) -> String {
    String::from_utf8_lossy(rest).into_owned()
}

/// A decimal number: ASCII digits only (no sign, no space). `Ok(None)` when it does not fit a
/// u64, which the caller reports as out of range.
fn decimal(text: &[u8]) -> Option<Option<u64>> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut value = 0u64;
    for &digit in text {
        let Some(next) = value.checked_mul(10).and_then(|v| v.checked_add(u64::from(digit - b'0'))) else {
            return Some(None);
        };
        value = next;
    }
    Some(Some(value))
}

/// `C0644 1234 name` / `D0755 0 name`.
fn entry<'a>(kind: u8, rest: &'a [u8], line: &[u8]) -> Result<Control<'a>, ControlError> {
    let bad = |what: &str| malformed(&format!("{what} in `{}`", shown(line)));
    let mut fields = rest.splitn(3, |&b| b == b' ');
    let (Some(mode), Some(size), Some(name)) = (fields.next(), fields.next(), fields.next()) else {
        return Err(bad("expected MODE SIZE NAME"));
    };
    // 4 octal digits from OpenSSH, up to 5 from libssh2 (`C0%o`); set-id bits are dropped later.
    if mode.is_empty() || mode.len() > 5 || !mode.iter().all(|b| (b'0'..=b'7').contains(b)) {
        return Err(bad("bad mode"));
    }
    let mode = mode.iter().fold(0u32, |m, &digit| (m << 3) | u32::from(digit - b'0')) & 0o7777;
    let size = match decimal(size) {
        None => return Err(bad("bad size")),
        Some(Some(size)) if size <= MAX_SIZE => size,
        Some(_) => {
            return Err(ControlError::Refused(format!(
                "{}: size out of range (at most {MAX_SIZE} bytes)",
                shown(name)
            )));
        }
    };
    let name = std::str::from_utf8(name)
        .map_err(|_| ControlError::Refused(format!("{}: file names must be UTF-8", shown(name))))?;
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(malformed(&format!("invalid file name `{}`", shown(name.as_bytes()))));
    }
    Ok(if kind == b'C' { Control::File { mode, size, name } } else { Control::Dir { mode, name } })
}

/// `T<mtime> <usec> <atime> <usec>`.
fn times(rest: &[u8], line: &[u8]) -> Result<Control<'static>, ControlError> {
    let bad = || malformed(&format!("malformed time line `{}`", shown(line)));
    let fields: Vec<&[u8]> = rest.splitn(5, |&b| b == b' ').collect();
    let [mtime, mtime_usec, atime, atime_usec] = fields[..] else {
        return Err(bad());
    };
    let time = |secs: &[u8], usec: &[u8]| -> Result<SystemTime, ControlError> {
        let usec = match decimal(usec) {
            Some(Some(usec)) if usec <= 999_999 => usec,
            _ => return Err(bad()),
        };
        let secs = match decimal(secs) {
            None => return Err(bad()),
            Some(Some(secs)) if secs <= MAX_TIME => secs,
            Some(_) => {
                return Err(ControlError::Refused(format!(
                    "time {} out of range (at most {MAX_TIME}, the end of year 9999)",
                    shown(secs)
                )));
            }
        };
        // Both bounded above, so neither the product nor the sum can overflow.
        let nanos = u32::try_from(usec * 1_000).map_err(|_| bad())?;
        UNIX_EPOCH
            .checked_add(Duration::new(secs, nanos))
            .ok_or_else(|| ControlError::Refused(format!("time {secs} out of range")))
    };
    Ok(Control::Times(Times { modified: time(mtime, mtime_usec)?, accessed: time(atime, atime_usec)? }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(line: &[u8]) -> bool {
        matches!(parse(line), Err(ControlError::Refused(_)))
    }

    fn malformed_line(line: &[u8]) -> bool {
        matches!(parse(line), Err(ControlError::Malformed(_)))
    }

    #[test]
    fn entries_parse_and_bad_names_are_refused() {
        assert_eq!(
            parse(b"C0644 12 a b.txt").unwrap(),
            Control::File { mode: 0o644, size: 12, name: "a b.txt" }
        );
        assert_eq!(parse(b"C04755 0 x").unwrap(), Control::File { mode: 0o4755, size: 0, name: "x" });
        assert_eq!(parse(b"D0755 0 sub").unwrap(), Control::Dir { mode: 0o755, name: "sub" });
        assert_eq!(parse(b"E").unwrap(), Control::EndDir);
        assert_eq!(parse(b"\x01scp: a: gone").unwrap(), Control::Warning("scp: a: gone".into()));
        assert_eq!(parse(b"\x02bye").unwrap(), Control::Fatal("bye".into()));
        for bad in [
            &b"C0644 12 ../evil"[..],
            b"C0644 12 a/b",
            b"C0644 12 ..",
            b"C0644 12 .",
            b"C0644 12 ",
            b"C0644 x a",
            b"C0644 +12 a",
            b"C0644 -1 a",
            b"C0644  12 a",
            b"C0648 12 a",
            b"C 12 a",
            b"C0644 12",
            b"C777777 1 a",
            b"Ex",
            b"",
            b"X",
        ] {
            assert!(malformed_line(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn hostile_numbers_are_refused_not_wrapped() {
        assert_eq!(
            parse(b"C0644 9223372036854775807 big").unwrap(),
            Control::File { mode: 0o644, size: MAX_SIZE, name: "big" }
        );
        assert!(refused(b"C0644 9223372036854775808 big"));
        assert!(refused(b"C0644 18446744073709551615 big"));
        assert!(refused(b"C0644 99999999999999999999999999999999999999 big"));
        assert!(refused(b"C0644 1 caf\xe9"), "names that are not UTF-8");
        // The T line of the issue: 2^64-1 seconds.
        assert!(refused(b"T18446744073709551615 0 18446744073709551615 0"));
        assert!(refused(b"T1700000000 0 18446744073709551616 0"));
        assert!(refused(b"T253402300800 0 0 0"));
        let max = UNIX_EPOCH + Duration::new(MAX_TIME, 999_999_000);
        assert_eq!(
            parse(b"T253402300799 999999 253402300799 999999").unwrap(),
            Control::Times(Times { modified: max, accessed: max })
        );
        for bad in [
            &b"T1 1000000 2 0"[..],
            b"T1 0 2",
            b"T1 0 2 0 ",
            b"T1 0 2 0 9",
            b"T-1 0 2 0",
            b"T 0 2 0",
            b"T1 0 2 99999999999999999999999",
        ] {
            assert!(malformed_line(bad), "{:?}", String::from_utf8_lossy(bad));
        }
        let t = parse(b"T1700000000 0 1700000001 5").unwrap();
        assert_eq!(
            t,
            Control::Times(Times {
                modified: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
                accessed: UNIX_EPOCH + Duration::new(1_700_000_001, 5_000),
            })
        );
    }

    #[test]
    fn messages_echo_the_line_on_one_line() {
        let Err(ControlError::Malformed(text)) = parse(b"Q\nsecond line\x1b[31m") else { panic!() };
        assert!(!text.contains('\n') && !text.contains('\x1b'), "{text}");
        let long = [b'Z'; 5000];
        let Err(ControlError::Malformed(text)) = parse(&long) else { panic!() };
        assert!(text.len() < 200, "{}", text.len());
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

            /// Any bytes at all: an answer, never a panic, and an error never spans lines.
            #[test]
            fn any_line_gets_an_answer(line in proptest::collection::vec(any::<u8>(), 0..200)) {
                match parse(&line) {
                    Err(ControlError::Malformed(m) | ControlError::Refused(m)) => prop_assert!(!m.contains('\n')),
                    Ok(Control::File { size, mode, .. }) => prop_assert!(size <= MAX_SIZE && mode <= 0o7777),
                    Ok(_) => {}
                }
            }

            /// Lines shaped like the protocol with any numbers, huge ones included.
            #[test]
            fn any_numbers_in_well_shaped_lines(
                kind in prop_oneof![Just('C'), Just('D'), Just('T')],
                a in "[0-9]{1,40}", b in "[0-9]{1,40}", d in "[0-9]{1,8}",
            ) {
                let line = match kind {
                    'T' => format!("T{a} {d} {b} {d}"),
                    k => format!("{k}0644 {a} name"),
                };
                match parse(line.as_bytes()) {
                    Ok(Control::File { size, .. }) => prop_assert_eq!(Some(size), a.parse::<u64>().ok()),
                    Ok(Control::Times(t)) => {
                        let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
                        prop_assert!(secs(t.modified) <= MAX_TIME && secs(t.accessed) <= MAX_TIME);
                    }
                    Ok(Control::Dir { .. }) => {}
                    Ok(other) => prop_assert!(false, "{:?}", other),
                    Err(_) => {}
                }
            }
        }
    }
}
