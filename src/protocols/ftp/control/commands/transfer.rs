//! Transfers and their parameters: RETR, STOR, APPE, STOU, LIST, NLST (RFC 959 §4.1.3), MLSD
//! (RFC 3659 §7), REST STREAM (RFC 3659 §5), TYPE, MODE, STRU, ALLO (RFC 959 §4.1.2-3) and
//! ABOR (RFC 959 §4.1.3). A transfer takes the planned data connection once, in [`start`],
//! and runs as a task whose reply the control loop writes when it ends.
//!
//! [`start`]: Connection::start

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::protocols::ftp::control::{Connection, Handled, Reply};
use crate::protocols::ftp::data::{self, ConnectError, DataStream, DataTls, Flow, Plan};
use crate::protocols::ftp::transfer::{self, ListFormat, Outcome};
use crate::session::{EntryKind, OpenWrite, Session, SessionError};

/// What runs on the data connection once it is open.
type Work = Box<dyn FnOnce(DataStream) -> Pin<Box<dyn Future<Output = Outcome> + Send>> + Send>;

/// A transfer ready to start: the `150` text, the data connection it uses and its work.
pub(in crate::protocols::ftp::control) struct Transfer {
    pub(in crate::protocols::ftp::control) opening: String,
    pub(in crate::protocols::ftp::control) plan: Plan,
    flow: Flow,
    work: Work,
}

#[derive(Debug, Clone, Copy)]
pub(in crate::protocols::ftp::control) enum StoreKind {
    Replace,
    Append,
    Unique,
}

impl Connection {
    pub(in crate::protocols::ftp::control) fn type_(&mut self, arg: &str) -> Handled {
        match arg.trim().to_ascii_uppercase().as_str() {
            "I" | "L 8" | "L8" => {
                self.binary = true;
                Ok(Reply::say(200, "Type set to I"))
            }
            "A" | "A N" => {
                self.binary = false;
                Ok(Reply::say(200, "Type set to A"))
            }
            _ => Ok(Reply::say(504, "Only TYPE A and TYPE I are supported")),
        }
    }

    pub(in crate::protocols::ftp::control) fn mode(&self, arg: &str) -> Handled {
        if arg.trim().eq_ignore_ascii_case("S") {
            Ok(Reply::say(200, "Mode set to S"))
        } else {
            Ok(Reply::say(504, "Only stream mode (S) is supported"))
        }
    }

    pub(in crate::protocols::ftp::control) fn stru(&self, arg: &str) -> Handled {
        if arg.trim().eq_ignore_ascii_case("F") {
            Ok(Reply::say(200, "Structure set to F"))
        } else {
            Ok(Reply::say(504, "Only file structure (F) is supported"))
        }
    }

    pub(in crate::protocols::ftp::control) fn allo(&self) -> Handled {
        Ok(Reply::say(202, "No storage allocation necessary"))
    }

    pub(in crate::protocols::ftp::control) fn rest(&mut self, arg: &str) -> Handled {
        match arg.trim().parse::<u64>() {
            Ok(offset) => {
                self.rest = offset;
                Ok(Reply::say(350, format!("Restarting at {offset}. Send STOR or RETR")))
            }
            Err(_) => Ok(Reply::say(501, "REST needs a byte offset")),
        }
    }

    pub(in crate::protocols::ftp::control) async fn retr(&mut self, session: &Session, arg: &str) -> Handled {
        let offset = std::mem::take(&mut self.rest);
        let path = session.resolve(&self.cwd, arg)?;
        if self.plan.is_none() {
            return Ok(no_plan());
        }
        let file = session.open_read(&path).await?;
        let ascii = !self.binary;
        let opening =
            format!("Opening {} data connection for {path}", if ascii { "ASCII" } else { "BINARY" });
        Ok(self.start(
            opening,
            Flow::ToClient,
            Box::new(move |data| Box::pin(transfer::download(file, offset, data, ascii))),
        ))
    }

