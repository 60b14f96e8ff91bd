//! Security commands: AUTH TLS, PBSZ, PROT and CCC (RFC 2228 §3, RFC 4217 §4-§9), and the
//! handshake that turns the control connection into TLS after `234`.

use std::sync::Arc;

use tokio::io::BufReader;
use tokio_rustls::TlsAcceptor;

use tokio::net::TcpStream;

use crate::protocols::ftp::FtpSettings;
use crate::protocols::ftp::control::stream::Control;
use crate::protocols::ftp::control::{Connection, Handled, Io, Next, Reply};
use crate::protocols::ftp::tls_owner::OwnerToken;
use crate::protocols::ftp::tls_sessions::{Handshake, Tracked};
use crate::session::ConnectionInfo;

/// Implicit FTPS (port 990 style): TLS from the first byte, before the banner. `None` when TLS
/// is not configured or the handshake fails or times out.
pub(in crate::protocols::ftp::control) async fn accept_implicit(
    stream: TcpStream,
    settings: &FtpSettings,
    info: &ConnectionInfo,
) -> Option<(Control, OwnerToken)> {
    let tls = settings.tls.as_ref()?;
    let owner = settings.owners.issue();
    let handshake =
        Tracked::new(TlsAcceptor::from(Arc::clone(tls)).accept(stream), Handshake::control(owner.token()));
    match tokio::time::timeout(settings.config.data_timeout, handshake).await {
        Ok(Ok(tls)) => Some((Control::Tls(Box::new(BufReader::new(tls))), owner)),
        Ok(Err(e)) => {
            tracing::debug!(peer = %info.peer, error = %e, "implicit FTPS handshake failed");
            None
        }
        Err(_) => None,
    }
}

impl Connection {
    pub(in crate::protocols::ftp::control) fn tls_required(&self) -> bool {
        self.settings.config.require_tls
            && !self.tls_active
            && !self.settings.config.dangerous_allow_plaintext_login
    }

    pub(in crate::protocols::ftp::control) fn auth(&mut self, arg: &str) -> Handled {
        let mechanism = arg.trim().to_ascii_uppercase();
        if self.tls_active {
            return Ok(Reply::say(503, "TLS is already active"));
        }
        let Some(tls) = self.settings.tls.clone() else {
            return Ok(Reply::say(502, "TLS is not configured"));
        };
        if mechanism != "TLS" && mechanism != "TLS-C" && mechanism != "SSL" {
            return Ok(Reply::say(504, "Only AUTH TLS is supported"));
        }
        Ok(Reply::StartTls(tls))
    }

    /// Says `234` and runs the TLS handshake on the control connection; closes on failure.
    pub(in crate::protocols::ftp::control) async fn start_tls(
        &mut self,
        tls: Arc<rustls::ServerConfig>,
    ) -> Io {
        self.reply(234, "AUTH TLS successful").await?;
        let Control::Plain(reader) = std::mem::replace(&mut self.control, Control::Closed) else {
            return Ok(Next::Close);
        };
        if !reader.buffer().is_empty() {
            // Commands pipelined behind AUTH would be read in clear text: refuse (RFC 4217 §10).
            return Ok(Next::Close);
        }
        let owner = self.tls_owner.insert(self.settings.owners.issue());
        if let Some(session) = &self.session {
            owner.bind(session.user());
        }
        let handshake = Tracked::new(
            TlsAcceptor::from(tls).accept(reader.into_inner()),
            Handshake::control(owner.token()),
        );
        match tokio::time::timeout(self.settings.config.data_timeout, handshake).await {
            Ok(Ok(stream)) => {
                self.control = Control::Tls(Box::new(BufReader::new(stream)));
                self.tls_active = true;
                Ok(Next::Continue)
            }
            _ => Ok(Next::Close),
        }
    }

    pub(in crate::protocols::ftp::control) fn pbsz(&self) -> Handled {
        if !self.tls_active {
            return Ok(Reply::say(503, "PBSZ needs AUTH TLS first"));
        }
        Ok(Reply::say(200, "PBSZ=0"))
    }

    pub(in crate::protocols::ftp::control) fn prot(&mut self, arg: &str) -> Handled {
        if !self.tls_active {
            return Ok(Reply::say(503, "PROT needs AUTH TLS first"));
        }
        match arg.trim().to_ascii_uppercase().as_str() {
            "P" => {
                self.protect_data = true;
                Ok(Reply::say(200, "Protection level set to Private"))
            }
            "C" if self.settings.config.require_tls => {
                Ok(Reply::say(534, "Data connections must be protected (PROT P)"))
            }
            "C" => {
                self.protect_data = false;
                Ok(Reply::say(200, "Protection level set to Clear"))
            }
            _ => Ok(Reply::say(536, "Only PROT P and PROT C are supported")),
        }
    }

    /// RFC 4217 §6: a server may refuse to drop TLS on the control connection.
    pub(in crate::protocols::ftp::control) fn ccc(&self) -> Handled {
        Ok(Reply::say(534, "CCC refused: the control connection stays protected"))
    }
}
