#!/usr/bin/env bash
# Does a flood of wrong-password logins delay file transfers? 1,200 concurrent HTTPS logins with
# bad passwords (POST /api/v1/auth/login, each on its own TLS connection, again and again),
# 100 from each of 12 source addresses (127.0.0.2 ... 127.0.0.13), while a legitimate user logs
# in over SFTP (paramiko, key) and reads 64 KiB from an open SFTP session. It reports both times
# (median and worst of N tries) without and with the flood, and how the flood was answered.
# The defender and the per-address connection limit are raised so the flood is not simply
# banned or refused at accept: every attempt reaches the password check.
#
# Not a test: a measurement, recorded in docs/benchmarks.md. It never builds ferry
# (cargo build --release first) and only ever signals processes it started, by PID.
#
# With --ferry-cpus and --flood-cpus (taskset lists, e.g. 0 and 1) ferry and the flood
# generators run on CPUs of their own, as they would on two hosts; without them all share every
# CPU, and the twelve Python generators take most of it.
#
# Usage: tests/bench/login_flood.sh [--flood N] [--tries N] [--ferry-cpus LIST] [--flood-cpus LIST]
#                                   [--out FILE] [--keep]
# Needs: python3 with paramiko ($FERRY_TEST_PYTHON, else python3), ssh-keygen, curl.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
bench_init "$@"

FLOOD=1200 TRIES=10 FLOOD_CPUS=''
while [[ $# -gt 0 ]]; do
    case $1 in
        --flood) need_arg "$@"; is_uint "$2" --flood; FLOOD=$2; shift 2 ;;
        --tries) need_arg "$@"; is_uint "$2" --tries; TRIES=$2; shift 2 ;;
        --ferry-cpus) need_arg "$@"; FERRY_CPUS=$2; shift 2 ;;
        --flood-cpus) need_arg "$@"; FLOOD_CPUS=$2; shift 2 ;;
        *)       common_opt "$@"; shift "$SHIFT_BY" ;;
    esac
done

need_ferry
PYTHON=${FERRY_TEST_PYTHON:-python3}
"$PYTHON" -c 'import paramiko' 2>/dev/null || die "$PYTHON has no paramiko (pip install paramiko)"

bench_workdir loginflood

SFTP_PORT=$(free_port) HTTPS_PORT=$(free_port) OPS_PORT=$(free_port)
cat >"$WORK/ferry.toml" <<EOF
data_dir = "$WORK/data"
[audit]
stdout = false
[auth]
# High enough that the flood is never banned: every attempt reaches the password check.
ban_after_failures = 1000000
rejection_delay = "1s"
$(listeners_off sftp https ops)
[sftp]
bind = "127.0.0.1:$SFTP_PORT"
[https]
bind = "127.0.0.1:$HTTPS_PORT"
max_connections_per_ip = 100000
[ops]
bind = "127.0.0.1:$OPS_PORT"
EOF
ssh-keygen -q -t ed25519 -N '' -f "$WORK/id_ed25519"
echo "alice-pass-1" | "$FERRY_BIN" user add alice --password-stdin --key "$WORK/id_ed25519.pub" \
    --config "$WORK/ferry.toml" >/dev/null
mkdir -p "$WORK/data/files/alice"
head -c 65536 /dev/urandom >"$WORK/data/files/alice/64k.bin"
start_ferry ferry "$WORK/ferry.toml" "$SFTP_PORT" "$HTTPS_PORT" "$OPS_PORT"

# The flood: FLOOD asyncio workers over 12 source addresses, each logging in with a wrong
# password on a fresh TLS connection, again and again, until told to stop (SIGTERM).
cat >"$WORK/flood.py" <<'PY'
import asyncio, json, signal, ssl, sys
port, total, cafile, out, address = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
ctx = ssl.create_default_context(cafile=cafile)
ctx.set_alpn_protocols(["http/1.1"])
counts = {}
stop = asyncio.Event()
async def worker(n):
    source = f"127.0.0.{2 + address}"
    body = json.dumps({"username": f"nobody{n % 50}", "password": "wrong-password"}).encode()
    head = (f"POST /api/v1/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    async def attempt():
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost",
                                             local_addr=(source, 0))
        try:
            w.write(head + body)
            return (await r.readline()).split(b" ")[1].decode()
        finally:
            w.close()
    while not stop.is_set():
        try:
            # A connect whose SYN the full accept queue dropped is retried, not waited on forever.
            status = await asyncio.wait_for(attempt(), 10)
            counts[status] = counts.get(status, 0) + 1
        except Exception as e:
            counts[type(e).__name__] = counts.get(type(e).__name__, 0) + 1
            await asyncio.sleep(0.05)
