//! ferry behind a real HAProxy (Debian's, TCP mode, `send-proxy-v2`) on loopback: the balancer
//! on 127.0.0.10, ferry on 127.0.0.11, clients bound to 127.0.0.2. Files go up and down through
//! the balancer with OpenSSH `sftp`, curl (explicit FTPS, EPSV) and lftp (explicit FTPS, PASV,
//! whose announced address must be the balancer's), and every login is recorded as 127.0.0.2;
//! a ban falls on the client that failed, never on the balancer.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use crate::harness::{TestServer, User, ok, payload, run, sha256, sha256_file};

const BALANCER: &str = "127.0.0.10";
const BACKEND: &str = "127.0.0.11";
const CLIENT: &str = "127.0.0.2";

/// A port free on `ip` now (only this test uses these addresses).
fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip.parse::<Ipv4Addr>().unwrap(), 0)).unwrap().local_addr().unwrap().port()
}

/// Ten consecutive ports free on both the balancer's and the backend's address, below the
/// ephemeral range so no outgoing connection takes one meanwhile.
fn free_range() -> u16 {
    'next: for _ in 0..200 {
        let start = 30_000 + (rand_u16() % 2_000);
        for port in start..start + 10 {
            for ip in [BALANCER, BACKEND] {
                if TcpListener::bind((ip.parse::<Ipv4Addr>().unwrap(), port)).is_err() {
                    continue 'next;
                }
            }
        }
        return start;
    }
    panic!("no 10 free ports in 30000-32009");
}

fn rand_u16() -> u16 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    (nanos ^ std::process::id()) as u16
}

/// HAProxy in front of `srv`, kept running until dropped.
struct Balancer {
    _child: tokio::process::Child,
    sftp: u16,
    ftp: u16,
}

