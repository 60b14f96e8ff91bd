//! One FTP control connection: the read loop and the dispatch of each command to its family
//! in `commands/` (RFC 959 with RFC 2228/4217 security, RFC 2389, 2428 and 3659 extensions).
//! Handlers return a [`Reply`] or a `SessionError`; [`Connection::answer`] is the one place
//! that writes a handler's reply, starts a transfer or closes. Every file operation goes
//! through the session API; this module only translates commands and replies.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::BufReader;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

mod commands;
mod stream;

use super::FtpSettings;
use super::command::{self, Command, Verb};
use super::data::{self, Plan};
use super::reply;
use super::tls_owner::OwnerToken;
use super::transfer::{ListFormat, Outcome};
use crate::net::ProxyPolicy;
use crate::protocols::Phase;
use crate::session::{ConnectionInfo, Session, SessionError, SessionFactory, VirtualPath};
use commands::files::Simple;
use commands::transfer::{StoreKind, Transfer};
use stream::{Control, Line};

/// Per-connection state.
struct Connection {
    settings: Arc<FtpSettings>,
    sessions: SessionFactory,
    info: ConnectionInfo,
    control: Control,
    /// The control socket's own address (passive listeners bind on its IP).
    local: SocketAddr,
    /// The address the client connected to (announced in PASV/EPSV when `passive_address` is
    /// empty): the balancer's when a PROXY header said so, else `local`.
    facing: SocketAddr,
    /// PROXY headers on this connection's passive data connections.
    data_proxy: ProxyPolicy,
    tls_active: bool,
    pending_user: Option<String>,
    session: Option<Arc<Session>>,
    failed_logins: u32,
    cwd: VirtualPath,
    binary: bool,
    rest: u64,
    rename_from: Option<VirtualPath>,
    protect_data: bool,
    /// The data connection the next transfer uses (PASV/EPSV/PORT/EPRT set it; the transfer
    /// takes it, once; ABOR drops it).
    plan: Option<Plan>,
    transfer: Option<JoinHandle<Outcome>>,
    epsv_only: bool,
    /// Stamped into this connection's TLS sessions; names its login to data connections.
    tls_owner: Option<OwnerToken>,
}

/// What a command handler answers; [`Connection::answer`] carries it out.
enum Reply {
    /// One reply; the next command follows.
    Say(u16, String),
    /// Two replies in a row: ABOR's for the transfer it ended, then its own.
    SayTwice((u16, String), (u16, String)),
    /// A last reply, then the connection closes.
    Bye(u16, String),
    /// `150`, then the transfer runs on the planned data connection.
    Transfer(Transfer),
    /// `234`, then the TLS handshake on this connection (AUTH TLS).
    StartTls(Arc<rustls::ServerConfig>),
}

impl Reply {
    fn say(code: u16, text: impl Into<String>) -> Self {
        Reply::Say(code, text.into())
    }
}

/// A handler's result: a failed session call becomes its reply code in `reply::for_error`.
type Handled = Result<Reply, SessionError>;

/// What the loop does after a command.
enum Next {
    Continue,
    Close,
}

type Io = std::io::Result<Next>;

/// How the control connection reached us, from the accept path.
pub struct Link {
    /// The address the client connected to (see [`Connection::facing`]).
    pub local: Option<SocketAddr>,
    pub data_proxy: ProxyPolicy,
}

