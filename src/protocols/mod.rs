//! Protocol translators: each turns its wire requests into session calls.

pub mod ftp;
pub mod http;
pub mod sftp;

/// The shutdown phases, defined by the accept loop in `net` that every listener runs.
pub use crate::net::Phase;
