//! The `ferry` command line: parse, load configuration, run. Nothing else lives here.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use ferry::admin::{Admin, UserSpec, parse_mount, parse_rule};
use ferry::audit::Audit;
use ferry::audit::verify::ExpectedHead;
use ferry::config::{Config, ConfigError};
use ferry::server::{self, Bootstrap};
use ferry::types::{Secret, UploadMode};

#[path = "main/state.rs"]
mod state;

#[derive(Parser)]
#[command(
    name = "ferry",
    version,
    about = "Managed file transfer server: SFTP, SCP, FTP/FTPS and HTTPS over one virtual filesystem"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct ConfigArg {
    /// Configuration file (TOML). Without it: built-in defaults plus FERRY_* variables.
    #[arg(long, short = 'c', env = "FERRY_CONFIG", global = true)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ConfigArg),
    /// Manage local users (works on the same state store as a running server).
    User {
        #[command(subcommand)]
        command: UserCommand,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Export the state store to one JSON document, or import one into an empty store.
    State {
        #[command(subcommand)]
        command: state::StateCommand,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Query and verify the audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Check configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Print stored records (the database sink) as JSON lines, oldest first.
    Query {
        #[arg(long)]
        user: Option<String>,
        /// Event name (file.upload) or ID (30002).
        #[arg(long)]
        event: Option<String>,
        #[arg(long)]
        node: Option<String>,
        /// RFC 3339 time, or a duration before now (`2h`, `7d`).
        #[arg(long)]
        since: Option<String>,
        /// RFC 3339 time, or a duration before now.
        #[arg(long)]
        until: Option<String>,
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// Check hash chains and signed checkpoints; exit 1 at the first tampered record.
    Verify {
        /// Segment files or folders of the file sink (all of one node, in chain order).
        files: Vec<PathBuf>,
        /// Verify the database sink instead, every node in it.
        #[arg(long, conflicts_with = "files")]
        db: bool,
        /// The node's public key: a file or the hex itself (default: this node's
        /// audit.node_key with .pub; for --db also the keys nodes registered).
        #[arg(long)]
        public_key: Option<String>,
        /// The node may still be running (or crashed): accept records after its last
        /// checkpoint. Without it, a trail must end with the checkpoint of a clean stop.
        #[arg(long)]
        running: bool,
        /// `[NODE=]SEQ:HASH`: a record the node is known to have written (e.g. a head kept
        /// elsewhere); the trail must hold it. The heads saved in the state database are
        /// expected too, when it exists.
        #[arg(long, value_name = "[NODE=]SEQ:HASH")]
        expect_head: Vec<String>,
    },
    /// Print this node's audit public key (hex), to keep apart from the trail.
    PublicKey,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate FILE; print every error with its dotted key and exit 1 if any.
    Check { file: PathBuf },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user.
    Add {
        name: String,
        /// Read the password from standard input (one line).
        #[arg(long)]
        password_stdin: bool,
        /// Virtual home inside the storage root (default: /NAME).
        #[arg(long)]
        home: Option<String>,
        /// Authorized public key file (authorized_keys format); repeatable.
        #[arg(long = "key")]
        keys: Vec<PathBuf>,
        /// Permission rule PATH=perm,perm (e.g. /reports=list,download); repeatable.
        /// Default: everything everywhere.
        #[arg(long = "rule")]
        rules: Vec<String>,
        /// Mount PATH=STORAGE[:PREFIX] (e.g. /inbox=partners:acme/inbox, STORAGE from
        /// [storages.NAME] or `default`); repeatable.
        #[arg(long = "mount")]
        mounts: Vec<String>,
        /// May use the admin API (users, keys, rules).
        #[arg(long)]
        admin: bool,
        /// `atomic` (default: temp name, renamed on close) or `in_place` (resumable).
        #[arg(long)]
        upload_mode: Option<String>,
    },
    /// List users.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Show one user as JSON.
    Show { name: String },
    /// Remove a user (their files stay).
    Remove { name: String },
    /// Set a user's password from standard input.
    Passwd {
        name: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Authorize the public keys in FILE for a user.
    KeyAdd { name: String, file: PathBuf },
    /// Remove a key, given by SHA256 fingerprint or by a file holding it.
    KeyRemove { name: String, key: String },
    /// Replace a user's permission rules (PATH=perm,perm; repeatable).
    Rules {
        name: String,
        #[arg(long = "rule", required = true)]
        rules: Vec<String>,
    },
    /// Replace a user's mounts (PATH=STORAGE[:PREFIX]; repeatable; none leaves just the home).
    Mounts {
        name: String,
        #[arg(long = "mount")]
        mounts: Vec<String>,
    },
    /// Allow a user to log in again.
    Enable { name: String },
    /// Refuse a user's logins without removing them.
    Disable { name: String },
}

/// Parses `--mount` values and checks each names a backend this configuration has.
fn parse_mounts(config: &Config, raw: &[String]) -> anyhow::Result<Vec<ferry::state::MountRecord>> {
    raw.iter()
        .map(|r| {
            let mount = parse_mount(r)?;
            let known = mount.storage == ferry::config::DEFAULT_STORAGE
                || config.storages.iter().any(|(name, _)| *name == mount.storage);
            anyhow::ensure!(known, "--mount {r}: the configuration has no [storages.{}]", mount.storage);
            Ok(mount)
        })
        .collect()
}

fn env_vars() -> Vec<(String, String)> {
    std::env::vars().collect()
}

fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    Config::load(path, env_vars()).map_err(|e| match e {
        ConfigError::Invalid(errors) => anyhow::anyhow!(
            "invalid configuration:\n{}",
            errors.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n")
        ),
        other => anyhow::anyhow!(other),
    })
}

/// The error and its causes, `: `-separated like anyhow's `{:#}`, leaving out a cause whose
/// text is already in the message (typed errors name their cause in their own text).
fn report(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
    }
    text
}

fn main() -> ExitCode {
    // One crypto provider for every TLS user (FTPS, HTTPS, LDAP, syslog, the HTTP clients).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ferry: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ferry: {}", report(&e));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Version => {
            println!("ferry {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Config { command: ConfigCommand::Check { file } } => {
            match Config::load(Some(&file), env_vars()) {
                Ok(config) => {
                    for warning in &config.warnings {
                        println!("{}: warning: {warning}", file.display());
                    }
                    println!("{}: ok", file.display());
                    Ok(ExitCode::SUCCESS)
                }
                Err(ConfigError::Invalid(errors)) => {
                    for error in errors {
                        println!("{}: {error}", file.display());
                    }
                    Ok(ExitCode::FAILURE)
                }
                Err(other) => {
                    println!("{other}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Serve(args) => serve(args).await,
        Command::User { command, config } => user(command, config).await,
        Command::State { command, config } => state::run(command, config).await,
        Command::Audit { command, config } => audit(command, config).await,
    }
}

async fn audit(command: AuditCommand, args: ConfigArg) -> anyhow::Result<ExitCode> {
    use ferry::audit::verify;
    let config = load_config(args.config.as_deref())?;
    match command {
        AuditCommand::Query { user, event, node, since, until, limit } => {
            let state = server::open_state(&config).await?;
            let mut query = ferry::state::audit::AuditQuery {
                user,
                event,
                node,
                since: since.map(|s| ferry::admin::parse_audit_time(&s)).transpose()?,
                until: until.map(|s| ferry::admin::parse_audit_time(&s)).transpose()?,
                after: None,
                limit,
            };
            let mut printed = 0u32;
            while printed < limit {
                query.limit = (limit - printed).min(1000);
                let page = state.audit().query(&query).await?;
                let Some(last) = page.last() else { break };
                query.after = Some(last.row);
                for line in &page {
                    println!("{}", line.record);
                }
                printed += page.len() as u32;
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify { files, db, public_key, running, expect_head } => {
            let given = public_key.map(|k| verify::read_public_key(&k)).transpose()?;
            let own = verify::read_public_key(
                &ferry::audit::default_public_key(&config.audit).display().to_string(),
            )
            .ok();
            let heads = expected_heads(&expect_head)?;
            let expected = |node: Option<&str>| verify::Expected {
                running,
                heads: heads
                    .iter()
                    .filter(|(of, _)| of.is_none() || of.as_deref() == node)
                    .map(|(_, head)| head.clone())
                    .collect(),
            };
            let reports = if db {
                let state = server::open_state(&config).await?;
                verify::verify_database(&state, given.as_deref(), expected).await?
            } else {
                anyhow::ensure!(!files.is_empty(), "give segment files or folders, or --db");
                // The heads the server saved are expected too, when its database is here.
                let saved = if matches!(config.state.backend, ferry::config::StateBackend::Postgres(_))
                    || config.state.sqlite_path.exists()
                {
                    let state = server::open_state(&config).await?;
                    let mut saved = Vec::new();
                    for node in state.audit().nodes().await? {
                        let heads = verify::saved_heads(&state, &node).await?;
                        saved.push((node, heads));
                    }
                    saved
                } else {
                    Vec::new()
                };
                verify::verify_files(&files, given.as_deref().or(own.as_deref()), |node| {
                    let mut expected = expected(node);
                    if let Some((_, heads)) = saved.iter().find(|(of, _)| Some(of.as_str()) == node) {
                        expected.heads.extend(heads.iter().cloned());
                    }
                    expected
                })?
            };
            let mut failed = reports.iter().all(|r| r.records == 0);
            if failed {
                println!("FAILED: no audit records found");
            }
            for report in &reports {
                println!("{report}");
                failed |= report.finding.is_some();
            }
            Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
        AuditCommand::PublicKey => {
            // Read, never create: a new key printed here would not be the one that signed.
            let path = ferry::audit::default_public_key(&config.audit);
            let key = verify::read_public_key(&path.display().to_string()).map_err(|e| {
                anyhow::anyhow!("{e} (the server writes it at its first start; check -c and data_dir)")
            })?;
            println!("{}", ferry::audit::chain::hex(&key));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `--expect-head [NODE=]SEQ:HASH` values, each with the node it is for (None: every node).
fn expected_heads(given: &[String]) -> anyhow::Result<Vec<(Option<String>, ExpectedHead)>> {
    given
        .iter()
        .map(|text| {
            let (node, head) = match text.split_once('=') {
                Some((node, head)) => (Some(node.to_string()), head),
                None => (None, text.as_str()),
            };
            let head = ExpectedHead::parse(head, &format!("--expect-head {text}"))
                .map_err(|e| anyhow::anyhow!("--expect-head {e}"))?;
            Ok((node, head))
        })
        .collect()
}

async fn serve(args: ConfigArg) -> anyhow::Result<ExitCode> {
    let config = load_config(args.config.as_deref())?;
    let tracing = ferry::telemetry::init(&config.log);
    for warning in &config.warnings {
        tracing::warn!("configuration: {warning}");
    }
    let bootstrap = Bootstrap {
        user: std::env::var("FERRY_ADMIN_USER").unwrap_or_else(|_| "admin".to_string()),
        password: std::env::var("FERRY_ADMIN_PASSWORD").ok().filter(|p| !p.is_empty()).map(Secret::new),
    };
    let (tx, rx) = tokio::sync::watch::channel(false);
    let running = server::start(config, Some(bootstrap), rx).await?;
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = tx.send(true);
    });
    let result = running.wait().await;
    // Flush spans still batched (blocking: the exporter has its own thread).
    let _ = tokio::task::spawn_blocking(move || tracing.shutdown()).await;
    result?;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

fn read_password() -> anyhow::Result<Secret<String>> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).context("reading the password from stdin")?;
    let password = input.lines().next().unwrap_or("").to_string();
    anyhow::ensure!(!password.is_empty(), "empty password on stdin");
    Ok(Secret::new(password))
}

/// Runs `work` on the state store of `args`' configuration through `Admin`, whose changes are
/// audited into the database sink on a chain of the CLI's own, and closes that chain after.
async fn with_admin<F, Fut>(args: ConfigArg, work: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(Config, Admin) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<ExitCode>>,
{
    let config = load_config(args.config.as_deref())?;
    let state = server::open_state(&config).await?;
    let (audit, trail) = Audit::start_cli(&config.audit, &config.server.node_name, &state).await?;
    let result = work(config, Admin::new(state, audit)).await;
    trail.close().await;
    result
}

fn read_keys(file: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    anyhow::ensure!(!keys.is_empty(), "{}: no public key found", file.display());
    Ok(keys)
}

async fn user(command: UserCommand, args: ConfigArg) -> anyhow::Result<ExitCode> {
    with_admin(args, |config, admin| async move { user_command(command, &config, &admin).await }).await
}

async fn user_command(command: UserCommand, config: &Config, admin: &Admin) -> anyhow::Result<ExitCode> {
    match command {
        UserCommand::Add {
            name,
            password_stdin,
            home,
            keys,
            rules,
            mounts,
            admin: is_admin,
            upload_mode,
        } => {
            let password = if password_stdin { Some(read_password()?) } else { None };
            let mut key_lines = Vec::new();
            for file in &keys {
                key_lines.extend(read_keys(file)?);
            }
            anyhow::ensure!(
                password.is_some() || !key_lines.is_empty(),
                "give --password-stdin or --key (a user needs a way to log in)"
            );
            let rules = rules.iter().map(|r| parse_rule(r)).collect::<Result<Vec<_>, _>>()?;
            let mounts = parse_mounts(config, &mounts)?;
            let upload_mode =
                match upload_mode.as_deref() {
                    None => None,
                    Some(raw) => Some(UploadMode::parse(raw).with_context(|| {
                        format!("--upload-mode: expected atomic or in_place, got `{raw}`")
                    })?),
                };
            admin
                .create_user(UserSpec {
                    name: name.clone(),
                    password,
                    home,
                    keys: key_lines,
                    rules,
                    mounts,
                    upload_mode,
                    admin: is_admin,
                })
                .await?;
            println!("created user {name}");
        }
        UserCommand::List { json } => {
            let users = admin.list_users().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&users)?);
            } else {
                println!("{:<24} {:<8} {:<9} {:<5} HOME", "NAME", "ENABLED", "PASSWORD", "KEYS");
                for u in users {
                    println!(
                        "{:<24} {:<8} {:<9} {:<5} {}",
                        u.name,
                        u.enabled,
                        u.has_password,
                        u.keys.len(),
                        u.home
                    );
                }
            }
        }
        UserCommand::Show { name } => {
            println!("{}", serde_json::to_string_pretty(&admin.user(&name).await?)?)
        }
        UserCommand::Remove { name } => {
            admin.remove_user(&name).await?;
            println!("removed user {name}");
        }
        UserCommand::Passwd { name, .. } => {
            admin.set_password(&name, read_password()?).await?;
            println!("password changed for {name}");
        }
        UserCommand::KeyAdd { name, file } => {
            for line in read_keys(&file)? {
                let fingerprint = admin.add_key(&name, &line).await?;
                println!("added key {fingerprint} to {name}");
            }
        }
        UserCommand::KeyRemove { name, key } => {
            let key = if Path::new(&key).is_file() { read_keys(Path::new(&key))?.remove(0) } else { key };
            admin.remove_key(&name, &key).await?;
            println!("removed key from {name}");
        }
        UserCommand::Rules { name, rules } => {
            let rules = rules.iter().map(|r| parse_rule(r)).collect::<Result<Vec<_>, _>>()?;
            admin.set_rules(&name, &rules).await?;
            println!("rules replaced for {name}");
        }
        UserCommand::Mounts { name, mounts } => {
            let mounts = parse_mounts(config, &mounts)?;
            admin.set_mounts(&name, &mounts).await?;
            println!("mounts replaced for {name}");
        }
        UserCommand::Enable { name } => {
            admin.set_enabled(&name, true).await?;
            println!("enabled {name}");
        }
        UserCommand::Disable { name } => {
            admin.set_enabled(&name, false).await?;
            println!("disabled {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
