//! Resolution beneath the root's directory descriptor. Every open, create, rename, link and
//! remove starts from the root's descriptor and never follows a symlink on the way, so a folder
//! swapped for a link between a check and the use (by another process or tenant) makes the
//! call fail instead of leading outside: `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`
//! where the kernel has it, an `O_NOFOLLOW` walk one folder at a time otherwise.
//!
//! Links inside the root still work: `resolve_links` follows them itself, one `O_NOFOLLOW`
//! step at a time, never above the root and at most `MAX_HOPS` times, and hands back a key
//! without links that the session checks its rules on before the strict use.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::PART_PREFIX;
use crate::storage::{Key, LinkTarget, Result, StorageError};

/// Symlinks followed for one path at most (Linux's own limit).
const MAX_HOPS: usize = 40;

/// The kernel refused `openat2` once (too old, or filtered by seccomp): walk from then on.
static OPENAT2_MISSING: AtomicBool = AtomicBool::new(false);

/// Flags of every folder opened on the way: a link in place of a folder fails with ELOOP.
fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// The root folder, held open for the storage's life.
pub(super) struct Root {
    fd: OwnedFd,
    /// Canonical path of the root: absolute link targets are judged against it.
    path: PathBuf,
    /// Never try `openat2` (tests of the walk).
    walk_only: bool,
}

impl Root {
    /// Creates the folder if needed and opens it.
    pub(super) fn open(path: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(path)?;
        let path = std::fs::canonicalize(path)?;
        let fd =
            rustix::fs::open(&path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        Ok(Self { fd, path, walk_only: false })
    }

    #[cfg(test)]
    pub(super) fn without_openat2(mut self) -> Self {
        self.walk_only = true;
        self
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// A view rooted at `prefix`: missing folders are created and links on the way are
    /// followed inside this root (a home that is a link to elsewhere in the root works).
    pub(super) fn scoped(&self, prefix: &Key) -> Result<Self> {
        let mut done: Vec<&str> = Vec::new();
        for segment in prefix.segments() {
            done.push(segment);
            let key = self.resolve_links(&Key::from_segments(done.iter().copied()), true)?;
            if key.is_root() {
                continue;
            }
            let (parent, name) = self.parent(&key)?;
            match rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o777)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(errno(e)),
            }
        }
        let key = self.resolve_links(prefix, true)?;
        let fd = self.dir(&key)?;
        let mut path = self.path.clone();
        path.extend(key.segments());
        Ok(Self { fd, path, walk_only: self.walk_only })
    }

    /// Opens the folder `key` names, every step a real folder.
    pub(super) fn dir(&self, key: &Key) -> Result<OwnedFd> {
        let segments: Vec<&str> = key.segments().collect();
        self.dir_of(&segments)
    }

    fn dir_of(&self, segments: &[&str]) -> Result<OwnedFd> {
        match self.open_dir_of(segments) {
            // Linux answers ENOTDIR, not ELOOP, for a link opened with O_DIRECTORY|O_NOFOLLOW.
            Err(StorageError::NotADirectory) if self.link_on_the_way(segments) => Err(StorageError::Escapes),
            other => other,
        }
    }

    /// Some folder on the way to `segments` is a symlink (an error path only).
    fn link_on_the_way(&self, segments: &[&str]) -> bool {
        let mut dir = match rustix::fs::openat(&self.fd, ".", dir_flags(), Mode::empty()) {
            Ok(dir) => dir,
            Err(_) => return false,
        };
        for segment in segments {
            match rustix::fs::statat(&dir, *segment, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
            match rustix::fs::openat(&dir, *segment, dir_flags(), Mode::empty()) {
                Ok(next) => dir = next,
                Err(_) => return false,
            }
        }
        false
    }

    fn open_dir_of(&self, segments: &[&str]) -> Result<OwnedFd> {
        if segments.iter().any(|s| s.starts_with(PART_PREFIX)) {
            return Err(StorageError::NotFound);
        }
        if segments.is_empty() {
            return rustix::fs::openat(&self.fd, ".", dir_flags(), Mode::empty()).map_err(errno);
        }
        if !self.walk_only && !OPENAT2_MISSING.load(Ordering::Relaxed) {
            let how = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
            match rustix::fs::openat2(&self.fd, segments.join("/"), dir_flags(), Mode::empty(), how) {
                Err(Errno::NOSYS | Errno::PERM | Errno::INVAL | Errno::TOOBIG) => {
                    OPENAT2_MISSING.store(true, Ordering::Relaxed);
                }
                other => return other.map_err(errno),
            }
        }
        let mut dir = rustix::fs::openat(&self.fd, ".", dir_flags(), Mode::empty()).map_err(errno)?;
        for segment in segments {
            dir = rustix::fs::openat(&dir, *segment, dir_flags(), Mode::empty()).map_err(errno)?;
        }
        Ok(dir)
    }

    /// The folder holding `key` (opened without following links) and the entry's name.
    pub(super) fn parent<'k>(&self, key: &'k Key) -> Result<(OwnedFd, &'k str)> {
        let segments: Vec<&str> = key.segments().collect();
        let Some((name, parents)) = segments.split_last() else {
            return Err(StorageError::Unsupported);
        };
        if name.starts_with(PART_PREFIX) {
            return Err(StorageError::NotFound);
        }
        Ok((self.dir_of(parents)?, name))
    }

    /// Opens the entry `key` names (the root itself for the root key) with `flags`; a final
    /// link is never followed.
    pub(super) fn entry(&self, key: &Key, flags: OFlags) -> Result<OwnedFd> {
        let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        if key.is_root() {
            return rustix::fs::openat(&self.fd, ".", flags, Mode::empty()).map_err(errno);
        }
        let (parent, name) = self.parent(key)?;
        rustix::fs::openat(&parent, name, flags, Mode::empty()).map_err(errno)
    }

