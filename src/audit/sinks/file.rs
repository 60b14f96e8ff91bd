//! JSON lines in segment files: `<node>-<first chain_seq, 20 digits>.jsonl` in one folder. The
//! newest segment is open; a segment is sealed (synced, never written again) when it reaches
//! `rotate_size` or `rotate_interval`, and at each start. Sealed segments can be exported (to
//! object storage, for WORM retention) and are deleted past `retention` / `max_files`, but
//! never before their export succeeded.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

use super::{Sink, WriteError};
use crate::audit::event::LineView;
use crate::config::AuditFileConfig;

/// Uploads a sealed segment somewhere it cannot be changed; implemented by the composition root
/// (the audit room knows no storage backends).
#[async_trait]
pub trait SegmentExport: Send + Sync {
    async fn export(&self, path: &Path, name: &str) -> Result<(), ExportError>;
}

/// Why a segment export failed; the segment stays and the export is retried.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The export store refused to create `target` (a folder or the segment's object).
    #[error("{target}: {source}")]
    Store {
        target: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The sealed segment could not be read.
    #[error("{0}")]
    Segment(#[from] std::io::Error),
    /// Copying the segment into the store failed.
    #[error("{0}")]
    Copy(#[source] Box<dyn std::error::Error + Send + Sync>),
}

struct Open {
    file: tokio::io::BufWriter<tokio::fs::File>,
    path: PathBuf,
    /// Bytes handed to the writer.
    size: u64,
    /// Bytes known to be in the file (after the last successful flush): a failed write is cut
    /// back to here, so a retry never leaves a torn or doubled line.
    durable: u64,
    opened: tokio::time::Instant,
}

pub struct FileSink {
    config: AuditFileConfig,
    /// Names the segments: `<node>-<first chain_seq>.jsonl`.
    node: String,
    export: Option<Arc<dyn SegmentExport>>,
    open: Option<Open>,
    last_upkeep: Option<tokio::time::Instant>,
}

const EXPORTED: &str = "exported";

/// How often idle upkeep (export retries, retention) runs.
const UPKEEP_EVERY: Duration = Duration::from_secs(60);

impl FileSink {
    pub fn new(
        config: AuditFileConfig,
        node: &str,
        export: Option<Arc<dyn SegmentExport>>,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(&config.dir)?;
        Ok(Self { config, node: node.to_string(), export, open: None, last_upkeep: None })
    }

    /// Flushes, syncs and closes the open segment; it is never written again.
    async fn seal(&mut self) -> Result<(), WriteError> {
        let Some(mut open) = self.open.take() else {
            return Ok(());
        };
        let flushed = open.file.flush().await;
        let synced = match flushed {
            Ok(()) => open.file.get_mut().sync_all().await,
            Err(e) => Err(e),
        };
        synced.map_err(|source| {
            cut_back(&open);
            WriteError::File { path: open.path.clone(), source }
        })
    }

    async fn write_lines(&mut self, lines: &[Arc<str>]) -> Result<(), WriteError> {
        for line in lines {
            let due = self.open.as_ref().is_some_and(|open| {
                open.size >= self.config.rotate_size || open.opened.elapsed() >= self.config.rotate_interval
            });
            if due {
                self.seal().await?;
                self.upkeep().await;
            }
            if self.open.is_none() {
                let seq = LineView::parse(line).map(|v| v.chain_seq).unwrap_or_default();
                let path = segment_path(&self.config.dir, &self.node, seq);
                let file = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .await
                    .map_err(|source| WriteError::File { path: path.clone(), source })?;
                let size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
                self.open = Some(Open {
                    file: tokio::io::BufWriter::with_capacity(64 * 1024, file),
                    path,
                    size,
                    durable: size,
                    opened: tokio::time::Instant::now(),
                });
            }
            if let Some(open) = self.open.as_mut() {
                let mut record = Vec::with_capacity(line.len() + 1);
                record.extend_from_slice(line.as_bytes());
                record.push(b'\n');
                open.file.write_all(&record).await?;
                open.size += record.len() as u64;
            }
        }
        if let Some(open) = self.open.as_mut() {
            open.file.flush().await?;
            open.durable = open.size;
        }
        Ok(())
    }

    /// Exports sealed segments not yet exported, then applies retention.
    async fn upkeep(&mut self) {
        let mut sealed = segments(&self.config.dir, &self.node);
        if self.open.is_some() {
            sealed.pop();
        }
        if let Some(export) = &self.export {
            for path in &sealed {
                let marker = path.with_extension(EXPORTED);
                if marker.exists() {
                    continue;
                }
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                match export.export(path, &name).await {
                    Ok(()) => {
                        let _ = std::fs::write(&marker, b"");
                        tracing::info!(segment = %name, "audit segment exported");
                    }
                    Err(e) => {
                        tracing::warn!(segment = %name, error = %e, "audit segment export failed; will retry");
                        break;
                    }
                }
            }
        }
        let keep_after = (!self.config.retention.is_zero())
            .then(|| SystemTime::now().checked_sub(self.config.retention))
            .flatten();
        let surplus =
            if self.config.max_files == 0 { 0 } else { sealed.len().saturating_sub(self.config.max_files) };
        for (index, path) in sealed.iter().enumerate() {
            let expired = keep_after.is_some_and(|limit| {
                std::fs::metadata(path).and_then(|m| m.modified()).is_ok_and(|modified| modified < limit)
            });
            if !(expired || index < surplus) {
                continue;
            }
            let marker = path.with_extension(EXPORTED);
            if self.export.is_some() && !marker.exists() {
                continue;
            }
            if std::fs::remove_file(path).is_ok() {
                let _ = std::fs::remove_file(&marker);
                tracing::info!(segment = %path.display(), "audit segment removed by retention");
            }
        }
    }
}

#[async_trait]
impl Sink for FileSink {
    async fn write(&mut self, lines: &[Arc<str>]) -> Result<(), WriteError> {
        let written = self.write_lines(lines).await;
        if written.is_err()
            && let Some(open) = self.open.take()
        {
            // Whatever part of the batch reached the file goes; the retry writes it whole.
            cut_back(&open);
        }
        written
    }

    async fn tick(&mut self) {
        let due = self.open.as_ref().is_some_and(|open| open.opened.elapsed() >= self.config.rotate_interval);
        if due && let Err(e) = self.seal().await {
            tracing::error!(error = %e, "audit segment could not be sealed");
        }
        // Failed exports are retried and retention applied once a minute, not only at rotation.
        let upkeep_due = self.last_upkeep.is_none_or(|at| at.elapsed() >= UPKEEP_EVERY);
        if due || upkeep_due {
            self.last_upkeep = Some(tokio::time::Instant::now());
            self.upkeep().await;
        }
    }

    async fn close(&mut self) {
        if let Err(e) = self.seal().await {
            tracing::error!(error = %e, "audit segment could not be sealed");
        }
        self.upkeep().await;
    }

    fn retries(&self) -> bool {
        true
    }
}

/// `node` with everything but ASCII letters, digits, `-` and `_` replaced by `_`: safe in a
/// file name.
pub fn safe_name(node: &str) -> String {
    node.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

/// Truncates a segment back to its last durable length after a failed write.
fn cut_back(open: &Open) {
    let cut = std::fs::OpenOptions::new().write(true).open(&open.path).and_then(|f| f.set_len(open.durable));
    if let Err(e) = cut {
        tracing::error!(segment = %open.path.display(), error = %e, "cannot cut a failed audit write back");
    }
}

fn segment_path(dir: &Path, node: &str, first_seq: u64) -> PathBuf {
    dir.join(format!("{}-{first_seq:020}.jsonl", safe_name(node)))
}

/// The node's segments, oldest first.
pub fn segments(dir: &Path, node: &str) -> Vec<PathBuf> {
    let node = safe_name(node);
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            segment_name_parts(&name).is_some_and(|(of, _)| of == node)
        })
        .collect();
    found.sort();
    found
}

/// Reads a segment's file name, `<node>-<first chain_seq, 20 digits>.jsonl`: the node (as file
/// names spell it, see `safe_name`) and the sequence number.
pub fn segment_name_parts(name: &str) -> Option<(&str, u64)> {
    let (node, seq) = name.strip_suffix(".jsonl")?.rsplit_once('-')?;
    if seq.len() != 20 || !seq.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some((node, seq.parse().ok()?))
}

/// The last record the node wrote here, so a restart continues its chain. A line torn by a
/// crash (no newline at the end) was never complete and is cut off.
pub fn last_head(dir: &Path, node: &str) -> Option<(u64, String)> {
    segments(dir, node).iter().rev().find_map(|path| tail_record(path, true))
}

/// The chain position of the last complete record in `path`; with `cut_torn`, a torn last line
/// is removed from the file.
pub fn tail_record(path: &Path, cut_torn: bool) -> Option<(u64, String)> {
    let mut file = std::fs::OpenOptions::new().read(true).write(cut_torn).open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let start = len.saturating_sub(1 << 20);
    let mut tail = Vec::new();
    file.seek(SeekFrom::Start(start)).ok()?;
    file.read_to_end(&mut tail).ok()?;
    if cut_torn && !tail.is_empty() && !tail.ends_with(b"\n") {
        let keep = tail.iter().rposition(|&b| b == b'\n').map_or(start, |i| start + i as u64 + 1);
        tracing::warn!(segment = %path.display(), "cutting an incomplete last audit line (crash)");
        let _ = file.set_len(keep);
        tail.truncate((keep - start) as usize);
    }
    let text = String::from_utf8_lossy(&tail);
    text.lines().rev().find_map(LineView::parse).map(|view| (view.chain_seq, view.hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_and_foreign_files_are_not_segments() {
        let path = segment_path(Path::new("/trail"), "ferry 1", 42);
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(name, "ferry_1-00000000000000000042.jsonl");
        assert_eq!(segment_name_parts(name), Some(("ferry_1", 42)));
        assert_eq!(segment_name_parts("ferry-1-00000000000000000042.jsonl"), Some(("ferry-1", 42)));
        for foreign in ["ferry_1-42.jsonl", "ferry_1-00000000000000000042.json", "notes.jsonl"] {
            assert_eq!(segment_name_parts(foreign), None, "{foreign}");
        }
    }
}
