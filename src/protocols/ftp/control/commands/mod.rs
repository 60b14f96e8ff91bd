//! The command families of the control connection, one file each, as `Connection` methods
//! that return a `Reply` (libunftp's `controlchan/commands/` layout, grouped by RFC section).

pub(super) mod files;
mod login;
mod navigate;
mod passive;
pub(super) mod tls;
pub(super) mod transfer;