    /// `key` with every symlink on its way (and the final one when `follow_final`) replaced by
    /// what it points to, inside the root. What does not exist yet is kept as named, so the
    /// result also names a file about to be created.
    pub(super) fn resolve_links(&self, key: &Key, follow_final: bool) -> Result<Key> {
        // Segments still to walk, the next one last.
        let mut pending: Vec<String> = key.segments().map(String::from).collect();
        pending.reverse();
        let mut names: Vec<String> = Vec::new();
        let mut dirs: Vec<OwnedFd> = Vec::new();
        let mut hops = 0;
        while let Some(segment) = pending.pop() {
            match segment.as_str() {
                "" | "." => continue,
                ".." => {
                    if names.pop().is_none() {
                        return Err(StorageError::Escapes);
                    }
                    dirs.pop();
                    continue;
                }
                hidden if hidden.starts_with(PART_PREFIX) => return Err(StorageError::NotFound),
                _ => {}
            }
            let last = pending.iter().all(|s| s.is_empty() || s == ".");
            let here = dirs.last().map_or(self.fd.as_fd(), |d| d.as_fd());
            let stat = match rustix::fs::statat(here, segment.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => stat,
                Err(Errno::NOENT) => {
                    // Nothing below a missing entry exists, so no link can be on the rest.
                    names.push(segment);
                    while let Some(rest) = pending.pop() {
                        match rest.as_str() {
                            "" | "." => {}
                            ".." => return Err(StorageError::NotFound),
                            _ => names.push(rest),
                        }
                    }
                    break;
                }
                Err(e) => return Err(errno(e)),
            };
            let kind = FileType::from_raw_mode(stat.st_mode);
            if kind == FileType::Symlink && (!last || follow_final) {
                hops += 1;
                if hops > MAX_HOPS {
                    return Err(StorageError::Io(io::Error::from(Errno::LOOP)));
                }
                let target = rustix::fs::readlinkat(here, segment.as_str(), Vec::new()).map_err(errno)?;
                let target = Path::new(OsStr::from_bytes(target.as_bytes()));
                if target.is_absolute() {
                    let inside = self.key_of(target)?;
                    names.clear();
                    dirs.clear();
                    let mut segments: Vec<String> = inside.segments().map(String::from).collect();
                    segments.reverse();
                    pending.extend(segments);
                } else {
                    let text = target.to_str().ok_or(StorageError::Escapes)?;
                    pending.extend(text.split('/').rev().map(String::from));
                }
                continue;
            }
            if last {
                names.push(segment);
                break;
            }
            if kind != FileType::Directory {
                return Err(StorageError::NotADirectory);
            }
            dirs.push(rustix::fs::openat(here, segment.as_str(), dir_flags(), Mode::empty()).map_err(errno)?);
            names.push(segment);
        }
        Ok(Key::from_segments(names.iter().map(String::as_str)))
    }

    /// The key of an absolute disk path under the root (lexically; a link is refused above it).
    pub(super) fn key_of(&self, path: &Path) -> Result<Key> {
        let mut parts: Vec<&str> = Vec::new();
        for component in path.components() {
            match component {
                Component::RootDir | Component::Prefix(_) => parts.clear(),
                Component::CurDir => {}
                Component::ParentDir => {
                    parts.pop();
                }
                Component::Normal(s) => parts.push(s.to_str().ok_or(StorageError::Escapes)?),
            }
        }
        let root: Vec<&str> = self
            .path
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => s.to_str(),
                _ => None,
            })
            .collect();
        match parts.strip_prefix(root.as_slice()) {
            Some(inside) => Ok(Key::from_segments(inside.iter().copied())),
            None => Err(StorageError::Escapes),
        }
    }

    /// What the link at `key` says: a key inside the root for an absolute target, the text
    /// itself for a relative one that stays inside the root from the link's folder.
    pub(super) fn read_link(&self, key: &Key) -> Result<LinkTarget> {
        let (parent, name) = self.parent(key)?;
        let target = rustix::fs::readlinkat(&parent, name, Vec::new()).map_err(errno)?;
        let target = Path::new(OsStr::from_bytes(target.as_bytes()));
        if target.is_absolute() {
            return self.key_of(target).map(LinkTarget::Key);
        }
        let text = target.to_str().ok_or(StorageError::Escapes)?;
        let mut depth = key.segments().count().saturating_sub(1);
        for segment in text.split('/') {
            match segment {
                "" | "." => {}
                ".." => depth = depth.checked_sub(1).ok_or(StorageError::Escapes)?,
                _ => depth += 1,
            }
        }
        Ok(LinkTarget::Relative(text.to_string()))
    }

    /// Creates the link `key` holding `target`: relative targets as written, keys as absolute
    /// paths under the root.
    pub(super) fn symlink(&self, target: &LinkTarget, key: &Key) -> Result<()> {
        let (parent, name) = self.parent(key)?;
        let text = match target {
            LinkTarget::Relative(text) => PathBuf::from(text),
            LinkTarget::Key(target) => {
                let mut path = self.path.clone();
                path.extend(target.segments());
                path
            }
        };
        rustix::fs::symlinkat(&text, &parent, name).map_err(errno)
    }
}

/// A link met where none may be (swapped in after the check) is a refusal, not an I/O fault.
pub(super) fn errno(e: Errno) -> StorageError {
    match e {
        Errno::LOOP | Errno::XDEV => StorageError::Escapes,
        other => StorageError::from(io::Error::from(other)),
    }
}
