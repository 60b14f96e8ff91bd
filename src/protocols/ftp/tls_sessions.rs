//! Marks every TLS session FTPS negotiates with the token of the control connection that
//! negotiated it, and tells a data connection which token the session it resumed carries.
//!
//! rustls keeps application data in TLS 1.3 tickets only (`set_resumption_data`); TLS 1.2
//! resumption, by session ID or ticket, drops it. So ferry wraps both places sessions live: the
//! session cache (`StoresServerSessions`) and the ticketer (`ProducesTickets`) prefix the token
//! to every stored value or ticket plaintext (a ticket stays sealed by the inner ticketer's
//! AEAD, so a client cannot change it) and strip it when a session is looked up. rustls calls
//! both synchronously while a handshake is driven, so the handshake in progress is found in a
//! thread-local slot that `Tracked` fills for the duration of each poll of a handshake future.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use rustls::server::{ProducesTickets, StoresServerSessions};

use super::tls_owner::{TOKEN_LEN, Token};

thread_local! {
    /// The FTPS handshake being polled on this thread, if any.
    static CURRENT: RefCell<Option<Arc<Handshake>>> = const { RefCell::new(None) };
}

/// What one handshake gives to new sessions and learns from a resumed one.
#[derive(Debug, Default)]
pub struct Handshake {
    /// Stamped into sessions this handshake creates: a control connection's token, or zeros
    /// (a data connection's sessions belong to nobody).
    issue: Token,
    /// The token of the session this handshake looked up to resume.
    resumed: Mutex<Option<Token>>,
}

impl Handshake {
    pub fn control(token: Token) -> Arc<Self> {
        Arc::new(Self { issue: token, resumed: Mutex::new(None) })
    }

    pub fn data() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The token of the session the client offered and rustls found (check `handshake_kind`
    /// to know whether it was actually resumed).
    pub fn resumed(&self) -> Option<Token> {
        *self.resumed.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The token for a session created now: the control connection's, or, for a session a data
/// connection creates (its TLS 1.3 ticket, a TLS 1.2 ticket re-issued), the one it resumed.
fn issuing() -> Token {
    CURRENT
        .with(|c| {
            let current = c.borrow();
            let handshake = current.as_ref()?;
            if handshake.issue != Token::default() { Some(handshake.issue) } else { handshake.resumed() }
        })
        .unwrap_or_default()
}

/// Splits a stored value into its token and rustls' own bytes, noting the token for the
/// handshake in progress.
fn found(stored: Vec<u8>) -> Option<Vec<u8>> {
    if stored.len() < TOKEN_LEN {
        return None;
    }
    let (token, value) = stored.split_at(TOKEN_LEN);
    let token: Token = token.try_into().ok()?;
    CURRENT.with(|c| {
        if let Some(handshake) = c.borrow().as_ref() {
            let mut resumed = handshake.resumed.lock().unwrap_or_else(PoisonError::into_inner);
            resumed.get_or_insert(token);
        }
    });
    Some(value.to_vec())
}

fn stamped(value: &[u8]) -> Vec<u8> {
    [issuing().as_slice(), value].concat()
}

/// A handshake future run with its `Handshake` visible to the session cache and ticketer.
pub struct Tracked<F> {
    inner: F,
    handshake: Arc<Handshake>,
}

impl<F> Tracked<F> {
    pub fn new(inner: F, handshake: Arc<Handshake>) -> Self {
        Self { inner, handshake }
    }
}

impl<F: Future + Unpin> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let handshake = Arc::clone(&self.handshake);
        let previous = CURRENT.with(|c| c.replace(Some(handshake)));
        let polled = Pin::new(&mut self.inner).poll(cx);
        CURRENT.with(|c| c.replace(previous));
        polled
    }
}

/// The session cache (TLS 1.2 session IDs), with tokens.
#[derive(Debug)]
pub struct OwnedSessions(pub Arc<dyn StoresServerSessions>);

impl StoresServerSessions for OwnedSessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.0.put(key, stamped(&value))
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        found(self.0.get(key)?)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        found(self.0.take(key)?)
    }

    fn can_cache(&self) -> bool {
        self.0.can_cache()
    }
}

