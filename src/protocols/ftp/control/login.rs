//! Login and security commands: USER, PASS, AUTH TLS, PBSZ, PROT, FEAT and OPTS.

use std::sync::Arc;

use tokio::io::BufReader;
use tokio_rustls::TlsAcceptor;

use super::{Connection, Control, Io, Next};
use crate::protocols::ftp::command::Command;
use crate::protocols::ftp::tls_sessions::{Handshake, Tracked};
use crate::session::Credentials;
use crate::types::{Protocol, Secret};

impl Connection {
    pub(super) fn tls_required(&self) -> bool {
        self.settings.config.require_tls
            && !self.tls_active
            && !self.settings.config.dangerous_allow_plaintext_login
    }

    pub(super) async fn user(&mut self, cmd: &Command) -> Io {
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

    pub(super) async fn pass(&mut self, cmd: &Command) -> Io {
        if self.session.is_some() {
            return self.done(503, "Already logged in").await;
        }
        if self.tls_required() {
            return self.done(534, "TLS required: send AUTH TLS before logging in").await;
        }
        let Some(user) = self.pending_user.take() else {
            return self.done(503, "Send USER first").await;
        };
        self.info.protocol = if self.tls_active { Protocol::Ftps } else { Protocol::Ftp };
        let credentials = Credentials::Password(Secret::new(cmd.arg.clone()));
        let identity = self.sessions.login(&self.info, &user, &credentials).await;
        let opened = match identity {
            Ok(identity) => self.sessions.open(&identity, &self.info, self.info.protocol).await.ok(),
            Err(_) => None,
        };
        match opened {
            Some(session) => {
                if let Some(owner) = &self.tls_owner {
                    owner.bind(session.user());
                }
                self.session = Some(Arc::new(session));
                self.done(230, "User logged in").await
            }
            None => {
                // The login already took `auth.rejection_delay` (session::login's rule).
                self.failed_logins += 1;
                if self.failed_logins >= self.settings.config.max_login_attempts {
                    self.reply(421, "Too many failed logins; closing").await?;
                    return Ok(Next::Close);
                }
                self.done(530, "Login incorrect").await
            }
        }
    }

    pub(super) async fn auth(&mut self, cmd: &Command) -> Io {
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

    pub(super) async fn pbsz(&mut self, _cmd: &Command) -> Io {
        if !self.tls_active {
            return self.done(503, "PBSZ needs AUTH TLS first").await;
        }
        self.done(200, "PBSZ=0").await
    }

    pub(super) async fn prot(&mut self, cmd: &Command) -> Io {
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

    pub(super) async fn feat(&mut self) -> Io {
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

    pub(super) async fn opts(&mut self, cmd: &Command) -> Io {
        let arg = cmd.arg.trim().to_ascii_uppercase();
        if arg.starts_with("UTF8") || arg.starts_with("UTF-8") {
            self.done(200, "UTF8 is always on").await
        } else if arg.starts_with("MLST") {
            self.done(200, "MLST OPTS type;size;modify;perm;").await
        } else {
            self.done(501, "Unknown option").await
        }
    }
}