    pub(in crate::protocols::ftp::control) async fn store(
        &mut self,
        session: &Session,
        arg: &str,
        kind: StoreKind,
    ) -> Handled {
        let offset = std::mem::take(&mut self.rest);
        let path = match kind {
            StoreKind::Unique => transfer::unique_name(&self.cwd),
            _ => session.resolve(&self.cwd, arg)?,
        };
        if self.plan.is_none() {
            return Ok(no_plan());
        }
        let how = match kind {
            StoreKind::Append => OpenWrite { create: true, append: true, ..OpenWrite::default() },
            StoreKind::Unique => OpenWrite { create: true, exclusive: true, ..OpenWrite::default() },
            // REST before STOR resumes: keep what is there and write from the offset.
            StoreKind::Replace => OpenWrite { create: true, truncate: offset == 0, ..OpenWrite::default() },
        };
        let file = session.open_write(&path, how).await?;
        let start_at = match kind {
            StoreKind::Append => file.metadata().await?.size,
            _ => offset,
        };
        let ascii = !self.binary;
        let opening = match kind {
            StoreKind::Unique => format!("FILE: {}", path.name()),
            _ => format!("Opening data connection for {path}"),
        };
        Ok(self.start(
            opening,
            Flow::FromClient,
            Box::new(move |data| Box::pin(transfer::upload(file, start_at, data, ascii))),
        ))
    }

    pub(in crate::protocols::ftp::control) async fn list(
        &mut self,
        session: Arc<Session>,
        arg: &str,
        format: ListFormat,
    ) -> Handled {
        let path = self.list_target(&session, arg)?;
        if self.plan.is_none() {
            return Ok(no_plan());
        }
        let meta = session.stat(&path).await?;
        let opening = "Here comes the listing".to_string();
        if meta.kind != EntryKind::Dir {
            if format == ListFormat::Facts {
                return Err(SessionError::NotADirectory(path));
            }
            let name = path.name().to_string();
            let owner = session.user().to_string();
            let work: Work =
                Box::new(move |data| Box::pin(transfer::list_one(name, meta, owner, format, data)));
            return Ok(self.start(opening, Flow::ToClient, work));
        }
        let listing = session.list(&path).await?;
        Ok(self.start(
            opening,
            Flow::ToClient,
            Box::new(move |data| Box::pin(transfer::list(session, listing, format, data))),
        ))
    }

    pub(in crate::protocols::ftp::control) async fn abor(&mut self) -> Handled {
        match self.transfer.take() {
            Some(transfer) => {
                // Dropping the task closes the data connection and discards an open upload.
                transfer.abort();
                let _ = transfer.await;
                let ended = (426, "Connection closed; transfer aborted".to_string());
                Ok(Reply::SayTwice(ended, (226, "ABOR successful".to_string())))
            }
            None => {
                self.plan = None;
                Ok(Reply::say(226, "No transfer to abort"))
            }
        }
    }

    /// Takes the planned data connection for `work`, or says why there is none (the plan stays
    /// when only the protection level is wrong).
    fn start(&mut self, opening: String, flow: Flow, work: Work) -> Reply {
        if self.settings.config.require_tls
            && !self.protect_data
            && !self.settings.config.dangerous_allow_plaintext_login
        {
            return Reply::say(521, "Data connections must be protected: send PBSZ 0 and PROT P");
        }
        match self.plan.take() {
            Some(plan) => Reply::Transfer(Transfer { opening, plan, flow, work }),
            None => no_plan(),
        }
    }

    /// TLS for the next data connection, under PROT P.
    pub(in crate::protocols::ftp::control) fn data_tls(&self) -> Option<DataTls> {
        match (&self.settings.data_tls, &self.session) {
            (Some(configs), Some(session)) if self.protect_data => Some(DataTls {
                configs: configs.clone(),
                owners: Arc::clone(&self.settings.owners),
                user: session.user().to_string(),
                require_reuse: self.settings.config.require_tls_session_reuse,
            }),
            _ => None,
        }
    }

    /// Runs a started transfer as a task; the control loop replies when it ends.
    pub(in crate::protocols::ftp::control) fn spawn(&mut self, Transfer { plan, flow, work, .. }: Transfer) {
        let client = self.client_ip();
        let tls = self.data_tls();
        let timeout = self.settings.config.data_timeout;
        self.transfer = Some(tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            match data::connect(plan, client, tls.as_ref(), flow, timeout).await {
                Ok(stream) => {
                    // Per-phase timings, for finding stalls in the data-connection life cycle.
                    let connected = started.elapsed();
                    let outcome = work(stream).await;
                    tracing::debug!(
                        connect_us = connected.as_micros() as u64,
                        transfer_us = started.elapsed().saturating_sub(connected).as_micros() as u64,
                        code = outcome.0,
                        "data connection done"
                    );
                    outcome
                }
                // vsftpd's reply when `require_ssl_reuse` refuses a data connection.
                Err(ConnectError::NotResumed) => {
                    (522, "SSL connection failed: session reuse required".to_string())
                }
                Err(e) => (425, format!("Cannot open data connection: {e}")),
            }
        }));
    }
}

fn no_plan() -> Reply {
    Reply::say(425, "Use PASV or EPSV first")
}
