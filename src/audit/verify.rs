//! Checks a node's trail (segment files or database rows, in the order written) and reports the
//! first record that was removed, altered, inserted or reordered, and whether the checkpoints'
//! signatures hold. One trail is read into memory for the look-ahead that tells an insertion
//! from a reordering (about the size of the trail).

use std::fmt;

use serde::Deserialize;

use super::chain::{self, GENESIS};
use super::event::{Checkpoint, LineView};

/// What went wrong first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The line is not a sealed record or its content does not match its hash.
    Altered { at: String, detail: String },
    /// Records `from..=to` are missing before `at` (or at the end when `at` says so).
    Removed { at: String, from: u64, to: u64 },
    /// A record that does not belong in the chain.
    Inserted { at: String, seq: u64, detail: String },
    /// A record out of its place.
    Reordered { at: String, seq: u64, expected: u64 },
    /// A checkpoint whose signature does not verify with the node's key.
    BadSignature { at: String, detail: String },
    /// The trail of a stopped node does not end with the checkpoint every clean stop writes.
    NoFinalCheckpoint { at: String, seq: u64 },
}

/// A chain position the node is known to have written, from outside the trail (the database's
/// saved heads, or `--expect-head`), so that records cut off the end are noticed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedHead {
    pub seq: u64,
    /// The record's hash, when known: the record at `seq` must be this one.
    pub hash: Option<String>,
    /// Where it came from, for the report.
    pub source: String,
}

/// Why an expected chain head (`SEQ:HASH`) cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("`{text}`: expected SEQ:HASH (a chain_seq and its 64-digit hash)")]
    Unreadable { text: String },
    #[error("`{text}`: the hash must be 64 hex digits")]
    BadHash { text: String },
}

impl ExpectedHead {
    /// `SEQ:HASH` or `SEQ`, as `--expect-head` takes it.
    pub fn parse(text: &str, source: &str) -> Result<Self, HeadError> {
        let (seq, hash) = match text.split_once(':') {
            Some((seq, hash)) => (seq, Some(hash)),
            None => (text, None),
        };
        let seq = seq
            .parse::<u64>()
            .ok()
            .filter(|_| !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| HeadError::Unreadable { text: text.to_string() })?;
        if let Some(hash) = hash
            && digest(hash).is_none()
        {
            return Err(HeadError::BadHash { text: text.to_string() });
        }
        Ok(Self { seq, hash: hash.map(str::to_ascii_lowercase), source: source.to_string() })
    }
}

/// What the end of a trail must show.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// The node may still be running (or crashed): records after its last checkpoint are
    /// accepted, and only the expected heads tell whether its end was cut.
    pub running: bool,
    pub heads: Vec<ExpectedHead>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Altered { at, detail } => write!(f, "altered record at {at}: {detail}"),
            Finding::Removed { at, from, to } if from == to => {
                write!(f, "removed record: seq {from} is missing ({at})")
            }
            Finding::Removed { at, from, to } => {
                write!(f, "removed records: seq {from} to {to} are missing ({at})")
            }
            Finding::Inserted { at, seq, detail } => {
                write!(f, "inserted record at {at} (seq {seq}): {detail}")
            }
            Finding::Reordered { at, seq, expected } => {
                write!(f, "reordered records at {at}: found seq {seq} where seq {expected} belongs")
            }
            Finding::BadSignature { at, detail } => write!(f, "bad checkpoint signature at {at}: {detail}"),
            Finding::NoFinalCheckpoint { at, seq } => write!(
                f,
                "no final checkpoint: the trail ends at seq {seq} ({at}), which is not the checkpoint a node writes when it stops; records were cut off the end, or the node crashed or is still running (then verify with --running and --expect-head)"
            ),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub node: Option<String>,
    /// Checkpoints whose position matched the chain (and whose signature verified, when a key
    /// was given).
    pub checkpoints: u64,
    /// Whether signatures were checked (a public key was given).
    pub signatures_checked: bool,
    /// Records after the last checkpoint: not covered by a signature yet.
    pub unsigned_tail: u64,
    /// The expected heads the trail was found to hold.
    pub heads_matched: Vec<ExpectedHead>,
    /// Verified with `--running`: the end was not required to be a checkpoint.
    pub running: bool,
    pub finding: Option<Finding>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let node = self.node.as_deref().unwrap_or("-");
        match &self.finding {
            Some(finding) => write!(f, "FAILED node {node}: {finding}"),
            None => {
                write!(
                    f,
                    "ok node {node}: {} records, seq {}..{}, {} checkpoints {}",
                    self.records,
                    self.first_seq.map_or("-".into(), |s| s.to_string()),
                    self.last_seq.map_or("-".into(), |s| s.to_string()),
                    self.checkpoints,
                    if self.signatures_checked {
                        "with valid signatures"
                    } else {
                        "(signatures NOT checked: no public key)"
                    },
                )?;
                if self.unsigned_tail > 0 {
                    write!(
                        f,
                        "; the last {} records are not covered by a checkpoint yet",
                        self.unsigned_tail
                    )?;
                }
                // Matched highest first, so the first is the furthest the end was checked to.
                match self.heads_matched.first() {
                    Some(head) => write!(f, "; holds seq {} named by {}", head.seq, head.source)?,
                    None if self.running => write!(
                        f,
                        "; the end is NOT checked (--running without an expected head): records cut off it would go unnoticed"
                    )?,
                    None => write!(f, "; ends with a checkpoint")?,
                }
                Ok(())
            }
        }
    }
}

