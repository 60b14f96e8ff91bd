//! Properties of the virtual-path normaliser, checked on generated input (proptest; case count
//! from `PROPTEST_CASES`, so CI runs them in seconds and tests/fuzz/long.sh for an hour).
//!
//! Written so they hold whether `..` at the jail root is refused (before issue 12 item 2) or
//! clamped to `/` (after it): the result never escapes and is always normalised.

use proptest::prelude::*;

use super::path::{PathError, VirtualPath};

/// Path segments biased towards the interesting ones: `.`, `..`, empty, and odd names.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("..".to_string()),
        2 => Just(".".to_string()),
        2 => Just(String::new()),
        1 => Just("...".to_string()),
        1 => Just("\\..".to_string()),
        4 => "[a-z]{1,6}",
        2 => "\\PC{1,8}",
        1 => any::<String>(),
    ]
}

/// A raw path as a client could send it: segments joined by `/`, maybe absolute.
fn raw_path() -> impl Strategy<Value = String> {
    (any::<bool>(), prop::collection::vec(segment(), 0..12), any::<bool>()).prop_map(
        |(absolute, parts, trailing)| {
            let mut raw = if absolute { "/".to_string() } else { String::new() };
            raw.push_str(&parts.join("/"));
            if trailing {
                raw.push('/');
            }
            raw
        },
    )
}

/// A working directory: always a valid virtual path.
fn cwd() -> impl Strategy<Value = VirtualPath> {
    prop::collection::vec("[a-z]{1,4}", 0..4).prop_map(|parts| {
        VirtualPath::parse(&format!("/{}", parts.join("/"))).unwrap_or_else(|_| VirtualPath::root())
    })
}

/// What resolving should give, computed the obvious way; `None` where `..` rises above `/`.
fn model(cwd: &VirtualPath, raw: &str) -> Option<Vec<String>> {
    let mut parts: Vec<String> =
        if raw.starts_with('/') { Vec::new() } else { cwd.segments().map(str::to_string).collect() };
    for segment in raw.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            name => parts.push(name.to_string()),
        }
    }
    Some(parts)
}

/// The same walk with `..` at the root staying at the root (chroot semantics).
fn clamped_model(cwd: &VirtualPath, raw: &str) -> Vec<String> {
    let mut parts: Vec<String> =
        if raw.starts_with('/') { Vec::new() } else { cwd.segments().map(str::to_string).collect() };
    for segment in raw.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name.to_string()),
        }
    }
    parts
}

/// A normalised virtual path: absolute, no empty, `.` or `..` segment, no trailing slash.
fn assert_normalised(path: &VirtualPath) {
    let s = path.as_str();
    assert!(s.starts_with('/'), "{s:?} is not absolute");
    if s != "/" {
        assert!(!s.ends_with('/'), "{s:?} has a trailing slash");
        for segment in s[1..].split('/') {
            assert!(!matches!(segment, "" | "." | ".."), "{s:?} has segment {segment:?}");
        }
    }
    assert!(!s.contains('\0'), "{s:?} has a NUL");
}

fn join(parts: &[String]) -> String {
    format!("/{}", parts.join("/"))
}

proptest! {
    /// Any string at all: no panic, and an error is one of the three documented ones.
    #[test]
    fn resolve_never_panics(cwd in cwd(), raw in any::<String>()) {
        match cwd.resolve(&raw) {
            Ok(path) => assert_normalised(&path),
            Err(PathError::Nul | PathError::Escapes | PathError::TooLong) => {}
        }
    }

    /// Never escapes the jail, result normalised, and equal to the walk of its segments:
    /// where the walk stays inside, exactly it; where it rises above `/`, an `Escapes` error
    /// or (with clamping) the clamped walk, never anything else.
    #[test]
    fn resolve_stays_inside_and_normalises(cwd in cwd(), raw in raw_path()) {
        prop_assume!(!raw.contains('\0') && raw.len() <= 4096);
        let got = cwd.resolve(&raw);
        match (model(&cwd, &raw), got) {
            (Some(parts), Ok(path)) => {
                assert_normalised(&path);
                prop_assert_eq!(path.as_str(), join(&parts));
            }
            (Some(parts), Err(e)) => prop_assert!(false, "{raw:?} from {cwd} should be {} but is {e:?}", join(&parts)),
            (None, Err(e)) => prop_assert_eq!(e, PathError::Escapes),
            (None, Ok(path)) => {
                assert_normalised(&path);
                prop_assert_eq!(path.as_str(), join(&clamped_model(&cwd, &raw)));
            }
        }
    }

    /// Resolving a result again, from anywhere, gives it back; `.` from it is itself.
    #[test]
    fn resolve_is_idempotent(cwd in cwd(), other in cwd(), raw in raw_path()) {
        if let Ok(path) = cwd.resolve(&raw) {
            prop_assert_eq!(&VirtualPath::parse(path.as_str()), &Ok(path.clone()));
            prop_assert_eq!(&other.resolve(path.as_str()), &Ok(path.clone()));
            prop_assert_eq!(&path.resolve("."), &Ok(path.clone()));
        }
    }

    /// `parent`, `name`, `join` and `starts_with` agree with each other on any valid path.
    #[test]
    fn parent_name_and_join_agree(path in cwd(), name in "[a-z.]{0,3}[a-z]") {
        let child = path.join(&name);
        assert_normalised(&child);
        prop_assert_eq!(child.parent(), path.clone());
        prop_assert_eq!(child.name(), name.as_str());
        prop_assert!(child.starts_with(&path));
        prop_assert!(!path.starts_with(&child));
        prop_assert_eq!(VirtualPath::parse(child.as_str()), Ok(child.clone()));
    }
}

/// Issue 12 item 2: client navigation (`navigate`) clamps `..` at the jail root to `/`, as
/// under a chroot; `resolve` (configured homes, mounts, rules) still refuses such a path.
#[test]
fn dot_dot_at_the_root_clamps_to_the_root() {
    let root = VirtualPath::root();
    for raw in ["/..", "..", "/../../..", "../..", "/./../.", "/../a/..", "a/../../.."] {
        assert_eq!(root.navigate(raw), Ok(VirtualPath::root()), "{raw:?}");
    }
    let sub = VirtualPath::parse("/in/sub").unwrap_or_else(|_| VirtualPath::root());
    assert_eq!(sub.navigate("../../../x").map(|p| p.as_str().to_string()), Ok("/x".to_string()));
    let mut runner = proptest::test_runner::TestRunner::default();
    let result = runner.run(&(cwd(), raw_path()), |(cwd, raw)| {
        prop_assume!(!raw.contains('\0') && raw.len() <= 4096);
        let path = cwd.navigate(&raw).map_err(|e| TestCaseError::fail(format!("{raw:?}: {e:?}")))?;
        prop_assert_eq!(path.as_str(), join(&clamped_model(&cwd, &raw)));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
