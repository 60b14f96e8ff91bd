//! LDAP / Active Directory. Direct bind with a DN template, or a service account that finds the
//! user's DN and then a bind as that DN on a connection of its own (ldap3 multiplexes one
//! connection per handle, and a bind changes it for every clone). Empty passwords are refused
//! before any bind (an empty password binds anonymously and "succeeds"); user input is escaped
//! in filters and DNs. Group membership maps to permission rules. A directory that cannot be
//! reached within the timeout refuses the login (fails closed).

use std::sync::Arc;

use async_trait::async_trait;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, dn_escape, ldap_escape};

use super::rules::{self, RuleError};
use super::{
    AuthContext, AuthError, Authenticator, Credentials, Denial, Identity, MountError, RuleSet, Unavailable,
    home_from_template, is_folder_name, parse_mount_line,
};
use crate::clients;
use crate::config::AuthLdapConfig;
use crate::state::{MountRecord, RuleRecord};
use crate::types::UploadMode;

pub struct LdapAuthenticator {
    config: AuthLdapConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// (group, rule) pairs from `group_rules`.
    group_rules: Vec<(String, RuleRecord)>,
    /// (group, home template) and (group, mount template) pairs.
    group_homes: Vec<(String, String)>,
    group_mounts: Vec<(String, String)>,
    default_rules: Vec<RuleRecord>,
    default_upload_mode: UploadMode,
}