struct Entry {
    at: String,
    seq: u64,
    prev: [u8; 32],
    hash: [u8; 32],
    checkpoint: Option<Checkpoint>,
}

#[derive(Deserialize)]
struct Linked {
    node: String,
    chain_seq: u64,
    prev: String,
    checkpoint: Option<Checkpoint>,
}

fn digest(hex: &str) -> Option<[u8; 32]> {
    chain::unhex(hex)?.try_into().ok()
}

/// Verifies `(location, line)` pairs of one node's trail, in the order written. `public_key` is
/// the node's raw Ed25519 public key; `expected` what its end must show: a final checkpoint
/// (unless running) and every expected head, to catch records cut off the end.
pub fn verify(
    lines: impl IntoIterator<Item = (String, String)>,
    public_key: Option<&[u8]>,
    expected: &Expected,
) -> Report {
    let mut report =
        Report { signatures_checked: public_key.is_some(), running: expected.running, ..Report::default() };
    let mut entries = Vec::new();
    for (at, line) in lines {
        let Some((body, claimed)) = chain::unseal(&line) else {
            report.finding = Some(Finding::Altered { at, detail: "not a sealed audit record".into() });
            return report;
        };
        if chain::sha256_hex(body.as_bytes()) != claimed {
            report.finding =
                Some(Finding::Altered { at, detail: "its content does not match its hash".into() });
            return report;
        }
        let Ok(linked) = serde_json::from_str::<Linked>(&body) else {
            report.finding = Some(Finding::Altered { at, detail: "not an audit record".into() });
            return report;
        };
        let (Some(prev), Some(hash)) = (digest(&linked.prev), digest(claimed)) else {
            report.finding = Some(Finding::Altered { at, detail: "malformed chain fields".into() });
            return report;
        };
        match &report.node {
            None => report.node = Some(linked.node.clone()),
            Some(node) if *node != linked.node => {
                report.finding = Some(Finding::Inserted {
                    at,
                    seq: linked.chain_seq,
                    detail: format!("a record of node `{}` in the trail of `{node}`", linked.node),
                });
                return report;
            }
            Some(_) => {}
        }
        entries.push(Entry { at, seq: linked.chain_seq, prev, hash, checkpoint: linked.checkpoint });
    }
    report.records = entries.len() as u64;
    report.first_seq = entries.first().map(|e| e.seq);
    report.last_seq = entries.last().map(|e| e.seq);
    let node = report.node.clone().unwrap_or_default();
    let genesis = digest(GENESIS).unwrap_or([0; 32]);
    let mut unsigned = 0u64;
    // The last checkpoint's promise: the next one comes within `every` records.
    let mut due: Option<(u64, String)> = None;
    for i in 0..entries.len() {
        let e = &entries[i];
        if i == 0 {
            if e.seq == 0 && e.prev != genesis {
                report.finding = Some(Finding::Altered {
                    at: e.at.clone(),
                    detail: "the first record does not start the chain".into(),
                });
                return report;
            }
        } else {
            let p = &entries[i - 1];
            let expected = p.seq + 1;
            let next_links = entries.get(i + 1).is_some_and(|n| n.seq == expected && n.prev == p.hash);
            let finding = if e.seq == expected && e.prev == p.hash {
                None
            } else if e.seq > expected && entries[i + 1..].iter().any(|later| later.hash == e.prev) {
                Some(Finding::Reordered { at: e.at.clone(), seq: e.seq, expected })
            } else if next_links {
                Some(Finding::Inserted {
                    at: e.at.clone(),
                    seq: e.seq,
                    detail: "the chain continues without it".into(),
                })
            } else if e.seq == expected {
                Some(Finding::Altered {
                    at: e.at.clone(),
                    detail: format!(
                        "it does not link to the record before it ({}, seq {}): one of the two was altered and rehashed",
                        p.at, p.seq
                    ),
                })
            } else if e.seq > expected {
                Some(Finding::Removed { at: format!("before {}", e.at), from: expected, to: e.seq - 1 })
            } else if entries[..i].iter().any(|earlier| earlier.seq == e.seq) {
                Some(Finding::Inserted {
                    at: e.at.clone(),
                    seq: e.seq,
                    detail: "its sequence number was already used".into(),
                })
            } else {
                Some(Finding::Reordered { at: e.at.clone(), seq: e.seq, expected })
            };
            if finding.is_some() {
                report.finding = finding;
                return report;
            }
        }
        if let Some(cp) = &e.checkpoint {
            // A trail that starts at a checkpoint (a segment cut there, or retention removed the
            // record it signed) cannot show what it signed; its signature is still checked.
            let matches = i == 0
                || (entries[i - 1].seq == cp.seq
                    && digest(&cp.hash).is_some_and(|h| h == entries[i - 1].hash));
            if !matches {
                report.finding = Some(Finding::Altered {
                    at: e.at.clone(),
                    detail: format!(
                        "the checkpoint signed seq {} with hash {} but the chain holds something else: records before it were altered and rehashed",
                        cp.seq, cp.hash
                    ),
                });
                return report;
            }
            if let Some(key) = public_key {
                if cp.key != chain::key_id(key) {
                    report.finding = Some(Finding::BadSignature {
                        at: e.at.clone(),
                        detail: format!("signed by key {}, not the node's", cp.key),
                    });
                    return report;
                }
                if !chain::verify_signature(
                    key,
                    &chain::signed_message(&node, cp.seq, &cp.hash, cp.every),
                    &cp.signature,
                ) {
                    report.finding = Some(Finding::BadSignature {
                        at: e.at.clone(),
                        detail: "the signature does not verify".into(),
                    });
                    return report;
                }
            }
            report.checkpoints += 1;
            unsigned = 0;
            due = Some((cp.every, e.at.clone()));
        } else {
            unsigned += 1;
            if let Some((every, since)) = &due
                && unsigned > *every
            {
                report.finding = Some(Finding::Altered {
                    at: e.at.clone(),
                    detail: format!(
                        "no checkpoint within the {every} records after the one at {since}: checkpoints were removed or replaced, and the records after it may be rewritten"
                    ),
                });
                return report;
            }
        }
    }
    report.unsigned_tail = unsigned;
    report.finding = check_end(&entries, expected, &mut report.heads_matched);
    report
}

