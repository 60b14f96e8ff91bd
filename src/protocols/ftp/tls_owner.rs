//! Ties FTPS data connections to logins (vsftpd's `require_ssl_reuse`, extended to a client's
//! other control connections). Every TLS control connection stamps a random token into the
//! sessions it negotiates (`tls_sessions`: inside sealed tickets and cached session values, so
//! a client cannot forge it) and records here the login the token belongs to. A
//! protected data connection is accepted only when its handshake resumed a session whose token
//! belongs to the same login: a second client behind the same address that races for a passive
//! port with a fresh handshake, or with a session of another login, gets nothing. rclone shares
//! one session cache across its control connections, so a token outlives its connection for a
//! while (the newest `RETIRED` closed connections are remembered).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

/// Closed control connections whose sessions still resume (as many as the session cache holds).
const RETIRED: usize = 4096;

pub const TOKEN_LEN: usize = 16;

/// A control connection's token; never all zeros (the mark of sessions nobody owns).
pub type Token = [u8; TOKEN_LEN];

/// Which login each token belongs to (`None` until the connection logs in).
#[derive(Default)]
pub struct SessionOwners {
    inner: Mutex<Owners>,
}

#[derive(Default)]
struct Owners {
    logins: HashMap<Token, Option<String>>,
    retired: VecDeque<Token>,
}

/// The token of one control connection; retired when the connection ends.
pub struct OwnerToken {
    owners: Arc<SessionOwners>,
    token: Token,
}

impl SessionOwners {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Owners> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fresh token for a control connection about to negotiate TLS.
    pub fn issue(self: &Arc<Self>) -> OwnerToken {
        let mut token: Token = rand::random();
        token[0] |= 1;
        self.lock().logins.insert(token, None);
        OwnerToken { owners: Arc::clone(self), token }
    }

    /// The login whose control connection negotiated sessions with `token`, if it logged in
    /// and is still remembered.
    pub fn owner(&self, token: &Token) -> Option<String> {
        self.lock().logins.get(token).cloned().flatten()
    }
}

impl OwnerToken {
    /// What goes into the connection's TLS sessions.
    pub fn token(&self) -> Token {
        self.token
    }

    /// Records the login of this control connection.
    pub fn bind(&self, user: &str) {
        if let Some(owner) = self.owners.lock().logins.get_mut(&self.token) {
            *owner = Some(user.to_string());
        }
    }
}

impl Drop for OwnerToken {
    fn drop(&mut self) {
        let mut owners = self.owners.lock();
        owners.retired.push_back(self.token);
        while owners.retired.len() > RETIRED {
            if let Some(old) = owners.retired.pop_front() {
                owners.logins.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_login_and_are_forgotten_in_bounded_time() {
        let owners = SessionOwners::new();
        let a = owners.issue();
        assert_eq!(owners.owner(&a.token()), None, "not logged in yet");
        a.bind("alice");
        assert_eq!(owners.owner(&a.token()).as_deref(), Some("alice"));
        assert_eq!(owners.owner(&[0; TOKEN_LEN]), None);
        let kept = a.token();
        drop(a);
        assert_eq!(owners.owner(&kept).as_deref(), Some("alice"), "still resumes after close");
        for _ in 0..RETIRED {
            drop(owners.issue());
        }
        assert_eq!(owners.owner(&kept), None);
        assert_eq!(owners.lock().logins.len(), RETIRED);
    }
}
