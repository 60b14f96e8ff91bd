//! FTP, explicit FTPS (AUTH TLS, RFC 4217) and implicit FTPS on tokio and tokio-rustls, over
//! the session API (RFC 959, 2228, 2389, 2428, 3659, 4217). May use `session` and `net` only;
//! reply codes for session errors live in `reply.rs`. Why not libunftp: docs/adr/0001.

mod command;
#[cfg(test)]
mod command_props;
mod control;
mod data;
mod listing;
mod reply;
mod server;
mod transfer;

use std::sync::Arc;
use std::time::Duration;

pub use server::serve;

impl FtpSettings {
    pub fn new(config: FtpConfig, tls: Option<Arc<rustls::ServerConfig>>, rejection_delay: Duration) -> Self {
        let data_tls = tls.as_ref().map(|control| {
            let mut data = rustls::ServerConfig::clone(control);
            data.send_tls13_tickets = 0;
            Arc::new(data)
        });
        Self { config, tls, data_tls, rejection_delay }
    }
}

use crate::config::FtpConfig;

/// Everything an FTP listener needs, built once from configuration.
pub struct FtpSettings {
    pub config: FtpConfig,
    /// `None` when TLS is unavailable: AUTH TLS is then refused (and implicit FTPS not served).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The same TLS settings and session cache for data connections, minus TLS 1.3 session
    /// tickets: a client that never reads tickets on a data connection closes it with unread
    /// bytes, which the kernel turns into a reset, failing an upload that was complete.
    pub data_tls: Option<Arc<rustls::ServerConfig>>,
    /// Every refused login takes this long.
    pub rejection_delay: Duration,
}
