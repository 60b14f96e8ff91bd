//! The SFTP handle table of one channel, and the caps on open handles: per SSH connection,
//! per user across all their connections on this node, and the process's descriptor reserve
//! (one user must not be able to open files until no client gets an SSH banner).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, RwLock};

use crate::net::descriptors::{self, Need};
use crate::session::{Listing, ReadFile, WriteFile};
use crate::telemetry::metrics::metrics;

pub enum Handle {
    Read(ReadFile),
    Write(WriteFile),
    Dir(AsyncMutex<Option<Listing>>),
}

pub struct Entry {
    pub handle: Handle,
    /// Opened with SSH_FXF_APPEND: every write lands at the end, so writes run one at a time
    /// in arrival order instead of concurrently.
    pub append: bool,
    /// READ/WRITE hold it shared; FSTAT, FSETSTAT and CLOSE take it exclusively.
    pub order: Arc<RwLock<()>>,
    /// Its place under the handle caps, given back when the entry is dropped.
    _slot: HandleSlot,
}

/// Open handles per user on this node, shared by every SSH connection.
#[derive(Clone, Default)]
pub struct UserHandles(Arc<Mutex<HashMap<String, usize>>>);

/// The caps one channel's handles count against.
#[derive(Clone)]
pub struct HandleCaps {
    pub per_connection: usize,
    pub per_user: usize,
    /// Handles open on this SSH connection, all channels together.
    pub connection: Arc<AtomicUsize>,
    pub users: UserHandles,
}

/// Which cap refused a handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Connection,
    User,
    Descriptors,
}

impl Refused {
    pub fn message(self) -> &'static str {
        match self {
            Refused::Connection => "too many open handles on this connection; close some first",
            Refused::User => "too many open handles for this user; close some first",
            Refused::Descriptors => "the server is short of file descriptors; try again later",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Refused::Connection => "connection",
            Refused::User => "user",
            Refused::Descriptors => "descriptors",
        }
    }
}

/// One open handle's place under the caps.
pub struct HandleSlot {
    connection: Arc<AtomicUsize>,
    users: UserHandles,
    user: String,
}

impl Drop for HandleSlot {
    fn drop(&mut self) {
        self.connection.fetch_sub(1, Ordering::SeqCst);
        if let Ok(mut users) = self.users.0.lock()
            && let Some(count) = users.get_mut(&self.user)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                users.remove(&self.user);
            }
        }
    }
}

impl HandleCaps {
    /// A place for one more handle of `user`, or the cap that refuses it (counted).
    pub fn acquire(&self, user: &str) -> Result<HandleSlot, Refused> {
        let result = self.try_acquire(user);
        if let Err(refused) = result {
            metrics().sftp_handles_refused_total.with_label_values(&[refused.label()]).inc();
        }
        result
    }

    fn try_acquire(&self, user: &str) -> Result<HandleSlot, Refused> {
        if !descriptors::available(Need::Handle) {
            return Err(Refused::Descriptors);
        }
        let mut users = self.users.0.lock().map_err(|_| Refused::User)?;
        let of_user = users.get(user).copied().unwrap_or(0);
        if of_user >= self.per_user {
            return Err(Refused::User);
        }
        let taken = self
            .connection
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < self.per_connection).then_some(n + 1));
        if taken.is_err() {
            return Err(Refused::Connection);
        }
        users.insert(user.to_string(), of_user + 1);
        Ok(HandleSlot {
            connection: Arc::clone(&self.connection),
            users: self.users.clone(),
            user: user.to_string(),
        })
    }
}

/// One channel's open handles by name.
pub struct Table {
    entries: HashMap<String, Arc<Entry>>,
    next: u64,
}

impl Table {
    pub fn new() -> Self {
        Self { entries: HashMap::new(), next: 1 }
    }

    pub fn get(&self, name: &str) -> Option<Arc<Entry>> {
        self.entries.get(name).cloned()
    }

    pub fn remove(&mut self, name: &str) -> Option<Arc<Entry>> {
        self.entries.remove(name)
    }

    /// Adds an open handle under its slot; returns the name the client uses.
    pub fn insert(&mut self, handle: Handle, append: bool, slot: HandleSlot) -> String {
        let name = self.next.to_string();
        self.next += 1;
        let entry = Entry { handle, append, order: Arc::default(), _slot: slot };
        self.entries.insert(name.clone(), Arc::new(entry));
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(users: &UserHandles, per_connection: usize, per_user: usize) -> HandleCaps {
        HandleCaps { per_connection, per_user, connection: Arc::default(), users: users.clone() }
    }

    #[test]
    fn handles_count_per_connection_and_per_user_and_come_back_on_drop() {
        let users = UserHandles::default();
        let first = caps(&users, 2, 3);
        let second = caps(&users, 2, 3);
        let a = first.acquire("ann").unwrap();
        let _b = first.acquire("ann").unwrap();
        assert_eq!(first.acquire("ann").err(), Some(Refused::Connection));
        let _c = second.acquire("ann").unwrap();
        assert_eq!(second.acquire("ann").err(), Some(Refused::User), "ann's third handle is her last");
        assert!(second.acquire("bob").is_ok(), "another user has their own count");
        drop(a);
        assert!(second.acquire("ann").is_ok(), "a closed handle frees its place");
        assert!(!users.0.lock().unwrap().contains_key("bob"), "no entry for a user without handles");
    }
}
