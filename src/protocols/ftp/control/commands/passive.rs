//! Planning the data connection: PASV (RFC 959 §4.1.2), EPSV and EPSV ALL (RFC 2428 §3-4),
//! PORT and EPRT (RFC 959 §4.1.2, RFC 2428 §2), back to the client only (RFC 2577 §3). The
//! plan waits in `Connection::plan` until a transfer takes it.

use std::net::{IpAddr, SocketAddr};

use crate::protocols::ftp::control::{Connection, Handled, Reply};
use crate::protocols::ftp::data::{self, Plan};
use crate::protocols::ftp::passive::PassiveError;

impl Connection {
    /// The local IP announced for passive mode.
    async fn passive_ip(&self) -> Option<IpAddr> {
        match &self.settings.config.passive_address {
            // The address the client connected to: the balancer's, behind a PROXY header.
            None => Some(self.facing.ip().to_canonical()),
            Some(name) => match name.parse::<IpAddr>() {
                Ok(ip) => Some(ip),
                // A DNS name is resolved per connection, so a changing address is followed.
                Err(_) => tokio::net::lookup_host((name.as_str(), 0))
                    .await
                    .ok()?
                    .map(|a| a.ip())
                    .find(|ip| ip.is_ipv4() || self.facing.is_ipv6()),
            },
        }
    }

    /// The client's address (data connections are accepted from it only).
    pub(in crate::protocols::ftp::control) fn client_ip(&self) -> IpAddr {
        self.info.peer.0.map(|a| a.ip()).unwrap_or(self.local.ip())
    }

    /// Opens a passive port for the next transfer, in place of any earlier one: a connection
    /// holds at most one.
    async fn open_passive(&mut self) -> Result<u16, PassiveError> {
        self.plan = None;
        let (config, client) = (&self.settings.config, self.client_ip());
        let ports = &self.settings.passive_ports;
        let passive =
            ports.bind(client, self.local.ip(), config.passive_ports, self.data_proxy.clone()).await?;
        let port = passive.listener.local_addr()?.port();
        self.plan = Some(Plan::Passive(passive));
        Ok(port)
    }

    pub(in crate::protocols::ftp::control) async fn pasv(&mut self) -> Handled {
        if self.epsv_only {
            return Ok(Reply::say(503, "EPSV ALL is in force; use EPSV"));
        }
        let announced = match self.passive_ip().await {
            Some(IpAddr::V4(ip)) => ip,
            _ => return Ok(Reply::say(425, "PASV needs IPv4; use EPSV")),
        };
        match self.open_passive().await {
            Ok(port) => Ok(Reply::say(227, data::pasv_reply(announced, port))),
            Err(e) => Ok(Reply::say(425, format!("Cannot open a passive port: {e}"))),
        }
    }

    pub(in crate::protocols::ftp::control) async fn epsv(&mut self, arg: &str) -> Handled {
        if arg.trim().eq_ignore_ascii_case("ALL") {
            self.epsv_only = true;
            return Ok(Reply::say(200, "EPSV ALL ok"));
        }
        match self.open_passive().await {
            Ok(port) => Ok(Reply::say(229, format!("Entering Extended Passive Mode (|||{port}|)"))),
            Err(e) => Ok(Reply::say(425, format!("Cannot open a passive port: {e}"))),
        }
    }

    /// PORT and EPRT, once their address is parsed (`None`: malformed).
    pub(in crate::protocols::ftp::control) fn port(&mut self, target: Option<SocketAddr>) -> Handled {
        if !self.settings.config.active_mode {
            return Ok(Reply::say(502, "Active mode is disabled; use PASV or EPSV"));
        }
        if self.epsv_only {
            return Ok(Reply::say(503, "EPSV ALL is in force"));
        }
        let Some(target) = target else { return Ok(Reply::say(501, "Malformed address")) };
        let client = self.info.peer.0.map(|a| a.ip().to_canonical());
        // Only back to the client itself: never an FTP bounce to a third host (RFC 2577).
        if Some(target.ip().to_canonical()) != client || target.port() < 1024 {
            return Ok(Reply::say(504, "Data connections go only to your own address (port 1024 or above)"));
        }
        self.plan = Some(Plan::Active(target));
        Ok(Reply::say(200, "Active data connection accepted"))
    }
}
