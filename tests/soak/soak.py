"""Soak: mixed SFTP, FTPS and HTTPS load on one release `ferry serve` (loopback only), with
clients killed at random, reporting every minute the server's RSS, open descriptors
(/proc/PID/fd) and the p99 latency of the clients' operations. After the warm-up, RSS and
descriptors must stay flat: the run fails (exit 1) when either grows beyond its tolerance.

Environment (or the matching --options):
  SOAK_MINUTES        run length (default 30)
  SOAK_WARMUP         warm-up minutes not judged (default: a sixth of the run, at least 1)
  SOAK_WORKERS        client processes per protocol (default 2)
  SOAK_RSS_TOL_MIB    allowed RSS growth after warm-up, MiB (default 32; or 10 %, the larger)
  SOAK_FD_TOL         allowed growth in open descriptors after warm-up (default 20)
  FERRY_BIN           the ferry binary (default $CARGO_TARGET_DIR/release/ferry)

Usage: $FERRY_TEST_PYTHON tests/soak/soak.py     (needs paramiko; build with
       cargo build --release --locked first). Only processes it started are signalled.
"""
import argparse
import hashlib
import os
import random
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "bench"))
from ferry_proc import Ferry, ferry_bin  # noqa: E402

PROTOCOLS = ("sftp", "ftps", "https")
SAMPLE_EVERY = 5.0  # seconds between /proc samples; a minute's figure is their median


# ------------------------------------------------------------------ clients ---

def sftp_round(port, name, data):
    import paramiko

    t0 = time.monotonic()
    transport = paramiko.Transport(("127.0.0.1", port))
    try:
        transport.connect(username=Ferry.USER, password=Ferry.PASSWORD)
        sftp = paramiko.SFTPClient.from_transport(transport)
        yield "login", time.monotonic() - t0
        t = time.monotonic()
        with sftp.open(name, "wb") as f:
            f.write(data)
        yield "upload", time.monotonic() - t
        t = time.monotonic()
        with sftp.open(name, "rb") as f:
            got = f.read()
        yield "download", time.monotonic() - t
        check(got, data)
        sftp.listdir(".")
        sftp.remove(name)
    finally:
        transport.close()


def resuming_ftp_tls():
    """ftplib's FTP_TLS whose data connections resume the control connection's TLS session,
    as lftp, curl and FileZilla do: ferry refuses a fresh handshake on a protected data
    connection by default (`ftps.require_tls_session_reuse`, like vsftpd's require_ssl_reuse)."""
    import ftplib

    class ResumingFTP_TLS(ftplib.FTP_TLS):
        def ntransfercmd(self, cmd, rest=None):
            conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
            if self._prot_p:
                conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
            return conn, size

    return ResumingFTP_TLS


def ftps_round(port, name, data, cafile):
    import io
    import ssl

    t0 = time.monotonic()
    ftp = resuming_ftp_tls()(context=ssl.create_default_context(cafile=cafile), timeout=60)
    try:
        ftp.connect("127.0.0.1", port)
        ftp.auth()
        ftp.login(Ferry.USER, Ferry.PASSWORD)
        ftp.prot_p()
        yield "login", time.monotonic() - t0
        t = time.monotonic()
        ftp.storbinary("STOR " + name, io.BytesIO(data))
        yield "upload", time.monotonic() - t
        t = time.monotonic()
        out = io.BytesIO()
        ftp.retrbinary("RETR " + name, out.write)
        yield "download", time.monotonic() - t
        check(out.getvalue(), data)
        ftp.nlst()
        ftp.delete(name)
        ftp.quit()
    finally:
        ftp.close()


def https_round(port, name, data, cafile):
    import base64
    import http.client
    import ssl

    auth = "Basic " + base64.b64encode(f"{Ferry.USER}:{Ferry.PASSWORD}".encode()).decode()
    ctx = ssl.create_default_context(cafile=cafile)
    t0 = time.monotonic()
    conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=60)
    try:
        conn.request("GET", "/api/v1/me", headers={"Authorization": auth})
        expect(conn.getresponse(), 200)
        yield "login", time.monotonic() - t0
        t = time.monotonic()
        conn.request("PUT", "/api/v1/files/" + name, body=data, headers={"Authorization": auth})
        expect(conn.getresponse(), 200, 201)
        yield "upload", time.monotonic() - t
        t = time.monotonic()
        conn.request("GET", "/api/v1/files/" + name, headers={"Authorization": auth})
        response = conn.getresponse()
        got = response.read()
        yield "download", time.monotonic() - t
        if response.status != 200:
            raise RuntimeError(f"GET {response.status}")
        check(got, data)
        conn.request("DELETE", "/api/v1/files/" + name, headers={"Authorization": auth})
        expect(conn.getresponse(), 204)
    finally:
        conn.close()


