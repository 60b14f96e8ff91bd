//! Logging in and what a client may ask before it: USER, PASS and QUIT (RFC 959 §4.1.1),
//! SYST, HELP and NOOP (RFC 959 §4.1.3), FEAT and OPTS (RFC 2389 §3-4; OPTS UTF8, RFC 2640).

use std::sync::Arc;

use crate::protocols::ftp::command;
use crate::protocols::ftp::control::{Connection, Handled, Reply};
use crate::session::{Credentials, LoginError};
use crate::types::{Protocol, Secret};

impl Connection {
    pub(in crate::protocols::ftp::control) fn user(&mut self, arg: &str) -> Handled {
        if self.session.is_some() {
            return Ok(Reply::say(503, "Already logged in"));
        }
        if self.tls_required() {
            return Ok(Reply::say(534, "TLS required: send AUTH TLS before logging in"));
        }
        let name = arg.trim();
        if name.is_empty() {
            return Ok(Reply::say(501, "USER needs a user name"));
        }
        self.pending_user = Some(name.to_string());
        Ok(Reply::say(331, format!("Password required for {name}")))
    }

    pub(in crate::protocols::ftp::control) async fn pass(&mut self, arg: &str) -> Handled {
        if self.session.is_some() {
            return Ok(Reply::say(503, "Already logged in"));
        }
        if self.tls_required() {
            return Ok(Reply::say(534, "TLS required: send AUTH TLS before logging in"));
        }
        let Some(user) = self.pending_user.take() else {
            return Ok(Reply::say(503, "Send USER first"));
        };
        self.info.protocol = if self.tls_active { Protocol::Ftps } else { Protocol::Ftp };
        let credentials = Credentials::Password(Secret::new(arg.to_string()));
        let identity = self.sessions.login(&self.info, &user, &credentials).await;
        // Right credentials, no place left: not a failed login (ProFTPD's MaxClientsPerUser).
        if let Err(LoginError::TooManySessions(limit)) = identity {
            return Ok(Reply::say(
                530,
                format!("Sorry, the maximum number of sessions ({limit}) for this user is already open"),
            ));
        }
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
                Ok(Reply::say(230, "User logged in"))
            }
            None => {
                // The login already took `auth.rejection_delay` (session::login's rule).
                self.failed_logins += 1;
                if self.failed_logins >= self.settings.max_login_attempts {
                    return Ok(Reply::Bye(421, "Too many failed logins; closing".into()));
                }
                Ok(Reply::say(530, "Login incorrect"))
            }
        }
    }

    pub(in crate::protocols::ftp::control) fn quit(&self) -> Handled {
        Ok(Reply::Bye(221, "Goodbye".into()))
    }

    pub(in crate::protocols::ftp::control) fn syst(&self) -> Handled {
        Ok(Reply::say(215, "UNIX Type: L8"))
    }

    pub(in crate::protocols::ftp::control) fn noop(&self) -> Handled {
        Ok(Reply::say(200, "OK"))
    }

    pub(in crate::protocols::ftp::control) fn help(&self) -> Handled {
        Ok(Reply::say(214, command::help_text()))
    }

    pub(in crate::protocols::ftp::control) fn feat(&self) -> Handled {
        let offer_auth_tls = !self.tls_active && self.settings.tls.is_some();
        let features = command::features(offer_auth_tls, self.settings.config.active_mode);
        let lines: Vec<&str> = std::iter::once("Features:").chain(features).chain(["End"]).collect();
        Ok(Reply::say(211, lines.join("\n")))
    }

    pub(in crate::protocols::ftp::control) fn opts(&self, arg: &str) -> Handled {
        let arg = arg.trim().to_ascii_uppercase();
        if arg.starts_with("UTF8") || arg.starts_with("UTF-8") {
            Ok(Reply::say(200, "UTF8 is always on"))
        } else if arg.starts_with("MLST") {
            Ok(Reply::say(200, "MLST OPTS type;size;modify;perm;"))
        } else {
            Ok(Reply::say(501, "Unknown option"))
        }
    }
}
