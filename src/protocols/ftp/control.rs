//! One FTP control connection: the session state machine (RFC 959 with RFC 2228/4217 security,
//! RFC 2389, 2428 and 3659 extensions). Every file operation goes through the session API; this
//! module only translates commands and replies.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

mod channel;
mod files;
mod login;

use super::FtpSettings;
use super::command;
use super::data::{self, Plan};
use super::reply;
use super::tls_owner::OwnerToken;
use super::tls_sessions::{Handshake, Tracked};
use super::transfer::{ListFormat, Outcome};
use crate::protocols::Phase;
use crate::session::{ConnectionInfo, Session, SessionError, SessionFactory, VirtualPath};
use files::{Simple, StoreKind};

/// Every verb this server answers; others get 502 whatever the login state.
const KNOWN: &[&str] = &[
    "USER", "PASS", "AUTH", "PBSZ", "PROT", "CCC", "FEAT", "SYST", "NOOP", "HELP", "QUIT", "OPTS", "ABOR",
    "STAT", "PWD", "CWD", "CDUP", "TYPE", "MODE", "STRU", "ALLO", "REST", "PASV", "EPSV", "PORT", "EPRT",
    "RETR", "STOR", "APPE", "STOU", "LIST", "NLST", "MLSD", "MLST", "SIZE", "MDTM", "MFMT", "DELE", "MKD",
    "RMD", "RNFR", "RNTO",
];

/// Longest command line accepted (a 4 KiB path plus verb and slack).
const MAX_LINE: usize = 8192;

enum Control {
    Plain(BufReader<TcpStream>),
    Tls(Box<BufReader<TlsStream<TcpStream>>>),
    Closed,
}

enum Line {
    Complete,
    TooLong,
    Eof,
}

/// Reads one line into `buf` (without CR LF). Cancel-safe: bytes read so far stay in `buf`.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    discarding: &mut bool,
) -> std::io::Result<Line> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(Line::Eof);
        }
        if let Some(end) = available.iter().position(|&b| b == b'\n') {
            if !*discarding {
                buf.extend_from_slice(&available[..end]);
            }
            reader.consume(end + 1);
            if std::mem::take(discarding) {
                buf.clear();
                return Ok(Line::TooLong);
            }
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(Line::Complete);
        }
        let n = available.len();
        if !*discarding {
            buf.extend_from_slice(available);
        }
        reader.consume(n);
        if buf.len() > MAX_LINE {
            buf.clear();
            *discarding = true;
        }
    }
}

impl Control {
    async fn read_line(&mut self, buf: &mut Vec<u8>, discarding: &mut bool) -> std::io::Result<Line> {
        match self {
            Control::Plain(r) => read_line(r, buf, discarding).await,
            Control::Tls(r) => read_line(r.as_mut(), buf, discarding).await,
            Control::Closed => Ok(Line::Eof),
        }
    }