impl Balancer {
    /// With `passive`, the ten passive ports from it are balanced too.
    async fn start(srv: &TestServer, passive: Option<u16>, dir: &Path) -> Self {
        let (sftp, ftp) = (free_port(BALANCER), free_port(BALANCER));
        let backend = |name: &str, port: String| {
            format!("backend {name}\n    source {BALANCER}\n    server ferry {BACKEND}{port} send-proxy-v2\n")
        };
        let mut config = format!(
            "global\n    maxconn 2000\n\
             defaults\n    mode tcp\n    timeout connect 10s\n    timeout client 5m\n    timeout server 5m\n\
             frontend sftp\n    bind {BALANCER}:{sftp}\n    default_backend sftp\n{}\
             frontend ftp\n    bind {BALANCER}:{ftp}\n    default_backend ftp\n{}",
            backend("sftp", format!(":{}", srv.addr.port())),
            backend("ftp", format!(":{}", srv.ftp.port())),
        );
        if let Some(passive) = passive {
            config.push_str(&format!(
                "frontend passive\n    bind {BALANCER}:{passive}-{}\n    default_backend passive\n{}",
                passive + 9,
                // No port: the connection goes to the port the client chose, the passive one.
                backend("passive", String::new()),
            ));
        }
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let check = std::process::Command::new("haproxy")
            .arg("-c")
            .arg("-f")
            .arg(&path)
            .output()
            .expect("haproxy runs (apt-get install haproxy)");
        assert!(check.status.success(), "haproxy -c: {}", String::from_utf8_lossy(&check.stderr));
        let child = tokio::process::Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .kill_on_drop(true)
            .spawn()
            .expect("haproxy starts");
        // Listening once a connection to its SFTP front gets an SSH banner through it.
        let front: SocketAddr = format!("{BALANCER}:{sftp}").parse().unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(front).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "haproxy never listened on {front}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { _child: child, sftp, ftp }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_move_through_haproxy_and_every_record_names_the_real_client() {
    let passive = free_range();
    let mut srv = TestServer::start_with(&format!(
        "[server]\ntrusted_proxies = [\"{BALANCER}/32\"]\n\
         [sftp]\nbind = \"{BACKEND}:0\"\nproxy_protocol = \"required\"\n\
         [ftp]\nbind = \"{BACKEND}:0\"\nproxy_protocol = \"required\"\npassive_ports = \"{passive}-{}\"\n",
        passive + 9
    ))
    .await;
    srv.add_user(User { key: true, ..User::with_password("bea", "balanced-pass-1") }).await;
    let local = tempfile::tempdir().unwrap();
    let balancer = Balancer::start(&srv, Some(passive), local.path()).await;
    let body = payload(3 << 20, 77);
    std::fs::write(local.path().join("up.bin"), &body).unwrap();

    // SFTP: up, then down again as another name.
    let mut sftp = tokio::process::Command::new("sftp");
    sftp.args(["-P", &balancer.sftp.to_string(), "-o", &format!("BindAddress={CLIENT}")])
        .args([
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args(["-o", "BatchMode=yes", "-F", "/dev/null", "-i"])
        .arg(&srv.key)
        .arg("-b")
        .arg(write(local.path(), "batch", "put up.bin sftp.bin\nget sftp.bin sftp-back.bin\n"))
        .arg(format!("bea@{BALANCER}"))
        .current_dir(local.path());
    ok(&run(sftp, 300).await);
    assert_eq!(sha256_file(&srv.home("bea").join("sftp.bin")), sha256(&body));
    assert_eq!(sha256_file(&local.path().join("sftp-back.bin")), sha256(&body));

    // curl, explicit FTPS with EPSV: the data connection goes to the balancer's passive range.
    let url = |path: &str| format!("ftp://localhost:{}/{path}", balancer.ftp);
    let resolve = format!("localhost:{}:{BALANCER}", balancer.ftp);
    let curl = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new("curl");
        cmd.args(["-sS", "--ssl-reqd", "--interface", CLIENT, "--resolve", &resolve, "--cacert"])
            .arg(&srv.cert)
            .args(["-u", "bea:balanced-pass-1"])
            .args(args);
        cmd
    };
    let up = local.path().join("up.bin").display().to_string();
    ok(&run(curl(&["-T", &up, &url("curl.bin")]), 120).await);
    let back = local.path().join("curl-back.bin").display().to_string();
    ok(&run(curl(&["-o", &back, &url("curl.bin")]), 120).await);
    assert_eq!(sha256_file(&srv.home("bea").join("curl.bin")), sha256(&body));
    assert_eq!(sha256_file(Path::new(&back)), sha256(&body));

    // lftp with PASV (it puts the control connection's address in place of a 227 address that
    // differs from it, so the address itself is checked with ftplib below).
    let script = format!(
        "set ssl:ca-file {}\nset ssl:check-hostname no\nset ftp:ssl-force true\nset ftp:ssl-protect-data true\n\
         set ftp:prefer-epsv false\nset net:socket-bind-ipv4 {CLIENT}\nset net:max-retries 1\nset net:timeout 20\n\
         open -u bea,balanced-pass-1 ftp://{BALANCER}:{}\nput up.bin -o lftp.bin\nget lftp.bin -o lftp-back.bin\nls\n",
        srv.cert.display(),
        balancer.ftp
    );
    let mut lftp = tokio::process::Command::new("lftp");
    lftp.arg("-c").arg(script).current_dir(local.path());
    let listing = ok(&run(lftp, 120).await);
    assert!(listing.contains("lftp.bin"), "listing through the balancer: {listing}");
    assert_eq!(sha256_file(&srv.home("bea").join("lftp.bin")), sha256(&body));
    assert_eq!(sha256_file(&local.path().join("lftp-back.bin")), sha256(&body));

    // Python's ftplib trusting the 227 address: it must be the balancer's, the address the
    // client connected to (from the PROXY header), not ferry's own.
    let script = r#"
import ftplib, ssl, sys
host, port, ca, path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
class Resuming(ftplib.FTP_TLS):
    # Data connections resume the control connection's TLS session (ferry requires it).
    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        return self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session), size
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
ftp = Resuming(context=ctx, source_address=(sys.argv[5], 0))
ftp.trust_server_pasv_ipv4_address = True
ftp.set_pasv(True)
ftp.connect(host, port, timeout=60)
ftp.login("bea", "balanced-pass-1")
ftp.prot_p()
reply = ftp.sendcmd("PASV")
with open(path, "rb") as f:
    ftp.storbinary("STOR ftplib.bin", f)
names = ftp.nlst()
ftp.quit()
print(reply)
print(" ".join(sorted(names)))
"#;
    let out = crate::harness::Python::inline(script)
        .args([BALANCER.to_string(), balancer.ftp.to_string(), srv.cert.display().to_string()])
        .arg(local.path().join("up.bin"))
        .arg(CLIENT)
        .stdout(120)
        .await;
    assert!(out.contains("(127,0,0,10,"), "227 names the balancer: {out}");
    assert!(out.contains("ftplib.bin") && out.contains("lftp.bin"), "{out}");
    assert_eq!(sha256_file(&srv.home("bea").join("ftplib.bin")), sha256(&body));

    // Every login (SFTP, two curl runs, lftp, ftplib) came from the client, not the balancer.
    for _ in 0..5 {
        let login = srv.expect_event(|r| r.event == "login.succeeded").await;
        let peer = login.peer.map(|p| p.to_string()).unwrap_or_default();
        assert!(peer.starts_with(&format!("{CLIENT}:")), "login recorded from {peer}");
    }
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Behind the balancer a ban falls on the client that failed (from the PROXY header), not on
/// the balancer: 127.0.0.2 is refused at accept after its failures, while 127.0.0.3 coming
/// through the same balancer still logs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_behind_the_balancer_falls_on_the_client_not_the_balancer() {
    let mut srv = TestServer::start_with(&format!(
        "[server]\ntrusted_proxies = [\"{BALANCER}/32\"]\n[auth]\nban_after_failures = 2\nban_time = \"1h\"\n\
         [sftp]\nbind = \"{BACKEND}:0\"\nproxy_protocol = \"required\"\n\
         [ftp]\nbind = \"{BACKEND}:0\"\nproxy_protocol = \"required\"\n"
    ))
    .await;
    srv.add_user(User::with_password("bea", "balanced-pass-1")).await;
    let local = tempfile::tempdir().unwrap();
    let balancer = Balancer::start(&srv, None, local.path()).await;
    let script = r#"
import paramiko, socket, sys
host, port, source, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
sock = socket.create_connection((host, port), timeout=30, source_address=(source, 0))
t = paramiko.Transport(sock)
try:
    t.start_client(timeout=30)
    t.auth_password("bea", password)
    print("accepted")
except paramiko.AuthenticationException:
    print("refused")
except (paramiko.SSHException, EOFError, OSError) as e:
    print("closed")
finally:
    t.close()
"#;
    let attempt = |source: &'static str, password: &'static str| {
        crate::harness::Python::inline(script)
            .args([BALANCER.to_string(), balancer.sftp.to_string(), source.to_string(), password.to_string()])
            .stdout(120)
    };
    for _ in 0..2 {
        assert_eq!(attempt(CLIENT, "wrong").await.trim(), "refused");
    }
    let ban = srv.expect_event(|e| e.event == "login.banned").await;
    assert!(ban.peer.map(|p| p.to_string()).unwrap_or_default().starts_with(&format!("{CLIENT}:")));
    assert_eq!(
        attempt(CLIENT, "balanced-pass-1").await.trim(),
        "closed",
        "the banned client is closed at accept"
    );
    assert_eq!(
        attempt("127.0.0.3", "balanced-pass-1").await.trim(),
        "accepted",
        "another client through the same balancer"
    );
}
