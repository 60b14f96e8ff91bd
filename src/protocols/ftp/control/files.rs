//! File and folder commands: RETR, STOR/APPE/STOU, LIST/NLST/MLSD, MLST, SIZE, MDTM, MFMT,
//! DELE, MKD, RMD, RNFR/RNTO, STAT, CWD, TYPE and REST.

use super::{Connection, Io, Next};
use crate::protocols::ftp::command::Command;
use crate::protocols::ftp::transfer::{self, ListFormat};
use crate::protocols::ftp::{listing, reply};
use crate::session::{EntryKind, OpenWrite, SessionError, SetAttrs, VirtualPath};

impl Connection {
    pub(super) async fn type_(&mut self, cmd: &Command) -> Io {
        match cmd.arg.trim().to_ascii_uppercase().as_str() {
            "I" | "L 8" | "L8" => {
                self.binary = true;
                self.done(200, "Type set to I").await
            }
            "A" | "A N" => {
                self.binary = false;
                self.done(200, "Type set to A").await
            }
            _ => self.done(504, "Only TYPE A and TYPE I are supported").await,
        }
    }

    pub(super) async fn rest(&mut self, cmd: &Command) -> Io {
        match cmd.arg.trim().parse::<u64>() {
            Ok(offset) => {
                self.rest = offset;
                self.done(350, &format!("Restarting at {offset}. Send STOR or RETR")).await
            }
            Err(_) => self.done(501, "REST needs a byte offset").await,
        }
    }

    pub(super) async fn cwd(&mut self, arg: &str) -> Io {
        let Some(session) = self.session() else { return Ok(Next::Close) };
        let path = match self.path(arg) {
            Ok(path) => path,
            Err(e) => return self.fail(&e).await,
        };
        match session.stat(&path).await {
            Ok(meta) if meta.kind == EntryKind::Dir => {
                self.cwd = path;
                self.done(250, &format!("Directory changed to {}", self.cwd)).await
            }
            Ok(_) => self.fail(&SessionError::NotADirectory(path)).await,
            Err(e) => self.fail(&e).await,
        }
    }

    pub(super) async fn retr(&mut self, cmd: &Command) -> Io {
        let Some(session) = self.session() else { return Ok(Next::Close) };
        let offset = std::mem::take(&mut self.rest);
        let path = match self.path(&cmd.arg) {
            Ok(path) => path,
            Err(e) => return self.fail(&e).await,
        };
        if self.plan.is_none() {
            return self.done(425, "Use PASV or EPSV first").await;
        }
        let file = match session.open_read(&path).await {
            Ok(file) => file,
            Err(e) => return self.fail(&e).await,
        };
        let ascii = !self.binary;
        let opening =
            format!("Opening {} data connection for {path}", if ascii { "ASCII" } else { "BINARY" });
        self.start(&opening, move |data| Box::pin(transfer::download(file, offset, data, ascii))).await
    }

    pub(super) async fn store(&mut self, arg: &str, kind: StoreKind) -> Io {
        let Some(session) = self.session() else { return Ok(Next::Close) };
        let offset = std::mem::take(&mut self.rest);
        let path = match kind {
            StoreKind::Unique => Ok(transfer::unique_name(&self.cwd)),
            _ => self.path(arg),
        };
        let path = match path {
            Ok(path) => path,
            Err(e) => return self.fail(&e).await,
        };
        if self.plan.is_none() {
            return self.done(425, "Use PASV or EPSV first").await;
        }
        let how = match kind {
            StoreKind::Append => OpenWrite { create: true, append: true, ..OpenWrite::default() },
            StoreKind::Unique => OpenWrite { create: true, exclusive: true, ..OpenWrite::default() },
            // REST before STOR resumes: keep what is there and write from the offset.
            StoreKind::Replace => OpenWrite { create: true, truncate: offset == 0, ..OpenWrite::default() },
        };
        let file = match session.open_write(&path, how).await {
            Ok(file) => file,
            Err(e) => return self.fail(&e).await,
        };
        let start_at = match kind {
            StoreKind::Append => match file.metadata().await {
                Ok(meta) => meta.size,
                Err(e) => return self.fail(&e).await,
            },
            _ => offset,
        };
        let ascii = !self.binary;
        let opening = match kind {
            StoreKind::Unique => format!("FILE: {}", path.name()),
            _ => format!("Opening data connection for {path}"),
        };
        self.start(&opening, move |data| Box::pin(transfer::upload(file, start_at, data, ascii))).await
    }

