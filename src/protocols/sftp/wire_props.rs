//! Properties of the SFTP packet decoder the dispatcher uses (russh-sftp's `Packet` decoding
//! plus our `wire` helpers), on generated input (proptest; case count from `PROPTEST_CASES`):
//! no byte string panics it, every valid request decodes to what was encoded, and the replies
//! we build by hand decode as the client will read them.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use russh_sftp::protocol::{
    Close, Data, Extended, ExtendedReply, FSetStat, FileAttributes, Fstat, Lstat, MkDir, Open, OpenDir,
    OpenFlags, Packet, Read, ReadDir, ReadLink, RealPath, Remove, Rename, RmDir, SetStat, Stat, Status,
    Symlink, Write,
};

use super::wire;

/// Attributes as v3 carries them (uid and gid travel together, so do the two times).
fn attrs() -> impl Strategy<Value = FileAttributes> {
    (
        prop::option::of(any::<u64>()),
        prop::option::of((any::<u32>(), any::<u32>())),
        prop::option::of(any::<u32>()),
        prop::option::of((any::<u32>(), any::<u32>())),
    )
        .prop_map(|(size, ids, permissions, times)| FileAttributes {
            size,
            uid: ids.map(|(uid, _)| uid),
            user: None,
            gid: ids.map(|(_, gid)| gid),
            group: None,
            permissions,
            atime: times.map(|(atime, _)| atime),
            mtime: times.map(|(_, mtime)| mtime),
        })
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z./]{0,12}", "\\PC{0,24}", Just(String::new())]
}

/// Every request a client may send, with arbitrary field values.
fn request() -> impl Strategy<Value = Packet> {
    let id = any::<u32>();
    let data = prop::collection::vec(any::<u8>(), 0..600);
    prop_oneof![
        (id, name(), any::<u32>(), attrs()).prop_map(|(id, filename, flags, attrs)| {
            Packet::Open(Open { id, filename, pflags: OpenFlags::from_bits_retain(flags), attrs })
        }),
        (id, name()).prop_map(|(id, handle)| Packet::Close(Close { id, handle })),
        (id, name(), any::<u64>(), any::<u32>()).prop_map(|(id, handle, offset, len)| Packet::Read(Read {
            id,
            handle,
            offset,
            len
        })),
        (id, name(), any::<u64>(), data.clone())
            .prop_map(|(id, handle, offset, data)| Packet::Write(Write { id, handle, offset, data })),
        (id, name()).prop_map(|(id, path)| Packet::Lstat(Lstat { id, path })),
        (id, name()).prop_map(|(id, handle)| Packet::Fstat(Fstat { id, handle })),
        (id, name(), attrs()).prop_map(|(id, path, attrs)| Packet::SetStat(SetStat { id, path, attrs })),
        (id, name(), attrs()).prop_map(|(id, handle, attrs)| Packet::FSetStat(FSetStat {
            id,
            handle,
            attrs
        })),
        (id, name()).prop_map(|(id, path)| Packet::OpenDir(OpenDir { id, path })),
        (id, name()).prop_map(|(id, handle)| Packet::ReadDir(ReadDir { id, handle })),
        (id, name()).prop_map(|(id, filename)| Packet::Remove(Remove { id, filename })),
        (id, name(), attrs()).prop_map(|(id, path, attrs)| Packet::MkDir(MkDir { id, path, attrs })),
        (id, name()).prop_map(|(id, path)| Packet::RmDir(RmDir { id, path })),
        (id, name()).prop_map(|(id, path)| Packet::RealPath(RealPath { id, path })),
        (id, name()).prop_map(|(id, path)| Packet::Stat(Stat { id, path })),
        (id, name(), name()).prop_map(|(id, oldpath, newpath)| Packet::Rename(Rename {
            id,
            oldpath,
            newpath
        })),
        (id, name()).prop_map(|(id, path)| Packet::ReadLink(ReadLink { id, path })),
        (id, name(), name()).prop_map(|(id, linkpath, targetpath)| Packet::Symlink(Symlink {
            id,
            linkpath,
            targetpath
        })),
        (id, "[a-z@.]{1,30}", data).prop_map(|(id, request, data)| Packet::Extended(Extended {
            id,
            request,
            data
        })),
    ]
}

/// Encodes a packet and strips the length prefix, checking it on the way.
fn body_of(packet: Packet) -> Result<Bytes, TestCaseError> {
    let mut framed = Bytes::try_from(packet).map_err(|e| TestCaseError::fail(format!("encode: {e}")))?;
    prop_assert!(framed.len() >= 5, "packet shorter than its header");
    let len = framed.get_u32() as usize;
    prop_assert_eq!(len, framed.len(), "length prefix");
    Ok(framed)
}

fn decode(body: &Bytes) -> Result<Packet, String> {
    let mut raw = body.clone();
    Packet::try_from(&mut raw).map_err(|e| e.to_string())
}

