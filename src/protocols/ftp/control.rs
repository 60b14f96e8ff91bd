//! One FTP control connection: the session state machine (RFC 959 with RFC 2228/4217 security,
//! RFC 2389, 2428 and 3659 extensions). Every file operation goes through the session API; this
//! module only translates commands and replies.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::FtpSettings;
use super::command::{self, Command};
use super::data::{self, Plan};
use super::reply;
use super::transfer::{self, ListFormat, Outcome};
use crate::protocols::Phase;
use crate::session::{
    ConnectionInfo, Credentials, EntryKind, OpenWrite, Session, SessionError, SessionFactory, SetAttrs,
    VirtualPath,
};
use crate::types::{Protocol, Secret};

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
    let control = if implicit {
        let Some(tls) = &settings.tls else { return };
        let handshake = TlsAcceptor::from(Arc::clone(tls)).accept(stream);
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

    fn tls_required(&self) -> bool {
        self.settings.config.require_tls
            && !self.tls_active
            && !self.settings.config.dangerous_allow_plaintext_login
    }

    async fn user(&mut self, cmd: &Command) -> Io {
        if self.session.is_some() {
            return self.done(503, "Already logged in").await;
        }
        if self.tls_required() {
            return self.done(534, "TLS required: send AUTH TLS before logging in").await;
        }
        let name = cmd.arg.trim();
        if name.is_empty() {
            return self.done(501, "USER needs a user name").await;
        }
        self.pending_user = Some(name.to_string());
        self.done(331, &format!("Password required for {name}")).await
    }

    async fn pass(&mut self, cmd: &Command) -> Io {
        if self.session.is_some() {
            return self.done(503, "Already logged in").await;
        }
        if self.tls_required() {
            return self.done(534, "TLS required: send AUTH TLS before logging in").await;
        }
        let Some(user) = self.pending_user.take() else {
            return self.done(503, "Send USER first").await;
        };
        let started = tokio::time::Instant::now();
        self.info.protocol = if self.tls_active { Protocol::Ftps } else { Protocol::Ftp };
        let credentials = Credentials::Password(Secret::new(cmd.arg.clone()));
        let identity = self.sessions.login(&self.info, &user, &credentials).await;
        let opened = match identity {
            Ok(identity) => self.sessions.open(&identity, &self.info, self.info.protocol).await.ok(),
            Err(_) => None,
        };
        match opened {
            Some(session) => {
                self.session = Some(Arc::new(session));
                self.done(230, "User logged in").await
            }
            None => {
                // Every refusal takes the same time, whatever its reason.
                tokio::time::sleep_until(started + self.settings.rejection_delay).await;
                self.failed_logins += 1;
                if self.failed_logins >= self.settings.config.max_login_attempts {
                    self.reply(421, "Too many failed logins; closing").await?;
                    return Ok(Next::Close);
                }
                self.done(530, "Login incorrect").await
            }
        }
    }

    async fn auth(&mut self, cmd: &Command) -> Io {
        let mechanism = cmd.arg.trim().to_ascii_uppercase();
        if self.tls_active {
            return self.done(503, "TLS is already active").await;
        }
        let Some(tls) = self.settings.tls.clone() else {
            return self.done(502, "TLS is not configured").await;
        };
        if mechanism != "TLS" && mechanism != "TLS-C" && mechanism != "SSL" {
            return self.done(504, "Only AUTH TLS is supported").await;
        }
        self.reply(234, "AUTH TLS successful").await?;
        let Control::Plain(reader) = std::mem::replace(&mut self.control, Control::Closed) else {
            return Ok(Next::Close);
        };
        if !reader.buffer().is_empty() {
            // Commands pipelined behind AUTH would be read in clear text: refuse (RFC 4217 §10).
            return Ok(Next::Close);
        }
        let handshake = TlsAcceptor::from(tls).accept(reader.into_inner());
        match tokio::time::timeout(self.settings.config.data_timeout, handshake).await {
            Ok(Ok(stream)) => {
                self.control = Control::Tls(Box::new(BufReader::new(stream)));
                self.tls_active = true;
                Ok(Next::Continue)
            }
            _ => Ok(Next::Close),
        }
    }

    async fn pbsz(&mut self, _cmd: &Command) -> Io {
        if !self.tls_active {
            return self.done(503, "PBSZ needs AUTH TLS first").await;
        }
        self.done(200, "PBSZ=0").await
    }

    async fn prot(&mut self, cmd: &Command) -> Io {
        if !self.tls_active {
            return self.done(503, "PROT needs AUTH TLS first").await;
        }
        match cmd.arg.trim().to_ascii_uppercase().as_str() {
            "P" => {
                self.protect_data = true;
                self.done(200, "Protection level set to Private").await
            }
            "C" if self.settings.config.require_tls => {
                self.done(534, "Data connections must be protected (PROT P)").await
            }
            "C" => {
                self.protect_data = false;
                self.done(200, "Protection level set to Clear").await
            }
            _ => self.done(536, "Only PROT P and PROT C are supported").await,
        }
    }

    async fn feat(&mut self) -> Io {
        let mut lines = vec!["Features:".to_string()];
        if !self.tls_active && self.settings.tls.is_some() {
            lines.push("AUTH TLS".into());
        }
        lines.extend(
            [
                "PBSZ",
                "PROT",
                "UTF8",
                "MLST type*;size*;modify*;perm*;",
                "SIZE",
                "MDTM",
                "MFMT",
                "REST STREAM",
                "EPSV",
                "TVFS",
            ]
            .map(String::from),
        );
        if self.settings.config.active_mode {
            lines.push("EPRT".into());
        }
        lines.push("End".into());
        self.done(211, &lines.join("\n")).await
    }

    async fn opts(&mut self, cmd: &Command) -> Io {
        let arg = cmd.arg.trim().to_ascii_uppercase();
        if arg.starts_with("UTF8") || arg.starts_with("UTF-8") {
            self.done(200, "UTF8 is always on").await
        } else if arg.starts_with("MLST") {
            self.done(200, "MLST OPTS type;size;modify;perm;").await
        } else {
            self.done(501, "Unknown option").await
        }
    }

    async fn type_(&mut self, cmd: &Command) -> Io {
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

    async fn rest(&mut self, cmd: &Command) -> Io {
        match cmd.arg.trim().parse::<u64>() {
            Ok(offset) => {
                self.rest = offset;
                self.done(350, &format!("Restarting at {offset}. Send STOR or RETR")).await
            }
            Err(_) => self.done(501, "REST needs a byte offset").await,
        }
    }

    async fn cwd(&mut self, arg: &str) -> Io {
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

    /// The local IP announced for passive mode.
    async fn passive_ip(&self) -> Option<IpAddr> {
        match &self.settings.config.passive_address {
            None => Some(self.local.ip().to_canonical()),
            Some(name) => match name.parse::<IpAddr>() {
                Ok(ip) => Some(ip),
                // A DNS name is resolved per connection, so a changing address is followed.
                Err(_) => tokio::net::lookup_host((name.as_str(), 0))
                    .await
                    .ok()?
                    .map(|a| a.ip())
                    .find(|ip| ip.is_ipv4() || self.local.is_ipv6()),
            },
        }
    }

    async fn open_passive(&mut self) -> Result<u16, std::io::Error> {
        let listener = data::bind_passive(self.local.ip(), self.settings.config.passive_ports).await?;
        let port = listener.local_addr()?.port();
        self.plan = Some(Plan::Passive(listener));
        Ok(port)
    }

    async fn pasv(&mut self) -> Io {
        if self.epsv_only {
            return self.done(503, "EPSV ALL is in force; use EPSV").await;
        }
        let announced = match self.passive_ip().await {
            Some(IpAddr::V4(ip)) => ip,
            _ => return self.done(425, "PASV needs IPv4; use EPSV").await,
        };
        match self.open_passive().await {
            Ok(port) => self.done(227, &data::pasv_reply(announced, port)).await,
            Err(e) => self.done(425, &format!("Cannot open a passive port: {e}")).await,
        }
    }

    async fn epsv(&mut self, cmd: &Command) -> Io {
        if cmd.arg.trim().eq_ignore_ascii_case("ALL") {
            self.epsv_only = true;
            return self.done(200, "EPSV ALL ok").await;
        }
        match self.open_passive().await {
            Ok(port) => self.done(229, &format!("Entering Extended Passive Mode (|||{port}|)")).await,
            Err(e) => self.done(425, &format!("Cannot open a passive port: {e}")).await,
        }
    }

    async fn port(&mut self, target: Option<SocketAddr>) -> Io {
        if !self.settings.config.active_mode {
            return self.done(502, "Active mode is disabled; use PASV or EPSV").await;
        }
        if self.epsv_only {
            return self.done(503, "EPSV ALL is in force").await;
        }
        let Some(target) = target else { return self.done(501, "Malformed address").await };
        let client = self.info.peer.0.map(|a| a.ip().to_canonical());
        // Only back to the client itself: never an FTP bounce to a third host (RFC 2577).
        if Some(target.ip().to_canonical()) != client || target.port() < 1024 {
            return self.done(504, "Data connections go only to your own address (port 1024 or above)").await;
        }
        self.plan = Some(Plan::Active(target));
        self.done(200, "Active data connection accepted").await
    }

    /// Takes the data plan for a transfer, or says why there is none.
    async fn take_plan(&mut self) -> Result<Plan, std::io::Error> {
        if self.settings.config.require_tls
            && !self.protect_data
            && !self.settings.config.dangerous_allow_plaintext_login
        {
            self.reply(521, "Data connections must be protected: send PBSZ 0 and PROT P").await?;
            return Err(std::io::ErrorKind::PermissionDenied.into());
        }
        match self.plan.take() {
            Some(plan) => Ok(plan),
            None => {
                self.reply(425, "Use PASV or EPSV first").await?;
                Err(std::io::ErrorKind::NotConnected.into())
            }
        }
    }

    fn spawn<F>(&mut self, work: F)
    where
        F: FnOnce(data::DataStream) -> std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send>>
            + Send
            + 'static,
    {
        // Unreachable when `take_plan` succeeded; kept for the type.
        let Some(plan) = self.plan.take() else { return };
        let client = self.info.peer.0.map(|a| a.ip()).unwrap_or(self.local.ip());
        let tls = if self.protect_data { self.settings.data_tls.clone() } else { None };
        let timeout = self.settings.config.data_timeout;
        self.transfer = Some(tokio::spawn(async move {
            match data::connect(plan, client, tls.as_ref(), timeout).await {
                Ok(stream) => work(stream).await,
                Err(e) => (425, format!("Cannot open data connection: {e}")),
            }
        }));
    }

    /// Checks the plan, says 150 and starts `work` on the data connection.
    async fn start<F>(&mut self, opening: &str, work: F) -> Io
    where
        F: FnOnce(data::DataStream) -> std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send>>
            + Send
            + 'static,
    {
        let plan = match self.take_plan().await {
            Ok(plan) => plan,
            Err(_) => return Ok(Next::Continue),
        };
        self.plan = Some(plan);
        self.reply(150, opening).await?;
        self.spawn(work);
        Ok(Next::Continue)
    }

    async fn retr(&mut self, cmd: &Command) -> Io {
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

    async fn store(&mut self, arg: &str, kind: StoreKind) -> Io {
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
    fn list_target(&self, arg: &str) -> Result<VirtualPath, SessionError> {
        let words: Vec<&str> = arg.split(' ').collect();
        let rest: Vec<&str> = words.iter().copied().skip_while(|w| w.starts_with('-')).collect();
        self.path(&rest.join(" "))
    }

    async fn list(&mut self, cmd: &Command, format: ListFormat) -> Io {
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

    async fn mlst(&mut self, cmd: &Command) -> Io {
        let Some(session) = self.session() else { return Ok(Next::Close) };
        let path = match self.path(&cmd.arg) {
            Ok(path) => path,
            Err(e) => return self.fail(&e).await,
        };
        match session.stat(&path).await {
            Ok(meta) => {
                let facts = super::listing::mlsx_facts(path.as_str(), &meta);
                self.done(250, &format!("Listing {path}\n{facts}\nEnd")).await
            }
            Err(e) => self.fail(&e).await,
        }
    }

    async fn size(&mut self, cmd: &Command) -> Io {
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

    async fn mdtm(&mut self, cmd: &Command) -> Io {
        let Some(session) = self.session() else { return Ok(Next::Close) };
        let path = match self.path(&cmd.arg) {
            Ok(path) => path,
            Err(e) => return self.fail(&e).await,
        };
        match session.stat(&path).await {
            Ok(meta) => self.done(213, &super::listing::timestamp(meta.modified)).await,
            Err(e) => self.fail(&e).await,
        }
    }

    async fn mfmt(&mut self, cmd: &Command) -> Io {
        let Some(session) = self.session() else { return Ok(Next::Close) };
        let Some((stamp, name)) = cmd.arg.split_once(' ') else {
            return self.done(501, "MFMT needs a time and a path").await;
        };
        let Some(time) = super::listing::parse_timestamp(stamp) else {
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

    async fn simple(&mut self, arg: &str, op: Simple) -> Io {
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

    async fn rnfr(&mut self, cmd: &Command) -> Io {
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

    async fn rnto(&mut self, cmd: &Command) -> Io {
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

    async fn abor(&mut self) -> Io {
        match self.transfer.take() {
            Some(transfer) => {
                // Dropping the task closes the data connection and discards an open upload.
                transfer.abort();
                let _ = transfer.await;
                self.reply(426, "Connection closed; transfer aborted").await?;
                self.done(226, "ABOR successful").await
            }
            None => {
                self.plan = None;
                self.done(226, "No transfer to abort").await
            }
        }
    }

    async fn stat(&mut self, cmd: &Command) -> Io {
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
                lines.push(
                    super::listing::list_line(path.name(), &meta, session.user(), now).trim_end().to_string(),
                );
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
                            super::listing::list_line(&name, &meta, session.user(), now)
                                .trim_end()
                                .to_string()
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
enum StoreKind {
    Replace,
    Append,
    Unique,
}

#[derive(Debug, Clone, Copy)]
enum Simple {
    Delete,
    Mkdir,
    Rmdir,
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
