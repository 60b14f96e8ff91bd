#!/usr/bin/env bash
# HTTPS with curl: ferry's REST API against Debian's nginx serving the same file with the same
# certificate over TLS 1.3, on loopback, in one run. Measured: download MiB/s (ferry and nginx)
# and upload MiB/s (ferry; nginx has no upload to compare). Files live in tmpfs.
#
# The script never builds ferry; build it first (cargo build --release). It only ever signals
# processes it started, by PID.
#
# Usage: tests/bench/https_vs_nginx.sh [--size-mib N] [--runs N] [--out FILE] [--keep]
# Environment: FERRY_BIN (default target/release/ferry), NGINX_BIN (default /usr/sbin/nginx).

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
bench_init "$@"

SIZE_MIB=1024 RUNS=3
while [[ $# -gt 0 ]]; do
    case $1 in
        --size-mib) need_arg "$@"; is_uint "$2" --size-mib; SIZE_MIB=$2; shift 2 ;;
        --runs)     need_arg "$@"; is_uint "$2" --runs; RUNS=$2; shift 2 ;;
        *)          common_opt "$@"; shift "$SHIFT_BY" ;;
    esac
done

need_ferry
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
[[ -x $NGINX_BIN ]] || die "nginx not found at $NGINX_BIN: apt-get install nginx-light"
command -v curl >/dev/null || die "curl not found: apt-get install curl"

bench_workdir httpsbench /dev/shm
# nginx's worker runs unprivileged: it must be able to read the file.
chmod 755 "$WORK"

# ferry: generates its certificate on first start; nginx then serves with the same one.
FERRY_PORT=$(free_port)
mkdir -p "$WORK/ferry"
cat >"$WORK/ferry/ferry.toml" <<EOF
data_dir = "$WORK/ferry"
[storage]
root = "$WORK/ferry/files"
[audit]
stdout = false
$(listeners_off https)
[https]
bind = "127.0.0.1:$FERRY_PORT"
[tls]
min_version = "1.3"
EOF
echo "bench-password-1" | "$FERRY_BIN" user add bench --password-stdin --home / \
    --config "$WORK/ferry/ferry.toml" >/dev/null
start_ferry ferry "$WORK/ferry/ferry.toml" "$FERRY_PORT"
CERT=$WORK/ferry/tls/cert.pem KEY=$WORK/ferry/tls/key.pem
[[ -f $CERT && -f $KEY ]] || die "ferry did not write its certificate to $WORK/ferry/tls"

log "writing the ${SIZE_MIB} MiB file"
mkdir -p "$WORK/ferry/files" "$WORK/nginx/root"
head -c "$(( SIZE_MIB << 20 ))" /dev/urandom >"$WORK/ferry/files/big.bin"
ln "$WORK/ferry/files/big.bin" "$WORK/nginx/root/big.bin"
chmod 755 "$WORK/ferry" "$WORK/ferry/files" "$WORK/nginx" "$WORK/nginx/root"
chmod 644 "$WORK/ferry/files/big.bin"

NGINX_PORT=$(free_port)
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
daemon off;
events { worker_connections 64; }
http {
    access_log off;
    sendfile on;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT ssl;
        ssl_certificate $CERT;
        ssl_certificate_key $KEY;
        ssl_protocols TLSv1.3;
        root $WORK/nginx/root;
    }
}
EOF
"$NGINX_BIN" -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" >"$WORK/nginx.log" 2>&1 &
PIDS+=("$!")
wait_for_port "$NGINX_PORT" "$!" "nginx"

# Best of RUNS of curl's `%{speed_download}` or `%{speed_upload}` (METRIC), in MiB/s.
best_of() {
    local metric=$1 best=0 rate i
    shift
    for (( i = 0; i < RUNS; i++ )); do
        rate=$(curl -sS --fail --tlsv1.3 --cacert "$CERT" -o /dev/null -w "%{$metric}" "$@") ||
            die "curl failed: $*"
        best=$(awk -v a="$best" -v b="$rate" 'BEGIN { print (b > a) ? b : a }')
    done
    calc "$best / 1048576"
}

log "nginx download"
nginx_down=$(best_of speed_download "https://localhost:$NGINX_PORT/big.bin")
log "ferry download"
ferry_down=$(best_of speed_download -u bench:bench-password-1 "https://localhost:$FERRY_PORT/api/v1/files/big.bin")
log "ferry upload"
ferry_up=$(best_of speed_upload -u bench:bench-password-1 -T "$WORK/ferry/files/big.bin" \
    "https://localhost:$FERRY_PORT/api/v1/files/upload.bin")
cmp -s "$WORK/ferry/files/big.bin" "$WORK/ferry/files/upload.bin" || die "the upload differs"

{
    echo "### HTTPS with curl: ferry vs nginx, TLS 1.3, ${SIZE_MIB} MiB, best of $RUNS, $(date -u +%Y-%m-%d)"
    echo
    echo "|  | ferry | nginx | ferry / nginx |"
    echo "| --- | --- | --- | --- |"
    echo "| download (MiB/s) | $(fmt "$ferry_down" 0) | $(fmt "$nginx_down" 0) | $(ratio "$ferry_down" "$nginx_down")× |"
    echo "| upload (MiB/s) | $(fmt "$ferry_up" 0) | | |"
    echo
    print_run_metadata
    echo "- $("$NGINX_BIN" -v 2>&1), $(curl --version | head -n 1 | cut -d' ' -f1-2)"
} | tee -a "${OUT_FILE:-/dev/null}"
