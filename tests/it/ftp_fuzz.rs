//! The FTP control connection under generated command lines, over a real socket to a real
//! server: every line (CRLF-framed, pipelined in batches) gets exactly one complete reply, in
//! order; QUIT and 421 end the connection cleanly; and a fresh login works afterwards.
//!
//! Cases: `PROPTEST_CASES` batches (default 256; tests/fuzz/long.sh raises it). Data-channel
//! commands that would wait for a client connection (PASV, EPSV, PORT, EPRT) and login and TLS
//! commands (USER, PASS, AUTH, REIN) are left out: they are covered by tests/it/ftp.rs, and a
//! fuzzer that fails logins would only be banned by the defender.

use std::time::Duration;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::harness::{TestServer, User};

const USER: &str = "ftpfuzz";
const PASSWORD: &str = "pw-ftpfuzz-1";
/// Generous: only a server that stopped answering takes this long.
const REPLY_WAIT: Duration = Duration::from_secs(60);
const LEFT_OUT: [&str; 8] = ["PASV", "EPSV", "PORT", "EPRT", "USER", "PASS", "AUTH", "REIN"];

fn verb() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(vec![
            "NOOP", "SYST", "FEAT", "HELP", "STAT", "PWD", "XPWD", "CWD", "CDUP", "XCUP", "TYPE", "MODE", "STRU",
            "ALLO", "REST", "RETR", "STOR", "STOU", "APPE", "LIST", "NLST", "MLSD", "MLST", "SIZE", "MDTM",
            "MFMT", "RNFR", "RNTO", "DELE", "MKD", "XMKD", "RMD", "XRMD", "ABOR", "OPTS", "PBSZ", "PROT", "CCC",
            "SITE", "quit",
        ])
        .prop_map(str::to_string),
        2 => "[A-Za-z]{1,9}",
        1 => "[A-Za-z0-9_*.-]{0,6}",
    ]
}

fn argument() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "", "a.txt", "dir", "..", "/..", "../../etc", "/", "I", "A", "UTF8 ON", "MLST size;type;",
            "18446744073709551615", "-1", "20260101000000 a.txt", "-la", "*", "dir/a b.txt ",
        ])
        .prop_map(str::to_string),
        2 => "[^\\r\\n]{0,40}",
    ]
}

/// One line's bytes (without CR LF).
fn line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => (verb(), prop::option::of(argument())).prop_map(|(verb, arg)| match arg {
            Some(arg) => format!("{verb} {arg}").into_bytes(),
            None => verb.into_bytes(),
        }),
        // Bytes a hostile or broken peer sends: NUL, CR, Telnet IAC, invalid UTF-8.
        2 => prop::collection::vec(any::<u8>().prop_filter("no LF", |b| *b != b'\n'), 0..60),
        1 => Just(Vec::new()),
        1 => (9_000usize..12_000).prop_map(|n| vec![b'A'; n]),
    ]
    .prop_filter("left-out commands", |line| {
        // The verb as the server's parser finds it: after leading white space, up to a space.
        let text = String::from_utf8_lossy(line);
        let verb = text.trim_start().split(' ').next().unwrap_or_default().to_ascii_uppercase();
        !LEFT_OUT.contains(&verb.as_str())
    })
}

struct Control {
    reader: BufReader<TcpStream>,
}

enum Reply {
    Code(u16),
    Closed,
}

