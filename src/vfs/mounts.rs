//! The mount table of one user: which backend and key prefix serves each virtual path.

use std::sync::Arc;

use async_trait::async_trait;

use super::{
    Backends, DirEntry, DirLister, EntryKind, Key, Metadata, PathError, Storage, StorageError, VirtualPath,
};

/// One mount as the session asks for it: `path` shows `prefix` of the backend named `storage`.
#[derive(Debug, Clone)]
pub struct MountSpec {
    pub path: VirtualPath,
    pub storage: String,
    pub prefix: VirtualPath,
}

struct Mount {
    at: VirtualPath,
    depth: usize,
    storage: Arc<dyn Storage>,
}

/// One user's view. Every backend is scoped to its mount's prefix, so symlinks and listings are
/// judged inside the mount and never reach the rest of the bucket or disk.
#[derive(Clone)]
pub struct Vfs {
    /// Deepest mount first, so the first prefix that matches is the most specific.
    mounts: Arc<[Mount]>,
    /// What `/` shows: the home, or a mount at `/`.
    root: Arc<dyn Storage>,
}

/// Where a virtual path lives.
pub struct Located<'a> {
    pub storage: &'a dyn Storage,
    pub key: Key,
    /// Index into the mount table; the table's length means the root.
    mount: usize,
}

impl Located<'_> {
    /// Both paths are on one mount, so the backend can rename or link between them.
    pub fn same_mount(&self, other: &Located<'_>) -> bool {
        self.mount == other.mount
    }
}

/// A virtual path with the symlinks on its way followed inside its mount: `path` is where the
/// data really is (what rules are judged on), `at` the link-free key the backend is given.
pub struct Resolved<'a> {
    pub at: Located<'a>,
    pub path: VirtualPath,
}

impl Vfs {
    /// `/` is `home` on the default backend unless a mount at `/` replaces it. Fails on a mount
    /// naming a backend the configuration does not have, or two mounts at one path.
    pub fn new(backends: &Backends, home: &VirtualPath, specs: &[MountSpec]) -> Result<Self, StorageError> {
        let mut mounts = Vec::with_capacity(specs.len() + 1);
        for spec in specs.iter().filter(|s| !s.path.is_root()) {
            if mounts.iter().any(|m: &Mount| m.at == spec.path) {
                return Err(config_error(format!("two mounts at {}", spec.path)));
            }
            let depth = spec.path.segments().count();
            mounts.push(Mount { at: spec.path.clone(), depth, storage: open(backends, spec)? });
        }
        mounts.sort_by_key(|m| std::cmp::Reverse(m.depth));
        let root = match specs.iter().find(|s| s.path.is_root()) {
            Some(spec) => open(backends, spec)?,
            None => backends.default_storage().scoped(&Key::from_segments(home.segments()))?,
        };
        Ok(Self { mounts: mounts.into(), root })
    }

