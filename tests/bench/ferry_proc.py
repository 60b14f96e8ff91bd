"""Starting a release `ferry serve` on loopback for a measurement script, and reading its
/proc figures. Used by tests/bench/unread_reads.py and tests/soak/soak.py.

Only the process started here is ever signalled, by its PID.
"""
import os
import signal
import socket
import subprocess
import tempfile
import time


def ferry_bin(repo_root):
    """$FERRY_BIN, else $CARGO_TARGET_DIR/release/ferry, else <repo>/target/release/ferry."""
    if os.environ.get("FERRY_BIN"):
        return os.environ["FERRY_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(repo_root, "target")
    return os.path.join(target, "release", "ferry")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for_port(port, proc, what, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited during startup (status {proc.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on 127.0.0.1:{port} within {seconds} s")


class Ferry:
    """A ferry on 127.0.0.1 over a fresh work directory, with one password user `bench`.

    `protocols` names what to enable: any of "sftp", "ftp", "ftps", "https".
    `extra` is TOML appended to the config (sections not otherwise written).
    `client_key` also gives the user an Ed25519 key (private key at `self.key`): a key login
    costs no password check, whose argon2 buffer (19 MiB, kept by each hashing thread for
    good) would otherwise count in a memory figure.
    """

    USER = "bench"
    PASSWORD = "bench-pass-1"

    def __init__(self, binary, protocols, extra="", keep=False, work=None, client_key=False):
        if not os.access(binary, os.X_OK):
            raise SystemExit(f"ferry not found at {binary}: cargo build --release --locked")
        self.binary = binary
        self.work = work or tempfile.mkdtemp(prefix="ferry-measure-")
        self.keep = keep
        self.ports = {p: free_port() for p in ("sftp", "ftp", "ftps", "https")}
        self.files = os.path.join(self.work, "files")
        self.data = os.path.join(self.work, "data")
        os.makedirs(self.files, exist_ok=True)
        sections = []
        for name in ("sftp", "ftp", "ftps", "https"):
            if name in protocols:
                body = f'bind = "127.0.0.1:{self.ports[name]}"'
                if name == "ftp":
                    low = 40000 + (os.getpid() % 200) * 100
                    body += f'\npassive_ports = "{low}-{low + 99}"'
                sections.append(f"[{name}]\n{body}")
            else:
                sections.append(f"[{name}]\nenabled = false")
        self.config = os.path.join(self.work, "ferry.toml")
        with open(self.config, "w") as f:
            f.write(
                f'data_dir = "{self.data}"\n[storage]\nroot = "{self.files}"\n[audit]\nstdout = false\n'
                f"[ops]\nenabled = false\n" + "\n".join(sections) + "\n" + extra + "\n"
            )
        add_args = [binary, "user", "add", self.USER, "--password-stdin", "--config", self.config]
        self.key = None
        if client_key:
            self.key = os.path.join(self.work, "id_ed25519")
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.key], check=True)
            add_args += ["--key", self.key + ".pub"]
        add = subprocess.run(
            add_args,
            input=self.PASSWORD + "\n",
            capture_output=True,
            text=True,
        )
        if add.returncode != 0:
            raise SystemExit(f"ferry user add failed: {add.stderr.strip()}")
        self.home = os.path.join(self.files, self.USER)
        os.makedirs(self.home, exist_ok=True)
        self.log = open(os.path.join(self.work, "ferry.log"), "w")
        self.proc = subprocess.Popen(
            [binary, "serve", "--config", self.config], stdout=self.log, stderr=subprocess.STDOUT
        )
        self.pid = self.proc.pid
        for name in protocols:
            wait_for_port(self.ports[name], self.proc, f"ferry ({name})")
        self.cert = os.path.join(self.data, "tls", "cert.pem")

    def rss_kib(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def fds(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        if not self.keep:
            subprocess.run(["rm", "-rf", "--", self.work], check=False)
        else:
            print(f"work directory kept: {self.work}")
