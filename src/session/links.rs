//! Links and the rules. Rules are judged on virtual paths, while a symlink or a hard link makes
//! a second path to the same data; so every operation judges its rule on the path the client
//! named and on where the links on the way really lead (`Vfs::resolve`, inside the jail), and
//! the backend is then given the resolved, link-free key, which it opens without following
//! any link (a link swapped in meanwhile fails instead of redirecting). A hard link is only
//! made to a file the user may already rewrite, as writing through it rewrites the original.

use super::{Op, Resolved, Session, SessionError, VirtualPath};
use crate::audit::EventKind;
use crate::vfs::LinkTarget;

impl Session {
    /// Where `path` really is, with `op` allowed both on the path as named and on where its
    /// links lead: a link never widens a rule.
    pub(super) async fn reach(
        &self,
        op: Op,
        path: &VirtualPath,
        follow_final: bool,
    ) -> Result<Resolved<'_>, SessionError> {
        self.check(op, path)?;
        let entry = self.vfs.resolve(path, follow_final).await.map_err(Self::storage_err(path))?;
        self.check_both(op, path, &entry)?;
        Ok(entry)
    }

    /// `op` on the path as named and on the resolved entry.
    pub(super) fn check_both(
        &self,
        op: Op,
        path: &VirtualPath,
        entry: &Resolved<'_>,
    ) -> Result<(), SessionError> {
        self.check(op, path)?;
        if entry.path != *path {
            self.check(op, &entry.path)?;
        }
        Ok(())
    }

    /// `reach` for looking at an entry: the list permission on the folders holding it.
    pub(super) async fn reach_visible(
        &self,
        path: &VirtualPath,
        follow_final: bool,
    ) -> Result<Resolved<'_>, SessionError> {
        self.check_visible(path)?;
        let entry = self.vfs.resolve(path, follow_final).await.map_err(Self::storage_err(path))?;
        if entry.path != *path {
            self.check_visible(&entry.path)?;
        }
        Ok(entry)
    }

    /// Creates `link` holding `target` as the client wrote it: an absolute target is a path in
    /// the jail, a relative one is kept relative to the link's folder (so readlink answers what
    /// was written, as OpenSSH does) and may not lead above the jail. The creator needs the
    /// download permission on the target (reads through the link are judged again anyway).
    pub async fn symlink(&self, target: &str, link: &VirtualPath) -> Result<(), SessionError> {
        let named =
            if target.starts_with('/') { VirtualPath::root() } else { link.parent() }.navigate(target).ok();
        self.audited(EventKind::FileSymlink, "symlink", link, named.as_ref(), async {
            let link_entry = self.reach(Op::Symlink, link, false).await?;
            let (lexical, stored) = if target.starts_with('/') {
                (VirtualPath::root().navigate(target)?, None)
            } else {
                let lexical = link_entry.path.parent().resolve(target).map_err(|e| match e {
                    crate::vfs::PathError::Escapes => SessionError::Escapes(link.clone()),
                    other => SessionError::InvalidPath(other),
                })?;
                (lexical, Some(LinkTarget::Relative(target.to_string())))
            };
            self.check(Op::Download, &lexical)?;
            let target_at = self.vfs.locate(&lexical);
            if !target_at.same_mount(&link_entry.at) {
                return Err(SessionError::Unsupported("a link from one mount to another"));
            }
            // A target that exists already: where it really leads must be readable too.
            if let Ok(real) = self.vfs.resolve(&lexical, true).await {
                self.check_both(Op::Download, &lexical, &real)?;
            }
            let stored = stored.unwrap_or(LinkTarget::Key(target_at.key));
            link_entry.at.storage.symlink(&stored, &link_entry.at.key).await.map_err(Self::storage_err(link))
        })
        .await
    }

    /// A second name for `existing`'s data. Writing through it rewrites the original in place,
    /// so the user needs every right a rewrite of the original takes (download, upload,
    /// overwrite), besides the link and upload rights at the new name.
    pub async fn hard_link(&self, existing: &VirtualPath, link: &VirtualPath) -> Result<(), SessionError> {
        self.audited(EventKind::FileLink, "link", existing, Some(link), async {
            let existing_entry = self.reach(Op::Download, existing, true).await?;
            self.check_both(Op::Upload, existing, &existing_entry)?;
            self.check_both(Op::Overwrite, existing, &existing_entry)?;
            let link_entry = self.reach(Op::Symlink, link, false).await?;
            self.check_both(Op::Upload, link, &link_entry)?;
            if !existing_entry.at.same_mount(&link_entry.at) {
                return Err(SessionError::Unsupported("a link from one mount to another"));
            }
            link_entry
                .at
                .storage
                .hard_link(&existing_entry.at.key, &link_entry.at.key)
                .await
                .map_err(Self::storage_err(link))
        })
        .await
    }

    /// What a symlink says: a relative target as written, an absolute one as a path in the
    /// jail (targets leading out of the jail are refused).
    pub async fn read_link(&self, path: &VirtualPath) -> Result<String, SessionError> {
        let entry = self.reach_visible(path, false).await?;
        match entry.at.storage.read_link(&entry.at.key).await.map_err(Self::storage_err(path))? {
            LinkTarget::Relative(text) => Ok(text),
            LinkTarget::Key(key) => self
                .vfs
                .virtual_path(&entry.at, &key)
                .map(|p| p.to_string())
                .map_err(|_| SessionError::Escapes(path.clone())),
        }
    }
}
