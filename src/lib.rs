//! ferry: a managed file transfer server. SFTP, SCP, FTP, explicit and implicit FTPS and HTTPS
//! (browser and REST API), all over one session API.
//!
//! # Layout
//! Dependencies point down only (checked by `tests/it/layering.rs`):
//!
//! ```text
//! server (composition root)
//! protocols::sftp  ─► session, net
//! session ─► vfs, auth, audit, state        admin ─► auth, audit, state
//! vfs ─► storage      auth, audit, net ─► state
//! leaves usable by all: config, telemetry, types, clients
//! ```

pub mod admin;
pub mod audit;
pub mod auth;
pub mod clients;
pub mod config;
pub mod net;
pub mod protocols;
pub mod server;
pub mod session;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod types;
pub mod vfs;
