//! Outbound clients every room may build: the rustls client config (a CA file, or the
//! platform's roots) and the reqwest client, so that a webhook, an LDAP server, a syslog
//! collector and an authentication service are reached with the same trust rules. A leaf: uses
//! nothing of ours, so `auth`, `audit` and later `events` may all depend on it.

pub mod http;
pub mod tls;

pub use http::{HttpClient, HttpClientError, http_client};
pub use tls::{ClientTlsError, ca_certificates, client_config};
