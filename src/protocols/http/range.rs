//! The `Range` header of a download: one byte range, as browsers, curl and download managers
//! send it. Several ranges in one request are answered with the whole file.

use std::ops::Range;

/// What to send of a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Ranged {
    Whole,
    Part(Range<u64>),
    /// 416: the range starts past the end.
    Unsatisfiable,
}

pub fn parse(header: Option<&str>, size: u64) -> Ranged {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ranged::Whole;
    };
    if spec.contains(',') {
        return Ranged::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Ranged::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        // `bytes=-N`: the last N bytes.
        match last.parse::<u64>() {
            Ok(0) => return Ranged::Unsatisfiable,
            Ok(n) => size.saturating_sub(n)..size,
            Err(_) => return Ranged::Whole,
        }
    } else {
        let Ok(start) = first.parse::<u64>() else { return Ranged::Whole };
        let end = match last {
            "" => size,
            last => match last.parse::<u64>() {
                Ok(last) if last >= start => (last + 1).min(size),
                _ => return Ranged::Whole,
            },
        };
        start..end
    };
    if range.start >= size { Ranged::Unsatisfiable } else { Ranged::Part(range) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_ranges_suffixes_and_the_odd_cases() {
        assert_eq!(parse(None, 10), Ranged::Whole);
        assert_eq!(parse(Some("bytes=0-3"), 10), Ranged::Part(0..4));
        assert_eq!(parse(Some("bytes=5-"), 10), Ranged::Part(5..10));
        assert_eq!(parse(Some("bytes=-3"), 10), Ranged::Part(7..10));
        assert_eq!(parse(Some("bytes=-30"), 10), Ranged::Part(0..10));
        assert_eq!(parse(Some("bytes=8-100"), 10), Ranged::Part(8..10));
        assert_eq!(parse(Some("bytes=10-"), 10), Ranged::Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-1,4-5"), 10), Ranged::Whole);
        assert_eq!(parse(Some("bytes=5-2"), 10), Ranged::Whole);
        assert_eq!(parse(Some("items=0-1"), 10), Ranged::Whole);
        assert_eq!(parse(Some("bytes=0-0"), 0), Ranged::Unsatisfiable);
    }
}
