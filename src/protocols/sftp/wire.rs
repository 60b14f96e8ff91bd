//! The few SFTP encodings russh-sftp's types don't cover well: DATA replies built without an
//! extra copy, extended replies, and reading the request id of a packet that failed to decode
//! (so a bad packet gets a STATUS instead of desynchronising the stream).

use bytes::{Buf, BufMut, Bytes, BytesMut};

pub const SSH_FXP_DATA: u8 = 103;
pub const SSH_FXP_EXTENDED_REPLY: u8 = 201;

/// Largest packet we accept or send (OpenSSH's SFTP_MAX_MSG_LENGTH).
pub const MAX_PACKET: usize = 256 * 1024;
/// Largest READ/WRITE payload, leaving room for headers.
pub const MAX_DATA: usize = MAX_PACKET - 1024;

/// `uint32 length, byte type, uint32 id, string data`.
pub fn data_reply(id: u32, data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(13 + data.len());
    out.put_u32(9 + data.len() as u32);
    out.put_u8(SSH_FXP_DATA);
    out.put_u32(id);
    out.put_u32(data.len() as u32);
    out.extend_from_slice(data);
    out.freeze()
}

/// An EXTENDED_REPLY carrying a sequence of u64 values (statvfs, limits).
pub fn extended_reply_u64s(id: u32, values: &[u64]) -> Bytes {
    let mut out = BytesMut::with_capacity(9 + 8 * values.len());
    out.put_u32(5 + 8 * values.len() as u32);
    out.put_u8(SSH_FXP_EXTENDED_REPLY);
    out.put_u32(id);
    for v in values {
        out.put_u64(*v);
    }
    out.freeze()
}

/// The request id of a packet body (type byte first), when it is long enough to have one.
pub fn request_id(body: &[u8]) -> Option<u32> {
    let mut rest = body.get(1..5)?;
    Some(rest.get_u32())
}

/// Reads one SSH string as UTF-8 from extension data.
pub fn take_string(data: &mut &[u8]) -> Option<String> {
    if data.len() < 4 {
        return None;
    }
    let len = data.get_u32() as usize;
    let bytes = data.get(..len)?;
    let s = std::str::from_utf8(bytes).ok()?.to_string();
    data.advance(len);
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_reply_layout() {
        let b = data_reply(7, b"abc");
        assert_eq!(&b[..], &[0, 0, 0, 12, 103, 0, 0, 0, 7, 0, 0, 0, 3, b'a', b'b', b'c']);
    }

    #[test]
    fn strings_and_ids_parse_defensively() {
        let mut data: &[u8] = &[0, 0, 0, 2, b'h', b'i', 0, 0, 0, 9, b'x'];
        assert_eq!(take_string(&mut data).as_deref(), Some("hi"));
        assert_eq!(take_string(&mut data), None, "truncated string");
        assert_eq!(request_id(&[3, 0, 0, 1, 0]), Some(256));
        assert_eq!(request_id(&[3, 0]), None);
    }
}