    /// The path argument of LIST/NLST/MLSD without `ls` options such as `-la`.
    pub(super) fn list_target(&self, arg: &str) -> Result<VirtualPath, SessionError> {
        let words: Vec<&str> = arg.split(' ').collect();
        let rest: Vec<&str> = words.iter().copied().skip_while(|w| w.starts_with('-')).collect();
        self.path(&rest.join(" "))
    }

    pub(super) async fn list(&mut self, cmd: &Command, format: ListFormat) -> Io {
        let Some(session) = self.session() else { return Ok(Next::Close) };
        let path = match self.list_target(&cmd.arg) {
            Ok(path) => path,
            Err(e) => return self.fail(&e).await,
        };
        if self.plan.is_none() {
            return self.done(425, "Use PASV or EPSV first").await;
        }
        let meta = match session.stat(&path).await {
            Ok(meta) => meta,
            Err(e) => return self.fail(&e).await,
        };
        if meta.kind != EntryKind::Dir {
            if format == ListFormat::Facts {
                return self.fail(&SessionError::NotADirectory(path)).await;
            }
            let name = path.name().to_string();
            let owner = session.user().to_string();
            return self
                .start("Here comes the listing", move |data| {
                    Box::pin(transfer::list_one(name, meta, owner, format, data))
                })
                .await;
        }
        let listing = match session.list(&path).await {
            Ok(listing) => listing,
            Err(e) => return self.fail(&e).await,
        };
        self.start("Here comes the listing", move |data| {
            Box::pin(transfer::list(session, listing, format, data))
        })
        .await
    }

    pub(super) async fn mlst(&mut self, cmd: &Command) -> Io {
        let Some(session) = self.session() else { return Ok(Next::Close) };
        let path = match self.path(&cmd.arg) {
            Ok(path) => path,
            Err(e) => return self.fail(&e).await,
        };
        match session.stat(&path).await {
            Ok(meta) => {
                let facts = listing::mlsx_facts(path.as_str(), &meta);
                self.done(250, &format!("Listing {path}\n{facts}\nEnd")).await
            }
            Err(e) => self.fail(&e).await,
        }
    }

    pub(super) async fn size(&mut self, cmd: &Command) -> Io {
        let Some(session) = self.session() else { return Ok(Next::Close) };
        let path = match self.path(&cmd.arg) {
            Ok(path) => path,
            Err(e) => return self.fail(&e).await,
        };
        match session.stat(&path).await {
            Ok(meta) if meta.kind == EntryKind::Dir => self.fail(&SessionError::IsADirectory(path)).await,
            Ok(meta) => self.done(213, &meta.size.to_string()).await,
            Err(e) => self.fail(&e).await,
        }
    }

    pub(super) async fn mdtm(&mut self, cmd: &Command) -> Io {
        let Some(session) = self.session() else { return Ok(Next::Close) };
        let path = match self.path(&cmd.arg) {
            Ok(path) => path,
            Err(e) => return self.fail(&e).await,
        };
        match session.stat(&path).await {
            Ok(meta) => self.done(213, &listing::timestamp(meta.modified)).await,
            Err(e) => self.fail(&e).await,
        }
    }

    pub(super) async fn mfmt(&mut self, cmd: &Command) -> Io {
        let Some(session) = self.session() else { return Ok(Next::Close) };
        let Some((stamp, name)) = cmd.arg.split_once(' ') else {
            return self.done(501, "MFMT needs a time and a path").await;
        };
        let Some(time) = listing::parse_timestamp(stamp) else {
            return self.done(501, "Time must be YYYYMMDDHHMMSS").await;
        };
        let path = match self.path(name) {
            Ok(path) => path,
            Err(e) => return self.fail(&e).await,
        };
        match session.set_attrs(&path, SetAttrs { times: Some((time, time)), ..SetAttrs::default() }).await {
            Ok(()) => self.done(213, &format!("Modify={stamp}; {path}")).await,
            Err(e) => self.fail(&e).await,
        }
    }

