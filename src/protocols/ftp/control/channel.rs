//! Data-channel commands: PASV, EPSV, PORT/EPRT, ABOR and the start of every transfer.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::{Connection, Io, Next};
use crate::protocols::ftp::command::Command;
use crate::protocols::ftp::data::{self, ConnectError, DataTls, Plan};
use crate::protocols::ftp::passive::PassiveError;
use crate::protocols::ftp::transfer::Outcome;

impl Connection {
    /// The local IP announced for passive mode.
    pub(super) async fn passive_ip(&self) -> Option<IpAddr> {
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

    /// The client's address (data connections are accepted from it only).
    fn client_ip(&self) -> IpAddr {
        self.info.peer.0.map(|a| a.ip()).unwrap_or(self.local.ip())
    }

    /// Opens a passive port for the next transfer, in place of any earlier one: a connection
    /// holds at most one.
    pub(super) async fn open_passive(&mut self) -> Result<u16, PassiveError> {
        self.plan = None;
        let (config, client) = (&self.settings.config, self.client_ip());
        let passive = self.settings.passive_ports.bind(client, self.local.ip(), config.passive_ports).await?;
        let port = passive.listener.local_addr()?.port();
        self.plan = Some(Plan::Passive(passive));
        Ok(port)
    }

    pub(super) async fn pasv(&mut self) -> Io {
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

    pub(super) async fn epsv(&mut self, cmd: &Command) -> Io {
        if cmd.arg.trim().eq_ignore_ascii_case("ALL") {
            self.epsv_only = true;
            return self.done(200, "EPSV ALL ok").await;
        }
        match self.open_passive().await {
            Ok(port) => self.done(229, &format!("Entering Extended Passive Mode (|||{port}|)")).await,
            Err(e) => self.done(425, &format!("Cannot open a passive port: {e}")).await,
        }
    }

    pub(super) async fn port(&mut self, target: Option<SocketAddr>) -> Io {
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
    pub(super) async fn take_plan(&mut self) -> Result<Plan, std::io::Error> {
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

    /// TLS for the next data connection, under PROT P.
    fn data_tls(&self) -> Option<DataTls> {
        match (&self.settings.data_tls, &self.session) {
            (Some(config), Some(session)) if self.protect_data => Some(DataTls {
                config: Arc::clone(config),
                owners: Arc::clone(&self.settings.owners),
                user: session.user().to_string(),
                require_reuse: self.settings.config.require_tls_session_reuse,
            }),
            _ => None,
        }
    }

    pub(super) fn spawn<F>(&mut self, work: F)
    where
        F: FnOnce(data::DataStream) -> std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send>>
            + Send
            + 'static,
    {
        // Unreachable when `take_plan` succeeded; kept for the type.
        let Some(plan) = self.plan.take() else { return };
        let client = self.client_ip();
        let tls = self.data_tls();
        let timeout = self.settings.config.data_timeout;
        self.transfer = Some(tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            match data::connect(plan, client, tls.as_ref(), timeout).await {
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

    /// Checks the plan, says 150 and starts `work` on the data connection.
    pub(super) async fn start<F>(&mut self, opening: &str, work: F) -> Io
    where
        F: FnOnce(data::DataStream) -> std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send>>
            + Send
            + 'static,
    {
        let plan = match self.take_plan().await {
            Ok(plan) => plan,
            Err(_) => return Ok(Next::Continue),
        };
        let timeout = self.settings.config.data_timeout;
        let plan = data::open_early(plan, self.client_ip(), self.data_tls().as_ref(), timeout).await;
        self.plan = Some(plan);
        self.reply(150, opening).await?;
        self.spawn(work);
        Ok(Next::Continue)
    }

    pub(super) async fn abor(&mut self) -> Io {
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
}
