//! File names ↔ object-key segments. A key holds the name's own UTF-8, so the bucket reads the
//! same to other tools as to ferry's users, and objects other tools put there open under the
//! names they list with. Only what a key cannot hold or what would read back as something else
//! is escaped, as `%XX`: ASCII control characters (object_store refuses them in keys), `\` (Azure
//! and the URL parser of object_store's Azure client take it for `/`), a `%` followed by two hex
//! digits (it would decode), and the folder-marker name `.ferry-dir` (else a user's file of that
//! name would be taken for a marker and never listed).
//!
//! Decoding turns every `%XX` back into its byte, so every name but NUL and `/` round-trips, and
//! keys that object_store's own percent-encoding wrote (ferry before names were kept as they are)
//! list under their real names.

use std::borrow::Cow;

use object_store::path::Path;

/// How a backend's client puts keys on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// The client URL-encodes the key itself (object_store's S3, GCS and Azure clients, and
    /// the in-memory store): keys are names, as above. A client that sent keys as they are would
    /// need a variant of its own.
    Raw,
}

/// The empty object that keeps an otherwise empty folder.
pub const DIR_MARKER: &str = ".ferry-dir";

fn is_hex(byte: Option<&u8>) -> bool {
    byte.is_some_and(u8::is_ascii_hexdigit)
}

/// The key segment that stores `name` (a name from vfs: not empty, `.` or `..`, no `/` or NUL).
pub fn encode(name: &str) -> Cow<'_, str> {
    if name == DIR_MARKER {
        return Cow::Owned(format!("%2E{}", &name[1..]));
    }
    let bytes = name.as_bytes();
    let escaped = |i: usize| {
        let byte = bytes[i];
        byte.is_ascii_control()
            || byte == b'\\'
            || (byte == b'%' && is_hex(bytes.get(i + 1)) && is_hex(bytes.get(i + 2)))
    };
    if !(0..bytes.len()).any(escaped) {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len() + 8);
    for (i, c) in name.char_indices() {
        if c.is_ascii() && escaped(i) {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The name a listed key segment stands for; a segment whose escapes do not decode to UTF-8 (not
/// written by ferry) is shown as it is.
pub fn decode(naming: Naming, segment: &str) -> Cow<'_, str> {
    let Naming::Raw = naming;
    if !segment.contains('%') {
        return Cow::Borrowed(segment);
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let pair = (byte == b'%' && is_hex(bytes.get(i + 1)) && is_hex(bytes.get(i + 2)))
            .then(|| segment.get(i + 1..i + 3).and_then(|hex| u8::from_str_radix(hex, 16).ok()))
            .flatten();
        match pair {
            Some(decoded) => {
                out.push(decoded);
                i += 3;
            }
            None => {
                out.push(byte);
                i += 1;
            }
        }
    }
    match String::from_utf8(out) {
        Ok(name) => Cow::Owned(name),
        Err(_) => Cow::Borrowed(segment),
    }
}

/// The object path of a sequence of names, each stored as `encode` says (object_store's
/// `Path::from_iter` would percent-encode them again).
pub fn path<'a>(naming: Naming, names: impl Iterator<Item = &'a str>) -> Path {
    let Naming::Raw = naming;
    let names: Vec<&str> = names.collect();
    let joined = names.iter().map(|name| encode(name)).collect::<Vec<_>>().join("/");
    // `parse` fails only on segments vfs never builds (empty, `.`, `..`, control characters,
    // which `encode` escapes); object_store's encoding is then still decoded by `decode`.
    Path::parse(&joined).unwrap_or_else(|_| Path::from_iter(names))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips() {
        let names = [
            "plain.txt",
            "naïve café.txt",
            "日本語 ファイル.bin",
            "report #3.txt",
            "100%",
            "%41",
            "%2541",
            "a%4",
            "%%41",
            "%4%41",
            "line\nbreak\ttab\u{7f}",
            "%\n",
            " lead and trail ",
            "plus+question?back\\slash",
            DIR_MARKER,
            "%2Eferry-dir",
            ".ferry-dir.filepart",
        ];
        for name in names {
            let encoded = encode(name);
            assert!(!encoded.chars().any(|c| c.is_ascii_control()), "{name:?} -> {encoded:?}");
            assert_ne!(encoded, DIR_MARKER);
            assert_eq!(decode(Naming::Raw, &encoded), name, "{name:?} -> {encoded:?}");
        }
        assert_eq!(encode("naïve café.txt"), "naïve café.txt", "kept as it is");
        assert_eq!(encode("50% off"), "50% off");
        assert_eq!(encode("back\\slash"), "back%5Cslash");
        // object_store's own encoding (older keys) decodes to the real name.
        assert_eq!(decode(Naming::Raw, "na%C3%AFve caf%C3%A9.txt"), "naïve café.txt");
        assert_eq!(decode(Naming::Raw, "%FF"), "%FF", "not UTF-8: shown as stored");
        let stored = path(Naming::Raw, ["tenant", "naïve café.txt", "#1 %41"].into_iter());
        assert_eq!(stored.as_ref(), "tenant/naïve café.txt/#1 %2541");
    }
}
