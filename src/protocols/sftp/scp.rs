//! Legacy SCP (`scp -O`, the rcp protocol over an SSH exec channel): `scp -t` receives files
//! (sink), `scp -f` sends them (source), `-r` recurses, `-p` keeps times. Modern `scp` uses
//! SFTP instead. Every file operation goes through the session API like SFTP's.

use std::time::{Duration, UNIX_EPOCH};

use russh::Channel;
use russh::server::Msg;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use super::idle::Activity;
use crate::session::{EntryKind, OpenWrite, Session, SessionError, SetAttrs, VirtualPath};

#[cfg(test)]
#[path = "scp_props.rs"]
mod props;

/// Longest control line accepted (`C0644 <size> <name>`).
const MAX_LINE: usize = 8 * 1024;
const CHUNK: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    sink: bool,
    recursive: bool,
    preserve: bool,
    path: String,
}

impl Command {
    /// Parses `scp [-r] [-p] [-d] [-v] -t|-f [--] PATH` as the remote shell would split it.
    pub fn parse(line: &str) -> Option<Self> {
        let words = shell_words(line)?;
        let mut words = words.into_iter();
        if words.next()? != "scp" {
            return None;
        }
        let (mut sink, mut source, mut recursive, mut preserve) = (false, false, false, false);
        let mut path = None;
        let mut options_done = false;
        for word in words {
            if !options_done && word == "--" {
                options_done = true;
            } else if !options_done && word.starts_with('-') && word.len() > 1 {
                for flag in word.chars().skip(1) {
                    match flag {
                        't' => sink = true,
                        'f' => source = true,
                        'r' => recursive = true,
                        'p' => preserve = true,
                        'd' | 'v' | 'q' => {}
                        _ => return None,
                    }
                }
            } else if path.is_none() {
                path = Some(word);
            } else {
                return None; // several sources: not supported
            }
        }
        if sink == source {
            return None;
        }
        Some(Self { sink, recursive, preserve, path: path.unwrap_or_else(|| ".".into()) })
    }
}

/// Splits a command line the way a POSIX shell would for plain words and quotes.
fn shell_words(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => current.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            c @ ('"' | '\\' | '$' | '`') => current.push(c),
                            c => {
                                current.push('\\');
                                current.push(c);
                            }
                        },
                        c => current.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                current.push(chars.next()?);
            }
            c => {
                in_word = true;
                current.push(c);
            }
        }
    }
    if in_word {
        words.push(current);
    }
    Some(words)
}

