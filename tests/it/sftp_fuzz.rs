//! The SFTP dispatcher under generated and mutated packets, over a real SSH channel (russh
//! client) to a real server: every request gets its reply, with its id, in order, or the
//! channel is closed cleanly (exit-status, EOF, CLOSE); the connection survives a closed
//! channel; and a fresh connection works afterwards.
//!
//! Cases: `PROPTEST_CASES` batches (default 256; tests/fuzz/long.sh raises it). The seed is
//! printed; `FERRY_FUZZ_SEED=<n>` replays a run.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use russh::ChannelMsg;
use russh::client::Msg;
use russh_sftp::protocol::{
    Close, Extended, FileAttributes, Fstat, Lstat, MkDir, Open, OpenDir, OpenFlags, Packet, Read, ReadDir,
    ReadLink, RealPath, Remove, Rename, RmDir, SetStat, Stat, Symlink, Write,
};

use crate::harness::{SshConnection, TestServer, User, open_sftp, payload};

const USER: &str = "fuzzer";
const PASSWORD: &str = "pw-fuzzer-1";
/// Generous: only a server that stopped answering takes this long.
const REPLY_WAIT: Duration = Duration::from_secs(60);

async fn connect(srv: &TestServer) -> SshConnection {
    srv.russh(USER, PASSWORD).await
}

/// Names inside the jail and out of it, so real files and refusals are both reached.
fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["big.bin", "small.txt", "dir", "dir/inner.txt", "new.txt", "link", "x/y"])
            .prop_map(str::to_string),
        1 => prop::sample::select(vec!["", ".", "..", "/..", "../../etc/passwd", "/", "dir/../../x", "a\\b"])
            .prop_map(str::to_string),
        1 => "\\PC{0,20}",
    ]
}

/// Handles the server hands out are small decimal numbers.
fn handle() -> impl Strategy<Value = String> {
    prop_oneof![4 => (1u32..12).prop_map(|n| n.to_string()), 1 => "\\PC{0,6}"]
}

fn attrs() -> impl Strategy<Value = FileAttributes> {
    (
        prop::option::of(0u64..1 << 20),
        prop::option::of(0u32..0o7777),
        prop::option::of((any::<u32>(), any::<u32>())),
    )
        .prop_map(|(size, permissions, times)| FileAttributes {
            size,
            permissions,
            atime: times.map(|t| t.0),
            mtime: times.map(|t| t.1),
            ..FileAttributes::empty()
        })
}

fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0u64..(1 << 21), 1 => any::<u64>(), 1 => Just(u64::MAX)]
}

/// Requests as a client would send them, with values from anywhere in their range.
fn request() -> impl Strategy<Value = Packet> + Clone {
    let id = any::<u32>();
    prop_oneof![
        3 => (id, path(), prop_oneof![Just(1u32), Just(0x1a), Just(0x2a), Just(0x03), Just(0x0e), any::<u32>()], attrs())
            .prop_map(|(id, filename, flags, attrs)| Packet::Open(Open { id, filename, pflags: OpenFlags::from_bits_retain(flags), attrs })),
        2 => (id, handle()).prop_map(|(id, handle)| Packet::Close(Close { id, handle })),
        4 => (id, handle(), offset(), prop_oneof![Just(32768u32), Just(261_120), any::<u32>()])
            .prop_map(|(id, handle, offset, len)| Packet::Read(Read { id, handle, offset, len })),
        3 => (id, handle(), offset(), prop::collection::vec(any::<u8>(), 0..2048))
            .prop_map(|(id, handle, offset, data)| Packet::Write(Write { id, handle, offset, data })),
        1 => (id, path()).prop_map(|(id, path)| Packet::Lstat(Lstat { id, path })),
        1 => (id, path()).prop_map(|(id, path)| Packet::Stat(Stat { id, path })),
        1 => (id, handle()).prop_map(|(id, handle)| Packet::Fstat(Fstat { id, handle })),
        1 => (id, path(), attrs()).prop_map(|(id, path, attrs)| Packet::SetStat(SetStat { id, path, attrs })),
        1 => (id, path()).prop_map(|(id, path)| Packet::OpenDir(OpenDir { id, path })),
        1 => (id, handle()).prop_map(|(id, handle)| Packet::ReadDir(ReadDir { id, handle })),
        1 => (id, path()).prop_map(|(id, filename)| Packet::Remove(Remove { id, filename })),
        1 => (id, path(), attrs()).prop_map(|(id, path, attrs)| Packet::MkDir(MkDir { id, path, attrs })),
        1 => (id, path()).prop_map(|(id, path)| Packet::RmDir(RmDir { id, path })),
        1 => (id, path()).prop_map(|(id, path)| Packet::RealPath(RealPath { id, path })),
        1 => (id, path(), path()).prop_map(|(id, oldpath, newpath)| Packet::Rename(Rename { id, oldpath, newpath })),
        1 => (id, path()).prop_map(|(id, path)| Packet::ReadLink(ReadLink { id, path })),
        1 => (id, path(), path()).prop_map(|(id, linkpath, targetpath)| Packet::Symlink(Symlink { id, linkpath, targetpath })),
        2 => (id, prop::sample::select(vec!["posix-rename@openssh.com", "hardlink@openssh.com", "statvfs@openssh.com", "fsync@openssh.com", "limits@openssh.com", "nope@example"]), prop::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(id, request, data)| Packet::Extended(Extended { id, request: request.to_string(), data })),
    ]
}

