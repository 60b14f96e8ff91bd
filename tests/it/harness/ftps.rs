//! The in-process Rust FTP client (suppaftp over tokio-rustls), explicit TLS (AUTH TLS) on the
//! FTP listener, verifying the server's certificate.

use std::sync::Arc;

use suppaftp::tokio::{AsyncRustlsConnector, AsyncRustlsFtpStream};

use super::{TestServer, tls_client_config};

impl TestServer {
    /// A suppaftp session on the FTP listener, upgraded with AUTH TLS and logged in.
    pub async fn suppaftp(&self, user: &str, password: &str) -> AsyncRustlsFtpStream {
        let mut ftp = self.suppaftp_unauthenticated().await;
        ftp.login(user, password).await.unwrap();
        ftp
    }

    /// A suppaftp session on the FTP listener, upgraded with AUTH TLS, not yet logged in.
    pub async fn suppaftp_unauthenticated(&self) -> AsyncRustlsFtpStream {
        let config = tls_client_config(&self.cert);
        let connector = AsyncRustlsConnector::from(tokio_rustls::TlsConnector::from(Arc::new(config)));
        let ftp = AsyncRustlsFtpStream::connect(self.ftp).await.unwrap();
        ftp.into_secure(connector, "127.0.0.1").await.unwrap()
    }
}
