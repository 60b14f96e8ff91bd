//! The in-process Rust SSH client (russh, russh-sftp), for what a library client does and for
//! raw SFTP channels that a hostile peer would write by hand.

use std::sync::Arc;

use russh::client::{self, Handle};
use russh::keys::PublicKeyOrCertificate;
use russh_sftp::client::SftpSession;

use super::TestServer;

/// Trusts any host key: the server's key is made fresh for each test.
pub struct AcceptAnyHostKey;

impl client::Handler for AcceptAnyHostKey {
    type Error = russh::Error;

    async fn check_server_key(&mut self, _key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// A logged-in russh connection.
pub type SshConnection = Handle<AcceptAnyHostKey>;

impl TestServer {
    /// A russh connection to the SFTP listener, logged in as `user` by password.
    pub async fn russh(&self, user: &str, password: &str) -> SshConnection {
        let mut handle = self.russh_unauthenticated().await;
        let auth = handle.authenticate_password(user, password).await.expect("auth exchange");
        assert!(auth.success(), "login as {user}");
        handle
    }

    /// A russh connection to the SFTP listener, not yet authenticated (to time or refuse a login).
    pub async fn russh_unauthenticated(&self) -> SshConnection {
        let config = Arc::new(client::Config::default());
        client::connect(config, self.addr, AcceptAnyHostKey).await.expect("connect")
    }
}

/// A russh-sftp session on a new channel of `connection` (keep the connection while using it).
pub async fn open_sftp(connection: &SshConnection) -> SftpSession {
    let channel = connection.channel_open_session().await.unwrap();
    channel.request_subsystem(true, "sftp").await.unwrap();
    SftpSession::new(channel.into_stream()).await.unwrap()
}