/// One thing to send: a packet body (framed with its true length), or raw stream bytes.
#[derive(Debug, Clone)]
enum Send {
    Body(Vec<u8>),
    /// A frame whose length the server must refuse (0 or above its maximum): ends the channel.
    BadFrame(Vec<u8>),
}

/// A body, then changed the way a broken or hostile peer would.
fn send() -> impl Strategy<Value = Send> {
    let valid = request().prop_map(|p| Bytes::try_from(p).map(|b| b.slice(4..).to_vec()).unwrap_or_default());
    prop_oneof![
        16 => valid.clone().prop_map(Send::Body),
        6 => (valid, any::<prop::sample::Index>(), any::<u8>(), 0usize..3).prop_map(|(mut body, at, byte, how)| {
            if !body.is_empty() {
                let i = at.index(body.len());
                match how {
                    0 => body[i] = byte,
                    1 => body.truncate(i.max(5)),
                    _ => body[i..].iter_mut().take(4).for_each(|b| *b = 0xff),
                }
            }
            Send::Body(body)
        }),
        2 => (any::<u8>(), any::<u32>(), prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(kind, id, rest)| {
            let mut body = vec![kind];
            body.extend_from_slice(&id.to_be_bytes());
            body.extend_from_slice(&rest);
            Send::Body(body)
        }),
        1 => prop::collection::vec(any::<u8>(), 1..5).prop_map(Send::Body),
        1 => prop_oneof![Just(vec![0u8, 0, 0, 0]), Just(vec![0xffu8, 0xff, 0xff, 0xff, 3]), Just(vec![0u8, 0x10, 0, 0, 3])].prop_map(Send::BadFrame),
    ]
}

/// A pipelined batch: several requests in flight at once.
fn batch() -> impl Strategy<Value = Vec<Send>> {
    prop::collection::vec(send(), 1..8)
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(4 + body.len());
    out.put_u32(body.len() as u32);
    out.extend_from_slice(body);
    out.to_vec()
}

/// The id a reply to `body` must carry: the request id for request types, else 0 or the
/// bytes where one would be (for a packet that did not decode).
fn id_ok(body: &[u8], reply_id: u32) -> bool {
    let kind = body[0];
    let raw = u32::from_be_bytes([body[1], body[2], body[3], body[4]]);
    reply_id == raw || (!((3..=20).contains(&kind) || kind == 200) && reply_id == 0)
}

/// A raw SFTP channel with its reassembly buffer.
struct Raw {
    channel: russh::Channel<Msg>,
    buffer: BytesMut,
}

enum Next {
    Reply(Bytes),
    Closed(Vec<String>),
}

impl Raw {
    async fn open(handle: &SshConnection) -> Self {
        let channel = handle.channel_open_session().await.expect("a new channel on the same connection");
        channel.request_subsystem(true, "sftp").await.expect("sftp subsystem");
        let mut raw = Self { channel, buffer: BytesMut::new() };
        raw.channel.data_bytes(frame(&[1, 0, 0, 0, 3])).await.expect("send INIT");
        match raw.next().await {
            Next::Reply(version) => assert_eq!(version.first(), Some(&2), "VERSION"),
            Next::Closed(seen) => panic!("channel closed after INIT: {seen:?}"),
        }
        raw
    }

