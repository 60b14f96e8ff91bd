//! SSH transport (russh) with the SFTP v3 subsystem (draft-ietf-secsh-filexfer-02) and legacy
//! SCP. Translates requests into `Session` calls; may use `session` and `net` only. SFTP status
//! codes live in `ops.rs`.

mod dispatch;
mod handles;
mod idle;
mod intake;
pub mod keys;
mod ops;
mod replies;
mod scp;
mod server;
mod wire;
#[cfg(test)]
mod wire_props;

pub use server::{SshSettings, serve};
