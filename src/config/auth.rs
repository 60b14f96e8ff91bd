//! `[auth]`, `[auth.http]` and `[auth.ldap]`: who may log in, and the login policy every
//! protocol shares (attempts, rejection delay, bans).

use std::path::PathBuf;
use std::time::Duration;

use toml::Table;

use super::reader::{KeyError, Reader};
use crate::types::{Secret, UploadMode};

#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Authenticators asked in order; the first definitive answer wins.
    pub chain: Vec<AuthBackend>,
    /// The HTTP authentication service (`[auth.http]`).
    pub http: AuthHttpConfig,
    /// The LDAP / Active Directory authenticator (`[auth.ldap]`).
    pub ldap: AuthLdapConfig,
    /// How long a success of an external authenticator is reused; zero is off.
    pub cache_ttl: Duration,
    /// Failed logins from one address (any protocol) within `ban_window` that get it refused
    /// for `ban_time`; 0 turns this off.
    pub ban_after_failures: u32,
    pub ban_window: Duration,
    pub ban_time: Duration,
    /// Addresses never counted or banned (the operator's own networks, monitoring).
    pub allow_addresses: Vec<ipnet::IpNet>,
    /// Authentication attempts allowed on one connection before it is closed, for every
    /// protocol (`ftp.max_login_attempts` is its deprecated FTP-only alias).
    pub max_attempts: u32,
    /// Every rejection takes this long, whatever the reason, so timing reveals nothing.
    pub rejection_delay: Duration,
    /// Upload mode for users that do not set their own.
    pub default_upload_mode: UploadMode,
    /// OS threads that check passwords (argon2id), apart from the runtime's pools.
    pub hash_threads: usize,
    /// Password checks that may wait for a thread; beyond it a login is refused at once.
    pub hash_queue: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthBackend {
    Local,
    Http,
    Ldap,
}

/// A directory to log users in against (docs/auth-ldap.md).
#[derive(Debug, Clone)]
pub struct AuthLdapConfig {
    pub url: String,
    pub starttls: bool,
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
    /// Direct bind: the user's DN with `{user}` (escaped), e.g. `uid={user},ou=people,dc=x`.
    pub bind_dn: Option<String>,
    /// Search mode: a service account finds the user's DN under `base_dn` with `user_filter`.
    pub service_dn: Option<String>,
    pub service_password: Option<Secret<String>>,
    pub base_dn: String,
    pub user_filter: String,
    /// Groups are found under this DN with `group_filter` (`{dn}` is the user's DN); their `cn`.
    pub group_base_dn: Option<String>,
    pub group_filter: String,
    pub ssh_key_attribute: String,
    /// The home, with `{user}`.
    pub home: String,
    /// `GROUP: PATH=perm,perm` — rules for members of GROUP; users in no listed group get
    /// `default_rules`.
    pub group_rules: Vec<String>,
    /// `GROUP: /home/with/{user}` — the first listed group the user is in sets the home.
    pub group_homes: Vec<String>,
    /// `GROUP: PATH=STORAGE[:PREFIX]` — mounts for members of GROUP (`{user}` allowed).
    pub group_mounts: Vec<String>,
    pub default_rules: Vec<String>,
}

/// An external service that answers logins: POST JSON, fail closed (docs/auth-http.md).
#[derive(Debug, Clone)]
pub struct AuthHttpConfig {
    pub url: String,
    pub timeout: Duration,
    /// CA certificate(s) to trust for the service, in addition to the system's.
    pub ca_file: Option<PathBuf>,
    /// Sent as `Authorization: Bearer …` so the service knows the caller.
    pub bearer_secret: Option<Secret<String>>,
}

/// The deprecated `ftp.max_login_attempts`, when a file or the environment sets it.
pub(super) struct LegacyFtpAttempts(pub Option<u32>);

