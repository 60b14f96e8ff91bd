#!/usr/bin/env bash
# SFTP over S3: ferry against `rclone serve sftp`, both in front of the same s3s-fs bucket on
# loopback, with the same OpenSSH `sftp` client and cipher. Measured per server:
#   - upload and download of one big file (default 5 GiB): MiB/s and the server's peak RSS
# and, for ferry alone, one download with 20 ms added to every storage request (a latency
# proxy between ferry and s3s-fs), to show that read-ahead keeps one stream at full speed.
#
# s3s-fs is a Rust S3 server over a folder: the fastest S3 server available here, so the
# server under test is what is measured, not the store. The script never builds ferry; build it
# first (cargo build --release). It only ever signals processes it started, by PID.
#
# Usage: tests/bench/object_vs_rclone.sh [--size-mib N] [--latency-ms N] [--out FILE] [--keep]
# Environment: FERRY_BIN (default target/release/ferry), S3S_BIN (default
# ~/.cache/ferry-tools/bin/s3s-fs; `cargo install s3s-fs --version 0.14.1 --features binary`).

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
bench_init "$@"

SIZE_MIB=5120 LATENCY_MS=20
while [[ $# -gt 0 ]]; do
    case $1 in
        --size-mib)   need_arg "$@"; is_uint "$2" --size-mib; SIZE_MIB=$2; shift 2 ;;
        --latency-ms) need_arg "$@"; is_uint "$2" --latency-ms; LATENCY_MS=$2; shift 2 ;;
        *)            common_opt "$@"; shift "$SHIFT_BY" ;;
    esac
done

need_ferry
S3S_BIN=${S3S_BIN:-$HOME/.cache/ferry-tools/bin/s3s-fs}
[[ -x $S3S_BIN ]] || die "s3s-fs not found at $S3S_BIN: cargo install s3s-fs --version 0.14.1 --features binary"
for tool in rclone sftp ssh-keygen python3; do
    command -v "$tool" >/dev/null || die "'$tool' not found (apt-get install rclone openssh-client python3)"
done

# The source file lives in tmpfs; the bucket on disk (it holds the uploads of both servers).
bench_workdir objbench /dev/shm
STORE=$(mktemp -d /var/tmp/ferry-objbench-store.XXXX)
on_exit() { rm -rf -- "$STORE"; }

# Peak RSS in MiB since the last reset_peak of PID (VmHWM; clear_refs 5 resets it).
reset_peak() { echo 5 >"/proc/$1/clear_refs"; }
peak_mib() { awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }

ssh-keygen -q -t ed25519 -N '' -f "$WORK/client_key"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/rclone_host_key"
log "writing the ${SIZE_MIB} MiB source file"
head -c "$(( SIZE_MIB << 20 ))" /dev/urandom >"$WORK/big.bin"

S3_PORT=$(free_port)
mkdir -p "$STORE/s3s/bench"
"$S3S_BIN" --host 127.0.0.1 --port "$S3_PORT" --access-key bench --secret-key bench-secret \
    "$STORE/s3s" >"$WORK/s3s.log" 2>&1 &
PIDS+=("$!")
wait_for_port "$S3_PORT" "$!" "s3s-fs"

# A proxy that holds every chunk going to the store for LATENCY_MS, in order: each request
# then waits one round of added latency, as with a store far away.
LAT_PORT=$(free_port)
python3 - "$LAT_PORT" "$S3_PORT" "$LATENCY_MS" >"$WORK/latency.log" 2>&1 <<'PY' &
import asyncio, sys
listen, upstream, delay = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) / 1000
async def pipe(reader, writer, lag):
    try:
        while data := await reader.read(1 << 20):
            if lag:
                await asyncio.sleep(lag)
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()
async def serve(client_r, client_w):
    store_r, store_w = await asyncio.open_connection("127.0.0.1", upstream)
    await asyncio.gather(pipe(client_r, store_w, delay), pipe(store_r, client_w, 0))
async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", listen)
    await server.serve_forever()
asyncio.run(main())
PY
PIDS+=("$!")
wait_for_port "$LAT_PORT" "$!" "latency relay"

# ferry: S3 backend on s3s-fs (directly, or through the latency proxy).
launch_ferry() {
    local name=$1 s3_port=$2 port
    port=$(free_port)
    mkdir -p "$WORK/$name"
    cat >"$WORK/$name/ferry.toml" <<EOF
data_dir = "$WORK/$name"
[storage]
backend = "s3"
bucket = "bench"
prefix = "ferry"
endpoint = "http://127.0.0.1:$s3_port"
region = "us-east-1"
allow_http = true
path_style = true
access_key_id = "bench"
secret_access_key = "bench-secret"
[audit]
stdout = false
$(listeners_off sftp)
[sftp]
bind = "127.0.0.1:$port"
EOF
    FERRY_DATA_DIR="$WORK/$name" "$FERRY_BIN" user add bench --home / --key "$WORK/client_key.pub" \
        --config "$WORK/$name/ferry.toml" >/dev/null
    start_ferry "$name" "$WORK/$name/ferry.toml" "$port"
    SRV_PID[$name]=$FERRY_PID SRV_PORT[$name]=$port
}

