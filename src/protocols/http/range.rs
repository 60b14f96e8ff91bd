//! The `Range` header of a download (RFC 9110 §14.2): one byte range, as browsers, curl and
//! download managers send it. Several ranges are answered with the whole file (a server may
//! ignore Range), unless none of them can be satisfied. Every position is the client's number:
//! digits only, and one past `u64::MAX` means "past the end", never a wrapped sum.

use std::ops::Range;

/// More ranges than this and the header is ignored (RFC 9110 §14.2 lets a server do so).
const MAX_RANGES: usize = 100;

/// What to send of a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Ranged {
    Whole,
    Part(Range<u64>),
    /// 416: no range overlaps the file.
    Unsatisfiable,
}

/// One `range-spec`, before it meets the file's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// `first-` or `first-last` (`last` saturates at u64::MAX, past any file's end).
    From { first: u64, last: Option<u64> },
    /// `-n`: the last `n` bytes.
    Suffix(u64),
}

pub fn parse(header: Option<&str>, size: u64) -> Ranged {
    let Some(specs) = header.and_then(specs) else {
        return Ranged::Whole;
    };
    let mut satisfiable = specs.iter().filter_map(|spec| resolve(*spec, size));
    match (specs.len(), satisfiable.next()) {
        (_, None) => Ranged::Unsatisfiable,
        (1, Some(range)) => Ranged::Part(range),
        _ => Ranged::Whole,
    }
}

/// `bytes=SPEC[,SPEC…]`; None for anything else (another unit, bad syntax): then the header is
/// ignored, as RFC 9110 says for an invalid ranges-specifier.
fn specs(header: &str) -> Option<Vec<Spec>> {
    let (unit, set) = header.trim().split_once('=')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let mut specs = Vec::new();
    for spec in set.split(',').map(str::trim) {
        // Empty list elements are allowed (`1#` list syntax) and skipped.
        if spec.is_empty() {
            continue;
        }
        if specs.len() == MAX_RANGES {
            return None;
        }
        let (first, last) = spec.split_once('-')?;
        specs.push(match (first, last) {
            ("", suffix) => Spec::Suffix(position(suffix)?),
            (first, "") => Spec::From { first: position(first)?, last: None },
            (first, last) => {
                let (first, last) = (position(first)?, position(last)?);
                if last < first {
                    return None;
                }
                Spec::From { first, last: Some(last) }
            }
        });
    }
    (!specs.is_empty()).then_some(specs)
}

/// A byte position: ASCII digits only (no sign, no space), saturating at u64::MAX: any larger
/// number is as far past the end of every file.
fn position(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        text.bytes()
            .fold(0u64, |value, digit| value.saturating_mul(10).saturating_add(u64::from(digit - b'0'))),
    )
}

