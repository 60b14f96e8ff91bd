//! The data side of RETR, STOR/APPE/STOU and LIST/NLST/MLSD, run as a task the control
//! channel can abort (ABOR). Memory per transfer is one chunk; nothing is buffered whole.
//! TYPE A converts line ends on the fly (LF to CRLF out, CRLF to LF in).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::data::DataStream;
use super::listing;
use super::reply;
use crate::session::{Listing, ReadFile, Session, VirtualPath, WriteFile};

/// Bytes per storage call; a transfer holds at most two chunks.
const CHUNK: usize = 512 * 1024;

/// What the control channel says when a transfer ends: (code, text).
pub type Outcome = (u16, String);

fn data_error(e: std::io::Error) -> Outcome {
    (426, format!("Data connection closed; transfer aborted: {e}"))
}

/// Sends `file` from `offset`. The next chunk is read from storage while the current one is
/// written to the network, so neither side waits on the other.
pub async fn download(file: ReadFile, mut offset: u64, mut data: DataStream, ascii: bool) -> Outcome {
    let mut sent = 0u64;
    let mut chunk = match file.read_at(offset, CHUNK).await {
        Ok(chunk) => chunk,
        Err(e) => return reply::for_error(&e),
    };
    while !chunk.is_empty() {
        offset += chunk.len() as u64;
        let send = async {
            if ascii { data.write_all(&to_crlf(&chunk)).await } else { data.write_all(&chunk).await }
        };
        let (written, next) = tokio::join!(send, file.read_at(offset, CHUNK));
        if let Err(e) = written {
            file.interrupted(sent, "the data connection failed");
            return data_error(e);
        }
        sent += chunk.len() as u64;
        chunk = match next {
            Ok(next) => next,
            Err(e) => return reply::for_error(&e),
        };
    }
    if let Err(e) = data.shutdown().await {
        file.interrupted(sent, "the data connection failed");
        return data_error(e);
    }
    (226, format!("Transfer complete ({sent} bytes)"))
}

/// Fills `buf` up to its capacity or the end of the stream; `Ok(false)` at the end.
async fn fill(data: &mut DataStream, buf: &mut BytesMut) -> std::io::Result<bool> {
    while buf.len() < buf.capacity() {
        if data.read_buf(buf).await? == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Receives into `file` from `offset` until the client closes the data connection, then
/// publishes the file. The next chunk is read from the network while the current one is written
/// to storage. A broken connection leaves nothing under the final name.
pub async fn upload(file: WriteFile, mut offset: u64, mut data: DataStream, ascii: bool) -> Outcome {
    let mut pending_cr = false;
    let mut current: Option<Bytes> = None;
    loop {
        let mut next = BytesMut::with_capacity(CHUNK);
        let store = async {
            match current.take() {
                Some(chunk) => {
                    let len = chunk.len() as u64;
                    file.write_at(offset, chunk).await.map(|()| len)
                }
                None => Ok(0),
            }
        };
        let (stored, more) = tokio::join!(store, fill(&mut data, &mut next));
        match stored {
            Ok(len) => offset += len,
            Err(e) => return reply::for_error(&e),
        }
        // Over TLS a finished upload ends with close_notify; a bare TCP close means the
        // client vanished (or someone truncated the stream), so nothing is published.
        let more = match more {
            Ok(more) => more,
            Err(e) => return data_error(e),
        };
        if !next.is_empty() {
            current =
                Some(if ascii { Bytes::from(from_crlf(&next, &mut pending_cr)) } else { next.freeze() });
        }
        if !more {
            break;
        }
    }
    if let Some(chunk) = current.take() {
        let len = chunk.len() as u64;
        if let Err(e) = file.write_at(offset, chunk).await {
            return reply::for_error(&e);
        }
        offset += len;
    }
    if pending_cr && let Err(e) = file.write_at(offset, Bytes::from_static(b"\r")).await {
        return reply::for_error(&e);
    }
    // Answer the client's close_notify with ours (Python's ssl `unwrap` waits for it).
    let _ = data.shutdown().await;
    match file.close().await {
        Ok(()) => (226, "Transfer complete".to_string()),
        Err(e) => reply::for_error(&e),
    }
}

/// How a listing is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    Long,
    Names,
    Facts,
}

/// Streams a folder listing in batches.
pub async fn list(
    session: Arc<Session>,
    mut listing: Listing,
    format: ListFormat,
    mut data: DataStream,
) -> Outcome {
    let now = std::time::SystemTime::now();
    loop {
        let batch = match listing.next_batch(256).await {
            Ok(batch) => batch,
            Err(e) => return reply::for_error(&e),
        };
        if batch.is_empty() {
            break;
        }
        let mut text = String::new();
        for (name, meta) in batch {
            match format {
                ListFormat::Long => text.push_str(&listing::list_line(&name, &meta, session.user(), now)),
                ListFormat::Names => {
                    text.push_str(&name);
                    text.push_str("\r\n");
                }
                ListFormat::Facts => {
                    text.push_str(&listing::mlsx_facts(&name, &meta));
                    text.push_str("\r\n");
                }
            }
        }
        if let Err(e) = data.write_all(text.as_bytes()).await {
            return data_error(e);
        }
    }
    if let Err(e) = data.shutdown().await {
        return data_error(e);
    }
    (226, "Transfer complete".to_string())
}

/// A single-file LIST/NLST (the argument named a file, not a folder).
pub async fn list_one(
    name: String,
    meta: crate::session::Metadata,
    owner: String,
    format: ListFormat,
    mut data: DataStream,
) -> Outcome {
    let line = match format {
        ListFormat::Long => listing::list_line(&name, &meta, &owner, std::time::SystemTime::now()),
        ListFormat::Names => format!("{name}\r\n"),
        ListFormat::Facts => format!("{}\r\n", listing::mlsx_facts(&name, &meta)),
    };
    if let Err(e) = data.write_all(line.as_bytes()).await {
        return data_error(e);
    }
    if let Err(e) = data.shutdown().await {
        return data_error(e);
    }
    (226, "Transfer complete".to_string())
}

fn to_crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 32);
    for &b in data {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// Drops the CR of each CRLF; a CR at the end of a chunk waits for the next one.
fn from_crlf(data: &[u8], pending_cr: &mut bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 1);
    for &b in data {
        if *pending_cr {
            *pending_cr = false;
            if b != b'\n' {
                out.push(b'\r');
            }
        }
        if b == b'\r' {
            *pending_cr = true;
        } else {
            out.push(b);
        }
    }
    out
}

/// A path for STOU: a fresh name in `dir`.
pub fn unique_name(dir: &VirtualPath) -> VirtualPath {
    dir.join(&format!("ferry-{}", uuid::Uuid::new_v4().simple()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_conversion_round_trips_across_chunks() {
        assert_eq!(to_crlf(b"a\nb\n"), b"a\r\nb\r\n");
        let mut cr = false;
        let mut out = from_crlf(b"a\r\nb\r", &mut cr);
        out.extend(from_crlf(b"\nc\rd", &mut cr));
        assert_eq!(out, b"a\nb\nc\rd");
        assert!(!cr);
    }
}