/// The end of a trail whose chain holds: every expected head is in it (or before its start,
/// where retention removed records), and a stopped node's last record is a checkpoint.
fn check_end(entries: &[Entry], expected: &Expected, matched: &mut Vec<ExpectedHead>) -> Option<Finding> {
    let (first, last) = (entries.first()?, entries.last()?);
    let mut heads: Vec<&ExpectedHead> = expected.heads.iter().collect();
    heads.sort_by_key(|h| std::cmp::Reverse(h.seq));
    for head in heads {
        if head.seq > last.seq {
            return Some(Finding::Removed {
                at: format!("at the end, by {}", head.source),
                from: last.seq + 1,
                to: head.seq,
            });
        }
        let Some(offset) = head.seq.checked_sub(first.seq) else { continue };
        let Some(entry) = usize::try_from(offset).ok().and_then(|i| entries.get(i)) else { continue };
        if let Some(hash) = &head.hash
            && (entry.seq != head.seq || digest(hash) != Some(entry.hash))
        {
            return Some(Finding::Altered {
                at: entry.at.clone(),
                detail: format!(
                    "seq {} is not the record {} names (hash {hash}): the trail was rewritten from there",
                    head.seq, head.source
                ),
            });
        }
        matched.push(head.clone());
    }
    if !expected.running && last.checkpoint.is_none() {
        return Some(Finding::NoFinalCheckpoint { at: last.at.clone(), seq: last.seq });
    }
    None
}

/// Why a trail could not be verified at all (what a trail shows is a finding in its report).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A segment file, folder or key file could not be read.
    #[error("{}: {source}", path.display())]
    Read { path: std::path::PathBuf, source: std::io::Error },
    #[error("{given}: not an Ed25519 public key (64 hex digits)")]
    NotAKey { given: String },
    /// The state database could not be read.
    #[error("{0}")]
    State(#[from] crate::state::StateError),
}