/// Serves one control connection until QUIT, EOF, idle timeout or shutdown.
pub async fn run(
    stream: TcpStream,
    link: Link,
    info: ConnectionInfo,
    settings: Arc<FtpSettings>,
    sessions: SessionFactory,
    implicit: bool,
    mut phase: watch::Receiver<Phase>,
) {
    let Ok(local) = stream.local_addr() else { return };
    // Replies are written whole; none should wait for the ACK of the one before (150, then 226).
    let _ = stream.set_nodelay(true);
    let (control, tls_owner) = if implicit {
        let Some((control, owner)) = commands::tls::accept_implicit(stream, &settings, &info).await else {
            return;
        };
        (control, Some(owner))
    } else {
        (Control::Plain(BufReader::new(stream)), None)
    };
    let mut conn = Connection {
        settings,
        sessions,
        info,
        control,
        local,
        facing: link.local.unwrap_or(local),
        data_proxy: link.data_proxy,
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
                return self.answer(Reply::say(501, "Command is not valid UTF-8")).await;
            }
            Err(e) => return self.answer(Reply::say(500, format!("Syntax error: {e}"))).await,
        };
        // Only ABOR, STAT and NOOP overtake a running transfer; anything else waits for it.
        if !cmd.verb.overtakes_transfer() {
            self.settle_transfer().await?;
        }
        let reply = self.dispatch(cmd).await.unwrap_or_else(|e| {
            let (code, text) = reply::for_error(&e);
            Reply::Say(code, text)
        });
        self.answer(reply).await
    }

    /// Routes a command to its handler. Verbs above `(_, None)` are answered before login;
    /// the rest need a session and get it as an argument.
    async fn dispatch(&mut self, Command { verb, arg }: Command) -> Handled {
        match (verb, self.session.clone()) {
            (Verb::Other(name), _) => Ok(Reply::say(502, format!("Command {name} not implemented"))),
            (Verb::User, _) => self.user(&arg),
            (Verb::Pass, _) => self.pass(&arg).await,
            (Verb::Auth, _) => self.auth(&arg),
            (Verb::Pbsz, _) => self.pbsz(),
            (Verb::Prot, _) => self.prot(&arg),
            (Verb::Ccc, _) => self.ccc(),
            (Verb::Feat, _) => self.feat(),
            (Verb::Opts, _) => self.opts(&arg),
            (Verb::Syst, _) => self.syst(),
            (Verb::Noop, _) => self.noop(),
            (Verb::Help, _) => self.help(),
            (Verb::Quit, _) => self.quit(),
            (_, None) => Ok(Reply::say(530, "Please log in with USER and PASS")),
            (Verb::Abor, Some(_)) => self.abor().await,
            (Verb::Stat, Some(session)) => self.stat(&session, &arg).await,
            (Verb::Pwd, Some(_)) => self.pwd(),
            (Verb::Cwd, Some(session)) => self.cwd(&session, &arg).await,
            (Verb::Cdup, Some(session)) => self.cwd(&session, "..").await,
            (Verb::Type, Some(_)) => self.type_(&arg),
            (Verb::Mode, Some(_)) => self.mode(&arg),
            (Verb::Stru, Some(_)) => self.stru(&arg),
            (Verb::Allo, Some(_)) => self.allo(),
            (Verb::Rest, Some(_)) => self.rest(&arg),
            (Verb::Pasv, Some(_)) => self.pasv().await,
            (Verb::Epsv, Some(_)) => self.epsv(&arg).await,
            (Verb::Port, Some(_)) => self.port(data::parse_port(&arg)),
            (Verb::Eprt, Some(_)) => self.port(data::parse_eprt(&arg)),
            (Verb::Retr, Some(session)) => self.retr(&session, &arg).await,
            (Verb::Stor, Some(session)) => self.store(&session, &arg, StoreKind::Replace).await,
            (Verb::Appe, Some(session)) => self.store(&session, &arg, StoreKind::Append).await,
            (Verb::Stou, Some(session)) => self.store(&session, &arg, StoreKind::Unique).await,
            (Verb::List, Some(session)) => self.list(session, &arg, ListFormat::Long).await,
            (Verb::Nlst, Some(session)) => self.list(session, &arg, ListFormat::Names).await,
            (Verb::Mlsd, Some(session)) => self.list(session, &arg, ListFormat::Facts).await,
            (Verb::Mlst, Some(session)) => self.mlst(&session, &arg).await,
            (Verb::Size, Some(session)) => self.size(&session, &arg).await,
            (Verb::Mdtm, Some(session)) => self.mdtm(&session, &arg).await,
            (Verb::Mfmt, Some(session)) => self.mfmt(&session, &arg).await,
            (Verb::Dele, Some(session)) => self.simple(&session, &arg, Simple::Delete).await,
            (Verb::Mkd, Some(session)) => self.simple(&session, &arg, Simple::Mkdir).await,
            (Verb::Rmd, Some(session)) => self.simple(&session, &arg, Simple::Rmdir).await,
            (Verb::Rnfr, Some(session)) => self.rnfr(&session, &arg).await,
            (Verb::Rnto, Some(session)) => self.rnto(&session, &arg).await,
        }
    }

    /// Writes a handler's reply and does what it asks next.
    async fn answer(&mut self, reply: Reply) -> Io {
        match reply {
            Reply::Say(code, text) => self.reply(code, &text).await?,
            Reply::SayTwice((code, text), (then_code, then_text)) => {
                self.reply(code, &text).await?;
                self.reply(then_code, &then_text).await?;
            }
            Reply::Bye(code, text) => {
                self.reply(code, &text).await?;
                return Ok(Next::Close);
            }
            Reply::Transfer(mut transfer) => {
                // curl starts its TLS handshake before the 150: finish it first (data::open_early).
                let timeout = self.settings.config.data_timeout;
                let tls = self.data_tls();
                transfer.plan =
                    data::open_early(transfer.plan, self.client_ip(), tls.as_ref(), timeout).await;
                self.reply(150, &transfer.opening).await?;
                self.spawn(transfer);
            }
            Reply::StartTls(config) => return self.start_tls(config).await,
        }
        Ok(Next::Continue)
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