#[derive(Debug, thiserror::Error)]
enum ScpError {
    #[error("{0}")]
    Session(#[from] SessionError),
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The client reported a fatal error; nothing more to say to it.
    #[error("client aborted: {0}")]
    ClientAborted(String),
}

/// Runs one scp command on its channel and ends it with an exit status.
pub async fn run(channel: Channel<Msg>, session: Session, command: Command, activity: Activity) {
    // A running scp command is in use for the idle timeout.
    let in_use = tokio::spawn(async move {
        loop {
            activity.touch();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let (mut read_half, write_half) = channel.split();
    let mut output = write_half.make_writer();
    let result = {
        let mut input = BufReader::new(read_half.make_reader());
        if command.sink {
            sink(&session, &command, &mut input, &mut output).await
        } else {
            source(&session, &command, &mut input, &mut output).await
        }
    };
    let status = match result {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(ScpError::ClientAborted(why)) => {
            tracing::debug!(%why, "scp client aborted");
            1
        }
        Err(e) => {
            let _ = output.write_all(format!("\x02scp: {e}\n").as_bytes()).await;
            let _ = output.flush().await;
            1
        }
    };
    in_use.abort();
    let _ = write_half.exit_status(status).await;
    let _ = write_half.eof().await;
    let _ = write_half.close().await;
}

async fn ack<W: AsyncWrite + Unpin>(output: &mut W) -> Result<(), ScpError> {
    output.write_all(&[0]).await?;
    output.flush().await?;
    Ok(())
}

/// A non-fatal error the client prints before going on.
async fn warn<W: AsyncWrite + Unpin>(output: &mut W, message: &str) -> Result<(), ScpError> {
    output.write_all(format!("\x01scp: {message}\n").as_bytes()).await?;
    output.flush().await?;
    Ok(())
}

async fn read_line<R: AsyncBufReadExt + Unpin>(input: &mut R) -> Result<Option<Vec<u8>>, ScpError> {
    let mut line = Vec::new();
    let read = (&mut *input).take(MAX_LINE as u64).read_until(b'\n', &mut line).await?;
    if read == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(ScpError::Protocol("control line too long or truncated".into()));
    }
    line.pop();
    Ok(Some(line))
}

/// Waits for the peer's answer: `\0` ok, `\x01 msg` warning (false), `\x02 msg` fatal.
async fn response<R: AsyncBufReadExt + Unpin>(input: &mut R) -> Result<bool, ScpError> {
    let mut byte = [0u8; 1];
    input.read_exact(&mut byte).await?;
    match byte[0] {
        0 => Ok(true),
        code @ (1 | 2) => {
            let message = read_line(input).await?.unwrap_or_default();
            let message = String::from_utf8_lossy(&message).into_owned();
            if code == 2 { Err(ScpError::ClientAborted(message)) } else { Ok(false) }
        }
        other => Err(ScpError::Protocol(format!("unexpected response byte {other}"))),
    }
}

/// One entry name from a control line: a single path segment.
fn entry_name(raw: &str) -> Result<&str, ScpError> {
    if raw.is_empty() || raw == "." || raw == ".." || raw.contains('/') || raw.contains('\0') {
        return Err(ScpError::Protocol(format!("invalid file name `{raw}`")));
    }
    Ok(raw)
}

/// `C0644 1234 name` or `D0755 0 name` → (mode, size, name).
fn parse_entry(line: &str) -> Result<(u32, u64, &str), ScpError> {
    let bad = || ScpError::Protocol(format!("malformed control line `{line}`"));
    let mut parts = line.get(1..).ok_or_else(bad)?.splitn(3, ' ');
    let mode = u32::from_str_radix(parts.next().ok_or_else(bad)?, 8).map_err(|_| bad())?;
    let size = parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
    let name = entry_name(parts.next().ok_or_else(bad)?)?;
    Ok((mode & 0o7777, size, name))
}

/// `T<mtime> 0 <atime> 0` → (mtime, atime) seconds.
fn parse_times(line: &str) -> Result<(u64, u64), ScpError> {
    let bad = || ScpError::Protocol(format!("malformed time line `{line}`"));
    let fields: Vec<&str> = line.get(1..).ok_or_else(bad)?.split(' ').collect();
    let [mtime, _, atime, _] = fields[..] else {
        return Err(bad());
    };
    Ok((mtime.parse().map_err(|_| bad())?, atime.parse().map_err(|_| bad())?))
}

fn times_attrs(times: Option<(u64, u64)>) -> Option<SetAttrs> {
    times.map(|(mtime, atime)| SetAttrs {
        times: Some((UNIX_EPOCH + Duration::from_secs(atime), UNIX_EPOCH + Duration::from_secs(mtime))),
        ..SetAttrs::default()
    })
}

/// Receives files (`scp -t`). Ok(false) when some entries failed but the session went on.
async fn sink<R, W>(
    session: &Session,
    command: &Command,
    input: &mut R,
    output: &mut W,
) -> Result<bool, ScpError>
where
    R: AsyncBufReadExt + AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let target = session.resolve(&VirtualPath::root(), &command.path)?;
    let target_is_dir = matches!(session.stat(&target).await, Ok(m) if m.kind == EntryKind::Dir);
    let mut dirs: Vec<VirtualPath> = Vec::new();
    let mut times = None;
    let mut all_ok = true;
    ack(output).await?;
    while let Some(line) = read_line(input).await? {
        let line =
            String::from_utf8(line).map_err(|_| ScpError::Protocol("file names must be UTF-8".into()))?;
        let destination = |name: &str| match dirs.last() {
            Some(dir) => dir.join(name),
            None if target_is_dir => target.join(name),
            None => target.clone(),
        };
        match line.as_bytes().first() {
            Some(b'T') => {
                times = Some(parse_times(&line)?);
                ack(output).await?;
            }
            Some(b'C') => {
                let (_mode, size, name) = parse_entry(&line)?;
                let path = destination(name);
                let how = OpenWrite { create: true, truncate: true, ..OpenWrite::default() };
                let file = match session.open_write(&path, how).await {
                    Ok(file) => file,
                    Err(e) => {
                        // The client skips this file's data when told so.
                        warn(output, &e.to_string()).await?;
                        all_ok = false;
                        times = None;
                        continue;
                    }
                };
                ack(output).await?;
                let mut offset = 0u64;
                let mut buffer = vec![0u8; CHUNK];
                while offset < size {
                    let want = (size - offset).min(CHUNK as u64) as usize;
                    let n = input.read(&mut buffer[..want]).await?;
                    if n == 0 {
                        return Err(ScpError::Protocol("connection ended mid-file".into()));
                    }
                    file.write_at(offset, bytes::Bytes::copy_from_slice(&buffer[..n])).await?;
                    offset += n as u64;
                }
                if !response(input).await? {
                    all_ok = false;
                    times = None;
                    drop(file);
                    continue;
                }
                if let Some(attrs) = times_attrs(times.take()) {
                    let _ = file.set_attrs(attrs).await;
                }
                match file.close().await {
                    Ok(()) => ack(output).await?,
                    Err(e) => {
                        warn(output, &e.to_string()).await?;
                        all_ok = false;
                    }
                }
            }
            Some(b'D') => {
                let (_mode, _, name) = parse_entry(&line)?;
                let path = destination(name);
                let exists = matches!(session.stat(&path).await, Ok(m) if m.kind == EntryKind::Dir);
                if !exists && let Err(e) = session.mkdir(&path).await {
                    // Without its folder nothing below can land: stop here.
                    warn(output, &e.to_string()).await?;
                    return Ok(false);
                }
                if let Some(attrs) = times_attrs(times.take()) {
                    let _ = session.set_attrs(&path, attrs).await;
                }
                dirs.push(path);
                ack(output).await?;
            }
            Some(b'E') => {
                if dirs.pop().is_none() {
                    return Err(ScpError::Protocol("E without D".into()));
                }
                ack(output).await?;
            }
            Some(1) => all_ok = false,
            Some(2) => return Err(ScpError::ClientAborted(line[1..].to_string())),
            _ => {
                return Err(ScpError::Protocol(format!("unexpected control line `{line}`")));
            }
        }
    }
    Ok(all_ok)
}

enum Step {
    Send(VirtualPath),
    EndDir,
}

/// Sends files (`scp -f`). Ok(false) when some entries could not be sent.
async fn source<R, W>(
    session: &Session,
    command: &Command,
    input: &mut R,
    output: &mut W,
) -> Result<bool, ScpError>
where
    R: AsyncBufReadExt + AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    response(input).await?;
    let root = session.resolve(&VirtualPath::root(), &command.path)?;
    let mut all_ok = true;
    let mut steps = vec![Step::Send(root)];
    while let Some(step) = steps.pop() {
        let path = match step {
            Step::EndDir => {
                output.write_all(b"E\n").await?;
                output.flush().await?;
                response(input).await?;
                continue;
            }
            Step::Send(path) => path,
        };
        let meta = match session.stat(&path).await {
            Ok(meta) => meta,
            Err(e) => {
                warn(output, &e.to_string()).await?;
                all_ok = false;
                continue;
            }
        };
        if command.preserve {
            let secs = |t: Option<std::time::SystemTime>| {
                t.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs())
            };
            let line = format!("T{} 0 {} 0\n", secs(meta.modified), secs(meta.accessed.or(meta.modified)));
            output.write_all(line.as_bytes()).await?;
            output.flush().await?;
            if !response(input).await? {
                all_ok = false;
                continue;
            }
        }
        let name = if path.is_root() { "." } else { path.name() };
        if meta.kind == EntryKind::Dir {
            if !command.recursive {
                warn(output, &format!("{path}: not a regular file")).await?;
                all_ok = false;
                continue;
            }
            let mut listing = match session.list(&path).await {
                Ok(listing) => listing,
                Err(e) => {
                    warn(output, &e.to_string()).await?;
                    all_ok = false;
                    continue;
                }
            };
            let mut children = Vec::new();
            loop {
                let batch = listing.next_batch(1024).await?;
                if batch.is_empty() {
                    break;
                }
                children.extend(batch.into_iter().map(|(child, _)| path.join(&child)));
            }
            let mode = meta.mode.unwrap_or(0o755) & 0o7777;
            output.write_all(format!("D{mode:04o} 0 {name}\n").as_bytes()).await?;
            output.flush().await?;
            if !response(input).await? {
                all_ok = false;
                continue;
            }
            steps.push(Step::EndDir);
            steps.extend(children.into_iter().rev().map(Step::Send));
            continue;
        }
        let file = match session.open_read(&path).await {
            Ok(file) => file,
            Err(e) => {
                warn(output, &e.to_string()).await?;
                all_ok = false;
                continue;
            }
        };
        let mode = meta.mode.unwrap_or(0o644) & 0o7777;
        output.write_all(format!("C{mode:04o} {} {name}\n", meta.size).as_bytes()).await?;
        output.flush().await?;
        if !response(input).await? {
            all_ok = false;
            continue;
        }
        let mut offset = 0u64;
        let sent = async {
            while offset < meta.size {
                let want = (meta.size - offset).min(CHUNK as u64) as usize;
                let data = file.read_at(offset, want).await?;
                if data.is_empty() {
                    return Err(ScpError::Protocol(format!("{path}: file shrank while being sent")));
                }
                output.write_all(&data).await?;
                offset += data.len() as u64;
            }
            output.write_all(&[0]).await?;
            output.flush().await?;
            response(input).await
        }
        .await;
        match sent {
            Ok(true) => {}
            Ok(false) => {
                file.interrupted(offset, "the client reported an error for the file");
                all_ok = false;
            }
            Err(e) => {
                file.interrupted(offset, "the connection failed during the file");
                return Err(e);
            }
        }
    }
    Ok(all_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_like_a_shell() {
        let c = Command::parse("scp -r -p -t -- '/in/my file.txt'").unwrap();
        assert!(c.sink && c.recursive && c.preserve);
        assert_eq!(c.path, "/in/my file.txt");
        let c = Command::parse("scp -f \"a \\\"b\\\"\"").unwrap();
        assert!(!c.sink);
        assert_eq!(c.path, "a \"b\"");
        assert_eq!(Command::parse("scp -f a\\ b").unwrap().path, "a b");
        assert!(Command::parse("rm -rf /").is_none());
        assert!(Command::parse("scp -t -f x").is_none());
        assert!(Command::parse("scp -t 'unterminated").is_none());
    }

    #[test]
    fn control_lines_parse_and_refuse_bad_names() {
        assert_eq!(parse_entry("C0644 12 a b.txt").unwrap(), (0o644, 12, "a b.txt"));
        assert!(parse_entry("C0644 12 ../evil").is_err());
        assert!(parse_entry("C0644 12 a/b").is_err());
        assert!(parse_entry("C0644 x a").is_err());
        assert_eq!(parse_times("T1700000000 0 1700000001 0").unwrap(), (1_700_000_000, 1_700_000_001));
    }
}
