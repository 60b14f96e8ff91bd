//! Virtual paths: what a user sees, always absolute and normalised inside their jail.

use std::fmt;

/// An absolute, normalised virtual path such as `/inbox/a.csv`; `/` is the user's home.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct VirtualPath(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path contains a NUL byte")]
    Nul,
    #[error("path leads outside the home folder")]
    Escapes,
    #[error("path is too long")]
    TooLong,
}

/// What `..` at the root means.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AboveRoot {
    Refuse,
    Clamp,
}

/// Longest virtual path accepted, in bytes (PATH_MAX).
const MAX_LEN: usize = 4096;

impl VirtualPath {
    pub fn root() -> Self {
        Self("/".to_string())
    }

    /// Parses `raw` as absolute (relative paths are taken from the root).
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        Self::root().resolve(raw)
    }

    /// Resolves `raw` against `self` as the working directory: absolute `raw` starts from
    /// the root, `.` is dropped, `..` goes up and may not rise above the root (an error: for
    /// configured homes, mounts and rules, where `..` past the top is a mistake).
    pub fn resolve(&self, raw: &str) -> Result<Self, PathError> {
        self.normalise(raw, AboveRoot::Refuse)
    }

    /// Resolves a path a client sent, as a chroot does: `..` at the root stays at the root
    /// (`cd ..` at `/`, `realpath("/../..")`), so walking up works and still never escapes.
    pub fn navigate(&self, raw: &str) -> Result<Self, PathError> {
        self.normalise(raw, AboveRoot::Clamp)
    }

    fn normalise(&self, raw: &str, above_root: AboveRoot) -> Result<Self, PathError> {
        if raw.contains('\0') {
            return Err(PathError::Nul);
        }
        if raw.len() > MAX_LEN {
            return Err(PathError::TooLong);
        }
        let mut parts: Vec<&str> = if raw.starts_with('/') { Vec::new() } else { self.segments().collect() };
        for segment in raw.split('/') {
            match segment {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() && above_root == AboveRoot::Refuse {
                        return Err(PathError::Escapes);
                    }
                }
                name => parts.push(name),
            }
        }
        Ok(Self(format!("/{}", parts.join("/"))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|s| !s.is_empty())
    }

    /// Last segment, "" for the root.
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    pub fn parent(&self) -> Self {
        match self.0.rfind('/') {
            Some(0) | None => Self::root(),
            Some(i) => Self(self.0[..i].to_string()),
        }
    }

    /// Appends one entry name (from a listing; never contains `/`).
    pub fn join(&self, name: &str) -> Self {
        if self.is_root() { Self(format!("/{name}")) } else { Self(format!("{}/{name}", self.0)) }
    }

    /// True when `self` is `other` or below it.
    pub fn starts_with(&self, other: &VirtualPath) -> bool {
        other.is_root()
            || self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.as_bytes().get(other.0.len()) == Some(&b'/'))
    }
}

impl fmt::Display for VirtualPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_inside_the_jail() {
        let cwd = VirtualPath::parse("/in/sub").unwrap();
        assert_eq!(cwd.resolve("a.txt").unwrap().as_str(), "/in/sub/a.txt");
        assert_eq!(cwd.resolve("../b").unwrap().as_str(), "/in/b");
        assert_eq!(cwd.resolve("/x//y/./z/").unwrap().as_str(), "/x/y/z");
        assert_eq!(cwd.resolve(".").unwrap(), cwd);
        assert_eq!(VirtualPath::parse("/etc/passwd").unwrap().as_str(), "/etc/passwd");
        assert_eq!(VirtualPath::parse("").unwrap().as_str(), "/");
    }

    #[test]
    fn refuses_escapes_and_nul() {
        assert_eq!(VirtualPath::parse("/.."), Err(PathError::Escapes));
        assert_eq!(VirtualPath::parse("../../etc/passwd"), Err(PathError::Escapes));
        assert_eq!(VirtualPath::parse("a/../../b"), Err(PathError::Escapes));
        assert_eq!(VirtualPath::parse("a\0b"), Err(PathError::Nul));
        assert_eq!(VirtualPath::parse(&"a/".repeat(3000)), Err(PathError::TooLong));
    }

    #[test]
    fn navigation_clamps_at_the_root_like_a_chroot() {
        let root = VirtualPath::root();
        assert_eq!(root.navigate("..").unwrap(), root);
        assert_eq!(root.navigate("/../../..").unwrap(), root);
        assert_eq!(root.navigate("../../etc/passwd").unwrap().as_str(), "/etc/passwd");
        let cwd = VirtualPath::parse("/in/sub").unwrap();
        assert_eq!(cwd.navigate("../../../x").unwrap().as_str(), "/x");
        assert_eq!(cwd.navigate("..").unwrap().as_str(), "/in");
        assert_eq!(cwd.navigate("a\0"), Err(PathError::Nul));
    }

    #[test]
    fn parent_name_and_prefix() {
        let p = VirtualPath::parse("/a/b/c").unwrap();
        assert_eq!(p.parent().as_str(), "/a/b");
        assert_eq!(p.name(), "c");
        assert_eq!(VirtualPath::parse("/a").unwrap().parent(), VirtualPath::root());
        assert!(p.starts_with(&VirtualPath::parse("/a/b").unwrap()));
        assert!(!VirtualPath::parse("/ab").unwrap().starts_with(&VirtualPath::parse("/a").unwrap()));
    }
}