impl Control {
    async fn login(srv: &TestServer) -> Self {
        let stream = TcpStream::connect(srv.ftp).await.expect("connect");
        let mut control = Self { reader: BufReader::new(stream) };
        assert!(matches!(control.reply().await, Reply::Code(220)), "banner");
        control.send(format!("USER {USER}\r\nPASS {PASSWORD}\r\n").as_bytes()).await;
        assert!(matches!(control.reply().await, Reply::Code(331)), "USER");
        assert!(matches!(control.reply().await, Reply::Code(230)), "PASS");
        control
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).await.expect("send");
    }

    /// One complete reply (all lines of a multi-line one), or the end of the connection.
    async fn reply(&mut self) -> Reply {
        let mut first: Option<[u8; 3]> = None;
        loop {
            let mut line = Vec::new();
            let read = tokio::time::timeout(REPLY_WAIT, self.reader.read_until(b'\n', &mut line))
                .await
                .unwrap_or_else(|_| panic!("no reply and no close within {REPLY_WAIT:?}"));
            match read {
                Ok(0) | Err(_) => {
                    assert!(first.is_none(), "connection ended inside a multi-line reply");
                    return Reply::Closed;
                }
                Ok(_) => {}
            }
            assert!(line.ends_with(b"\r\n"), "reply line without CR LF: {line:?}");
            let code = line.get(..3).and_then(|c| <[u8; 3]>::try_from(c).ok());
            let digits = code.filter(|c| c.iter().all(u8::is_ascii_digit));
            match (first, digits, line.get(3)) {
                // A single-line reply, or the last line of a multi-line one.
                (None, Some(code), Some(b' ')) => return Reply::Code(parse_code(code)),
                (Some(open), Some(code), Some(b' ')) if open == code => return Reply::Code(parse_code(code)),
                (None, Some(code), Some(b'-')) => first = Some(code),
                (Some(_), _, _) => {} // a line inside a multi-line reply
                (None, _, _) => panic!("not a reply: {:?}", String::from_utf8_lossy(&line)),
            }
        }
    }
}

fn parse_code(code: [u8; 3]) -> u16 {
    code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'))
}

fn seeded_runner() -> TestRunner {
    let seed: u64 = std::env::var("FERRY_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    eprintln!("ftp_fuzz: FERRY_FUZZ_SEED={seed}");
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_command_lines_always_get_one_reply() {
    let srv = TestServer::start_with("[ftp]\nrequire_tls = false\n").await;
    srv.add_user(User::with_password(USER, PASSWORD)).await;
    std::fs::create_dir_all(srv.home(USER).join("dir")).unwrap();
    std::fs::write(srv.home(USER).join("a.txt"), b"a").unwrap();

    let mut runner = seeded_runner();
    let cases = runner.config().cases;
    let strategy = prop::collection::vec(line(), 1..6);
    let mut control = Control::login(&srv).await;
    let (mut replies, mut reconnects) = (0u32, 0u32);
    for case in 0..cases {
        let lines = strategy.new_tree(&mut runner).expect("generate a batch").current();
        let mut stream = Vec::new();
        for line in &lines {
            stream.extend_from_slice(line);
            stream.extend_from_slice(b"\r\n");
        }
        control.send(&stream).await;
        let mut closed = false;
        for line in &lines {
            let shown = String::from_utf8_lossy(&line[..line.len().min(60)]).into_owned();
            match control.reply().await {
                Reply::Code(code) => {
                    replies += 1;
                    assert!((100..600).contains(&code), "case {case}: code {code} for {shown:?}");
                    if code == 221 || code == 421 {
                        assert!(
                            matches!(control.reply().await, Reply::Closed),
                            "case {case}: open after {code}"
                        );
                        closed = true;
                        break;
                    }
                }
                Reply::Closed => {
                    panic!("case {case}: connection closed instead of answering {shown:?} in {lines:?}")
                }
            }
        }
        if closed {
            reconnects += 1;
            control = Control::login(&srv).await;
        }
    }
    eprintln!("ftp_fuzz: {cases} batches, {replies} replies, {reconnects} reconnections");

    // A fresh connection still works.
    let mut fresh = Control::login(&srv).await;
    fresh.send(b"MKD after\r\nPWD\r\n").await;
    assert!(matches!(fresh.reply().await, Reply::Code(257)), "MKD after the fuzzing");
    assert!(matches!(fresh.reply().await, Reply::Code(257)), "PWD after the fuzzing");
    assert!(srv.home(USER).join("after").is_dir());
}