/// A valid request body, then changed the way a broken or hostile peer would.
fn mutated_body() -> impl Strategy<Value = Vec<u8>> {
    (
        request(),
        any::<prop::sample::Index>(),
        any::<u8>(),
        0usize..4,
        prop::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(|(packet, at, byte, how, junk)| {
            let mut body = Bytes::try_from(packet).map(|b| b.slice(4..).to_vec()).unwrap_or_default();
            if body.is_empty() {
                return body;
            }
            let i = at.index(body.len());
            match how {
                0 => body[i] = byte,
                1 => body.truncate(i),
                2 => body.splice(i..i, junk).for_each(drop),
                _ => {
                    // A string or count length near u32::MAX.
                    let end = (i + 4).min(body.len());
                    for b in &mut body[i..end] {
                        *b = 0xff;
                    }
                }
            }
            body
        })
}

/// Every inspection the dispatcher does on a body before and after decoding.
fn inspect(body: &[u8]) {
    let _ = wire::request_id(body);
    let _ = wire::names_are_utf8(body);
    let mut rest = body;
    while wire::take_string(&mut rest).is_some() {}
    let _ = decode(&Bytes::copy_from_slice(body));
}

proptest! {
    /// Arbitrary bytes as a packet body: decoded or refused, never a panic.
    #[test]
    fn any_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        inspect(&body);
    }

    /// Arbitrary bytes after a valid type byte, so every decoder is reached.
    #[test]
    fn any_payload_of_every_type_never_panics(kind in prop_oneof![1u8..=20, 101u8..=105, 200u8..=201], id in any::<u32>(), rest in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut body = vec![kind];
        body.extend_from_slice(&id.to_be_bytes());
        body.extend_from_slice(&rest);
        inspect(&body);
        prop_assert_eq!(wire::request_id(&body), Some(id));
    }

    /// Valid packets with one byte changed, cut short, padded or given a huge length.
    #[test]
    fn mutated_packets_never_panic(body in mutated_body()) {
        inspect(&body);
    }

    /// decode(encode(x)) == x for every request, and the dispatcher's own peeks agree.
    #[test]
    fn requests_round_trip(packet in request()) {
        let id = packet.get_request_id();
        let expected = format!("{packet:?}");
        let body = body_of(packet)?;
        prop_assert_eq!(wire::request_id(&body), Some(id));
        prop_assert!(wire::names_are_utf8(&body), "valid names flagged as not UTF-8");
        let decoded = decode(&body).map_err(TestCaseError::fail)?;
        prop_assert_eq!(format!("{decoded:?}"), expected);
        // And encoding the decoded packet gives the same bytes.
        prop_assert_eq!(body_of(decoded)?, body);
    }

    /// A request whose name is not UTF-8 is caught before russh-sftp decodes it lossily.
    #[test]
    fn non_utf8_names_are_caught(kind in prop::sample::select(vec![3u8, 7, 9, 11, 13, 14, 15, 16, 17, 18, 19, 20]), id in any::<u32>(), good in "[a-z]{0,8}", lone in 0x80u8..=0xbf, rest in prop::collection::vec(0x80u8..=0xff, 0..3)) {
        // A continuation byte right after ASCII is never UTF-8, whatever follows it.
        let mut name = good.into_bytes();
        name.push(lone);
        name.extend_from_slice(&rest);
        prop_assert!(std::str::from_utf8(&name).is_err());
        let mut body = BytesMut::new();
        body.put_u8(kind);
        body.put_u32(id);
        body.put_u32(name.len() as u32);
        body.extend_from_slice(&name);
        prop_assert!(!wire::names_are_utf8(&body));
    }

    /// The DATA, STATUS and EXTENDED_REPLY packets built by hand decode to their inputs.
    #[test]
    fn hand_built_replies_decode(id in any::<u32>(), data in prop::collection::vec(any::<u8>(), 0..2048), code in 0u32..=8, message in "\\PC{0,80}", values in prop::collection::vec(any::<u64>(), 0..12)) {
        let mut framed = wire::data_reply(id, &data);
        prop_assert_eq!(framed.get_u32() as usize, framed.len());
        let decoded = decode(&framed).map_err(TestCaseError::fail)?;
        prop_assert_eq!(format!("{decoded:?}"), format!("{:?}", Packet::Data(Data { id, data })));

        let mut framed = wire::status_reply(id, code, &message);
        prop_assert_eq!(framed.get_u32() as usize, framed.len());
        match decode(&framed).map_err(TestCaseError::fail)? {
            Packet::Status(Status { id: got, status_code, error_message, language_tag }) => {
                prop_assert_eq!(got, id);
                prop_assert_eq!(status_code as u32, code);
                prop_assert_eq!(error_message, message);
                prop_assert_eq!(language_tag, "en");
            }
            other => prop_assert!(false, "not a STATUS: {other:?}"),
        }

        let mut framed = wire::extended_reply_u64s(id, &values);
        prop_assert_eq!(framed.get_u32() as usize, framed.len());
        let flat: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
        let decoded = decode(&framed).map_err(TestCaseError::fail)?;
        prop_assert_eq!(format!("{decoded:?}"), format!("{:?}", Packet::ExtendedReply(ExtendedReply { id, data: flat })));
    }

    /// SSH strings in extension data: what is written is read back, and the cursor ends
    /// exactly after it.
    #[test]
    fn extension_strings_round_trip(strings in prop::collection::vec("\\PC{0,30}", 0..6)) {
        let mut data = BytesMut::new();
        for s in &strings {
            data.put_u32(s.len() as u32);
            data.extend_from_slice(s.as_bytes());
        }
        let mut rest = &data[..];
        for s in &strings {
            let taken = wire::take_string(&mut rest);
            prop_assert_eq!(taken.as_deref(), Some(s.as_str()));
        }
        prop_assert!(rest.is_empty());
        prop_assert_eq!(wire::take_string(&mut rest), None);
    }
}
