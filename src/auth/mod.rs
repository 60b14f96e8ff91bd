//! Who may log in: the `Authenticator` trait, the `Identity` it yields, and the local backend
//! (state store, argon2id, authorized keys); the LDAP and HTTP-service backends and the chain
//! that asks them in order.
//! Uses `state`, `config`, `types`.

pub mod api_key;
pub mod cache;
pub mod chain;
pub mod http;
pub mod ldap;
pub mod local;
pub mod password;
pub mod rules;
pub mod timed;
pub mod token;

use async_trait::async_trait;

pub use rules::{RuleError, RuleSet};

use crate::state::MountRecord;
use crate::types::{PeerAddr, Protocol, Secret, UploadMode};

/// Everything a session needs to know about an authenticated user.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user: String,
    /// Virtual path of the home inside the storage root, e.g. `/alice`.
    pub home: String,
    /// Compiled once, here where the identity is built; sessions only match against it.
    pub rules: RuleSet,
    /// Virtual folders on other backends or prefixes; `/` here replaces the home.
    pub mounts: Vec<MountRecord>,
    /// May use the admin API.
    pub admin: bool,
    pub upload_mode: UploadMode,
    /// Which backend vouched for the user ("local", later "ldap", "http").
    pub source: &'static str,
}

/// What the client presented.
#[derive(Debug)]
pub enum Credentials {
    Password(Secret<String>),
    /// A public key whose possession the protocol layer already verified, as
    /// `algorithm base64` (the authorized_keys form without comment).
    PublicKey(String),
    /// A bearer token issued by `token::TokenKeys`.
    Token(Secret<String>),
    /// An API key (`ferry_k1_…`); it names its user.
    ApiKey(Secret<String>),
}

impl Credentials {
    pub fn method(&self) -> &'static str {
        match self {
            Credentials::Password(_) => "password",
            Credentials::PublicKey(_) => "publickey",
            Credentials::Token(_) => "token",
            Credentials::ApiKey(_) => "api_key",
        }
    }
}

/// Why a login was refused; recorded in audit, never told to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    #[error("unknown user")]
    UnknownUser,
    #[error("wrong password")]
    WrongPassword,
    #[error("key not authorized")]
    UnknownKey,
    #[error("empty password")]
    EmptyPassword,
    #[error("account disabled")]
    Disabled,
    #[error("invalid token")]
    InvalidToken,
    #[error("expired token")]
    ExpiredToken,
    #[error("revoked token")]
    RevokedToken,
    #[error("unknown or revoked API key")]
    UnknownApiKey,
    #[error("refused by the authentication service")]
    RefusedByService,
    /// Every password-hashing thread was busy and the queue full: refused without a check.
    #[error("too many password checks in progress")]
    Busy,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("denied: {0}")]
    Denied(Denial),
    #[error("authentication backend unavailable: {0}")]
    Unavailable(Unavailable),
}

/// Which backend could not answer, and why; logged and audited, never told to the client.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    #[error("user store: {0}")]
    Store(#[from] crate::state::StateError),
    #[error("directory: {0}")]
    Directory(String),
    /// The HTTP authentication service (the text never holds its URL).
    #[error("authentication service: {0}")]
    Service(String),
}

/// Where a login comes from, for backends that decide by it (the HTTP service).
#[derive(Debug, Clone, Copy)]
pub struct AuthContext {
    pub protocol: Protocol,
    pub peer: PeerAddr,
}

#[async_trait]
pub trait Authenticator: Send + Sync {
    async fn authenticate(
        &self,
        user: &str,
        credentials: &Credentials,
        context: &AuthContext,
    ) -> Result<Identity, AuthError>;

    /// Asks again, without credentials, about a user this backend vouched for earlier (a
    /// browser session sliding): who they are now, or a refusal if they are gone.
    /// `UnknownUser` when the identity is not this backend's, so a chain asks the next.
    async fn recheck(&self, identity: &Identity, context: &AuthContext) -> Result<Identity, AuthError> {
        let _ = (identity, context);
        Err(AuthError::Denied(Denial::UnknownUser))
    }
}

/// Why a mount line or record cannot be used; the text is for the administrator who wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountError {
    #[error("`{0}`: expected PATH=STORAGE[:PREFIX]")]
    Syntax(String),
    #[error("mount path `{0}` must be an absolute path without `.`, `..` or `//`")]
    BadPath(String),
    #[error("mount prefix `{0}` must not contain `.`, `..`, `\\` or NUL")]
    BadPrefix(String),
    #[error("storage name `{0}` must be lowercase letters, digits, `_` or `-`")]
    BadStorageName(String),
}

/// Parses `PATH=STORAGE[:PREFIX]` (e.g. `/inbox=partners:acme/inbox`) and checks it.
pub fn parse_mount_line(raw: &str) -> Result<MountRecord, MountError> {
    let (path, target) = raw.split_once('=').ok_or_else(|| MountError::Syntax(raw.to_string()))?;
    let (storage, prefix) = target.split_once(':').unwrap_or((target, ""));
    let mount = MountRecord {
        path: path.trim().to_string(),
        storage: storage.trim().to_string(),
        prefix: prefix.trim().trim_matches('/').to_string(),
    };
    validate_mount(&mount)?;
    Ok(mount)
}

/// A home is an absolute virtual path without `.` or `..` segments, backslashes or NUL.
pub fn validate_home(home: &str) -> Result<(), String> {
    let bad_segment = home.split('/').any(|s| s == ".." || s == ".");
    if !home.starts_with('/') || bad_segment || home.contains(['\0', '\\']) {
        return Err(format!("home `{home}` must be an absolute path without `.` or `..`"));
    }
    Ok(())
}

/// Whether an external user name can stand for exactly one folder name in a home or mount
/// template: an empty name, `.` or `..` would make `/{user}` the storage root or its parent.
pub fn is_folder_name(user: &str) -> bool {
    !user.is_empty()
        && user != "."
        && user != ".."
        && !user.chars().any(|c| c == '/' || c == '\\' || c.is_control())
}

/// The home a `{user}` template gives `user`, checked: the name must be one folder name and
/// the result a valid home.
pub fn home_from_template(template: &str, user: &str) -> Result<String, String> {
    if template.contains("{user}") && !is_folder_name(user) {
        return Err(format!("user name `{}` cannot name a home folder", user.escape_debug()));
    }
    let home = template.replace("{user}", user);
    validate_home(&home)?;
    Ok(home)
}

/// Checks a mount's shape: an absolute virtual folder and a key prefix, neither with `.`, `..`,
/// empty segments, backslashes or NUL, and a storage name as `[storages.NAME]` spells it.
pub fn validate_mount(mount: &MountRecord) -> Result<(), MountError> {
    let clean = |s: &str| {
        s.split('/').filter(|p| !p.is_empty()).all(|p| p != "." && p != ".." && !p.contains(['\\', '\0']))
    };
    if !mount.path.starts_with('/') || mount.path.contains("//") || !clean(&mount.path) {
        return Err(MountError::BadPath(mount.path.clone()));
    }
    if !clean(&mount.prefix) {
        return Err(MountError::BadPrefix(mount.prefix.clone()));
    }
    let name_ok = !mount.storage.is_empty()
        && mount
            .storage
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !name_ok {
        return Err(MountError::BadStorageName(mount.storage.clone()));
    }
    Ok(())
}
