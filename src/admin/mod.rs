//! Administrative operations on users, keys and rules, shared by the CLI and the HTTPS admin
//! API. Validates input, writes through `state`, and records an audit event for each
//! change. Uses `auth`, `audit`, `state`.

use russh::keys::{HashAlg, PublicKey};

use crate::audit::{Audit, EventKind, Fields, Outcome};
use crate::auth::password;
/// Re-exported so protocols that manage users need not reach into `state`.
pub use crate::state::audit::{AuditQuery, StoredLine};
use crate::state::{KeyRecord, MountRecord, NewUser, RuleRecord, State};
pub use crate::state::{StateError, UserChange, UserRecord};

/// A time bound of an audit query, as operators write it: RFC 3339, or a duration before now
/// (`90s`, `2h`, `7d`).
pub fn parse_audit_time(raw: &str) -> Result<chrono::DateTime<chrono::Utc>, AuditTimeError> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(time.with_timezone(&chrono::Utc));
    }
    let ago = crate::config::units::parse_duration(raw)
        .map_err(|_| AuditTimeError::Unreadable { raw: raw.to_string() })?;
    let ago = chrono::Duration::from_std(ago)?;
    chrono::Utc::now()
        .checked_sub_signed(ago)
        .ok_or_else(|| AuditTimeError::BeforeAnyDate { raw: raw.to_string() })
}