/// The bytes a spec selects of a file of `size` bytes; None when it selects none.
fn resolve(spec: Spec, size: u64) -> Option<Range<u64>> {
    match spec {
        Spec::Suffix(0) => None,
        Spec::Suffix(n) => (size > 0).then(|| size.saturating_sub(n)..size),
        // A last position past the end means "to the end" (RFC 9110 §14.1.2).
        Spec::From { first, last } if first < size => {
            let end = last.map_or(size, |last| last.min(size - 1) + 1);
            Some(first..end)
        }
        Spec::From { .. } => None,
    }
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
        assert_eq!(parse(Some("Bytes=0-0"), 10), Ranged::Part(0..1), "the unit is case-insensitive");
        assert_eq!(parse(Some("bytes=-0"), 10), Ranged::Unsatisfiable);
        assert_eq!(parse(Some("bytes=-5"), 0), Ranged::Unsatisfiable);
        assert_eq!(parse(Some("bytes=20-30,40-"), 10), Ranged::Unsatisfiable, "none overlaps");
        assert_eq!(parse(Some("bytes= 2-3 , "), 10), Ranged::Part(2..4), "white space around list items");
    }

    #[test]
    fn hostile_numbers_saturate_instead_of_wrapping() {
        // The request of the issue: valid, "from 5 to the end".
        assert_eq!(parse(Some("bytes=5-18446744073709551615"), 20), Ranged::Part(5..20));
        assert_eq!(parse(Some("bytes=5-99999999999999999999999999999"), 20), Ranged::Part(5..20));
        assert_eq!(parse(Some("bytes=0-18446744073709551614"), u64::MAX), Ranged::Part(0..u64::MAX));
        assert_eq!(parse(Some("bytes=18446744073709551615-"), 20), Ranged::Unsatisfiable);
        assert_eq!(parse(Some("bytes=99999999999999999999999-"), 20), Ranged::Unsatisfiable);
        assert_eq!(parse(Some("bytes=-18446744073709551615"), 20), Ranged::Part(0..20));
        assert_eq!(parse(Some("bytes=-99999999999999999999999"), 20), Ranged::Part(0..20));
        assert_eq!(parse(Some(&format!("bytes=1-{}", "9".repeat(5000))), 20), Ranged::Part(1..20));
        for ignored in [
            "bytes=-1-2",
            "bytes=--1",
            "bytes=+1-2",
            "bytes=1-+2",
            "bytes=1 -2",
            "bytes=",
            "bytes=,",
            "bytes=-",
            "bytes=a-b",
            "bytes=1-2-3",
            "bytes=0x10-",
            "bytes",
            "=0-1",
        ] {
            assert_eq!(parse(Some(ignored), 20), Ranged::Whole, "{ignored}");
        }
        let many = (0..=MAX_RANGES).map(|i| format!("{i}-{i}")).collect::<Vec<_>>().join(",");
        assert_eq!(parse(Some(&format!("bytes={many}")), 10), Ranged::Whole);
        let many_far = (0..MAX_RANGES).map(|i| format!("{}-", 100 + i)).collect::<Vec<_>>().join(",");
        assert_eq!(parse(Some(&format!("bytes={many_far}")), 10), Ranged::Unsatisfiable);
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        /// Positions of every size: small, near the file's end, near and past u64::MAX.
        fn number() -> impl Strategy<Value = String> {
            prop_oneof![
                (0u64..64).prop_map(|n| n.to_string()),
                any::<u64>().prop_map(|n| n.to_string()),
                (u64::MAX - 4..=u64::MAX).prop_map(|n| n.to_string()),
                "[0-9]{20,60}",
            ]
        }

        fn spec() -> impl Strategy<Value = String> {
            prop_oneof![
                (number(), number()).prop_map(|(a, b)| format!("{a}-{b}")),
                number().prop_map(|a| format!("{a}-")),
                number().prop_map(|b| format!("-{b}")),
                "[-0-9, +=a-z]{0,12}",
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

            /// Whatever the header, the answer is a range inside the file, the whole file or 416.
            #[test]
            fn every_part_lies_inside_the_file(
                specs in proptest::collection::vec(spec(), 1..4),
                size in prop_oneof![0u64..100, any::<u64>()],
            ) {
                let header = format!("bytes={}", specs.join(","));
                if let Ranged::Part(range) = parse(Some(&header), size) {
                    prop_assert!(range.start < range.end && range.end <= size, "{header} {size} {range:?}");
                }
            }

            /// One `first-last` with plain numbers matches the RFC's arithmetic done in u128.
            #[test]
            fn one_range_matches_the_rfc(first in any::<u64>(), last in any::<u64>(), size in 0u64..1000) {
                let got = parse(Some(&format!("bytes={first}-{last}")), size);
                let want = if last < first {
                    Ranged::Whole
                } else if first >= size {
                    Ranged::Unsatisfiable
                } else {
                    let end = (u128::from(last) + 1).min(u128::from(size));
                    Ranged::Part(first..u64::try_from(end).unwrap_or(u64::MAX))
                };
                prop_assert_eq!(got, want);
            }

            /// Arbitrary text never panics.
            #[test]
            fn any_header_gets_an_answer(header in ".{0,80}", size in any::<u64>()) {
                let _ = parse(Some(&header), size);
            }
        }
    }
}