async def main():
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await asyncio.gather(*(worker(n) for n in range(total)))
    json.dump(counts, open(out, "w"))
asyncio.run(main())
PY

# The legitimate user: login time (connect, key auth, SFTP subsystem) and a 64 KiB read in the
# open session, TRIES times each; prints "login_median login_max read_median read_max" in ms.
cat >"$WORK/measure.py" <<'PY'
import statistics, sys, time, paramiko
port, key, tries = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
pkey = paramiko.Ed25519Key.from_private_key_file(key)
logins, reads = [], []
for _ in range(tries):
    t = time.monotonic()
    transport = paramiko.Transport(("127.0.0.1", port))
    transport.connect(username="alice", pkey=pkey)
    sftp = paramiko.SFTPClient.from_transport(transport)
    logins.append((time.monotonic() - t) * 1000)
    t = time.monotonic()
    with sftp.open("64k.bin", "rb") as f:
        data = f.read(65536)
    reads.append((time.monotonic() - t) * 1000)
    assert len(data) == 65536, len(data)
    sftp.close(); transport.close()
    time.sleep(0.3)
print(f"{statistics.median(logins):.0f} {max(logins):.0f} {statistics.median(reads):.1f} {max(reads):.1f}")
PY

log "baseline: no flood"
read -r base_login base_login_max base_read base_read_max < <("$PYTHON" "$WORK/measure.py" "$SFTP_PORT" "$WORK/id_ed25519" "$TRIES")
refused_before=$(curl -sS "http://127.0.0.1:$OPS_PORT/metrics" | awk '/^ferry_password_checks_refused_total /{print $2}')
log "flood: $FLOOD concurrent wrong-password logins from 127.0.0.2-13"
# One generator process per source address (a single asyncio process cannot make 1,200 TLS
# handshakes a second on one core; twelve get their share of the CPU like twelve clients).
FLOOD_PIDS=()
FLOOD_PIN=()
[[ -n $FLOOD_CPUS ]] && FLOOD_PIN=(taskset -c "$FLOOD_CPUS")
for (( a = 0; a < 12; a++ )); do
    "${FLOOD_PIN[@]}" "$PYTHON" "$WORK/flood.py" "$HTTPS_PORT" "$(( FLOOD / 12 + (a < FLOOD % 12) ))" "$WORK/data/tls/cert.pem" \
        "$WORK/flood-$a.json" "$a" &
    FLOOD_PIDS+=("$!")
    PIDS+=("$!")
done
sleep 5
flood_start=$(now)
read -r login login_max read read_max < <("$PYTHON" "$WORK/measure.py" "$SFTP_PORT" "$WORK/id_ed25519" "$TRIES")
flood_secs=$(calc "$(now) - $flood_start + 5")
kill -TERM "${FLOOD_PIDS[@]}"
for pid in "${FLOOD_PIDS[@]}"; do wait "$pid" || true; done
refused_after=$(curl -sS "http://127.0.0.1:$OPS_PORT/metrics" | awk '/^ferry_password_checks_refused_total /{print $2}')
answers=$("$PYTHON" -c 'import collections, json, sys
total = collections.Counter()
for path in sys.argv[1:]:
    total.update(json.load(open(path)))
print(json.dumps(dict(total)))' "$WORK"/flood-*.json)

{
    echo "### Login flood vs. transfers, $(date -u +%Y-%m-%d)"
    echo
    echo "$FLOOD concurrent wrong-password HTTPS logins from 12 addresses, for $(fmt "$flood_secs" 0) s; a key login over SFTP (paramiko) and a 64 KiB read in an open SFTP session, $TRIES times each."
    echo
    echo "| | SFTP login, median / worst | 64 KiB read, median / worst |"
    echo "| --- | --- | --- |"
    echo "| no flood | $base_login / $base_login_max ms | $base_read / $base_read_max ms |"
    echo "| during the flood | $login / $login_max ms | $read / $read_max ms |"
    echo
    echo "- Flood answers (HTTP status or client error: count): \`$answers\`"
    echo "- Password checks refused at once (queue full): $(( ${refused_after%.*} - ${refused_before%.*} ))"
    echo "- CPUs: ferry ${FERRY_CPUS:-all}, flood generators ${FLOOD_CPUS:-all}"
    print_run_metadata
} | tee -a "${OUT_FILE:-/dev/null}"