    /// The backend and key of a virtual path.
    pub fn locate(&self, path: &VirtualPath) -> Located<'_> {
        match self.mounts.iter().enumerate().find(|(_, m)| path.starts_with(&m.at)) {
            Some((mount, m)) => Located {
                storage: m.storage.as_ref(),
                key: Key::from_segments(path.segments().skip(m.depth)),
                mount,
            },
            None => Located {
                storage: self.root.as_ref(),
                key: Key::from_segments(path.segments()),
                mount: self.mounts.len(),
            },
        }
    }

    /// The virtual path of a key on the mount `at` came from.
    pub fn virtual_path(&self, at: &Located<'_>, key: &Key) -> Result<VirtualPath, PathError> {
        let mut path = self.mounts.get(at.mount).map_or_else(VirtualPath::root, |m| m.at.clone());
        for segment in key.segments() {
            path = path.join(segment);
        }
        VirtualPath::parse(path.as_str())
    }

    /// Follows the symlinks on the way to `path` (and a final one when `follow_final`) inside
    /// its mount. A link landing where another mount shows would reach disk that the mount
    /// hides from the user: refused as an escape.
    pub async fn resolve(
        &self,
        path: &VirtualPath,
        follow_final: bool,
    ) -> Result<Resolved<'_>, StorageError> {
        let at = self.locate(path);
        let key = at.storage.resolve(&at.key, follow_final).await?;
        if key == at.key {
            return Ok(Resolved { at, path: path.clone() });
        }
        let real = self.virtual_path(&at, &key).map_err(|_| StorageError::Escapes)?;
        if self.locate(&real).mount != at.mount {
            return Err(StorageError::Escapes);
        }
        Ok(Resolved { at: Located { key, ..at }, path: real })
    }

    /// The path is a mount point or a folder leading to one: removing or renaming it would
    /// pull the floor from under a mount, so the session refuses.
    pub fn holds_mount(&self, path: &VirtualPath) -> bool {
        self.mounts.iter().any(|m| m.at.starts_with(path))
    }

    /// The storage of `/`, for capacity questions.
    pub fn root_storage(&self) -> &dyn Storage {
        self.root.as_ref()
    }

    /// Metadata of a resolved entry itself (its final link already followed or not, as asked).
    pub async fn stat(&self, entry: &Resolved<'_>) -> Result<Metadata, StorageError> {
        match entry.at.storage.lstat(&entry.at.key).await {
            Err(StorageError::NotFound) if self.holds_mount(&entry.path) => Ok(folder()),
            other => other,
        }
    }

    /// The folder's entries, with the folders that lead to mount points added (a mount hides an
    /// entry of the same name underneath it).
    pub async fn list(&self, entry: &Resolved<'_>) -> Result<Box<dyn DirLister>, StorageError> {
        let (at, path) = (&entry.at, &entry.path);
        let extra = self.mount_children(path);
        if extra.is_empty() {
            return at.storage.list(&at.key).await;
        }
        let inner = match at.storage.list(&at.key).await {
            Ok(lister) => Some(lister),
            Err(StorageError::NotFound) => None,
            Err(e) => return Err(e),
        };
        Ok(Box::new(WithMountPoints { inner, extra }))
    }

    /// Names of the folders directly under `dir` that are or lead to mount points.
    fn mount_children(&self, dir: &VirtualPath) -> Vec<String> {
        let depth = dir.segments().count();
        let mut names: Vec<String> = self
            .mounts
            .iter()
            .filter(|m| m.depth > depth && m.at.starts_with(dir))
            .filter_map(|m| m.at.segments().nth(depth).map(String::from))
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

fn open(backends: &Backends, spec: &MountSpec) -> Result<Arc<dyn Storage>, StorageError> {
    let backend = backends.get(&spec.storage).ok_or_else(|| {
        config_error(format!("mount {}: no storage named `{}` in the configuration", spec.path, spec.storage))
    })?;
    backend.scoped(&Key::from_segments(spec.prefix.segments()))
}

fn config_error(message: String) -> StorageError {
    StorageError::Io(std::io::Error::other(message))
}

fn folder() -> Metadata {
    Metadata { kind: EntryKind::Dir, size: 0, modified: None, accessed: None, mode: Some(0o755) }
}

/// A backend listing followed by the mount-point folders it does not hold.
struct WithMountPoints {
    inner: Option<Box<dyn DirLister>>,
    extra: Vec<String>,
}

#[async_trait]
impl DirLister for WithMountPoints {
    async fn next_batch(&mut self, max: usize) -> Result<Vec<DirEntry>, StorageError> {
        while let Some(inner) = &mut self.inner {
            let batch = inner.next_batch(max).await?;
            if batch.is_empty() {
                self.inner = None;
                break;
            }
            let kept: Vec<DirEntry> = batch.into_iter().filter(|e| !self.extra.contains(&e.name)).collect();
            if !kept.is_empty() {
                return Ok(kept);
            }
        }
        let take = self.extra.len().min(max.max(1));
        Ok(self.extra.drain(..take).map(|name| DirEntry { name, meta: folder() }).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::ObjectStorage;
    use crate::storage::object::ObjectOptions;

    fn memory() -> Arc<dyn Storage> {
        Arc::new(ObjectStorage::new(
            Arc::new(object_store::memory::InMemory::new()),
            None,
            "",
            ObjectOptions::default(),
        ))
    }

    fn path(raw: &str) -> VirtualPath {
        VirtualPath::parse(raw).unwrap()
    }

    fn spec(at: &str, storage: &str, prefix: &str) -> MountSpec {
        MountSpec { path: path(at), storage: storage.into(), prefix: path(prefix) }
    }

    #[tokio::test]
    async fn paths_go_to_the_most_specific_mount_and_mount_points_are_listed() {
        let mut backends = Backends::new(memory());
        backends.insert("archive", memory());
        let vfs = Vfs::new(
            &backends,
            &path("/alice"),
            &[spec("/in", "archive", "/acme"), spec("/in/deep/er", "default", "/shared")],
        )
        .unwrap();
        let at = vfs.locate(&path("/in/deep/er/x.txt"));
        assert_eq!(at.key.as_str(), "x.txt");
        let inbox = vfs.locate(&path("/in/a.txt"));
        assert_eq!(inbox.key.as_str(), "a.txt");
        assert!(!at.same_mount(&inbox));
        assert_eq!(vfs.locate(&path("/notes")).key.as_str(), "notes");
        let deep = vfs.resolve(&path("/in/deep"), true).await.unwrap();
        assert_eq!(vfs.stat(&deep).await.unwrap().kind, EntryKind::Dir);
        let elsewhere = vfs.resolve(&path("/elsewhere"), true).await.unwrap();
        assert!(matches!(vfs.stat(&elsewhere).await, Err(StorageError::NotFound)));
        assert!(vfs.holds_mount(&path("/in/deep")) && !vfs.holds_mount(&path("/notes")));

        let mut lister = vfs.list(&vfs.resolve(&path("/"), true).await.unwrap()).await.unwrap();
        let names: Vec<String> = lister.next_batch(100).await.unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["in"]);
        assert!(lister.next_batch(100).await.unwrap().is_empty());
        assert_eq!(vfs.virtual_path(&inbox, &Key::from_segments(["b", "c"])).unwrap().as_str(), "/in/b/c");
    }

    #[test]
    fn unknown_backends_and_duplicate_mounts_are_refused() {
        let backends = Backends::new(memory());
        let unknown = Vfs::new(&backends, &path("/a"), &[spec("/x", "nope", "/")]).err().unwrap();
        assert!(unknown.to_string().contains("no storage named `nope`"), "{unknown}");
        let twice =
            Vfs::new(&backends, &path("/a"), &[spec("/x", "default", "/"), spec("/x", "default", "/y")]);
        assert!(twice.err().unwrap().to_string().contains("two mounts at /x"));
    }
}
