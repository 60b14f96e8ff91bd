#!/usr/bin/env bash
# Logins per second through external authenticators: ferry's HTTPS API with Basic auth (every
# request is a login) against a real slapd (tests/fixtures/ldap), with and without
# `auth.cache_ttl`, and against a small HTTP authentication service, all on loopback. curl
# sends N requests over one kept-alive connection; local users are measured too, for scale.
#
# The script never builds ferry; build it first (cargo build --release). It only ever signals
# processes it started, by PID.
#
# Usage: tests/bench/logins.sh [--requests N] [--out FILE] [--keep]
# Needs: slapd and ldap-utils (apt), curl, python3.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
bench_init "$@"

REQUESTS=300
while [[ $# -gt 0 ]]; do
    case $1 in
        --requests) need_arg "$@"; is_uint "$2" --requests; REQUESTS=$2; shift 2 ;;
        *)          common_opt "$@"; shift "$SHIFT_BY" ;;
    esac
done

need_ferry
[[ -x /usr/sbin/slapd ]] || die "slapd not found: apt-get install slapd ldap-utils"

bench_workdir loginbench
# slapd daemonizes: it is stopped through its pidfile.
on_exit() {
    if [[ -f $WORK/slapd/slapd.pid ]]; then
        local pid
        pid=$(<"$WORK/slapd/slapd.pid")
        kill "$pid" 2>/dev/null || true
    fi
}

LDAP_PORT=$(free_port) LDAPS_PORT=$(free_port)
"$REPO_ROOT/tests/fixtures/ldap/start-slapd.sh" "$WORK/slapd" "$LDAP_PORT" "$LDAPS_PORT" >"$WORK/slapd-start.log"

# The HTTP authentication service: allows alice with her password.
SVC_PORT=$(free_port)
python3 - "$SVC_PORT" >"$WORK/service.log" 2>&1 <<'PY' &
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import socket
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def setup(self):
        super().setup()
        # Headers and body are separate writes: without this, Nagle and delayed ACKs add 40 ms.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        ok = body.get("username") == "alice" and body.get("password") == "alice-pass-1"
        answer = json.dumps({"allow": ok}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
PY
PIDS+=("$!")
wait_for_port "$SVC_PORT" "$!" "auth service"

# One ferry per setup; sets RATE to the logins per second of N Basic-auth requests on one
# connection.
measure() {
    local name=$1 auth=$2 port dir start elapsed
    port=$(free_port)
    dir=$WORK/$name
    mkdir -p "$dir"
    cat >"$dir/ferry.toml" <<EOF
data_dir = "$dir"
[audit]
stdout = false
$(listeners_off https)
[https]
bind = "127.0.0.1:$port"
$auth
EOF
    echo "alice-pass-1" | "$FERRY_BIN" user add alice --password-stdin --config "$dir/ferry.toml" >/dev/null
    start_ferry "$name" "$dir/ferry.toml" "$port"
    local urls=()
    for (( i = 0; i < REQUESTS; i++ )); do urls+=("https://localhost:$port/api/v1/me"); done
    # One warm-up request (TLS, first login), then the measured run on one connection.
    curl -sS --fail --cacert "$dir/tls/cert.pem" -u alice:alice-pass-1 "${urls[0]}" >/dev/null ||
        die "$name: the warm-up login failed (see $WORK/$name.log)"
    start=$(now)
    curl -sS --fail --cacert "$dir/tls/cert.pem" -u alice:alice-pass-1 "${urls[@]}" >/dev/null ||
        die "$name: a login failed (see $WORK/$name.log)"
    elapsed=$(calc "$(now) - $start")
    stop_ferry "$FERRY_PID"
    RATE=$(calc "$REQUESTS / $elapsed")
}

LDAP_CONF="[auth.ldap]
url = \"ldap://127.0.0.1:$LDAP_PORT\"
service_dn = \"cn=ferry-svc,dc=ferry,dc=test\"
service_password = \"svc-secret\"
base_dn = \"ou=people,dc=ferry,dc=test\"
group_base_dn = \"ou=groups,dc=ferry,dc=test\""

log "local users"
measure local "[auth]
chain = [\"local\"]"
local_rate=$RATE
log "LDAP, no cache"
measure ldap "[auth]
chain = [\"ldap\"]
$LDAP_CONF"
ldap_rate=$RATE
log "LDAP, cache 60s"
measure ldap-cached "[auth]
chain = [\"ldap\"]
cache_ttl = \"60s\"
$LDAP_CONF"
ldap_cached=$RATE
log "HTTP service, no cache"
measure http "[auth]
chain = [\"http\"]
[auth.http]
url = \"http://127.0.0.1:$SVC_PORT/\""
http_rate=$RATE

{
    echo "### Logins per second over HTTPS Basic auth, $REQUESTS requests on one connection, $(date -u +%Y-%m-%d)"
    echo
    echo "| authenticator | logins/s |"
    echo "| --- | --- |"
    echo "| local (argon2id) | $(fmt "$local_rate" 0) |"
    echo "| LDAP (service search + user bind + group search), no cache | $(fmt "$ldap_rate" 0) |"
    echo "| LDAP, cache_ttl = 60s | $(fmt "$ldap_cached" 0) |"
    echo "| HTTP service (Python http.server), no cache | $(fmt "$http_rate" 0) |"
    echo
    print_run_metadata
    echo "- $(/usr/sbin/slapd -VV 2>&1 | head -n 1 | sed 's/^@(#) \$//; s/\$$//' | tr -s ' ')"
} | tee -a "${OUT_FILE:-/dev/null}"
