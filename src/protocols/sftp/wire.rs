//! The few SFTP encodings russh-sftp's types don't cover well: DATA replies built without an
//! extra copy, extended replies, and reading the request id of a packet that failed to decode
//! (so a bad packet gets a STATUS instead of desynchronising the stream).

use bytes::{Buf, BufMut, Bytes, BytesMut};

pub const SSH_FXP_STATUS: u8 = 101;
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

/// A STATUS reply: `uint32 id, uint32 code, string message, string language`.
pub fn status_reply(id: u32, code: u32, message: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(25 + message.len());
    out.put_u32(1 + 4 + 4 + 4 + message.len() as u32 + 4 + 2);
    out.put_u8(SSH_FXP_STATUS);
    out.put_u32(id);
    out.put_u32(code);
    out.put_u32(message.len() as u32);
    out.extend_from_slice(message.as_bytes());
    out.put_u32(2);
    out.extend_from_slice(b"en");
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

/// True when the path strings of a request (after type and id) are valid UTF-8. Requests
/// without names, and truncated ones (left to the decoder to refuse), pass.
pub fn names_are_utf8(body: &[u8]) -> bool {
    let names = match body.first() {
        Some(3 | 7 | 9 | 11 | 13 | 14 | 15 | 16 | 17 | 19 | 200) => 1,
        Some(18 | 20) => 2,
        _ => 0,
    };
    let mut rest = body.get(5..).unwrap_or_default();
    for _ in 0..names {
        if rest.len() < 4 {
            return true;
        }
        let len = rest.get_u32() as usize;
        let Some(bytes) = rest.get(..len) else {
            return true;
        };
        if std::str::from_utf8(bytes).is_err() {
            return false;
        }
        rest.advance(len);
    }
    true
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
        assert!(names_are_utf8(&[17, 0, 0, 0, 1, 0, 0, 0, 2, b'o', b'k']));
        assert!(!names_are_utf8(&[17, 0, 0, 0, 1, 0, 0, 0, 2, 0xff, b'k']));
        assert!(!names_are_utf8(&[18, 0, 0, 0, 1, 0, 0, 0, 1, b'a', 0, 0, 0, 1, 0xc3]));
    }
}