def expect(response, *codes):
    body = response.read()
    if response.status not in codes:
        raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")


def check(got, want):
    if hashlib.sha256(got).digest() != hashlib.sha256(want).digest():
        raise RuntimeError(f"content differs ({len(got)} bytes back of {len(want)})")


def worker(args):
    """One client process: rounds of login, upload, download, list, delete until the deadline.
    Each line of its output file: `<protocol> <op> <seconds>` or `<protocol> error <text>`."""
    rng = random.Random(os.getpid())
    deadline = time.time() + args.seconds
    with open(args.out, "a", buffering=1) as out:
        n = 0
        while time.time() < deadline:
            n += 1
            name = f"soak-{args.worker}-{os.getpid()}-{n}.bin"
            data = rng.randbytes(rng.choice([4 * 1024, 64 * 1024, 1024 * 1024]))
            try:
                if args.worker == "sftp":
                    steps = sftp_round(args.port, name, data)
                elif args.worker == "ftps":
                    steps = ftps_round(args.port, name, data, args.cafile)
                else:
                    steps = https_round(args.port, name, data, args.cafile)
                for op, seconds in steps:
                    out.write(f"{args.worker} {op} {seconds:.6f}\n")
            except Exception as e:  # noqa: BLE001 - every failure is reported, none stops the run
                out.write(f"{args.worker} error {type(e).__name__}: {str(e)[:120]}\n".replace("\n", " ") + "\n")
                time.sleep(0.5)
    return 0


# --------------------------------------------------------------- the driver ---

