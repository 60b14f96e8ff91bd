//! FTP, explicit FTPS (AUTH TLS, RFC 4217) and implicit FTPS on tokio and tokio-rustls, over
//! the session API (RFC 959, 2228, 2389, 2428, 3659, 4217). May use `session` and `net` only;
//! reply codes for session errors live in `reply.rs`. Why not libunftp: docs/adr/0001.

mod command;
#[cfg(test)]
mod command_props;
mod control;
mod data;
mod listing;
mod passive;
mod reply;
mod server;
mod tls_owner;
mod tls_sessions;
mod transfer;

use std::sync::Arc;

pub use server::serve;

impl FtpSettings {
    pub fn new(config: FtpConfig, tls: Option<Arc<rustls::ServerConfig>>, max_login_attempts: u32) -> Self {
        let (tls, data_tls) = match tls.as_ref().map(tls_sessions::owned_configs) {
            Some((control, data)) => (Some(control), Some(data)),
            None => (None, None),
        };
        let passive_ports = passive::PassivePorts::new(config.max_passive_ports_per_ip);
        Self {
            config,
            tls,
            data_tls,
            max_login_attempts,
            passive_ports,
            owners: tls_owner::SessionOwners::new(),
        }
    }
}

use crate::config::FtpConfig;

/// Everything an FTP listener needs, built once from configuration.
pub struct FtpSettings {
    pub config: FtpConfig,
    /// `None` when TLS is unavailable: AUTH TLS is then refused (and implicit FTPS not served).
    /// Its sessions carry the token of the control connection that negotiated them.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The same TLS settings and session cache for data connections (with and without a
    /// TLS 1.3 ticket: see `DataConfigs`).
    pub data_tls: Option<tls_sessions::DataConfigs>,
    /// Failed logins before the connection is closed (`auth.max_attempts`, every protocol's).
    pub max_login_attempts: u32,
    /// Pending passive ports per client address, shared by the FTP and implicit FTPS listeners.
    passive_ports: Arc<passive::PassivePorts>,
    /// Which login negotiated each TLS session, for data connections that resume one.
    owners: Arc<tls_owner::SessionOwners>,
}