    async fn write(&mut self, text: &str) -> std::io::Result<()> {
        match self {
            Control::Plain(r) => {
                r.get_mut().write_all(text.as_bytes()).await?;
                r.get_mut().flush().await
            }
            Control::Tls(r) => {
                r.get_mut().write_all(text.as_bytes()).await?;
                r.get_mut().flush().await
            }
            Control::Closed => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    async fn shutdown(&mut self) {
        let _ = match self {
            Control::Plain(r) => r.get_mut().shutdown().await,
            Control::Tls(r) => r.get_mut().shutdown().await,
            Control::Closed => Ok(()),
        };
    }
}

/// Per-connection state.
struct Connection {
    settings: Arc<FtpSettings>,
    sessions: SessionFactory,
    info: ConnectionInfo,
    control: Control,
    local: SocketAddr,
    tls_active: bool,
    pending_user: Option<String>,
    session: Option<Arc<Session>>,
    failed_logins: u32,
    cwd: VirtualPath,
    binary: bool,
    rest: u64,
    rename_from: Option<VirtualPath>,
    protect_data: bool,
    plan: Option<Plan>,
    transfer: Option<JoinHandle<Outcome>>,
    epsv_only: bool,
    /// Stamped into this connection's TLS sessions; names its login to data connections.
    tls_owner: Option<OwnerToken>,
}

/// What the loop does after a command.
enum Next {
    Continue,
    Close,
}

type Io = std::io::Result<Next>;

/// Serves one control connection until QUIT, EOF, idle timeout or shutdown.
pub async fn run(
    stream: TcpStream,
    info: ConnectionInfo,
    settings: Arc<FtpSettings>,
    sessions: SessionFactory,
    implicit: bool,
    mut phase: watch::Receiver<Phase>,
) {
    let Ok(local) = stream.local_addr() else { return };
    // Replies are written whole; none should wait for the ACK of the one before (150, then 226).
    let _ = stream.set_nodelay(true);
    let mut tls_owner = None;
    let control = if implicit {
        let Some(tls) = &settings.tls else { return };
        let owner = tls_owner.insert(settings.owners.issue());
        let handshake = Tracked::new(
            TlsAcceptor::from(Arc::clone(tls)).accept(stream),
            Handshake::control(owner.token()),
        );
        match tokio::time::timeout(settings.config.data_timeout, handshake).await {
            Ok(Ok(tls)) => Control::Tls(Box::new(BufReader::new(tls))),
            Ok(Err(e)) => {
                tracing::debug!(peer = %info.peer, error = %e, "implicit FTPS handshake failed");
                return;
            }
            Err(_) => return,
        }
    } else {
        Control::Plain(BufReader::new(stream))
    };
    let mut conn = Connection {
        settings,
        sessions,
        info,
        control,
        local,
        tls_active: implicit,
        pending_user: None,
        session: None,
        failed_logins: 0,
        cwd: VirtualPath::root(),
        binary: true,
        rest: 0,
        rename_from: None,
        // Implicit FTPS clients expect protected data by default.
        protect_data: implicit,
        plan: None,
        transfer: None,
        epsv_only: false,
        tls_owner,
    };
    let banner = conn.settings.config.banner.clone();
    if conn.reply(220, &banner).await.is_err() {
        return;
    }
    conn.serve(&mut phase).await;
    if let Some(transfer) = conn.transfer.take() {
        transfer.abort();
    }
    conn.control.shutdown().await;
}

impl Connection {
    async fn reply(&mut self, code: u16, text: &str) -> std::io::Result<()> {
        self.control.write(&reply::format(code, text)).await
    }

    async fn serve(&mut self, phase: &mut watch::Receiver<Phase>) {
        let mut buf = Vec::new();
        let mut discarding = false;
        let idle = self.settings.config.idle_timeout;
        loop {
            let idle_timer = tokio::time::sleep(idle);
            let next = tokio::select! {
                line = self.control.read_line(&mut buf, &mut discarding) => match line {
                    Ok(Line::Complete) => {
                        let line = std::mem::take(&mut buf);
                        self.command(&line).await
                    }
                    Ok(Line::TooLong) => self.reply(500, "Command line too long").await.map(|_| Next::Continue),
                    Ok(Line::Eof) | Err(_) => Ok(Next::Close),
                },
                outcome = wait(&mut self.transfer), if self.transfer.is_some() => {
                    self.transfer = None;
                    self.reply(outcome.0, &outcome.1).await.map(|_| Next::Continue)
                }
                _ = idle_timer, if self.transfer.is_none() => {
                    let _ = self.reply(421, "Idle timeout; closing the control connection").await;
                    Ok(Next::Close)
                }
                changed = phase.changed() => {
                    if changed.is_err() || *phase.borrow() >= Phase::Closing {
                        let _ = self.reply(421, "Server shutting down").await;
                        Ok(Next::Close)
                    } else {
                        Ok(Next::Continue)
                    }
                }
            };
            match next {
                Ok(Next::Continue) => {}
                Ok(Next::Close) | Err(_) => return,
            }
        }
    }

    /// Finishes a running transfer (replying for it) before a command that must follow it.
    async fn settle_transfer(&mut self) -> std::io::Result<()> {
        if let Some(handle) = self.transfer.as_mut() {
            let outcome = wait_handle(handle).await;
            self.transfer = None;
            self.reply(outcome.0, &outcome.1).await?;
        }
        Ok(())
    }

    async fn command(&mut self, line: &[u8]) -> Io {
        let cmd = match command::parse(line) {
            Ok(cmd) => cmd,
            Err(command::ParseError::NotUtf8) => {
                self.reply(501, "Command is not valid UTF-8").await?;
                return Ok(Next::Continue);
            }
            Err(e) => {
                self.reply(500, &format!("Syntax error: {e}")).await?;
                return Ok(Next::Continue);
            }
        };
        // Only ABOR, STAT and NOOP overtake a running transfer; anything else waits for it.
        if !matches!(cmd.verb.as_str(), "ABOR" | "STAT" | "NOOP") {
            self.settle_transfer().await?;
        }
        let logged_in = self.session.is_some();
        if !KNOWN.contains(&cmd.verb.as_str()) {
            return self.done(502, &format!("Command {} not implemented", cmd.verb)).await;
        }
        match cmd.verb.as_str() {
            "USER" => self.user(&cmd).await,
            "PASS" => self.pass(&cmd).await,
            "AUTH" => self.auth(&cmd).await,
            "PBSZ" => self.pbsz(&cmd).await,
            "PROT" => self.prot(&cmd).await,
            "CCC" => self.done(534, "CCC refused: the control connection stays protected").await,
            "FEAT" => self.feat().await,
            "SYST" => self.done(215, "UNIX Type: L8").await,
            "NOOP" => self.done(200, "OK").await,
            "HELP" => self.done(214, "Commands: USER PASS AUTH PBSZ PROT FEAT OPTS SYST PWD CWD CDUP LIST NLST MLSD MLST\nSIZE MDTM MFMT TYPE MODE STRU RETR STOR STOU APPE REST RNFR RNTO DELE MKD RMD\nABOR NOOP QUIT STAT EPSV PASV EPRT PORT\nHelp OK").await,
            "QUIT" => {
                self.reply(221, "Goodbye").await?;
                Ok(Next::Close)
            }
            "OPTS" => self.opts(&cmd).await,
            _ if !logged_in => self.done(530, "Please log in with USER and PASS").await,
            "ABOR" => self.abor().await,
            "STAT" => self.stat(&cmd).await,
            "PWD" => {
                let text = format!("{} is the current directory", reply::quote_path(self.cwd.as_str()));
                self.done(257, &text).await
            }
            "CWD" => self.cwd(&cmd.arg).await,
            "CDUP" => self.cwd("..").await,
            "TYPE" => self.type_(&cmd).await,
            "MODE" => {
                let ok = cmd.arg.trim().eq_ignore_ascii_case("S");
                if ok { self.done(200, "Mode set to S").await } else { self.done(504, "Only stream mode (S) is supported").await }
            }
            "STRU" => {
                let ok = cmd.arg.trim().eq_ignore_ascii_case("F");
                if ok { self.done(200, "Structure set to F").await } else { self.done(504, "Only file structure (F) is supported").await }
            }
            "ALLO" => self.done(202, "No storage allocation necessary").await,
            "REST" => self.rest(&cmd).await,
            "PASV" => self.pasv().await,
            "EPSV" => self.epsv(&cmd).await,
            "PORT" => self.port(data::parse_port(&cmd.arg)).await,
            "EPRT" => self.port(data::parse_eprt(&cmd.arg)).await,
            "RETR" => self.retr(&cmd).await,
            "STOR" => self.store(&cmd.arg, StoreKind::Replace).await,
            "APPE" => self.store(&cmd.arg, StoreKind::Append).await,
            "STOU" => self.store(&cmd.arg, StoreKind::Unique).await,
            "LIST" => self.list(&cmd, ListFormat::Long).await,
            "NLST" => self.list(&cmd, ListFormat::Names).await,
            "MLSD" => self.list(&cmd, ListFormat::Facts).await,
            "MLST" => self.mlst(&cmd).await,
            "SIZE" => self.size(&cmd).await,
            "MDTM" => self.mdtm(&cmd).await,
            "MFMT" => self.mfmt(&cmd).await,
            "DELE" => self.simple(&cmd.arg, Simple::Delete).await,
            "MKD" => self.simple(&cmd.arg, Simple::Mkdir).await,
            "RMD" => self.simple(&cmd.arg, Simple::Rmdir).await,
            "RNFR" => self.rnfr(&cmd).await,
            "RNTO" => self.rnto(&cmd).await,
            _ => self.done(502, &format!("Command {} not implemented", cmd.verb)).await,
        }
    }

    async fn done(&mut self, code: u16, text: &str) -> Io {
        self.reply(code, text).await?;
        Ok(Next::Continue)
    }

    async fn fail(&mut self, e: &SessionError) -> Io {
        let (code, text) = reply::for_error(e);
        self.done(code, &text).await
    }

    fn session(&self) -> Option<Arc<Session>> {
        self.session.clone()
    }

    fn path(&self, arg: &str) -> Result<VirtualPath, SessionError> {
        match &self.session {
            Some(session) => session.resolve(&self.cwd, arg),
            None => Err(SessionError::Unsupported("not logged in")),
        }
    }
}

async fn wait(transfer: &mut Option<JoinHandle<Outcome>>) -> Outcome {
    match transfer.as_mut() {
        Some(handle) => wait_handle(handle).await,
        None => std::future::pending().await,
    }
}

async fn wait_handle(handle: &mut JoinHandle<Outcome>) -> Outcome {
    match handle.await {
        Ok(outcome) => outcome,
        Err(e) if e.is_cancelled() => (426, "Transfer aborted".into()),
        Err(_) => (451, "Transfer failed: internal error".into()),
    }
}