class Pool:
    """The client processes, respawned after each kill; only these PIDs are ever signalled."""

    def __init__(self, ferry, per_protocol, seconds, work):
        self.ferry, self.seconds, self.work = ferry, seconds, work
        self.procs = {}
        self.kills = 0
        self.slots = [p for p in PROTOCOLS for _ in range(per_protocol)]
        for slot in range(len(self.slots)):
            self.spawn(slot)

    def spawn(self, slot):
        protocol = self.slots[slot]
        # FTPS here is explicit (AUTH TLS on the FTP port), as ftplib speaks it.
        port = self.ferry.ports["ftp" if protocol == "ftps" else protocol]
        out = os.path.join(self.work, f"client-{slot}.log")
        self.procs[slot] = subprocess.Popen(
            [sys.executable, __file__, "--worker", protocol, "--port", str(port), "--cafile", self.ferry.cert,
             "--out", out, "--seconds", str(self.seconds)],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.work, f"client-{slot}.err"), "a"),
        )

    def kill_one(self, rng):
        slot = rng.randrange(len(self.slots))
        proc = self.procs[slot]
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            self.kills += 1
        proc.wait()
        self.spawn(slot)

    def stop(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Results:
    """Reads the clients' new lines since the last call."""

    def __init__(self, work):
        self.work, self.offsets = work, {}

    def take(self):
        latencies, errors = {p: [] for p in PROTOCOLS}, []
        for name in sorted(os.listdir(self.work)):
            if not (name.startswith("client-") and name.endswith(".log")):
                continue
            path = os.path.join(self.work, name)
            with open(path) as f:
                f.seek(self.offsets.get(path, 0))
                chunk = f.read()
            complete = chunk[: chunk.rfind("\n") + 1]
            self.offsets[path] = self.offsets.get(path, 0) + len(complete.encode())
            for line in complete.splitlines():
                parts = line.split(" ", 2)
                if len(parts) == 3 and parts[1] == "error":
                    errors.append(line)
                elif len(parts) == 3 and parts[0] in latencies:
                    try:
                        latencies[parts[0]].append(float(parts[2]))
                    except ValueError:
                        pass
        return latencies, errors


def p99(values):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def env_or(name, default, kind=float):
    raw = os.environ.get(name)
    return kind(raw) if raw else default


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", choices=PROTOCOLS)
    ap.add_argument("--port", type=int)
    ap.add_argument("--cafile")
    ap.add_argument("--out")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--minutes", type=float, default=env_or("SOAK_MINUTES", 30))
    ap.add_argument("--warmup", type=float, default=env_or("SOAK_WARMUP", 0))
    ap.add_argument("--workers", type=int, default=env_or("SOAK_WORKERS", 2, int))
    ap.add_argument("--rss-tol-mib", type=float, default=env_or("SOAK_RSS_TOL_MIB", 32))
    ap.add_argument("--fd-tol", type=int, default=env_or("SOAK_FD_TOL", 20, int))
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if args.worker:
        return worker(args)

    minutes = max(1, int(args.minutes))
    warmup = int(args.warmup) if args.warmup else max(1, minutes // 6)
    if warmup >= minutes:
        raise SystemExit(f"the warm-up ({warmup} min) must be shorter than the run ({minutes} min)")
    ferry = Ferry(ferry_bin(REPO), ("sftp", "ftp", "https"), keep=args.keep)
    work = os.path.join(ferry.work, "clients")
    os.makedirs(work)
    rng = random.Random()
    pool = Pool(ferry, args.workers, minutes * 60 + 120, work)
    results = Results(work)
    rows = []
    print(f"soak: {minutes} min ({warmup} warm-up), {args.workers} clients per protocol, ferry pid {ferry.pid}")
    print("| minute | RSS MiB | fds | ops | p99 ms | SFTP p99 ms | FTPS p99 ms | HTTPS p99 ms | errors | clients killed |")
    print("|---|---|---|---|---|---|---|---|---|---|", flush=True)
    try:
        start = time.monotonic()
        next_kill = start + rng.uniform(2, 10)
        for minute in range(1, minutes + 1):
            rss, fds = [], []
            next_sample = time.monotonic()
            while time.monotonic() < start + minute * 60:
                now = time.monotonic()
                if not ferry.alive():
                    raise SystemExit(f"ferry exited (status {ferry.proc.returncode}); see {ferry.work}/ferry.log")
                if now >= next_kill:
                    pool.kill_one(rng)
                    next_kill = now + rng.uniform(2, 10)
                if now >= next_sample:
                    rss.append(ferry.rss_kib() / 1024)
                    fds.append(ferry.fds())
                    next_sample = now + SAMPLE_EVERY
                time.sleep(0.2)
            latencies, errors = results.take()
            every = [x for values in latencies.values() for x in values]
            row = (minute, statistics.median(rss), statistics.median(fds), len(every), p99(every) * 1000,
                   len(errors), pool.kills)
            rows.append(row)
            per = " | ".join(f"{p99(latencies[p]) * 1000:.1f}" for p in PROTOCOLS)
            print(f"| {row[0]} | {row[1]:.1f} | {row[2]:.0f} | {row[3]} | {row[4]:.1f} | {per} | {row[5]} | {row[6]} |",
                  flush=True)
            for line in errors[:3]:
                print(f"  client error: {line}", flush=True)
    finally:
        pool.stop()
        ferry.stop()

    judged = [r for r in rows if r[0] > warmup]
    k = max(1, min(2, len(judged) // 2))
    rss_start = statistics.mean(r[1] for r in judged[:k])
    rss_end = statistics.mean(r[1] for r in judged[-k:])
    fd_start = statistics.mean(r[2] for r in judged[:k])
    fd_end = statistics.mean(r[2] for r in judged[-k:])
    rss_allowed = max(args.rss_tol_mib, rss_start * 0.10)
    ops = sum(r[3] for r in rows)
    errors = sum(r[5] for r in rows)
    ok = rss_end - rss_start <= rss_allowed and fd_end - fd_start <= args.fd_tol and ops > 0
    print(f"\nafter warm-up: RSS {rss_start:.1f} -> {rss_end:.1f} MiB (allowed +{rss_allowed:.1f}), "
          f"fds {fd_start:.0f} -> {fd_end:.0f} (allowed +{args.fd_tol}); {ops} operations, {errors} client errors, "
          f"{pool.kills} clients killed")
    print("PASS" if ok else "FAIL: RSS or descriptors grew after the warm-up")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
