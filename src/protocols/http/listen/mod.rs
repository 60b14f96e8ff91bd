//! The listeners: HTTPS (TLS, HTTP/1.1 and HTTP/2 with its deadlines), the plain-HTTP redirect
//! to HTTPS and the plain-HTTP ops endpoint, the last two on one small server (`plain.rs`).
//! `forwarded` believes an L7 balancer's `Forwarded`/`X-Forwarded-For`. The HTTPS listener reaches the room's state and router as `super::…`.

pub(super) mod deadlines;
pub mod forwarded;
mod gate;
pub mod ops;
mod plain;
pub mod redirect;
pub mod server;

use super::{AppState, error, router};