/// Why `[auth.ldap]` cannot be used; names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum LdapConfigError {
    #[error("auth.ldap.{key}: `{line}`: expected GROUP: {value}")]
    GroupLine { key: &'static str, line: String, value: &'static str },
    #[error("auth.ldap.{key}: {error}")]
    Rule { key: &'static str, error: RuleError },
    #[error("auth.ldap.group_mounts: {0}")]
    Mount(MountError),
    #[error("auth.ldap.{key}: {why}")]
    Home { key: &'static str, why: String },
    #[error("auth.ldap.ca_file {0}")]
    CaFile(#[source] crate::clients::ClientTlsError),
}

/// `PATH=STORAGE[:PREFIX]` with `{user}` filled in.
fn parse_mount(template: &str, user: &str) -> Result<MountRecord, MountError> {
    parse_mount_line(&template.replace("{user}", user))
}

impl LdapAuthenticator {
    pub fn new(config: &AuthLdapConfig, default_upload_mode: UploadMode) -> Result<Self, LdapConfigError> {
        let split = |key: &'static str, value: &'static str, line: &str| {
            let (group, rest) = line.split_once(':').ok_or_else(|| LdapConfigError::GroupLine {
                key,
                line: line.to_string(),
                value,
            })?;
            Ok::<_, LdapConfigError>((group.trim().to_string(), rest.trim().to_string()))
        };
        let group_rules = config
            .group_rules
            .iter()
            .map(|line| {
                let (group, rule) = split("group_rules", "PATH=perms", line)?;
                let rule = rules::parse_line(&rule)
                    .map_err(|error| LdapConfigError::Rule { key: "group_rules", error })?;
                Ok((group, rule))
            })
            .collect::<Result<Vec<_>, LdapConfigError>>()?;
        let group_homes = config
            .group_homes
            .iter()
            .map(|l| split("group_homes", "VALUE", l))
            .collect::<Result<Vec<_>, _>>()?;
        let group_mounts = config
            .group_mounts
            .iter()
            .map(|l| split("group_mounts", "VALUE", l))
            .collect::<Result<Vec<_>, _>>()?;
        for (_, mount) in &group_mounts {
            parse_mount(mount, "user").map_err(LdapConfigError::Mount)?;
        }
        home_from_template(&config.home, "user").map_err(|why| LdapConfigError::Home { key: "home", why })?;
        for (_, home) in &group_homes {
            home_from_template(home, "user")
                .map_err(|why| LdapConfigError::Home { key: "group_homes", why })?;
        }
        let default_rules = config
            .default_rules
            .iter()
            .map(|r| {
                rules::parse_line(r).map_err(|error| LdapConfigError::Rule { key: "default_rules", error })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Without a CA file, ldap3 trusts the platform's roots itself.
        let tls = match &config.ca_file {
            None => None,
            Some(file) => Some(clients::client_config(Some(file)).map_err(LdapConfigError::CaFile)?),
        };
        Ok(Self {
            config: config.clone(),
            tls,
            group_rules,
            group_homes,
            group_mounts,
            default_rules,
            default_upload_mode,
        })
    }

    async fn connect(&self) -> Result<Ldap, AuthError> {
        let mut settings =
            LdapConnSettings::new().set_conn_timeout(self.config.timeout).set_starttls(self.config.starttls);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(Arc::clone(tls));
        }
        let (conn, ldap) = LdapConnAsync::with_settings(settings, &self.config.url)
            .await
            .map_err(|e| AuthError::Unavailable(Unavailable::Directory(format!("unreachable: {e}"))))?;
        ldap3::drive!(conn);
        Ok(ldap)
    }

    fn unavailable(e: ldap3::LdapError) -> AuthError {
        AuthError::Unavailable(Unavailable::Directory(e.to_string()))
    }

    /// The user's entry (DN and the attributes we read), found by the service account, or the
    /// DN of the template in direct-bind mode.
    async fn find_user(&self, user: &str) -> Result<(String, Vec<String>), AuthError> {
        let timeout = self.config.timeout;
        let attrs = vec![self.config.ssh_key_attribute.as_str()];
        if let Some(template) = &self.config.bind_dn {
            return Ok((template.replace("{user}", &dn_escape(user)), Vec::new()));
        }
        let mut ldap = self.connect().await?;
        let (dn, password) = (
            self.config.service_dn.clone().unwrap_or_default(),
            self.config.service_password.as_ref().map(|s| s.expose().clone()).unwrap_or_default(),
        );
        ldap.with_timeout(timeout)
            .simple_bind(&dn, &password)
            .await
            .and_then(|r| r.success())
            .map_err(Self::unavailable)?;
        let filter = self.config.user_filter.replace("{user}", &ldap_escape(user));
        let (entries, _) = ldap
            .with_timeout(timeout)
            .search(&self.config.base_dn, Scope::Subtree, &filter, attrs)
            .await
            .and_then(|r| r.success())
            .map_err(Self::unavailable)?;
        let _ = ldap.unbind().await;
        match entries.len() {
            0 => Err(AuthError::Denied(Denial::UnknownUser)),
            1 => {
                let entry = SearchEntry::construct(
                    entries.into_iter().next().ok_or(AuthError::Denied(Denial::UnknownUser))?,
                );
                let keys = entry.attrs.get(&self.config.ssh_key_attribute).cloned().unwrap_or_default();
                Ok((entry.dn, keys))
            }
            // Ambiguous: never guess which person this is.
            _ => Err(AuthError::Denied(Denial::UnknownUser)),
        }
    }

    /// Binds as the user on a connection of its own; then reads the groups with it.
    async fn bind_and_groups(&self, dn: &str, password: &str) -> Result<Vec<String>, AuthError> {
        let timeout = self.config.timeout;
        let mut ldap = self.connect().await?;
        match ldap.with_timeout(timeout).simple_bind(dn, password).await {
            Ok(result) if result.rc == 0 => {}
            // 49: invalid credentials (also for an unknown DN in direct mode).
            Ok(result) if result.rc == 49 => return Err(AuthError::Denied(Denial::WrongPassword)),
            Ok(result) => {
                return Err(AuthError::Unavailable(Unavailable::Directory(format!(
                    "bind: rc {}",
                    result.rc
                ))));
            }
            Err(e) => return Err(Self::unavailable(e)),
        }
        let groups = self.groups(&mut ldap, dn).await;
        let _ = ldap.unbind().await;
        groups
    }

    async fn groups(&self, ldap: &mut Ldap, dn: &str) -> Result<Vec<String>, AuthError> {
        let Some(base) = &self.config.group_base_dn else { return Ok(Vec::new()) };
        let filter = self.config.group_filter.replace("{dn}", &ldap_escape(dn));
        let (entries, _) = ldap
            .with_timeout(self.config.timeout)
            .search(base, Scope::Subtree, &filter, vec!["cn"])
            .await
            .and_then(|r| r.success())
            .map_err(Self::unavailable)?;
        Ok(entries
            .into_iter()
            .filter_map(|e| SearchEntry::construct(e).attrs.get("cn").and_then(|cn| cn.first().cloned()))
            .collect())
    }

    /// What the directory's answer makes of `user`; refused when the name cannot be one
    /// folder name in the home or mount templates (an empty name or `.` would give the
    /// storage root) or the home is not a valid one.
    fn identity(&self, user: &str, groups: &[String]) -> Result<Identity, AuthError> {
        let mut rules: Vec<RuleRecord> = self
            .group_rules
            .iter()
            .filter(|(group, _)| groups.iter().any(|g| g.eq_ignore_ascii_case(group)))
            .map(|(_, rule)| rule.clone())
            .collect();
        if rules.is_empty() {
            rules = self.default_rules.clone();
        }
        let member = |group: &String| groups.iter().any(|g| g.eq_ignore_ascii_case(group));
        let template = self
            .group_homes
            .iter()
            .find(|(group, _)| member(group))
            .map_or(self.config.home.as_str(), |(_, home)| home.as_str());
        let home = home_from_template(template, user).map_err(|why| {
            tracing::warn!(%why, "directory user refused: no valid home");
            AuthError::Denied(Denial::UnknownUser)
        })?;
        let mounts = self
            .group_mounts
            .iter()
            .filter(|(group, _)| member(group))
            .map(|(_, mount)| {
                if mount.contains("{user}") && !is_folder_name(user) {
                    return Err(AuthError::Denied(Denial::UnknownUser));
                }
                parse_mount(mount, user).map_err(|_| AuthError::Denied(Denial::UnknownUser))
            })
            .collect::<Result<Vec<_>, AuthError>>()?;
        Ok(Identity {
            user: user.to_string(),
            home,
            rules: RuleSet::for_user(user, rules),
            mounts,
            admin: false,
            upload_mode: self.default_upload_mode,
            source: "ldap",
        })
    }

    /// Groups of `dn`, read with the service account.
    async fn service_groups(&self, dn: &str) -> Result<Vec<String>, AuthError> {
        let mut ldap = self.connect().await?;
        let service = (
            self.config.service_dn.clone().unwrap_or_default(),
            self.config.service_password.as_ref().map(|s| s.expose().clone()).unwrap_or_default(),
        );
        ldap.with_timeout(self.config.timeout)
            .simple_bind(&service.0, &service.1)
            .await
            .and_then(|r| r.success())
            .map_err(Self::unavailable)?;
        let groups = self.groups(&mut ldap, dn).await;
        let _ = ldap.unbind().await;
        groups
    }
}

#[async_trait]
impl Authenticator for LdapAuthenticator {
    async fn authenticate(
        &self,
        user: &str,
        credentials: &Credentials,
        _context: &AuthContext,
    ) -> Result<Identity, AuthError> {
        // A user name is a name: anything that could change a DN or a filter is not one.
        if user.is_empty() || user.len() > 256 || user.chars().any(|c| c.is_control()) {
            return Err(AuthError::Denied(Denial::UnknownUser));
        }
        match credentials {
            Credentials::Password(secret) => {
                if secret.expose().is_empty() {
                    return Err(AuthError::Denied(Denial::EmptyPassword));
                }
                let (dn, _) = self.find_user(user).await?;
                let groups = self.bind_and_groups(&dn, secret.expose()).await?;
                self.identity(user, &groups)
            }
            Credentials::PublicKey(offered) => {
                if self.config.bind_dn.is_some() {
                    // Reading keys needs the search account.
                    return Err(AuthError::Denied(Denial::UnknownUser));
                }
                let (dn, keys) = self.find_user(user).await?;
                let known =
                    keys.iter().any(|k| super::local::key_identity(k).as_deref() == Some(offered.as_str()));
                if !known {
                    return Err(AuthError::Denied(Denial::UnknownKey));
                }
                // Groups with the service account.
                let groups = self.service_groups(&dn).await?;
                self.identity(user, &groups)
            }
            Credentials::Token(_) | Credentials::ApiKey(_) => Err(AuthError::Denied(Denial::UnknownUser)),
        }
    }

    /// The user looked up again with the service account: gone from the directory is a
    /// refusal, and the groups (so rules, home, mounts) are read afresh. Direct-bind mode has
    /// no account to look with, so its sessions end at `https.token_ttl` instead of sliding.
    async fn recheck(&self, identity: &Identity, _context: &AuthContext) -> Result<Identity, AuthError> {
        if identity.source != "ldap" {
            return Err(AuthError::Denied(Denial::UnknownUser));
        }
        if self.config.bind_dn.is_some() {
            let why = "direct bind cannot look a user up again".to_string();
            return Err(AuthError::Unavailable(Unavailable::Directory(why)));
        }
        let (dn, _) = self.find_user(&identity.user).await?;
        let groups = self.service_groups(&dn).await?;
        self.identity(&identity.user, &groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(home: &str, group_homes: &[&str]) -> AuthLdapConfig {
        AuthLdapConfig {
            url: "ldap://127.0.0.1:1".into(),
            starttls: false,
            ca_file: None,
            timeout: std::time::Duration::from_secs(1),
            bind_dn: Some("uid={user},ou=people,dc=example,dc=org".into()),
            service_dn: None,
            service_password: None,
            base_dn: String::new(),
            user_filter: "(uid={user})".into(),
            group_base_dn: None,
            group_filter: "(member={dn})".into(),
            ssh_key_attribute: "sshPublicKey".into(),
            home: home.into(),
            group_rules: Vec::new(),
            group_homes: group_homes.iter().map(|s| s.to_string()).collect(),
            group_mounts: vec!["partners: /inbox=default:{user}/inbox".into()],
            default_rules: vec!["/=*".into()],
        }
    }

    /// Directory homes are checked like every other: a user name that is no folder name
    /// (`.`, `..`) never yields the storage root, and bad templates stop the start.
    #[test]
    fn directory_homes_are_validated() {
        let ldap = LdapAuthenticator::new(&config("/{user}", &["staff: /staff/{user}"]), UploadMode::Atomic)
            .unwrap();
        let groups = vec!["partners".to_string()];
        let ok = ldap.identity("alice", &groups).unwrap();
        assert_eq!(ok.home, "/alice");
        assert_eq!(ok.mounts[0].prefix, "alice/inbox");
        assert_eq!(ldap.identity("bob", &["staff".into()]).unwrap().home, "/staff/bob");
        for name in [".", "..", "a/b", "a\\b"] {
            assert!(
                matches!(ldap.identity(name, &groups), Err(AuthError::Denied(Denial::UnknownUser))),
                "`{name}`"
            );
            assert!(ldap.identity(name, &["staff".into()]).is_err(), "`{name}` in a group home");
        }
        for bad in ["relative/{user}", "/srv/../{user}", "/srv/./{user}"] {
            assert!(LdapAuthenticator::new(&config(bad, &[]), UploadMode::Atomic).is_err(), "{bad}");
        }
        let bad_group = config("/{user}", &["staff: /x/../{user}"]);
        assert!(LdapAuthenticator::new(&bad_group, UploadMode::Atomic).is_err());
    }
}
