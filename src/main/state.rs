//! `ferry state export` and `ferry state import`: the store as one JSON document.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum StateCommand {
    /// Write users, keys, rules, mounts and API keys (secrets hashed) as JSON.
    Export {
        /// Write here instead of standard output (created 0600).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Load a document written by `export` into a store that has no users yet.
    Import { file: PathBuf },
}

pub async fn run(command: StateCommand, args: super::ConfigArg) -> anyhow::Result<ExitCode> {
    super::with_admin(args, |_, admin| async move {
        match command {
            StateCommand::Export { out } => {
                let doc = admin.export_state().await?;
                let text = serde_json::to_string_pretty(&doc)? + "\n";
                match out {
                    None => print!("{text}"),
                    Some(path) => {
                        write_new_private(&path, &text)?;
                        eprintln!("exported {} users to {}", doc.users.len(), path.display());
                    }
                }
            }
            StateCommand::Import { file } => {
                let text =
                    std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
                let doc = serde_json::from_str(&text)
                    .with_context(|| format!("{}: not a state document", file.display()))?;
                let imported = admin.import_state(&doc).await?;
                println!("imported {imported} users");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
    .await
}

/// Writes `text` to a new file readable by its owner only (it holds password hashes); an
/// existing file is never overwritten.
fn write_new_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}