    pub(super) async fn simple(&mut self, arg: &str, op: Simple) -> Io {
        let Some(session) = self.session() else { return Ok(Next::Close) };
        let path = match self.path(arg) {
            Ok(path) => path,
            Err(e) => return self.fail(&e).await,
        };
        let result = match op {
            Simple::Delete => session.remove(&path).await,
            Simple::Mkdir => session.mkdir(&path).await,
            Simple::Rmdir => session.rmdir(&path).await,
        };
        match (result, op) {
            (Ok(()), Simple::Mkdir) => {
                self.done(257, &format!("{} created", reply::quote_path(path.as_str()))).await
            }
            (Ok(()), _) => self.done(250, "Requested file action okay, completed").await,
            (Err(e), _) => self.fail(&e).await,
        }
    }

    pub(super) async fn rnfr(&mut self, cmd: &Command) -> Io {
        let Some(session) = self.session() else { return Ok(Next::Close) };
        let path = match self.path(&cmd.arg) {
            Ok(path) => path,
            Err(e) => return self.fail(&e).await,
        };
        match session.lstat(&path).await {
            Ok(_) => {
                self.rename_from = Some(path);
                self.done(350, "Ready for RNTO").await
            }
            Err(e) => self.fail(&e).await,
        }
    }

    pub(super) async fn rnto(&mut self, cmd: &Command) -> Io {
        let Some(session) = self.session() else { return Ok(Next::Close) };
        let Some(from) = self.rename_from.take() else {
            return self.done(503, "Send RNFR first").await;
        };
        let to = match self.path(&cmd.arg) {
            Ok(path) => path,
            Err(e) => return self.fail(&e).await,
        };
        match session.rename(&from, &to, true).await {
            Ok(()) => self.done(250, "Rename successful").await,
            Err(e) => self.fail(&e).await,
        }
    }

    pub(super) async fn stat(&mut self, cmd: &Command) -> Io {
        if cmd.arg.trim().is_empty() {
            let state =
                if self.transfer.is_some() { "a transfer is in progress" } else { "no transfer in progress" };
            let tls = if self.tls_active { "TLS" } else { "plain text" };
            let text = format!("ferry FTP status:\nConnected over {tls}; {state}\nEnd of status");
            return self.done(211, &text).await;
        }
        let Some(session) = self.session() else { return Ok(Next::Close) };
        let path = match self.list_target(&cmd.arg) {
            Ok(path) => path,
            Err(e) => return self.fail(&e).await,
        };
        let now = std::time::SystemTime::now();
        let mut lines = vec![format!("Status of {path}:")];
        match session.stat(&path).await {
            Ok(meta) if meta.kind != EntryKind::Dir => {
                lines
                    .push(listing::list_line(path.name(), &meta, session.user(), now).trim_end().to_string());
            }
            Ok(_) => {
                let mut listing = match session.list(&path).await {
                    Ok(listing) => listing,
                    Err(e) => return self.fail(&e).await,
                };
                // Bounded: STAT over the control channel is for small folders.
                while lines.len() < 10_000 {
                    match listing.next_batch(256).await {
                        Ok(batch) if batch.is_empty() => break,
                        Ok(batch) => lines.extend(batch.into_iter().map(|(name, meta)| {
                            listing::list_line(&name, &meta, session.user(), now).trim_end().to_string()
                        })),
                        Err(e) => return self.fail(&e).await,
                    }
                }
            }
            Err(e) => return self.fail(&e).await,
        }
        lines.push("End of status".into());
        self.done(213, &lines.join("\n")).await
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) enum StoreKind {
    Replace,
    Append,
    Unique,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Simple {
    Delete,
    Mkdir,
    Rmdir,
}
