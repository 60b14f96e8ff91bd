//! Permission rules, parsed once into a typed rule set where an `Identity` is built (each
//! backend), so a session only matches: no strings are compiled per open. A rule is a path
//! pattern and the operations it grants. A pattern without wildcards covers that folder and
//! everything below it; a pattern with `*`, `?` or `[..]` is a glob (`*` stays inside one
//! segment, `**` crosses them). The most specific matching rule wins (most literal characters);
//! no matching rule denies. Pure matching, no I/O.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use globset::{GlobBuilder, GlobMatcher};

use crate::state::RuleRecord;
use crate::types::Op;

/// Why a rule cannot be used; the text is for the administrator who wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("`{0}`: expected PATH=perm,perm")]
    Syntax(String),
    #[error("rule path `{0}` must start with `/`")]
    NotAbsolute(String),
    #[error("rule path `{0}` leads above `/`")]
    AboveRoot(String),
    #[error("rule path `{0}`: {1}")]
    BadGlob(String, String),
    #[error("unknown permission `{0}` (use {1}, * or all)")]
    UnknownPermission(String, String),
}

#[derive(Clone)]
enum Matcher {
    /// The folder and everything below it (normalised: `/a/b`, no trailing `/`).
    Prefix(String),
    Glob(GlobMatcher),
}

#[derive(Clone)]
struct Rule {
    matcher: Matcher,
    specificity: usize,
    granted: BTreeSet<Op>,
}

/// A user's rules, compiled; cheap to clone (sessions share it).
#[derive(Clone)]
pub struct RuleSet {
    rules: Arc<[Rule]>,
    /// What the rules were compiled from (carried in tokens of external users).
    records: Vec<RuleRecord>,
}

impl fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RuleSet").field(&self.records).finish()
    }
}

impl RuleSet {
    /// Compiles `records`; none at all is a new user's default rule, everything everywhere.
    pub fn compile(records: Vec<RuleRecord>) -> Result<Self, RuleError> {
        if records.is_empty() {
            return Ok(Self::allow_all());
        }
        let rules = records.iter().map(compile_rule).collect::<Result<Vec<_>, _>>()?;
        Ok(Self { rules: rules.into(), records })
    }

    /// The rule set of `user` as a backend stored it. Fails closed: a rule that cannot be read
    /// grants nothing (logged for the administrator).
    pub fn for_user(user: &str, records: Vec<RuleRecord>) -> Self {
        Self::compile(records).unwrap_or_else(|e| {
            tracing::error!(user, error = %e, "invalid permission rule; denying all");
            Self::deny_all()
        })
    }

    /// Everything everywhere (the default rule of a new user).
    pub fn allow_all() -> Self {
        let rule = Rule {
            matcher: Matcher::Prefix("/".into()),
            specificity: 1,
            granted: Op::ALL.into_iter().collect(),
        };
        Self { rules: Arc::from([rule]), records: Vec::new() }
    }

    /// Nothing anywhere.
    pub fn deny_all() -> Self {
        Self { rules: Arc::from([]), records: vec![RuleRecord { path: "/".into(), permissions: Vec::new() }] }
    }

    /// The records these rules were compiled from (empty for the default rule).
    pub fn records(&self) -> &[RuleRecord] {
        &self.records
    }

    /// Whether `op` is granted on `path`, a normalised absolute virtual path
    /// (`VirtualPath::as_str`).
    pub fn allows(&self, op: Op, path: &str) -> bool {
        self.rules
            .iter()
            .filter(|rule| match &rule.matcher {
                Matcher::Prefix(prefix) => covers(prefix, path),
                Matcher::Glob(glob) => glob.is_match(path),
            })
            .max_by_key(|rule| rule.specificity)
            .is_some_and(|rule| rule.granted.contains(&op))
    }
}