declare -A SRV_PID SRV_PORT
declare -A R
launch_ferry ferry "$S3_PORT"
launch_ferry ferry_latency "$LAT_PORT"

RCLONE_PORT=$(free_port)
RCLONE_CONFIG_S3S_TYPE=s3 RCLONE_CONFIG_S3S_PROVIDER=Other \
RCLONE_CONFIG_S3S_ENDPOINT="http://127.0.0.1:$S3_PORT" RCLONE_CONFIG_S3S_ACCESS_KEY_ID=bench \
RCLONE_CONFIG_S3S_SECRET_ACCESS_KEY=bench-secret RCLONE_CONFIG_S3S_FORCE_PATH_STYLE=true \
    env -u AWS_CA_BUNDLE rclone serve sftp s3s:bench/ferry --addr "127.0.0.1:$RCLONE_PORT" --config /dev/null \
    --authorized-keys "$WORK/client_key.pub" --key "$WORK/rclone_host_key" >"$WORK/rclone.log" 2>&1 &
PIDS+=("$!")
wait_for_port "$RCLONE_PORT" "$!" "rclone"
SRV_PID[rclone]=$! SRV_PORT[rclone]=$RCLONE_PORT

# One sftp batch against a server; prints the seconds it took.
timed_batch() {
    local name=$1 batch=$2 start
    start=$(now)
    sftp -q -F /dev/null -P "${SRV_PORT[$name]}" -i "$WORK/client_key" -o IdentitiesOnly=yes \
        -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes \
        -o Ciphers=aes128-gcm@openssh.com -b - "bench@127.0.0.1" <<<"$batch" >>"$WORK/client.log" 2>&1 ||
        die "sftp to $name failed: $(tail -n 5 "$WORK/client.log")"
    calc "$(now) - $start"
}

mibps() { calc "$SIZE_MIB / $1"; }

# Both serve the same folder of the bucket; the second upload replaces the first, so both
# downloads read the very same object (s3s-fs costs differ per object: it hashes objects whose
# checksum it did not record).
for name in ferry rclone; do
    reset_peak "${SRV_PID[$name]}"
    log "$name: upload ${SIZE_MIB} MiB"
    t=$(timed_batch "$name" "put $WORK/big.bin big.bin")
    R[$name|up]=$(mibps "$t") R[$name|up_rss]=$(peak_mib "${SRV_PID[$name]}")
done
# s3s-fs hashes an object on its first GET when the upload did not record a checksum: let an
# unmeasured download pay that, not the first server measured.
log "warm-up download (not measured)"
timed_batch ferry "get big.bin /dev/null" >/dev/null
for name in ferry rclone; do
    reset_peak "${SRV_PID[$name]}"
    log "$name: download ${SIZE_MIB} MiB"
    rm -f "$WORK/back.bin"
    t=$(timed_batch "$name" "get big.bin $WORK/back.bin")
    R[$name|down]=$(mibps "$t") R[$name|down_rss]=$(peak_mib "${SRV_PID[$name]}")
    cmp -s "$WORK/big.bin" "$WORK/back.bin" || die "$name returned different bytes"
    rm -f "$WORK/back.bin"
done
log "ferry with ${LATENCY_MS} ms per storage request: download ${SIZE_MIB} MiB"
t=$(timed_batch ferry_latency "get big.bin /dev/null")
R[lat|down]=$(mibps "$t")

row() { printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4"; }
{
    echo "### SFTP over S3 (s3s-fs): ferry vs rclone serve sftp, $(date -u +%Y-%m-%d)"
    echo
    row "" "ferry" "rclone serve sftp" "ferry / rclone"
    row "---" "---" "---" "---"
    row "upload ${SIZE_MIB} MiB (MiB/s)" "$(fmt "${R[ferry|up]}" 0)" "$(fmt "${R[rclone|up]}" 0)" "$(ratio "${R[ferry|up]}" "${R[rclone|up]}")×"
    row "download ${SIZE_MIB} MiB (MiB/s)" "$(fmt "${R[ferry|down]}" 0)" "$(fmt "${R[rclone|down]}" 0)" "$(ratio "${R[ferry|down]}" "${R[rclone|down]}")×"
    row "peak RSS during upload (MiB)" "${R[ferry|up_rss]}" "${R[rclone|up_rss]}" ""
    row "peak RSS during download (MiB)" "${R[ferry|down_rss]}" "${R[rclone|down_rss]}" ""
    row "download with +${LATENCY_MS} ms per storage request (MiB/s)" "$(fmt "${R[lat|down]}" 0)" "" "$(ratio "${R[lat|down]}" "${R[ferry|down]}")× of ferry without"
    echo
    print_run_metadata
    echo "- s3s-fs $("$S3S_BIN" --version | awk '{print $2}'), $(rclone version | head -n 1), client: $(ssh -V 2>&1), cipher aes128-gcm@openssh.com"
} | tee -a "${OUT_FILE:-/dev/null}"
