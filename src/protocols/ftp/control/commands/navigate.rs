//! The working directory and path arguments: PWD, CWD and CDUP (RFC 959 §4.1.1, §4.1.3; the
//! X-aliases of RFC 775 are mapped in `command.rs`), paths as TVFS names (RFC 3659 §6).

use crate::protocols::ftp::control::{Connection, Handled, Reply};
use crate::protocols::ftp::reply;
use crate::session::{EntryKind, Session, SessionError, VirtualPath};

impl Connection {
    pub(in crate::protocols::ftp::control) fn pwd(&self) -> Handled {
        let text = format!("{} is the current directory", reply::quote_path(self.cwd.as_str()));
        Ok(Reply::say(257, text))
    }

    /// CWD, and CDUP as `CWD ..`.
    pub(in crate::protocols::ftp::control) async fn cwd(&mut self, session: &Session, arg: &str) -> Handled {
        let path = session.resolve(&self.cwd, arg)?;
        let meta = session.stat(&path).await?;
        if meta.kind != EntryKind::Dir {
            return Err(SessionError::NotADirectory(path));
        }
        self.cwd = path;
        Ok(Reply::say(250, format!("Directory changed to {}", self.cwd)))
    }

    /// The path argument of LIST/NLST/MLSD/STAT without `ls` options such as `-la`.
    pub(in crate::protocols::ftp::control) fn list_target(
        &self,
        session: &Session,
        arg: &str,
    ) -> Result<VirtualPath, SessionError> {
        let words: Vec<&str> = arg.split(' ').collect();
        let rest: Vec<&str> = words.iter().copied().skip_while(|w| w.starts_with('-')).collect();
        session.resolve(&self.cwd, &rest.join(" "))
    }
}
