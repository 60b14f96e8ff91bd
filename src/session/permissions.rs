//! Permission rules: pure matching, no I/O. A rule is a path pattern and the operations it
//! grants. A pattern without wildcards covers that folder and everything below it; a pattern
//! with `*`, `?` or `[..]` is a glob (`*` stays inside one segment, `**` crosses them). The most
//! specific matching rule wins (most literal characters); no matching rule denies.

use std::collections::BTreeSet;

use globset::{GlobBuilder, GlobMatcher};

use crate::state::RuleRecord;
pub use crate::types::Op;
use crate::vfs::VirtualPath;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("rule path `{0}` must start with `/`")]
    NotAbsolute(String),
    #[error("rule path `{0}`: {1}")]
    BadGlob(String, String),
    #[error("unknown permission `{0}` (use {1} or *)")]
    UnknownPermission(String, String),
}

enum Matcher {
    /// The folder and everything below it.
    Prefix(VirtualPath),
    Glob(GlobMatcher),
}

struct Rule {
    matcher: Matcher,
    specificity: usize,
    granted: BTreeSet<Op>,
}

/// A user's compiled rules.
pub struct Permissions {
    rules: Vec<Rule>,
}

impl Permissions {
    pub fn compile(records: &[RuleRecord]) -> Result<Self, RuleError> {
        let mut rules = Vec::with_capacity(records.len());
        for record in records {
            rules.push(compile_rule(record)?);
        }
        Ok(Self { rules })
    }

    /// Everything everywhere (the default rule of a new user).
    pub fn allow_all() -> Self {
        Self {
            rules: vec![Rule {
                matcher: Matcher::Prefix(VirtualPath::root()),
                specificity: 1,
                granted: Op::ALL.into_iter().collect(),
            }],
        }
    }

    /// Nothing anywhere (a rule set that could not be read fails closed).
    pub fn deny_all() -> Self {
        Self { rules: Vec::new() }
    }

    pub fn allows(&self, op: Op, path: &VirtualPath) -> bool {
        self.rules
            .iter()
            .filter(|rule| match &rule.matcher {
                Matcher::Prefix(prefix) => path.starts_with(prefix),
                Matcher::Glob(glob) => glob.is_match(path.as_str()),
            })
            .max_by_key(|rule| rule.specificity)
            .is_some_and(|rule| rule.granted.contains(&op))
    }
}

/// Checks a rule record without keeping it (CLI and admin input).
pub fn validate(record: &RuleRecord) -> Result<(), RuleError> {
    compile_rule(record).map(|_| ())
}

fn compile_rule(record: &RuleRecord) -> Result<Rule, RuleError> {
    let pattern = record.path.trim();
    if !pattern.starts_with('/') {
        return Err(RuleError::NotAbsolute(pattern.to_string()));
    }
    let mut granted = BTreeSet::new();
    for name in &record.permissions {
        match name.as_str() {
            "*" | "all" => granted.extend(Op::ALL),
            other => match Op::parse(other) {
                Some(op) => {
                    granted.insert(op);
                }
                None => {
                    let known: Vec<_> = Op::ALL.iter().map(|op| op.as_str()).collect();
                    return Err(RuleError::UnknownPermission(other.to_string(), known.join(", ")));
                }
            },
        }
    }
    let is_glob = pattern.contains(['*', '?', '[']);
    let specificity =
        pattern.chars().filter(|c| !matches!(c, '*' | '?' | '[' | ']')).count() + usize::from(!is_glob);
    let matcher = if is_glob {
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|e| RuleError::BadGlob(pattern.to_string(), e.kind().to_string()))?;
        Matcher::Glob(glob.compile_matcher())
    } else {
        let path = VirtualPath::parse(pattern)
            .map_err(|e| RuleError::BadGlob(pattern.to_string(), e.to_string()))?;
        Matcher::Prefix(path)
    };
    Ok(Rule { matcher, specificity, granted })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(path: &str, perms: &[&str]) -> RuleRecord {
        RuleRecord { path: path.into(), permissions: perms.iter().map(|s| s.to_string()).collect() }
    }

    fn p(s: &str) -> VirtualPath {
        VirtualPath::parse(s).unwrap()
    }

    #[test]
    fn most_specific_rule_wins() {
        let perms = Permissions::compile(&[
            rule("/", &["*"]),
            rule("/readonly", &["list", "download"]),
            rule("/readonly/drop", &["list", "upload"]),
            rule("/secret", &[]),
            rule("/reports/*.csv", &["download"]),
        ])
        .unwrap();
        assert!(perms.allows(Op::Upload, &p("/a.txt")));
        assert!(perms.allows(Op::Download, &p("/readonly/x/y.bin")));
        assert!(!perms.allows(Op::Upload, &p("/readonly/x.bin")));
        assert!(!perms.allows(Op::Delete, &p("/readonly")));
        assert!(perms.allows(Op::Upload, &p("/readonly/drop/in.bin")));
        assert!(!perms.allows(Op::Download, &p("/readonly/drop/in.bin")));
        assert!(!perms.allows(Op::List, &p("/secret")));
        assert!(!perms.allows(Op::Download, &p("/secret/deep/file")));
        assert!(perms.allows(Op::Download, &p("/reports/q1.csv")));
        assert!(!perms.allows(Op::Delete, &p("/reports/q1.csv")));
        assert!(perms.allows(Op::Delete, &p("/reports/q1.txt")));
        // `*` does not cross folders.
        assert!(perms.allows(Op::Delete, &p("/reports/2024/q1.csv")));
        // A prefix rule does not cover a sibling that merely shares its first letters.
        assert!(perms.allows(Op::Upload, &p("/readonlyish")));
    }

    #[test]
    fn no_matching_rule_denies_and_bad_rules_are_named() {
        let perms = Permissions::compile(&[rule("/inbox", &["upload"])]).unwrap();
        assert!(!perms.allows(Op::List, &p("/")));
        assert!(perms.allows(Op::Upload, &p("/inbox/a")));
        assert!(matches!(validate(&rule("inbox", &["upload"])), Err(RuleError::NotAbsolute(_))));
        assert!(matches!(validate(&rule("/a", &["fly"])), Err(RuleError::UnknownPermission(..))));
        assert!(matches!(validate(&rule("/a[", &["list"])), Err(RuleError::BadGlob(..))));
    }
}