fn read_failed(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> VerifyError + '_ {
    move |source| VerifyError::Read { path: path.to_path_buf(), source }
}

/// A public key given as hex or as a file holding the hex.
pub fn read_public_key(given: &str) -> Result<Vec<u8>, VerifyError> {
    let text = if std::path::Path::new(given).exists() {
        std::fs::read_to_string(given).map_err(read_failed(std::path::Path::new(given)))?
    } else {
        given.to_string()
    };
    let key = chain::unhex(text.trim()).filter(|k| k.len() == 32);
    key.ok_or_else(|| VerifyError::NotAKey { given: given.to_string() })
}

/// Verifies segment files (folders are expanded to their `.jsonl` files). Segments are grouped
/// by node (the file sink names them `<node>-<first chain_seq>.jsonl`, so name order is chain
/// order) and each node's trail is verified on its own.
pub fn verify_files(
    paths: &[std::path::PathBuf],
    public_key: Option<&[u8]>,
    expected: impl Fn(Option<&str>) -> Expected,
) -> Result<Vec<Report>, VerifyError> {
    use std::io::BufRead;
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let found = std::fs::read_dir(path).map_err(read_failed(path))?;
            let mut found: Vec<_> = found
                .flatten()
                .map(|entry| entry.path())
                .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    let mut trails: Vec<(String, Vec<std::path::PathBuf>)> = Vec::new();
    for file in files {
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let node = super::sinks::file::segment_name_parts(&name)
            .map_or_else(|| name.clone(), |(node, _)| node.to_string());
        match trails.iter_mut().find(|(n, _)| *n == node) {
            Some((_, group)) => group.push(file),
            None => trails.push((node, vec![file])),
        }
    }
    let mut reports = Vec::new();
    for (_, group) in trails {
        let mut lines = Vec::new();
        for file in &group {
            let reader = std::io::BufReader::new(std::fs::File::open(file).map_err(read_failed(file))?);
            for (number, line) in reader.lines().enumerate() {
                let line = line.map_err(read_failed(file))?;
                if !line.is_empty() {
                    lines.push((format!("{}:{}", file.display(), number + 1), line));
                }
            }
        }
        let node = lines.first().and_then(|(_, line)| LineView::parse(line)).map(|view| view.node);
        reports.push(verify(lines, public_key, &expected(node.as_deref())));
    }
    Ok(reports)
}

/// The heads the state database saved for `node`: at its last clean stop and at its last
/// checkpoint.
pub async fn saved_heads(state: &crate::state::State, node: &str) -> Result<Vec<ExpectedHead>, VerifyError> {
    let saved = state.audit().node_head(node).await?;
    Ok(saved.map(heads_of).unwrap_or_default())
}

fn heads_of(saved: crate::state::audit::NodeHead) -> Vec<ExpectedHead> {
    let head = |found: Option<(u64, String)>, source: &str| {
        found.map(|(seq, hash)| ExpectedHead { seq, hash: Some(hash), source: source.to_string() })
    };
    [
        head(saved.head, "the head saved at the last clean stop (database)"),
        head(saved.signed, "the last checkpoint saved in the database"),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Verifies every node's trail in the database, in the order rows were written. Without a
/// given key, each node's registered key is used; a saved chain head catches a cut-off end.
pub async fn verify_database(
    state: &crate::state::State,
    public_key: Option<&[u8]>,
    expected: impl Fn(Option<&str>) -> Expected,
) -> Result<Vec<Report>, VerifyError> {
    let log = state.audit();
    let mut reports = Vec::new();
    for node in log.nodes().await? {
        let saved = log.node_head(&node).await?;
        let registered = saved.as_ref().and_then(|s| chain::unhex(&s.public_key));
        let mut expected = expected(Some(&node));
        expected.heads.extend(saved.map(heads_of).unwrap_or_default());
        let key = public_key.map(<[u8]>::to_vec).or(registered);
        let mut lines = Vec::new();
        let mut after = 0;
        loop {
            let page = log.lines_of(&node, after, 10_000).await?;
            let Some(last) = page.last() else { break };
            after = last.row;
            lines.extend(page.into_iter().map(|l| (format!("row {}", l.row), l.record)));
        }
        reports.push(verify(lines, key.as_deref(), &expected));
    }
    Ok(reports)
}
