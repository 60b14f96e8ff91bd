//! Builds each room once, bottom up: state, storage backends, audit, the first user, the
//! authenticator chain and the session factory every listener shares.

use std::sync::Arc;

use anyhow::Context as _;

use super::Bootstrap;
use super::export::StorageExport;
use crate::admin::{Admin, UserSpec};
use crate::audit::{Audit, AuditTasks, EventKind, Fields, Outcome, SegmentExport};
use crate::auth::Authenticator;
use crate::auth::cache::Cached;
use crate::auth::chain::Chain;
use crate::auth::http::HttpAuthenticator;
use crate::auth::ldap::LdapAuthenticator;
use crate::auth::local::LocalAuthenticator;
use crate::auth::password::Hasher;
use crate::auth::timed::Timed;
use crate::auth::token::TokenKeys;
use crate::config::{AuthBackend, Config};
use crate::session::{DefenderSettings, SessionFactory};
use crate::state::State;
use crate::storage;
use crate::types::Secret;
use crate::vfs::Backends;

/// The rooms below the protocols, built once and shared by every listener.
pub(super) struct Rooms {
    pub(super) state: State,
    pub(super) audit: Audit,
    /// The audit writers, closed last so that the shutdown records reach the sinks.
    pub(super) audit_tasks: AuditTasks,
    pub(super) sessions: SessionFactory,
    /// Whether the state store answered its last probe (`/readyz` follows it).
    pub(super) store_up: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Rooms {
    pub(super) async fn build(config: &Config, bootstrap: Option<Bootstrap>) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
        let state = super::open_state(config).await?;
        let mut backends = Backends::new(storage::open("storage", &config.storage)?);
        for (name, storage_config) in &config.storages {
            let backend = storage::open(&format!("storages.{name}"), storage_config)?;
            backends.insert(name, backend);
        }
        let export = match &config.audit.file_settings.export_storage {
            None => None,
            Some(name) => {
                let backend = backends
                    .get(name)
                    .cloned()
                    .ok_or_else(|| anyhow::anyhow!("audit.file.export_storage: no storage named `{name}`"))?;
                Some(Arc::new(StorageExport {
                    backend,
                    prefix: config.audit.file_settings.export_prefix.clone(),
                }) as Arc<dyn SegmentExport>)
            }
        };
        let (audit, audit_tasks) =
            Audit::start(&config.audit, &config.server.node_name, &state, export).await?;
        audit.emit(
            EventKind::ConfigLoaded,
            Outcome::Ok,
            Fields { reason: Some(config.source.clone()), ..Fields::default() },
        );
        if let Some(bootstrap) = bootstrap {
            ensure_first_user(&Admin::new(state.clone(), audit.clone()), bootstrap).await?;
        }
        if config.ops.per_user_metrics {
            crate::telemetry::metrics::enable_per_user(config.ops.per_user_metrics_max);
        }
        let tokens = Arc::new(
            TokenKeys::load(state.clone(), config.https.token_ttl)
                .await
                .context("loading the token signing key")?
                .with_max_life(config.https.session_max_life),
        );
        let auth = authenticators(config, &state, &tokens)?;
        let sessions = SessionFactory::new(auth, backends, config.cross_mount_rename, audit.clone())
            .with_tokens(tokens)
            .with_rejection_delay(config.auth.rejection_delay)
            .with_session_limit(config.limits.max_sessions_per_user)
            .with_defender(DefenderSettings {
                max_failures: config.auth.ban_after_failures,
                window: config.auth.ban_window,
                ban: config.auth.ban_time,
                never_ban: config.auth.allow_addresses.clone(),
            });
        let store_up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        Ok(Self { state, audit, audit_tasks, sessions, store_up })
    }
}

/// An external authenticator behind the positive cache, when `auth.cache_ttl` is set.
fn cached(inner: Arc<dyn Authenticator>, config: &Config) -> Arc<dyn Authenticator> {
    if config.auth.cache_ttl.is_zero() { inner } else { Arc::new(Cached::new(inner, config.auth.cache_ttl)) }
}

/// The configured authenticators, in order (`[auth] chain`).
fn authenticators(
    config: &Config,
    state: &State,
    tokens: &Arc<TokenKeys>,
) -> anyhow::Result<Arc<dyn Authenticator>> {
    let mut chain: Vec<Arc<dyn Authenticator>> = Vec::new();
    // One pool of password-hashing threads for the server, apart from tokio's blocking pool.
    let hasher = Hasher::new(config.auth.hash_threads, config.auth.hash_queue);
    for backend in &config.auth.chain {
        chain.push(match backend {
            AuthBackend::Local => Timed::wrap(
                Arc::new(
                    LocalAuthenticator::new(
                        state.clone(),
                        Arc::clone(&hasher),
                        config.auth.default_upload_mode,
                    )
                    .with_tokens(Arc::clone(tokens)),
                ),
                "local",
            ),
            AuthBackend::Http => {
                let http: Arc<dyn Authenticator> =
                    Arc::new(HttpAuthenticator::new(&config.auth.http, config.auth.default_upload_mode)?);
                Timed::wrap(cached(http, config), "http")
            }
            AuthBackend::Ldap => {
                let ldap: Arc<dyn Authenticator> =
                    Arc::new(LdapAuthenticator::new(&config.auth.ldap, config.auth.default_upload_mode)?);
                Timed::wrap(cached(ldap, config), "ldap")
            }
        });
    }
    if !config.auth.chain.contains(&AuthBackend::Local) {
        // Bearer tokens are issued to every user and answered by the local authenticator.
        let tokens_only =
            LocalAuthenticator::new(state.clone(), Arc::clone(&hasher), config.auth.default_upload_mode)
                .with_tokens(Arc::clone(tokens))
                .tokens_only();
        chain.insert(0, Arc::new(tokens_only));
    }
    Ok(if chain.len() == 1 { chain.remove(0) } else { Arc::new(Chain::new(chain)) })
}

/// Creates the first administrator when the store has no user yet.
async fn ensure_first_user(admin: &Admin, bootstrap: Bootstrap) -> anyhow::Result<()> {
    if admin.count_users().await? > 0 {
        return Ok(());
    }
    let (password, generated) = match bootstrap.password {
        Some(password) => (password, false),
        None => {
            use rand::distr::{Alphanumeric, SampleString};
            (Secret::new(Alphanumeric.sample_string(&mut rand::rng(), 24)), true)
        }
    };
    let spec = UserSpec {
        name: bootstrap.user.clone(),
        password: Some(password.clone()),
        home: Some("/".to_string()),
        admin: true,
        ..UserSpec::default()
    };
    admin.create_user(spec).await.context("creating the first user")?;
    if generated {
        // Shown once: the store keeps only the argon2id hash.
        eprintln!(
            "ferry: created user `{}` with password: {}\nferry: this password is shown only once.",
            bootstrap.user,
            password.expose()
        );
    } else {
        eprintln!("ferry: created user `{}` from FERRY_ADMIN_USER/FERRY_ADMIN_PASSWORD", bootstrap.user);
    }
    Ok(())
}
