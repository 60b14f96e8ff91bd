//! Protocol translators: each turns its wire requests into session calls.

pub mod ftp;
pub mod http;
pub mod sftp;

/// Shutdown phases the composition root drives: running, then draining (no new connections,
/// transfers go on), then closing (every connection is ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Running,
    Draining,
    Closing,
}
