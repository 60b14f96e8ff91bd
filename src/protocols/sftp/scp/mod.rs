//! Legacy SCP (`scp -O`, the rcp protocol over an SSH exec channel): `scp -t` receives files
//! (sink), `scp -f` sends them (source), `-r` recurses, `-p` keeps times. Modern `scp` uses
//! SFTP instead. Every file operation goes through the session API like SFTP's.

use std::time::{Duration, UNIX_EPOCH};

use russh::Channel;
use russh::server::Msg;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

mod command;
mod control;

pub use command::Command;
use control::{Control, ControlError, Times};

use super::idle::Activity;
use crate::session::{EntryKind, OpenWrite, Session, SessionError, SetAttrs, VirtualPath, WriteFile};

/// Longest control line accepted (`C0644 <size> <name>`).
const MAX_LINE: usize = 8 * 1024;
const CHUNK: usize = 256 * 1024;
/// Deepest folder nesting a recursive upload may create.
const MAX_DEPTH: usize = 128;

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

fn times_attrs(times: Option<Times>) -> Option<SetAttrs> {
    times.map(|t| SetAttrs { times: Some((t.accessed, t.modified)), ..SetAttrs::default() })
}

/// How the peer ended a file's data.
enum Ending {
    /// The `\0` after the data: the file is complete.
    Terminated,
    /// All announced bytes arrived, then the channel ended without the `\0` or before our
    /// answer (libssh2, so curl and PHP, close right after the data): complete as well.
    ChannelEnded,
    /// `\x01 message`: the sender reports it could not read its file; discarded.
    Failed(String),
    /// `\x02 message`: the sender gives up; discarded.
    Aborted(String),
}

/// Receives the `size` announced bytes of a file into `file`, then how the peer ends it. A
/// channel that ends before `size` bytes is an error: the short upload is discarded.
async fn receive_file<R>(input: &mut R, file: &WriteFile, size: u64) -> Result<Ending, ScpError>
where
    R: AsyncBufReadExt + AsyncRead + Unpin,
{
    let mut offset = 0u64;
    let mut buffer = vec![0u8; CHUNK.min(usize::try_from(size).unwrap_or(CHUNK)).max(1)];
    while offset < size {
        let want = usize::try_from(size - offset).map_or(buffer.len(), |left| left.min(buffer.len()));
        let n = input.read(&mut buffer[..want]).await?;
        if n == 0 {
            return Err(ScpError::Protocol(format!(
                "connection ended mid-file: {offset} of {size} bytes arrived"
            )));
        }
        file.write_at(offset, bytes::Bytes::copy_from_slice(&buffer[..n])).await?;
        offset += n as u64;
    }
    let mut byte = [0u8; 1];
    if input.read(&mut byte).await? == 0 {
        return Ok(Ending::ChannelEnded);
    }
    match byte[0] {
        0 => Ok(Ending::Terminated),
        code @ (1 | 2) => {
            let message = read_line(input).await?.unwrap_or_default();
            let message = String::from_utf8_lossy(&message).into_owned();
            Ok(if code == 1 { Ending::Failed(message) } else { Ending::Aborted(message) })
        }
        other => Err(ScpError::Protocol(format!("expected the end of the file's data, got byte {other}"))),
    }
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
        let destination = |name: &str| match dirs.last() {
            Some(dir) => dir.join(name),
            None if target_is_dir => target.join(name),
            None => target.clone(),
        };
        let control = match control::parse(&line) {
            Ok(control) => control,
            Err(ControlError::Refused(why)) => {
                // The peer skips the entry it announced (and its data or contents).
                warn(output, &why).await?;
                all_ok = false;
                times = None;
                continue;
            }
            Err(ControlError::Malformed(why)) => return Err(ScpError::Protocol(why)),
        };
        match control {
            Control::Times(given) => {
                times = Some(given);
                ack(output).await?;
            }
            Control::File { size, name, .. } => {
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
                let ending = receive_file(input, &file, size).await?;
                let ended = match ending {
                    Ending::Terminated => false,
                    Ending::ChannelEnded => true,
                    Ending::Failed(why) => {
                        tracing::debug!(%why, "scp client could not send a file; discarded");
                        all_ok = false;
                        times = None;
                        drop(file);
                        continue;
                    }
                    Ending::Aborted(why) => {
                        drop(file);
                        return Err(ScpError::ClientAborted(why));
                    }
                };
                // Complete: committed now, whatever the client does next.
                if let Some(attrs) = times_attrs(times.take()) {
                    let _ = file.set_attrs(attrs).await;
                }
                let closed = file.close().await;
                if ended {
                    return Ok(all_ok && closed.is_ok());
                }
                match closed {
                    Ok(()) => ack(output).await?,
                    Err(e) => {
                        warn(output, &e.to_string()).await?;
                        all_ok = false;
                    }
                }
            }
            Control::Dir { name, .. } => {
                if dirs.len() >= MAX_DEPTH {
                    warn(output, &format!("{name}: folders nested deeper than {MAX_DEPTH}")).await?;
                    all_ok = false;
                    times = None;
                    continue;
                }
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
            Control::EndDir => {
                if dirs.pop().is_none() {
                    return Err(ScpError::Protocol("E without D".into()));
                }
                ack(output).await?;
            }
            Control::Warning(_) => all_ok = false,
            Control::Fatal(why) => return Err(ScpError::ClientAborted(why)),
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
                let mut data = file.read_at(offset, want).await?;
                if data.is_empty() {
                    return Err(ScpError::Protocol(format!("{path}: file shrank while being sent")));
                }
                // Never more than announced, whatever the store returns.
                data.truncate(want);
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
