//! File and folder commands answered on the control connection: DELE, MKD, RMD, RNFR, RNTO,
//! STAT (RFC 959 §4.1.3), SIZE, MDTM and MLST (RFC 3659 §3, §4, §7) and MFMT
//! (draft-somers-ftp-mfxx).

use crate::protocols::ftp::control::{Connection, Handled, Reply};
use crate::protocols::ftp::{listing, reply};
use crate::session::{EntryKind, Session, SessionError, SetAttrs};

#[derive(Debug, Clone, Copy)]
pub(in crate::protocols::ftp::control) enum Simple {
    Delete,
    Mkdir,
    Rmdir,
}

impl Connection {
    pub(in crate::protocols::ftp::control) async fn mlst(&mut self, session: &Session, arg: &str) -> Handled {
        let path = session.resolve(&self.cwd, arg)?;
        let meta = session.stat(&path).await?;
        let facts = listing::mlsx_facts(path.as_str(), &meta);
        Ok(Reply::say(250, format!("Listing {path}\n{facts}\nEnd")))
    }

    pub(in crate::protocols::ftp::control) async fn size(&mut self, session: &Session, arg: &str) -> Handled {
        let path = session.resolve(&self.cwd, arg)?;
        let meta = session.stat(&path).await?;
        if meta.kind == EntryKind::Dir {
            return Err(SessionError::IsADirectory(path));
        }
        Ok(Reply::say(213, meta.size.to_string()))
    }

    pub(in crate::protocols::ftp::control) async fn mdtm(&mut self, session: &Session, arg: &str) -> Handled {
        let path = session.resolve(&self.cwd, arg)?;
        let meta = session.stat(&path).await?;
        Ok(Reply::say(213, listing::timestamp(meta.modified)))
    }

    pub(in crate::protocols::ftp::control) async fn mfmt(&mut self, session: &Session, arg: &str) -> Handled {
        let Some((stamp, name)) = arg.split_once(' ') else {
            return Ok(Reply::say(501, "MFMT needs a time and a path"));
        };
        let Some(time) = listing::parse_timestamp(stamp) else {
            return Ok(Reply::say(501, "Time must be YYYYMMDDHHMMSS"));
        };
        let path = session.resolve(&self.cwd, name)?;
        session.set_attrs(&path, SetAttrs { times: Some((time, time)), ..SetAttrs::default() }).await?;
        Ok(Reply::say(213, format!("Modify={stamp}; {path}")))
    }

    /// DELE, MKD and RMD.
    pub(in crate::protocols::ftp::control) async fn simple(
        &mut self,
        session: &Session,
        arg: &str,
        op: Simple,
    ) -> Handled {
        let path = session.resolve(&self.cwd, arg)?;
        match op {
            Simple::Delete => session.remove(&path).await?,
            Simple::Mkdir => session.mkdir(&path).await?,
            Simple::Rmdir => session.rmdir(&path).await?,
        }
        match op {
            Simple::Mkdir => Ok(Reply::say(257, format!("{} created", reply::quote_path(path.as_str())))),
            _ => Ok(Reply::say(250, "Requested file action okay, completed")),
        }
    }

    pub(in crate::protocols::ftp::control) async fn rnfr(&mut self, session: &Session, arg: &str) -> Handled {
        let path = session.resolve(&self.cwd, arg)?;
        session.lstat(&path).await?;
        self.rename_from = Some(path);
        Ok(Reply::say(350, "Ready for RNTO"))
    }

    pub(in crate::protocols::ftp::control) async fn rnto(&mut self, session: &Session, arg: &str) -> Handled {
        let Some(from) = self.rename_from.take() else {
            return Ok(Reply::say(503, "Send RNFR first"));
        };
        let to = session.resolve(&self.cwd, arg)?;
        session.rename(&from, &to, true).await?;
        Ok(Reply::say(250, "Rename successful"))
    }

    /// STAT alone reports the connection; STAT with a path lists it over the control channel.
    pub(in crate::protocols::ftp::control) async fn stat(&mut self, session: &Session, arg: &str) -> Handled {
        if arg.trim().is_empty() {
            let state =
                if self.transfer.is_some() { "a transfer is in progress" } else { "no transfer in progress" };
            let tls = if self.tls_active { "TLS" } else { "plain text" };
            return Ok(Reply::say(
                211,
                format!("ferry FTP status:\nConnected over {tls}; {state}\nEnd of status"),
            ));
        }
        let path = self.list_target(session, arg)?;
        let now = std::time::SystemTime::now();
        let mut lines = vec![format!("Status of {path}:")];
        let meta = session.stat(&path).await?;
        if meta.kind != EntryKind::Dir {
            lines.push(listing::list_line(path.name(), &meta, session.user(), now).trim_end().to_string());
        } else {
            let mut listing = session.list(&path).await?;
            // Bounded: STAT over the control channel is for small folders.
            while lines.len() < 10_000 {
                let batch = listing.next_batch(256).await?;
                if batch.is_empty() {
                    break;
                }
                lines.extend(batch.into_iter().map(|(name, meta)| {
                    listing::list_line(&name, &meta, session.user(), now).trim_end().to_string()
                }));
            }
        }
        lines.push("End of status".into());
        Ok(Reply::say(213, lines.join("\n")))
    }
}