    /// The next whole reply packet (without its length), or how the channel ended.
    async fn next(&mut self) -> Next {
        let mut seen = Vec::new();
        loop {
            if self.buffer.len() >= 4 {
                let len =
                    u32::from_be_bytes([self.buffer[0], self.buffer[1], self.buffer[2], self.buffer[3]]);
                assert!(len >= 5 && len as usize <= 256 * 1024 + 1024, "reply length {len}");
                if self.buffer.len() >= 4 + len as usize {
                    self.buffer.advance(4);
                    return Next::Reply(self.buffer.split_to(len as usize).freeze());
                }
            }
            let msg = tokio::time::timeout(REPLY_WAIT, self.channel.wait())
                .await
                .unwrap_or_else(|_| panic!("no reply and no close within {REPLY_WAIT:?} (seen {seen:?})"));
            match msg {
                Some(ChannelMsg::Data { data }) => self.buffer.extend_from_slice(&data),
                Some(ChannelMsg::ExitStatus { exit_status }) => {
                    seen.push(format!("exit-status {exit_status}"))
                }
                Some(ChannelMsg::Eof) => seen.push("eof".into()),
                Some(ChannelMsg::Close) | None => {
                    seen.push("close".into());
                    return Next::Closed(seen);
                }
                Some(_) => {}
            }
        }
    }
}

fn seeded_runner() -> TestRunner {
    let seed: u64 = std::env::var("FERRY_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    eprintln!("sftp_fuzz: FERRY_FUZZ_SEED={seed}");
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_and_mutated_packets_always_get_an_answer() {
    let srv = TestServer::start().await;
    srv.add_user(User::with_password(USER, PASSWORD)).await;
    let home = srv.home(USER);
    std::fs::create_dir_all(home.join("dir")).unwrap();
    std::fs::write(home.join("big.bin"), payload(3 << 20, 7)).unwrap();
    std::fs::write(home.join("small.txt"), b"small").unwrap();
    std::fs::write(home.join("dir/inner.txt"), b"inner").unwrap();

    let mut runner = seeded_runner();
    let cases = runner.config().cases;
    let strategy = batch();
    let connection = connect(&srv).await;
    let mut raw = Raw::open(&connection).await;
    let (mut replies, mut closes) = (0u64, 0u64);
    for case in 0..cases {
        let sends = strategy.new_tree(&mut runner).expect("generate a batch").current();
        // Everything at once, then the answers: the dispatcher sees pipelined requests.
        let mut expected = Vec::new();
        let mut stream = Vec::new();
        for send in &sends {
            match send {
                Send::Body(body) => {
                    stream.extend_from_slice(&frame(body));
                    expected.push(body.clone());
                }
                Send::BadFrame(bytes) => {
                    stream.extend_from_slice(bytes);
                    break; // nothing after it is read by the server
                }
            }
        }
        raw.channel.data_bytes(stream).await.expect("send a batch");
        let mut closed = false;
        for body in &expected {
            match raw.next().await {
                Next::Reply(reply) => {
                    replies += 1;
                    assert!(reply.len() >= 5, "case {case}: short reply {reply:?}");
                    let reply_id = u32::from_be_bytes([reply[1], reply[2], reply[3], reply[4]]);
                    assert!(body.len() >= 5, "case {case}: a reply to a body without an id: {sends:?}");
                    assert!(
                        id_ok(body, reply_id),
                        "case {case}: reply id {reply_id} (type {}) to {body:?} in {sends:?}",
                        reply[0]
                    );
                }
                Next::Closed(seen) => {
                    // Only a packet too short to carry a request id may end the channel.
                    assert!(
                        body.len() < 5,
                        "case {case}: channel closed instead of answering {body:?} in {sends:?}"
                    );
                    assert_eq!(seen, ["exit-status 0", "eof", "close"], "case {case}: a clean close");
                    closed = true;
                    break;
                }
            }
        }
        if !closed && sends.iter().any(|s| matches!(s, Send::BadFrame(_))) {
            match raw.next().await {
                Next::Closed(seen) => assert_eq!(seen, ["exit-status 0", "eof", "close"], "case {case}"),
                Next::Reply(reply) => panic!("case {case}: a reply {reply:?} after a refused frame"),
            }
            closed = true;
        }
        if closed {
            closes += 1;
            raw = Raw::open(&connection).await;
        }
    }
    eprintln!("sftp_fuzz: {cases} batches, {replies} replies, {closes} channels closed");
    assert!(replies > u64::from(cases), "most requests got replies ({replies})");

    // A fresh connection still works.
    drop(raw);
    let fresh = connect(&srv).await;
    let sftp = open_sftp(&fresh).await;
    let data = payload(100_000, 9);
    let mut file = sftp.create("after.bin").await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut file, &data).await.unwrap();
    tokio::io::AsyncWriteExt::shutdown(&mut file).await.unwrap();
    drop(file);
    assert_eq!(sftp.read("after.bin").await.unwrap(), data);
    assert_eq!(std::fs::read(home.join("after.bin")).unwrap(), data);
}
