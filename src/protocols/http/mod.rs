//! HTTPS: the REST API (`/api/v1`) and the browser file manager on the session API, served by
//! axum over rustls. Uses `session`, `admin`, `net`.
//!
//! # Layout
//! - `api/`: the REST API, one file per resource (files, tokens, API keys, admin, audit) and
//!   the OpenAPI document generated from them.
//! - `web/`: the browser file manager (its page, script and style, its login and logout).
//! - `listen/`: the listeners (HTTPS with its deadlines, the redirect to HTTPS, ops).
//! - `auth.rs` (who is calling), `error.rs` (the JSON errors), `range.rs` (HTTP ranges) and
//!   `router.rs` (routes and the headers of every response), shared by the others.

mod api;
mod auth;
mod error;
mod listen;
mod range;
#[cfg(test)]
mod range_props;
mod router;
mod web;

use std::sync::Arc;
use std::time::Duration;

pub use listen::ops;
pub use listen::redirect::serve as serve_redirect;
pub use listen::server::{serve, serve_plain};

use crate::admin::Admin;
use crate::config::HttpsConfig;
use crate::session::SessionFactory;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub sessions: SessionFactory,
    /// API keys and the admin API go through `admin`, which audits them.
    pub admin: Arc<Admin>,
    pub settings: Arc<HttpSettings>,
}

pub struct HttpSettings {
    /// Balancers whose `Forwarded`/`X-Forwarded-For` name the client.
    pub trusted_proxies: listen::forwarded::TrustedProxies,
    pub header_timeout: Duration,
    /// A body that is not an upload must arrive whole within this.
    pub body_timeout: Duration,
    /// An upload may pause this long between two pieces.
    pub upload_idle_timeout: Duration,
    /// A connection without a request in progress is closed after this.
    pub idle_timeout: Duration,
    /// HTTP/2 keep-alive pings, and how long one may go unanswered.
    pub keepalive_interval: Duration,
}

impl HttpSettings {
    pub fn new(config: &HttpsConfig, trusted_proxies: &[ipnet::IpNet]) -> Self {
        Self {
            trusted_proxies: listen::forwarded::TrustedProxies::new(trusted_proxies),
            header_timeout: config.header_timeout,
            body_timeout: config.body_timeout,
            upload_idle_timeout: config.upload_idle_timeout,
            idle_timeout: config.idle_timeout,
            keepalive_interval: config.keepalive_interval,
        }
    }
}