/// `[auth]` and its authenticator tables. `legacy` is `ftp.max_login_attempts`: it stands in
/// for a missing `auth.max_attempts`, and either way a warning naming both keys is kept.
pub(super) fn parse(
    section: (&str, Table),
    legacy: LegacyFtpAttempts,
    errors: &mut Vec<KeyError>,
    warnings: &mut Vec<String>,
) -> AuthConfig {
    let mut r = Reader::new(section.0, section.1, errors);
    let max_attempts = match (r.contains("max_attempts"), legacy.0) {
        (false, Some(attempts)) => {
            warnings.push(format!(
                "ftp.max_login_attempts is deprecated: set auth.max_attempts (every protocol) instead; \
                 using {attempts}"
            ));
            attempts
        }
        (true, Some(_)) => {
            warnings.push(
                "ftp.max_login_attempts is deprecated and ignored: auth.max_attempts is set".to_string(),
            );
            r.integer("max_attempts", 6, 1, 100) as u32
        }
        (_, None) => r.integer("max_attempts", 6, 1, 100) as u32,
    };
    let rejection_delay = r.duration("rejection_delay", Duration::from_secs(1));
    let default_upload_mode = r.choice(
        "default_upload_mode",
        UploadMode::Atomic,
        &[("atomic", UploadMode::Atomic), ("in_place", UploadMode::InPlace)],
    );
    let ban_after_failures = r.integer("ban_after_failures", 20, 0, 1_000_000) as u32;
    let ban_window = r.duration("ban_window", Duration::from_secs(600));
    let ban_time = r.duration("ban_time", Duration::from_secs(900));
    let allow_addresses = super::listen::networks(&mut r, "allow_addresses");
    let chain = parse_chain(&mut r);
    let cache_ttl = r.duration("cache_ttl", Duration::ZERO);
    let hash_threads = r.integer("hash_threads", 2, 1, 256) as usize;
    let hash_queue = r.integer("hash_queue", 32, 0, 100_000) as usize;
    let mut h = r.nested("http");
    let http = parse_http(&mut h, chain.contains(&AuthBackend::Http));
    h.finish();
    let mut l = r.nested("ldap");
    let ldap = parse_ldap(&mut l, chain.contains(&AuthBackend::Ldap));
    l.finish();
    r.finish();
    AuthConfig {
        max_attempts,
        rejection_delay,
        default_upload_mode,
        ban_after_failures,
        ban_window,
        ban_time,
        allow_addresses,
        chain,
        http,
        ldap,
        cache_ttl,
        hash_threads,
        hash_queue,
    }
}

fn parse_chain(r: &mut Reader<'_>) -> Vec<AuthBackend> {
    let chain: Vec<AuthBackend> = r
        .strings("chain", &["local"])
        .iter()
        .filter_map(|name| match name.as_str() {
            "local" => Some(AuthBackend::Local),
            "http" => Some(AuthBackend::Http),
            "ldap" => Some(AuthBackend::Ldap),
            other => {
                r.fail("chain", format!("unknown authenticator `{other}` (local, http, ldap)"));
                None
            }
        })
        .collect();
    if chain.is_empty() {
        r.fail("chain", "name at least one authenticator");
    }
    chain
}

fn parse_http(h: &mut Reader<'_>, wanted: bool) -> AuthHttpConfig {
    let url = h.string("url", "");
    let http = AuthHttpConfig {
        timeout: h.duration("timeout", Duration::from_secs(5)),
        ca_file: h.optional_path("ca_file"),
        bearer_secret: h.optional_secret("bearer_secret"),
        url: url.clone(),
    };
    if wanted && !(url.starts_with("https://") || url.starts_with("http://")) {
        h.fail("url", "the http authenticator (named in auth.chain) needs an http(s):// URL");
    }
    http
}

fn parse_ldap(l: &mut Reader<'_>, wanted: bool) -> AuthLdapConfig {
    let ldap = AuthLdapConfig {
        url: l.string("url", ""),
        starttls: l.bool("starttls", false),
        ca_file: l.optional_path("ca_file"),
        timeout: l.duration("timeout", Duration::from_secs(5)),
        bind_dn: l.optional_string("bind_dn"),
        service_dn: l.optional_string("service_dn"),
        service_password: l.optional_secret("service_password"),
        base_dn: l.string("base_dn", ""),
        user_filter: l.string("user_filter", "(uid={user})"),
        group_base_dn: l.optional_string("group_base_dn"),
        group_filter: l.string("group_filter", "(member={dn})"),
        ssh_key_attribute: l.string("ssh_key_attribute", "sshPublicKey"),
        home: l.string("home", "/{user}"),
        group_rules: l.strings("group_rules", &[]),
        group_homes: l.strings("group_homes", &[]),
        group_mounts: l.strings("group_mounts", &[]),
        default_rules: l.strings("default_rules", &["/=*"]),
    };
    if wanted {
        if !(ldap.url.starts_with("ldap://") || ldap.url.starts_with("ldaps://")) {
            l.fail("url", "the ldap authenticator (named in auth.chain) needs an ldap:// or ldaps:// URL");
        }
        if ldap.bind_dn.is_none() && (ldap.service_dn.is_none() || ldap.base_dn.is_empty()) {
            l.fail(
                "bind_dn",
                "the ldap authenticator (named in auth.chain) needs bind_dn (direct bind) or service_dn, service_password and base_dn (search)",
            );
        }
    }
    ldap
}