/// The ticketer (TLS 1.2 and 1.3 tickets), with tokens inside the sealed plaintext.
#[derive(Debug)]
pub struct OwnedTickets(pub Arc<dyn ProducesTickets>);

impl ProducesTickets for OwnedTickets {
    fn enabled(&self) -> bool {
        self.0.enabled()
    }

    fn lifetime(&self) -> u32 {
        self.0.lifetime()
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.0.encrypt(&stamped(plain))
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        found(self.0.decrypt(cipher)?)
    }
}

/// TLS for FTPS data connections: the same settings and owned sessions as the control
/// connection's, with and without TLS 1.3 session tickets.
///
/// OpenSSL clients (curl) resume a TLS 1.3 ticket only once, so each data connection must give
/// them a new one or their next data connection cannot resume (522 while session reuse is
/// required). But a ticket is bytes the client must read: a client that uploads and closes
/// without reading (Go's, so rclone) makes its kernel reset the connection, discarding what it
/// had not yet sent, and a complete upload fails (426). So a ticket goes only where the client
/// reads: on connections that carry data to it (downloads, listings), and on uploads whose
/// client began the handshake before the 150 (curl reads right after writing an upload; Go
/// and ftplib wait for the 150).
#[derive(Clone)]
pub struct DataConfigs {
    pub quiet: Arc<rustls::ServerConfig>,
    pub ticketed: Arc<rustls::ServerConfig>,
}

/// The FTPS server configurations (control, data) with owned sessions, from the shared one.
pub fn owned_configs(shared: &Arc<rustls::ServerConfig>) -> (Arc<rustls::ServerConfig>, DataConfigs) {
    let mut control = rustls::ServerConfig::clone(shared);
    control.session_storage = Arc::new(OwnedSessions(Arc::clone(&control.session_storage)));
    control.ticketer = Arc::new(OwnedTickets(Arc::clone(&control.ticketer)));
    let mut quiet = control.clone();
    quiet.send_tls13_tickets = 0;
    let mut ticketed = control.clone();
    ticketed.send_tls13_tickets = 1;
    (Arc::new(control), DataConfigs { quiet: Arc::new(quiet), ticketed: Arc::new(ticketed) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_carry_the_token_of_the_handshake_that_made_them() {
        let cache = OwnedSessions(rustls::server::ServerSessionMemoryCache::new(8));
        let control = Handshake::control([7; TOKEN_LEN]);
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        // Stored while the control handshake is polled: stamped with its token.
        let mut put = Tracked::new(
            std::future::poll_fn(|_| Poll::Ready(cache.put(b"id".to_vec(), b"v".to_vec()))),
            Arc::clone(&control),
        );
        assert_eq!(Pin::new(&mut put).poll(&mut cx), Poll::Ready(true));
        // Looked up by a data handshake: the value comes back as rustls stored it, and the
        // handshake learns the token.
        let data = Handshake::data();
        let mut get =
            Tracked::new(std::future::poll_fn(|_| Poll::Ready(cache.get(b"id"))), Arc::clone(&data));
        assert_eq!(Pin::new(&mut get).poll(&mut cx), Poll::Ready(Some(b"v".to_vec())));
        assert_eq!(data.resumed(), Some([7; TOKEN_LEN]));
        assert_eq!(control.resumed(), None);
        // Outside any handshake the token is zeros and nothing is noted.
        assert!(cache.put(b"other".to_vec(), b"w".to_vec()));
        assert_eq!(cache.0.get(b"other"), Some([[0; TOKEN_LEN].as_slice(), b"w"].concat()));
        assert!(CURRENT.with(|c| c.borrow().is_none()));
    }
}
