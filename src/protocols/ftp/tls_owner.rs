//! Ties FTPS data connections to logins (vsftpd's `require_ssl_reuse`, extended to a client's
//! other control connections). Every TLS control connection stamps a random token into the
//! sessions it negotiates (`tls_sessions`: inside sealed tickets and cached session values, so
//! a client cannot forge it) and records here the login the token belongs to. A
//! protected data connection is accepted only when its handshake resumed a session whose token
//! belongs to the same login: a second client behind the same address that races for a passive
//! port with a fresh handshake, or with a session of another login, gets nothing. rclone shares
//! one session cache across its control connections, so a token outlives its connection for a
//! while (the newest `RETIRED` closed connections are remembered). A client holds one session
//! per server in its cache (Go's crypto/tls keys it by host name), so a data connection may
//! offer the ticket of a sibling control connection that has finished its handshake but not yet
//! its login: the owner of such a live, unbound token is awaited (`owner_when_known`) instead of
//! taken as nobody.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

/// Closed control connections whose sessions still resume (as many as the session cache holds).
const RETIRED: usize = 4096;

pub const TOKEN_LEN: usize = 16;

/// A control connection's token; never all zeros (the mark of sessions nobody owns).
pub type Token = [u8; TOKEN_LEN];

/// Which login each token belongs to (`None` until the connection logs in).
#[derive(Default)]
pub struct SessionOwners {
    inner: Mutex<Owners>,
    /// Woken when a token is bound to its login or its connection ends.
    changed: Notify,
}

#[derive(Default)]
struct Owners {
    /// Live connections (login `None` until they log in) and retired logged-in ones.
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
    #[cfg(test)]
    fn owner(&self, token: &Token) -> Option<String> {
        self.lock().logins.get(token).cloned().flatten()
    }

    /// Like `owner`, but a token whose control connection is still open and not yet logged in
    /// is waited for until it logs in or closes (the caller bounds the wait).
    pub async fn owner_when_known(&self, token: &Token) -> Option<String> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.lock().logins.get(token) {
                Some(Some(login)) => return Some(login.clone()),
                Some(None) => {}
                None => return None,
            }
            changed.await;
        }
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
        self.owners.changed.notify_waiters();
    }
}

impl Drop for OwnerToken {
    fn drop(&mut self) {
        let mut owners = self.owners.lock();
        // Sessions of a connection that never logged in belong to nobody, now and later.
        if owners.logins.get(&self.token).is_some_and(Option::is_none) {
            owners.logins.remove(&self.token);
        } else {
            owners.retired.push_back(self.token);
        }
        while owners.retired.len() > RETIRED {
            if let Some(old) = owners.retired.pop_front() {
                owners.logins.remove(&old);
            }
        }
        drop(owners);
        self.owners.changed.notify_waiters();
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
            let other = owners.issue();
            other.bind("bob");
        }
        assert_eq!(owners.owner(&kept), None);
        assert_eq!(owners.lock().logins.len(), RETIRED);
        drop(owners.issue());
        assert_eq!(
            owners.lock().logins.len(),
            RETIRED,
            "a connection that never logged in is forgotten at once"
        );
    }

    #[tokio::test]
    async fn a_live_unbound_token_is_awaited_until_login_or_close() {
        let owners = SessionOwners::new();
        let a = owners.issue();
        let token = a.token();
        let waiting = tokio::spawn({
            let owners = Arc::clone(&owners);
            async move { owners.owner_when_known(&token).await }
        });
        tokio::task::yield_now().await;
        a.bind("alice");
        assert_eq!(waiting.await.unwrap().as_deref(), Some("alice"));
        let b = owners.issue();
        let token = b.token();
        let waiting = tokio::spawn({
            let owners = Arc::clone(&owners);
            async move { owners.owner_when_known(&token).await }
        });
        tokio::task::yield_now().await;
        drop(b);
        assert_eq!(waiting.await.unwrap(), None, "closed without a login: nobody's");
        assert_eq!(owners.owner_when_known(&[0; TOKEN_LEN]).await, None);
    }
}
