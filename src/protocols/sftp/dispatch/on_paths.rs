//! Requests on paths: STAT, LSTAT, SETSTAT, REMOVE, MKDIR, RMDIR, REALPATH, RENAME, READLINK
//! and SYMLINK (draft-ietf-secsh-filexfer-02 sections 6.5 to 6.10). Each resolves its path
//! against the session's root and answers with one status, attributes or name.

use russh_sftp::protocol::{Lstat, MkDir, ReadLink, RealPath, Remove, Rename, RmDir, SetStat, Stat, Symlink};

use super::Dispatcher;
use crate::protocols::sftp::ops::set_attrs;

impl Dispatcher {
    pub(super) async fn stat(&mut self, stat: Stat) {
        let result = match self.path(&stat.path) {
            Ok(path) => self.session.stat(&path).await,
            Err(e) => Err(e),
        };
        self.attrs_reply(stat.id, result).await;
    }

    pub(super) async fn lstat(&mut self, stat: Lstat) {
        let result = match self.path(&stat.path) {
            Ok(path) => self.session.lstat(&path).await,
            Err(e) => Err(e),
        };
        self.attrs_reply(stat.id, result).await;
    }

    pub(super) async fn setstat(&mut self, set: SetStat) {
        let result = match self.path(&set.path) {
            Ok(path) => self.session.set_attrs(&path, set_attrs(&set.attrs)).await,
            Err(e) => Err(e),
        };
        self.result(set.id, result).await;
    }

    pub(super) async fn remove(&mut self, remove: Remove) {
        let result = match self.path(&remove.filename) {
            Ok(path) => self.session.remove(&path).await,
            Err(e) => Err(e),
        };
        self.result(remove.id, result).await;
    }

    pub(super) async fn mkdir(&mut self, mkdir: MkDir) {
        let result = match self.path(&mkdir.path) {
            Ok(path) => self.session.mkdir(&path).await,
            Err(e) => Err(e),
        };
        self.result(mkdir.id, result).await;
    }

    pub(super) async fn rmdir(&mut self, rmdir: RmDir) {
        let result = match self.path(&rmdir.path) {
            Ok(path) => self.session.rmdir(&path).await,
            Err(e) => Err(e),
        };
        self.result(rmdir.id, result).await;
    }

    /// Paths are normalised by the session (`/..` stays at `/`); links are not followed.
    pub(super) async fn realpath(&mut self, real: RealPath) {
        match self.path(&real.path) {
            Ok(path) => self.name_reply(real.id, path.to_string()).await,
            Err(e) => self.error(real.id, &e).await,
        }
    }

    /// SSH_FXP_RENAME never replaces an existing target (draft-02); posix-rename does.
    pub(super) async fn rename(&mut self, rename: Rename) {
        let result = match (self.path(&rename.oldpath), self.path(&rename.newpath)) {
            (Ok(from), Ok(to)) => self.session.rename(&from, &to, false).await,
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        self.result(rename.id, result).await;
    }

    pub(super) async fn readlink(&mut self, read: ReadLink) {
        let result = match self.path(&read.path) {
            Ok(path) => self.session.read_link(&path).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(target) => self.name_reply(read.id, target.to_string()).await,
            Err(e) => self.error(read.id, &e).await,
        }
    }

    pub(super) async fn symlink(&mut self, link: Symlink) {
        // OpenSSH sends the target first and the new link second (the reverse of the
        // draft); every common client follows OpenSSH.
        let result = match self.path(&link.targetpath) {
            Ok(link_path) => self.session.symlink(&link.linkpath, &link_path).await,
            Err(e) => Err(e),
        };
        self.result(link.id, result).await;
    }
}
