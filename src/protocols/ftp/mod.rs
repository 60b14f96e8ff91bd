//! FTP, explicit FTPS (AUTH TLS, RFC 4217) and implicit FTPS on tokio and tokio-rustls, over
//! the session API (RFC 959, 2228, 2389, 2428, 3659, 4217). May use `session` and `net` only;
//! reply codes for session errors live in `reply.rs`. Why not libunftp: docs/adr/0001.

mod command;
mod control;
mod data;
mod listing;
mod reply;
mod server;
mod transfer;

use std::sync::Arc;
use std::time::Duration;

pub use server::serve;

use crate::config::FtpConfig;

/// Everything an FTP listener needs, built once from configuration.
pub struct FtpSettings {
    pub config: FtpConfig,
    /// `None` when TLS is unavailable: AUTH TLS is then refused (and implicit FTPS not served).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Every refused login takes this long.
    pub rejection_delay: Duration,
}