/// Why an audit query's time bound cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuditTimeError {
    #[error("`{raw}`: expected an RFC 3339 time or a duration such as 2h")]
    Unreadable { raw: String },
    #[error("{0}")]
    TooLong(#[from] chrono::OutOfRangeError),
    #[error("`{raw}` reaches before any date")]
    BeforeAnyDate { raw: String },
}
use crate::types::{Protocol, Secret, UploadMode};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("invalid user name `{0}`: use 1-64 letters, digits, `.`, `_` or `-`, not starting with `-`")]
    InvalidName(String),
    #[error("invalid home `{0}`: must be an absolute path without `..`")]
    InvalidHome(String),
    #[error("invalid public key: {0}")]
    InvalidKey(String),
    #[error("invalid rule: {0}")]
    InvalidRule(#[from] crate::auth::RuleError),
    #[error("invalid mount: {0}")]
    InvalidMount(#[from] crate::auth::MountError),
    #[error("{0}")]
    Password(#[from] password::HashError),
    #[error("{0}")]
    State(#[from] StateError),
}

/// A user to create.
#[derive(Debug, Default)]
pub struct UserSpec {
    pub name: String,
    pub password: Option<Secret<String>>,
    pub home: Option<String>,
    pub keys: Vec<String>,
    pub rules: Vec<RuleRecord>,
    pub mounts: Vec<MountRecord>,
    pub upload_mode: Option<UploadMode>,
    pub admin: bool,
}

#[derive(Clone)]
pub struct Admin {
    state: State,
    audit: Audit,
    /// Where changes come from, for their audit records.
    protocol: Protocol,
    /// The administrator making the changes (admin API), recorded as the audit `actor`.
    actor: Option<String>,
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('-')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && name != "."
        && name != ".."
}

/// Parses an authorized_keys line (`type base64 [comment]`) and fingerprints it.
pub fn parse_key(line: &str) -> Result<KeyRecord, AdminError> {
    let line = line.trim();
    let key = PublicKey::from_openssh(line).map_err(|e| AdminError::InvalidKey(e.to_string()))?;
    let algorithm = key.algorithm();
    if matches!(algorithm, russh::keys::Algorithm::Dsa) {
        return Err(AdminError::InvalidKey("DSA keys are not accepted".into()));
    }
    Ok(KeyRecord { fingerprint: key.fingerprint(HashAlg::Sha256).to_string(), public_key: line.to_string() })
}

/// Parses `PATTERN=perm,perm` (e.g. `/reports=list,download`).
pub fn parse_rule(raw: &str) -> Result<RuleRecord, AdminError> {
    crate::auth::rules::parse_line(raw).map_err(AdminError::InvalidRule)
}

/// Parses `PATH=STORAGE[:PREFIX]` (e.g. `/inbox=partners:acme/inbox`): the virtual folder PATH
/// shows PREFIX of the backend named STORAGE (`default` is `[storage]`).
pub fn parse_mount(raw: &str) -> Result<MountRecord, AdminError> {
    crate::auth::parse_mount_line(raw).map_err(AdminError::InvalidMount)
}

impl Admin {
    pub fn new(state: State, audit: Audit) -> Self {
        Self { state, audit, protocol: Protocol::Cli, actor: None }
    }

    /// Changes made through another face (the HTTPS admin API) are audited as such.
    pub fn with_protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// The same rights, with every change audited as made by administrator `admin`.
    pub fn acting_as(&self, admin: &str) -> Self {
        Self { actor: Some(admin.to_string()), ..self.clone() }
    }

    fn record(&self, kind: EventKind, user: &str, reason: &str) {
        let fields = Fields {
            protocol: Some(self.protocol),
            user: Some(user.to_string()),
            actor: self.actor.clone(),
            reason: Some(reason.to_string()),
            ..Fields::default()
        };
        self.audit.emit(kind, Outcome::Ok, fields);
    }

    /// Stored audit records matching `query` (the database sink's table).
    pub async fn audit_records(&self, query: &AuditQuery) -> Result<Vec<StoredLine>, AdminError> {
        Ok(self.state.audit().query(query).await?)
    }

    pub async fn create_user(&self, spec: UserSpec) -> Result<(), AdminError> {
        if !valid_name(&spec.name) {
            return Err(AdminError::InvalidName(spec.name));
        }
        let home = spec.home.clone().unwrap_or_else(|| format!("/{}", spec.name));
        if crate::auth::validate_home(&home).is_err() {
            return Err(AdminError::InvalidHome(home));
        }
        let keys = spec.keys.iter().map(|k| parse_key(k)).collect::<Result<Vec<_>, _>>()?;
        let password_hash = match &spec.password {
            Some(secret) => {
                let secret = secret.expose().clone();
                Some(
                    tokio::task::spawn_blocking(move || password::hash(&secret))
                        .await
                        .unwrap_or(Err(password::HashError::Empty))?,
                )
            }
            None => None,
        };
        let rules = if spec.rules.is_empty() {
            vec![RuleRecord { path: "/".into(), permissions: vec!["*".into()] }]
        } else {
            spec.rules
        };
        let user =
            NewUser { name: spec.name.clone(), password_hash, home, upload_mode: spec.upload_mode, rules };
        for mount in &spec.mounts {
            crate::auth::validate_mount(mount).map_err(AdminError::InvalidMount)?;
        }
        self.state.users().create(&user).await?;
        for key in &keys {
            self.state.users().add_key(&spec.name, key).await?;
        }
        if !spec.mounts.is_empty() {
            self.state.users().set_mounts(&spec.name, &spec.mounts).await?;
        }
        if spec.admin {
            self.state.users().set_admin(&spec.name, true).await?;
        }
        self.record(EventKind::UserCreated, &spec.name, "created");
        Ok(())
    }

    /// Every user, key and API key (hashed) as one document.
    pub async fn export_state(&self) -> Result<crate::state::document::StateDocument, AdminError> {
        Ok(self.state.export().await?)
    }

    /// Loads an exported document into this (empty) store; each user is audited as created.
    pub async fn import_state(
        &self,
        doc: &crate::state::document::StateDocument,
    ) -> Result<usize, AdminError> {
        let imported = self.state.import(doc).await?;
        for user in &doc.users {
            self.record(EventKind::UserCreated, &user.name, "imported from a state document");
        }
        Ok(imported)
    }

    pub async fn list_users(&self) -> Result<Vec<UserRecord>, AdminError> {
        Ok(self.state.users().list().await?)
    }

    pub async fn user(&self, name: &str) -> Result<UserRecord, AdminError> {
        Ok(self.state.users().get(name).await?)
    }

    pub async fn count_users(&self) -> Result<i64, AdminError> {
        Ok(self.state.users().count().await?)
    }

    pub async fn remove_user(&self, name: &str) -> Result<(), AdminError> {
        self.state.users().remove(name).await?;
        self.record(EventKind::UserRemoved, name, "removed");
        Ok(())
    }

    pub async fn set_password(&self, name: &str, secret: Secret<String>) -> Result<(), AdminError> {
        let plain = secret.expose().clone();
        let hash = tokio::task::spawn_blocking(move || password::hash(&plain))
            .await
            .unwrap_or(Err(password::HashError::Empty))?;
        self.state.users().set_password(name, &hash).await?;
        self.record(EventKind::UserUpdated, name, "password changed");
        Ok(())
    }

    pub async fn add_key(&self, name: &str, line: &str) -> Result<String, AdminError> {
        let key = parse_key(line)?;
        self.state.users().add_key(name, &key).await?;
        self.record(EventKind::UserUpdated, name, &format!("key added {}", key.fingerprint));
        Ok(key.fingerprint)
    }

    /// Removes a key given by fingerprint (`SHA256:…`) or by its authorized_keys line.
    pub async fn remove_key(&self, name: &str, key: &str) -> Result<(), AdminError> {
        let fingerprint =
            if key.starts_with("SHA256:") { key.to_string() } else { parse_key(key)?.fingerprint };
        self.state.users().remove_key(name, &fingerprint).await?;
        self.record(EventKind::UserUpdated, name, &format!("key removed {fingerprint}"));
        Ok(())
    }

    pub async fn set_rules(&self, name: &str, rules: &[RuleRecord]) -> Result<(), AdminError> {
        self.state.users().set_rules(name, rules).await?;
        self.record(EventKind::UserUpdated, name, "rules changed");
        Ok(())
    }

    /// Replaces a user's mounts (an empty list leaves just the home).
    pub async fn set_mounts(&self, name: &str, mounts: &[MountRecord]) -> Result<(), AdminError> {
        for mount in mounts {
            crate::auth::validate_mount(mount).map_err(AdminError::InvalidMount)?;
        }
        self.state.users().set_mounts(name, mounts).await?;
        self.record(EventKind::UserUpdated, name, "mounts changed");
        Ok(())
    }

    /// A new API key for `user`; the key itself is returned once and never stored.
    pub async fn create_api_key(&self, user: &str, name: &str) -> Result<(String, String), AdminError> {
        let name = name.trim();
        if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
            return Err(AdminError::InvalidKey("an API key needs a name of 1 to 100 characters".into()));
        }
        let (id, key, hash) = crate::auth::api_key::generate();
        self.state.api_keys().create(user, &id, name, &hash).await?;
        self.record(EventKind::UserUpdated, user, &format!("api key {id} created"));
        Ok((id, key))
    }

    pub async fn api_keys(
        &self,
        user: &str,
    ) -> Result<Vec<crate::state::api_keys::ApiKeyRecord>, AdminError> {
        Ok(self.state.api_keys().list(user).await?)
    }

    /// Revokes `user`'s key `id`; false if they have no such key.
    pub async fn revoke_api_key(&self, user: &str, id: &str) -> Result<bool, AdminError> {
        let removed = self.state.api_keys().remove(user, id).await?;
        if removed {
            self.record(EventKind::UserUpdated, user, &format!("api key {id} revoked"));
        }
        Ok(removed)
    }

    pub async fn set_admin(&self, name: &str, admin: bool) -> Result<(), AdminError> {
        self.state.users().set_admin(name, admin).await?;
        self.record(EventKind::UserUpdated, name, if admin { "admin granted" } else { "admin revoked" });
        Ok(())
    }

    pub async fn set_home(&self, name: &str, home: &str) -> Result<(), AdminError> {
        if crate::auth::validate_home(home).is_err() {
            return Err(AdminError::InvalidHome(home.to_string()));
        }
        self.state.users().set_home(name, home).await?;
        self.record(EventKind::UserUpdated, name, "home changed");
        Ok(())
    }

    pub async fn set_upload_mode(&self, name: &str, mode: Option<UploadMode>) -> Result<(), AdminError> {
        self.state.users().set_upload_mode(name, mode).await?;
        self.record(EventKind::UserUpdated, name, "upload mode changed");
        Ok(())
    }

    /// Applies several changes to `name` at once (one transaction, one audit record naming
    /// what changed); a bad value changes nothing.
    pub async fn change_user(&self, name: &str, change: UserChange) -> Result<(), AdminError> {
        if let Some(home) = &change.home
            && crate::auth::validate_home(home).is_err()
        {
            return Err(AdminError::InvalidHome(home.clone()));
        }
        for rule in change.rules.iter().flatten() {
            crate::auth::rules::validate(rule)?;
        }
        for mount in change.mounts.iter().flatten() {
            crate::auth::validate_mount(mount)?;
        }
        self.state.users().change(name, &change).await?;
        let mut changed = Vec::new();
        let fields = [
            ("home", change.home.is_some()),
            ("rules", change.rules.is_some()),
            ("mounts", change.mounts.is_some()),
            ("upload mode", change.upload_mode.is_some()),
        ];
        changed.extend(fields.iter().filter(|(_, set)| *set).map(|(name, _)| name.to_string()));
        if let Some(enabled) = change.enabled {
            changed.push(if enabled { "enabled" } else { "disabled" }.to_string());
        }
        if let Some(admin) = change.admin {
            changed.push(if admin { "admin granted" } else { "admin revoked" }.to_string());
        }
        self.record(EventKind::UserUpdated, name, &format!("changed: {}", changed.join(", ")));
        Ok(())
    }

    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), AdminError> {
        self.state.users().set_enabled(name, enabled).await?;
        self.record(EventKind::UserUpdated, name, if enabled { "enabled" } else { "disabled" });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_rules_and_keys_are_validated() {
        assert!(valid_name("alice.b-2_x"));
        assert!(!valid_name("-rf"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(""));
        assert!(!valid_name(".."));
        assert_eq!(parse_rule("/ro=list, download").unwrap().permissions, ["list", "download"]);
        assert!(parse_rule("/ro").is_err());
        assert!(parse_rule("/ro=fly").is_err());
        let key = parse_key(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test",
        )
        .unwrap();
        assert!(key.fingerprint.starts_with("SHA256:"));
        assert!(parse_key("ssh-ed25519 notbase64").is_err());
    }
}