/// `path` is `prefix` or below it (a sibling sharing its first letters is not).
fn covers(prefix: &str, path: &str) -> bool {
    prefix == "/"
        || path == prefix
        || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// Parses `PATH=perm,perm` (e.g. `/reports=list,download`) and checks it: the one syntax of
/// rules for the CLI, the admin API and the directory's group rules.
pub fn parse_line(raw: &str) -> Result<RuleRecord, RuleError> {
    let (path, perms) = raw.split_once('=').ok_or_else(|| RuleError::Syntax(raw.to_string()))?;
    let rule = RuleRecord {
        path: path.trim().to_string(),
        permissions: perms.split(',').map(str::trim).filter(|p| !p.is_empty()).map(String::from).collect(),
    };
    validate(&rule)?;
    Ok(rule)
}

/// Checks a rule record without keeping it (CLI, admin and directory input).
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
        Matcher::Prefix(normalise(pattern)?)
    };
    Ok(Rule { matcher, specificity, granted })
}

/// `/x//y/./z/` → `/x/y/z`, `..` going up (never above `/`), as `VirtualPath::parse` does, so
/// a literal rule compares with the paths a session checks.
fn normalise(pattern: &str) -> Result<String, RuleError> {
    if pattern.contains('\0') {
        return Err(RuleError::BadGlob(pattern.to_string(), "contains NUL".into()));
    }
    let mut parts: Vec<&str> = Vec::new();
    for segment in pattern.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop().ok_or_else(|| RuleError::AboveRoot(pattern.to_string()))?;
            }
            name => parts.push(name),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(path: &str, perms: &[&str]) -> RuleRecord {
        RuleRecord { path: path.into(), permissions: perms.iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn most_specific_rule_wins() {
        let perms = RuleSet::compile(vec![
            rule("/", &["*"]),
            rule("/readonly", &["list", "download"]),
            rule("/readonly/drop", &["list", "upload"]),
            rule("/secret", &[]),
            rule("/reports/*.csv", &["download"]),
        ])
        .unwrap();
        assert!(perms.allows(Op::Upload, "/a.txt"));
        assert!(perms.allows(Op::Download, "/readonly/x/y.bin"));
        assert!(!perms.allows(Op::Upload, "/readonly/x.bin"));
        assert!(!perms.allows(Op::Delete, "/readonly"));
        assert!(perms.allows(Op::Upload, "/readonly/drop/in.bin"));
        assert!(!perms.allows(Op::Download, "/readonly/drop/in.bin"));
        assert!(!perms.allows(Op::List, "/secret"));
        assert!(!perms.allows(Op::Download, "/secret/deep/file"));
        assert!(perms.allows(Op::Download, "/reports/q1.csv"));
        assert!(!perms.allows(Op::Delete, "/reports/q1.csv"));
        assert!(perms.allows(Op::Delete, "/reports/q1.txt"));
        // `*` does not cross folders.
        assert!(perms.allows(Op::Delete, "/reports/2024/q1.csv"));
        // A prefix rule does not cover a sibling that merely shares its first letters.
        assert!(perms.allows(Op::Upload, "/readonlyish"));
    }

    #[test]
    fn no_matching_rule_denies_and_bad_rules_are_named() {
        let perms = RuleSet::compile(vec![rule("/inbox", &["upload"])]).unwrap();
        assert!(!perms.allows(Op::List, "/"));
        assert!(perms.allows(Op::Upload, "/inbox/a"));
        assert!(matches!(validate(&rule("inbox", &["upload"])), Err(RuleError::NotAbsolute(_))));
        assert!(matches!(validate(&rule("/a", &["fly"])), Err(RuleError::UnknownPermission(..))));
        assert!(matches!(validate(&rule("/a[", &["list"])), Err(RuleError::BadGlob(..))));
        assert!(matches!(parse_line("/a:list"), Err(RuleError::Syntax(_))));
        assert!(matches!(validate(&rule("/a/../..", &["list"])), Err(RuleError::AboveRoot(_))));
    }

    #[test]
    fn literal_rules_are_normalised_and_unreadable_rules_grant_nothing() {
        let perms = RuleSet::compile(vec![rule("/in//box/./", &["upload"])]).unwrap();
        assert!(perms.allows(Op::Upload, "/in/box/a"));
        let default = RuleSet::compile(Vec::new()).unwrap();
        assert!(default.allows(Op::Delete, "/any/where"));
        let closed = RuleSet::for_user("u", vec![rule("/a", &["fly"])]);
        assert!(!closed.allows(Op::List, "/a"));
        assert!(!closed.allows(Op::List, "/"));
    }
}
