"""Figure of issue 12 item 9: pipelined SFTP READs that the client never reads.

Starts a release `ferry serve` on loopback, opens one SFTP session with paramiko's low-level
channel (key login), sends READ requests (default 3,200 of 255 KiB) for a big file without reading a single
reply, samples the server's RSS from /proc while they are outstanding, disconnects, samples
again, and does it all a second time on a new connection (the leak showed on the second).

Prints the figures as a Markdown table and exits 1 when a bound is missed:
  - RSS added while the reads are outstanding: under --limit-mib (default 64 MiB);
  - RSS left after the client has gone: under --left-mib (default 8 MiB: allocator slack),
    polled until it is or --settle seconds (default 30) have passed since the disconnect;
  - open descriptors: back to the baseline (+2) after the disconnect.
The server frees the replies when the client goes and then returns the freed pages to the
system (malloc_trim on a blocking thread), so RSS itself must come back, not only the
server's own counters.

Usage: $FERRY_TEST_PYTHON tests/bench/unread_reads.py [--reads N] [--kib N] [--keep]
Needs paramiko (the test venv has it) and a release build (cargo build --release --locked).
"""
import argparse
import os
import struct
import sys
import time

import paramiko

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ferry_proc import Ferry, ferry_bin  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def packet(kind, body):
    return struct.pack(">IB", 1 + len(body), kind) + body


def string(b):
    return struct.pack(">I", len(b)) + b


def read_packet(chan):
    head = recv_exact(chan, 4)
    (length,) = struct.unpack(">I", head)
    return recv_exact(chan, length)


def recv_exact(chan, n):
    out = b""
    while len(out) < n:
        chunk = chan.recv(n - len(out))
        if not chunk:
            raise SystemExit("server closed the channel")
        out += chunk
    return out


def open_session(port, key):
    transport = paramiko.Transport(("127.0.0.1", port))
    transport.connect(username=Ferry.USER, pkey=paramiko.Ed25519Key.from_private_key_file(key))
    chan = transport.open_session()
    chan.invoke_subsystem("sftp")
    chan.sendall(packet(1, struct.pack(">I", 3)))  # INIT v3
    if read_packet(chan)[0] != 2:
        raise SystemExit("no VERSION reply")
    # OPEN big.bin for reading (id 1, READ, no attributes).
    chan.sendall(packet(3, struct.pack(">I", 1) + string(b"big.bin") + struct.pack(">II", 1, 0)))
    reply = read_packet(chan)
    if reply[0] != 102:
        raise SystemExit(f"OPEN failed: {reply!r}")
    (hlen,) = struct.unpack(">I", reply[5:9])
    return transport, chan, reply[9 : 9 + hlen]


def settle(ferry, seconds, pick):
    """Samples RSS every 0.25 s for `seconds`; returns pick(samples) in KiB."""
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples.append(ferry.rss_kib())
        time.sleep(0.25)
    return pick(samples)


def released(ferry, target_kib, base_fds, seconds):
    """Polls every 0.1 s until RSS is at most `target_kib` and descriptors are back to
    `base_fds` (+2), or `seconds` have passed; returns (RSS KiB, fds, seconds waited)."""
    start = time.monotonic()
    while True:
        rss, fds = ferry.rss_kib(), ferry.fds()
        waited = time.monotonic() - start
        if (rss <= target_kib and fds <= base_fds + 2) or waited >= seconds:
            return rss, fds, waited
        time.sleep(0.1)


def one_round(ferry, reads, size, hold, target_kib, base_fds, settle_s):
    transport, chan, handle = open_session(ferry.ports["sftp"], ferry.key)
    sent = 0
    for i in range(reads):
        body = struct.pack(">I", 100 + i) + string(handle) + struct.pack(">QI", i * size, size)
        chan.sendall(packet(5, body))
        sent += 1
    # Nothing is read: the replies back up in the server until its bounds hold them.
    peak = settle(ferry, hold, max)
    fds_during = ferry.fds()
    transport.close()
    left, fds_after, waited = released(ferry, target_kib, base_fds, settle_s)
    return sent, peak, left, fds_during, fds_after, waited


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reads", type=int, default=3200)
    ap.add_argument("--kib", type=int, default=255, help="READ length in KiB")
    ap.add_argument("--hold", type=float, default=10.0, help="seconds to sample the peak")
    ap.add_argument("--settle", type=float, default=30.0, help="seconds allowed to give it back")
    ap.add_argument("--limit-mib", type=float, default=64.0)
    ap.add_argument("--left-mib", type=float, default=8.0)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    size = args.kib * 1024
    ferry = Ferry(ferry_bin(REPO), ["sftp"], keep=args.keep, client_key=True)
    try:
        # A sparse file as big as all the reads together: every READ has data to return.
        with open(os.path.join(ferry.home, "big.bin"), "wb") as f:
            f.truncate(args.reads * size + size)
        # Warm up (first login, key exchange code paths), then the baseline.
        transport, _, _ = open_session(ferry.ports["sftp"], ferry.key)
        transport.close()
        base = settle(ferry, 3, min)
        base_fds = ferry.fds()
        rows = []
        ok = True
        target = base + args.left_mib * 1024
        for n in (1, 2):
            sent, peak, left, fds_during, fds_after, waited = one_round(
                ferry, args.reads, size, args.hold, target, base_fds, args.settle
            )
            added = (peak - base) / 1024
            remaining = (left - base) / 1024
            ok &= added < args.limit_mib and remaining <= args.left_mib and fds_after <= base_fds + 2
            rows.append((n, sent, base / 1024, peak / 1024, added, remaining, waited, fds_during, fds_after))
        print(f"{args.reads} unread READs of {args.kib} KiB, one connection at a time (ferry pid {ferry.pid})\n")
        print(
            "| connection | READs sent | RSS before MiB | RSS peak MiB | added MiB "
            "| left after disconnect MiB | s until given back | fds during | fds after |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r[0]} | {r[1]} | {r[2]:.1f} | {r[3]:.1f} | {r[4]:.1f} | {r[5]:.1f} | {r[6]:.1f} | {r[7]} | {r[8]} |")
        print(
            f"\nbounds: added < {args.limit_mib} MiB, left <= {args.left_mib} MiB within {args.settle} s, "
            f"fds back to {base_fds} (+2)"
        )
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        ferry.stop()


if __name__ == "__main__":
    sys.exit(main())
