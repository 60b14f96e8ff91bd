#!/usr/bin/env bash
# Compare ferry's FTP / explicit FTPS server with vsftpd and unFTP on loopback.
#
# All servers serve the same tmpfs directory to the same lftp client, one server
# at a time, so the only variable is the server. Measured per mode (plain FTP,
# then explicit FTPS with AUTH TLS + PROT P):
#   - download / upload of one big file: MiB/s and server CPU seconds per GiB
#   - many 4 KiB uploads in one session (one data connection, with its own TLS
#     handshake under FTPS, per file): files/s and server CPU seconds
#   - many idle logged-in control connections: server RSS (and PSS) per connection
#
# The script never builds ferry or unFTP; build them first. A server that is
# missing, fails to start or refuses the login is skipped with a note, and the
# others are still measured. It only ever signals processes it started itself,
# by PID.
#
# Usage: tests/bench/ftp_vs_peers.sh [options]   (see --help)

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
bench_init "$@"

usage() {
    cat <<'EOF'
Usage: tests/bench/ftp_vs_peers.sh [options]

Benchmarks ferry's FTP and explicit FTPS against vsftpd and unFTP on 127.0.0.1
and prints a Markdown table to stdout (progress goes to stderr).

Options:
  --size-mib N      size of the big download/upload file in MiB (default 1024)
  --quick           quick run: 64 MiB, 200 small files, 20 idle connections
  --files N         number of 4 KiB files uploaded in one session (default 2000)
  --idle N          number of concurrent idle connections (default 200)
  --clients LIST    comma-separated subset of "lftp,ftplib,curl,pycurl": the
                    clients of the small-file test (default all); lftp does every
                    other test. pycurl is libcurl through PycURL, whose wheel
                    brings its own libcurl 8 (one handle, every upload on it)
  --servers LIST    comma-separated subset of "ferry,vsftpd,unftp" (default all)
  --modes LIST      comma-separated subset of "ftp,ftps" (default both)
  --cert-key TYPE   key of the one test certificate all servers use for FTPS:
                    rsa (RSA-2048, default) or ec (ECDSA P-256, what ferry
                    generates for itself; cheaper handshakes)
  --out FILE        also append the table plus run metadata to FILE
  --keep            keep the work directory under /dev/shm (logs, configs)
  -h, --help        this help

Environment:
  FERRY_BIN         ferry binary (default $CARGO_TARGET_DIR/release/ferry if
                    CARGO_TARGET_DIR is set, else <repo>/target/release/ferry)
  VSFTPD_BIN        vsftpd binary (default /usr/sbin/vsftpd)
  UNFTP_BIN         unFTP binary (default: unftp on PATH, else
                    $HOME/.cache/unftp/bin/unftp)
  CURL_BIN          curl binary of the small-file test (default: curl on PATH).
                    curl before 8.4.0 waits one second after a PASV/EPSV reply
                    that arrives before its first look at the socket (fixed by
                    curl commit 6dd6654f75), which a fast server triggers on
                    most files; the table notes the version used.
  PYCURL_PYTHON     python with pycurl for the pycurl client (default
                    $FERRY_TEST_PYTHON, else python3; pip install pycurl)

vsftpd needs root: it logs in system users through PAM. The script creates the
system user "ferrybench" (password "benchpass", no home, shell /bin/bash) if it
does not exist, and leaves it in place afterwards.
EOF
}

# ---------------------------------------------------------------- options ---

opt_size='' opt_files='' opt_idle='' QUICK=0
SERVERS_CSV="ferry,vsftpd,unftp"
MODES_CSV="ftp,ftps"
CLIENTS_CSV="lftp,ftplib,curl,pycurl"
CERT_KEY=rsa

while [[ $# -gt 0 ]]; do
    case $1 in
        --size-mib) need_arg "$@"; is_uint "$2" --size-mib; opt_size=$2; shift 2 ;;
        --quick)    QUICK=1; shift ;;
        --files)    need_arg "$@"; is_uint "$2" --files; opt_files=$2; shift 2 ;;
        --idle)     need_arg "$@"; is_uint "$2" --idle; opt_idle=$2; shift 2 ;;
        --servers)  need_arg "$@"; SERVERS_CSV=$2; shift 2 ;;
        --modes)    need_arg "$@"; MODES_CSV=$2; shift 2 ;;
        --clients)  need_arg "$@"; CLIENTS_CSV=$2; shift 2 ;;
        --cert-key) need_arg "$@"; CERT_KEY=$2; shift 2 ;;
        *)          common_opt "$@"; shift "$SHIFT_BY" ;;
    esac
done

# --quick only changes defaults; explicit --size-mib/--files/--idle still win.
if (( QUICK )); then
    SIZE_MIB=${opt_size:-64}; N_SMALL=${opt_files:-200}; N_IDLE=${opt_idle:-20}
else
    SIZE_MIB=${opt_size:-1024}; N_SMALL=${opt_files:-2000}; N_IDLE=${opt_idle:-200}
fi
(( N_SMALL <= 10000 )) || die "--files is limited to 10000"
(( N_IDLE <= 900 )) || die "--idle is limited to 900 (file descriptors of the idle client)"

IFS=, read -ra SERVERS <<<"$SERVERS_CSV"
IFS=, read -ra MODES <<<"$MODES_CSV"
[[ ${#SERVERS[@]} -gt 0 ]] || die "--servers is empty"
[[ ${#MODES[@]} -gt 0 ]] || die "--modes is empty"
for s in "${SERVERS[@]}"; do
    [[ $s == ferry || $s == vsftpd || $s == unftp ]] ||
        die "unknown server '$s' (use ferry, vsftpd and/or unftp)"
done
for m in "${MODES[@]}"; do
    [[ $m == ftp || $m == ftps ]] || die "unknown mode '$m' (use ftp and/or ftps)"
done
IFS=, read -ra CLIENTS <<<"$CLIENTS_CSV"
for c in "${CLIENTS[@]}"; do
    [[ $c == lftp || $c == ftplib || $c == curl || $c == pycurl ]] ||
        die "unknown client '$c' (use lftp, ftplib, curl and/or pycurl)"
done
want_client() { [[ ",$CLIENTS_CSV," == *",$1,"* ]]; }
[[ $CERT_KEY == rsa || $CERT_KEY == ec ]] || die "--cert-key must be rsa or ec, got '$CERT_KEY'"

# ------------------------------------------------------------ prerequisites ---

command -v lftp >/dev/null || die "'lftp' not found; install it with: apt-get install -y lftp"
CURL_BIN=${CURL_BIN:-curl}
if want_client curl; then
    command -v "$CURL_BIN" >/dev/null || die "'$CURL_BIN' not found; install it with: apt-get install -y curl (or --clients lftp,ftplib)"
fi
PYCURL_PYTHON=${PYCURL_PYTHON:-${FERRY_TEST_PYTHON:-python3}}
if want_client pycurl; then
    "$PYCURL_PYTHON" -c 'import pycurl' 2>/dev/null ||
        die "$PYCURL_PYTHON has no pycurl (pip install pycurl, or --clients without pycurl)"
fi
command -v python3 >/dev/null || die "python3 is needed (free ports, TLS probe, idle connections)"
python3 -c 'import ftplib, ssl' 2>/dev/null || die "python3 lacks ftplib/ssl"
command -v openssl >/dev/null || die "'openssl' not found (to make the test certificate)"
for tool in timeout dd split awk getconf stat; do
    command -v "$tool" >/dev/null || die "'$tool' not found (coreutils/gawk/libc-bin)"
done
HAVE_SS=0
command -v ss >/dev/null && HAVE_SS=1

# Servers that cannot be measured at all, with the reason (shown under the table).
declare -A SKIPPED=()
skip_server() {
    SKIPPED[$1]=$2
    warn "skipping $1: $2"
}

if want_server ferry; then
    default_ferry_bin
    if [[ -f $FERRY_BIN && -x $FERRY_BIN ]]; then
        FERRY_BIN=$(cd "$(dirname "$FERRY_BIN")" && pwd)/$(basename "$FERRY_BIN")
    else
        skip_server ferry "binary not found or not executable: $FERRY_BIN (build it with cargo build --release, or set FERRY_BIN)"
    fi
fi

VSFTPD_BIN=${VSFTPD_BIN:-/usr/sbin/vsftpd}
VSFTPD_USER=ferrybench
if want_server vsftpd; then
    if [[ ! -x $VSFTPD_BIN ]]; then
        skip_server vsftpd "not found at $VSFTPD_BIN (apt-get install -y vsftpd, or set VSFTPD_BIN)"
    elif [[ $(id -u) -ne 0 ]]; then
        skip_server vsftpd "needs root (PAM logins of system users, chroot)"
    fi
fi

if want_server unftp; then
    if [[ -z ${UNFTP_BIN:-} ]]; then
        UNFTP_BIN=$(command -v unftp || true)
        [[ -n $UNFTP_BIN ]] || UNFTP_BIN=$HOME/.cache/unftp/bin/unftp
    fi
    if [[ ! -f $UNFTP_BIN || ! -x $UNFTP_BIN ]]; then
        skip_server unftp "binary not found at $UNFTP_BIN (cargo install unftp, or set UNFTP_BIN)"
    fi
fi

CLK_TCK=$(getconf CLK_TCK)

# tmpfs needs the big file, its upload source copy, the uploaded copy and some slack.
need_kib=$(( (SIZE_MIB * 3 + 64) * 1024 ))  # big.bin, its upload source copy and up.bin
avail_kib=$(df --output=avail -k /dev/shm | tail -n 1 | tr -d ' ')
(( avail_kib >= need_kib )) ||
    die "/dev/shm has ${avail_kib} KiB free, need ${need_kib} KiB; try --size-mib"

# ---------------------------------------------------- process bookkeeping ---

bench_workdir ftp-bench /dev/shm
# vsftpd changes into the served directory as the unprivileged user, so the
# path to it must be searchable by everyone (mktemp makes it 0700).
chmod 0755 "$WORK"
SERVER_PIDS=()   # long-running servers we started
IDLE_PIDS=()     # the idle-connection client of the current idle test
VSFTPD_USER_UNLOCKED=0   # on_exit locks the vsftpd user's password again

# Run by bench_exit before finish_work: clients first, so server-side sessions
# end before the servers do; then the vsftpd user is locked again.
on_exit() {
    if (( ${#IDLE_PIDS[@]} )); then stop_pids "${IDLE_PIDS[@]}"; fi
    if (( ${#SERVER_PIDS[@]} )); then stop_pids "${SERVER_PIDS[@]}"; fi
    if (( VSFTPD_USER_UNLOCKED )); then
        usermod -L "$VSFTPD_USER" >/dev/null 2>&1 || warn "could not lock the password of $VSFTPD_USER"
    fi
}

# ------------------------------------------------------------ small utils ---

# First port of N consecutive free ports, below the kernel's ephemeral range
# (32768+) so that outgoing connections cannot take them while we run.
free_port_block() {
    python3 - "$1" <<'EOF'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(500):
    base = random.randrange(20000, 32768 - n)
    held = []
    try:
        for port in range(base, base + n):
            s = socket.socket()
            held.append(s)
            s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        for s in held:
            s.close()
    print(base)
    sys.exit(0)
sys.exit("no block of %d free ports found in 20000-32767" % n)
EOF
}

# Wait until PORT accepts TCP connections; fail (return 1) if PID died or the
# port never opens. Unlike lib.sh's wait_for_port (which this replaces here) it
# does not exit: a server that fails to start is skipped and the others measured.
wait_for_port() {
    local port=$1 pid=$2 name=$3 i
    for (( i = 0; i < 200; i++ )); do
        if ! kill -0 "$pid" 2>/dev/null; then
            FAIL_MSG="$name (pid $pid) exited during startup"
            return 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    FAIL_MSG="$name did not accept connections on 127.0.0.1:$port within 10 s"
    return 1
}

# MESSAGE on one line (for the notes under the table), at most 400 characters.
one_line() {
    local m
    m=$(tr -s ' \n\t' ' ' <<<"$1")
    m=${m% }
    (( ${#m} <= 400 )) || m="${m:0:400}..."
    echo "$m"
}

# Last lines of a log file, indented, for failure messages.
log_tail() { [[ -s $1 ]] && { echo; tail -n "${2:-10}" "$1" | sed 's/^/    /'; }; return 0; }

# ----------------------------------------------------------------- servers ---

# Per-server attributes. Everything after startup is generic over these, so all
# servers are measured the same way. Failing steps set FAIL_MSG and return 1;
# the main loop then records the note and goes on with the next server.
declare -A SRV_PID SRV_PORT SRV_USER SRV_NAME SRV_BASE SRV_MODE SRV_LOG SRV_PASV SRV_TLS
SRV_NAME[ferry]="ferry"
SRV_NAME[vsftpd]="vsftpd"
SRV_NAME[unftp]="unFTP"
PASSWORD=benchpass
FAIL_MSG=

# Each server gets its own passive port range (PASV_N ports), distinct from the
# others'. Every small file is a new data connection, so leave room for
# passive ports waiting in TIME_WAIT.
PASV_N=300
PASV_BASE=$(free_port_block $(( 3 * PASV_N ))) || die "cannot find free passive ports"
SRV_PASV[ferry]="$PASV_BASE-$(( PASV_BASE + PASV_N - 1 ))"
SRV_PASV[vsftpd]="$(( PASV_BASE + PASV_N ))-$(( PASV_BASE + 2 * PASV_N - 1 ))"
SRV_PASV[unftp]="$(( PASV_BASE + 2 * PASV_N ))-$(( PASV_BASE + 3 * PASV_N - 1 ))"

# One self-signed certificate shared by all servers, so the TLS handshakes cost
# the same signature on every server. RSA-2048 by default (what vsftpd is
# usually run with); ferry's own generated certificate would be ECDSA P-256,
# which is cheaper to sign with (--cert-key ec).
make_cert() {
    local -a key=(-newkey rsa:2048)
    [[ $CERT_KEY == ec ]] && key=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
    openssl req -x509 "${key[@]}" -nodes -days 2 -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
        -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" >"$WORK/openssl.log" 2>&1 ||
        die "openssl could not make the test certificate: $(cat "$WORK/openssl.log")"
    chmod 0600 "$WORK/tls/key.pem"
}

# --- ferry

write_ferry_config() {
    local port=$1 require_tls=$2
    cat >"$WORK/ferry.toml" <<EOF
# Generated by tests/bench/ftp_vs_peers.sh
data_dir = "$WORK/ferry-data"
[storage]
root = "$WORK/files"
[sftp]
enabled = false
[tls]
cert_file = "$WORK/tls/cert.pem"
key_file = "$WORK/tls/key.pem"
[ftp]
bind = "127.0.0.1:$port"
passive_ports = "${SRV_PASV[ferry]}"
require_tls = $require_tls
max_connections_per_ip = 1000
[ftps]
enabled = false
[https]
enabled = false
[ops]
enabled = false
[audit]
stdout = false
EOF
}

# One-time state: the user must exist before the server starts.
setup_ferry() {
    mkdir -p "$WORK/ferry-data"
    write_ferry_config "$(free_port)" false
    if ! printf '%s\n' "$PASSWORD" |
        "$FERRY_BIN" user add bench --home / --password-stdin --config "$WORK/ferry.toml" \
            >"$WORK/ferry-useradd.log" 2>&1; then
        FAIL_MSG="'ferry user add' failed (does this binary have FTP support?):$(log_tail "$WORK/ferry-useradd.log" 5)"
        return 1
    fi
}

launch_ferry() {
    local mode=$1 port pid require_tls=false
    [[ $mode == ftps ]] && require_tls=true
    port=$(free_port)
    write_ferry_config "$port" "$require_tls"
    SRV_LOG[ferry]=$WORK/ferry.stderr.log
    # ferry prints JSON audit lines on stdout (off here); keep them apart anyway.
    "$FERRY_BIN" serve --config "$WORK/ferry.toml" \
        >>"$WORK/ferry.stdout.log" 2>>"$WORK/ferry.stderr.log" &
    pid=$!
    SERVER_PIDS+=("$pid")
    SRV_PID[ferry]=$pid
    wait_for_port "$port" "$pid" ferry || return 1
    SRV_PORT[ferry]=$port
    SRV_USER[ferry]=bench
}

# --- vsftpd

# One-time state: the system user vsftpd logs in through PAM, and the empty
# directory vsftpd chroots its unprivileged helper into.
# vsftpd changes into the user's home directory before local_root, so the home
# is pointed at this run's served directory. The password is set for the run
# and locked again by on_exit, so the account cannot log in in between.
setup_vsftpd() {
    local shell
    if ! id "$VSFTPD_USER" >/dev/null 2>&1; then
        log "creating system user $VSFTPD_USER for vsftpd (kept afterwards, password locked)"
        if ! useradd -M -d "$WORK/files" -s /bin/bash -c "ferry FTP benchmark" "$VSFTPD_USER" \
            >"$WORK/useradd.log" 2>&1; then
            FAIL_MSG="useradd $VSFTPD_USER failed:$(log_tail "$WORK/useradd.log" 5)"
            return 1
        fi
    elif ! usermod -d "$WORK/files" "$VSFTPD_USER" >"$WORK/useradd.log" 2>&1; then
        FAIL_MSG="usermod -d for $VSFTPD_USER failed:$(log_tail "$WORK/useradd.log" 5)"
        return 1
    fi
    VSFTPD_USER_UNLOCKED=1
    if ! echo "$VSFTPD_USER:$PASSWORD" | chpasswd >"$WORK/useradd.log" 2>&1; then
        FAIL_MSG="chpasswd for $VSFTPD_USER failed:$(log_tail "$WORK/useradd.log" 5)"
        return 1
    fi
    # PAM's pam_shells and pam_listfile (Debian's /etc/pam.d/vsftpd) would
    # refuse the login with "530 Login incorrect" and nothing else to go on.
    shell=$(getent passwd "$VSFTPD_USER" | cut -d: -f7)
    if ! grep -qxF -- "$shell" /etc/shells 2>/dev/null; then
        FAIL_MSG="$VSFTPD_USER's shell '$shell' is not in /etc/shells; PAM (pam_shells) would refuse the login"
        return 1
    fi
    if grep -qxF -- "$VSFTPD_USER" /etc/ftpusers 2>/dev/null; then
        FAIL_MSG="$VSFTPD_USER is listed in /etc/ftpusers; PAM would refuse the login"
        return 1
    fi
    mkdir -p /var/run/vsftpd/empty
}

launch_vsftpd() {
    local mode=$1 conf=$WORK/vsftpd.conf port pid ssl=NO
    [[ $mode == ftps ]] && ssl=YES
    port=$(free_port)
    cat >"$conf" <<EOF
# Generated by tests/bench/ftp_vs_peers.sh
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=$port
background=NO
anonymous_enable=NO
local_enable=YES
write_enable=YES
local_umask=022
chroot_local_user=YES
allow_writeable_chroot=YES
local_root=$WORK/files
userlist_enable=NO
pam_service_name=vsftpd
seccomp_sandbox=NO
secure_chroot_dir=/var/run/vsftpd/empty
pasv_enable=YES
pasv_min_port=${SRV_PASV[vsftpd]%-*}
pasv_max_port=${SRV_PASV[vsftpd]#*-}
connect_from_port_20=NO
xferlog_enable=NO
dirmessage_enable=NO
max_clients=0
max_per_ip=0
idle_session_timeout=600
data_connection_timeout=300
ftpd_banner=vsftpd benchmark instance
ssl_enable=$ssl
EOF
    if [[ $ssl == YES ]]; then
        cat >>"$conf" <<EOF
rsa_cert_file=$WORK/tls/cert.pem
rsa_private_key_file=$WORK/tls/key.pem
allow_anon_ssl=NO
force_local_logins_ssl=YES
force_local_data_ssl=YES
ssl_sslv2=NO
ssl_sslv3=NO
ssl_tlsv1=YES
ssl_request_cert=NO
require_ssl_reuse=NO
EOF
    fi
    SRV_LOG[vsftpd]=$WORK/vsftpd.log
    # background=NO: $! is the listener itself; it forks per connection.
    "$VSFTPD_BIN" "$conf" >>"$WORK/vsftpd.log" 2>&1 </dev/null &
    pid=$!
    SERVER_PIDS+=("$pid")
    SRV_PID[vsftpd]=$pid
    wait_for_port "$port" "$pid" vsftpd || return 1
    SRV_PORT[vsftpd]=$port
    SRV_USER[vsftpd]=$VSFTPD_USER
}

# --- unFTP

setup_unftp() {
    printf '[{"username": "bench", "password": "%s"}]\n' "$PASSWORD" >"$WORK/unftp-users.json"
}

launch_unftp() {
    local mode=$1 port http_port pid
    local -a args
    port=$(free_port)
    http_port=$(free_port)
    args=(--bind-address="127.0.0.1:$port"
        --bind-address-http="127.0.0.1:$http_port"
        --root-dir="$WORK/files"
        --passive-ports="${SRV_PASV[unftp]}"
        --auth-type=json
        --auth-json-path="$WORK/unftp-users.json")
    if [[ $mode == ftps ]]; then
        args+=(--ftps-certs-file="$WORK/tls/cert.pem"
            --ftps-key-file="$WORK/tls/key.pem"
            --ftps-required-on-control-channel=all
            --ftps-required-on-data-channel=all)
    fi
    SRV_LOG[unftp]=$WORK/unftp.log
    "$UNFTP_BIN" "${args[@]}" >>"$WORK/unftp.log" 2>&1 </dev/null &
    pid=$!
    SERVER_PIDS+=("$pid")
    SRV_PID[unftp]=$pid
    wait_for_port "$port" "$pid" unFTP || return 1
    SRV_PORT[unftp]=$port
    SRV_USER[unftp]=bench
}

launch_server() {
    local srv=$1 mode=$2
    SRV_MODE[$srv]=$mode
    case $srv in
        ferry)  launch_ferry "$mode" || return 1 ;;
        vsftpd) launch_vsftpd "$mode" || return 1 ;;
        unftp)  launch_unftp "$mode" || return 1 ;;
    esac
    # Idle size of the process tree (1 for all three); settle() waits for it.
    SRV_BASE[$srv]=$(tree_count "${SRV_PID[$srv]}")
    log "${SRV_NAME[$srv]} ($mode) listening on 127.0.0.1:${SRV_PORT[$srv]} (pid ${SRV_PID[$srv]}, passive ${SRV_PASV[$srv]})"
}

stop_server() {
    local srv=$1 pid=${SRV_PID[$1]:-} p
    [[ -n $pid ]] || return 0
    stop_pids "$pid"
    local -a keep=()
    for p in "${SERVER_PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    SERVER_PIDS=("${keep[@]}")
    SRV_PID[$srv]=
}

# Stop SERVER (only the PID we started) and start it again, same mode.
restart_server() {
    stop_server "$1"
    launch_server "$1" "${SRV_MODE[$1]}"
}

# ----------------------------------------------------------------- client ---

# lftp for every transfer. HOME points at an empty directory so a personal
# ~/.lftprc cannot change the comparison (/etc/lftp.conf still applies, the
# same to all servers). Retries are off so a failure fails fast.
write_lftp_script() {
    local srv=$1 out=$2 commands=$3
    {
        echo "set cmd:fail-exit yes"
        echo "set cmd:interactive no"
        echo "set net:max-retries 1"
        echo "set net:timeout 60"
        echo "set net:reconnect-interval-base 1"
        echo "set xfer:clobber on"
        echo "set ftp:passive-mode on"
        # After each upload lftp sets the remote mtime, with MFMT when FEAT
        # lists it (ferry does, vsftpd does not), else trying SITE UTIME. That
        # would give servers different numbers of round trips per file, so no
        # FEAT and no SITE UTIME: every server sees PASV + STOR per file.
        echo "set ftp:use-feat no"
        echo "set ftp:use-site-utime no"
        echo "set ftp:use-site-utime2 no"
        if [[ ${SRV_MODE[$srv]} == ftps ]]; then
            echo "set ftp:ssl-allow yes"
            echo "set ftp:ssl-force true"
            echo "set ftp:ssl-auth TLS"
            echo "set ftp:ssl-protect-data true"
            echo "set ftp:ssl-protect-list true"
            echo "set ssl:verify-certificate no"
            # lftp (GnuTLS) loads its CA file for every TLS connection; the
            # system bundle costs the client ~2 ms per data connection, which
            # would cap the small-file test, so point it at a one-entry file.
            echo "set ssl:ca-file $WORK/tls/cert.pem"
        else
            echo "set ftp:ssl-allow no"
        fi
        echo "open -u ${SRV_USER[$srv]},$PASSWORD ftp://127.0.0.1:${SRV_PORT[$srv]}"
        echo "$commands"
    } >"$out"
}

# Run one lftp session with COMMANDS (newline-separated); on failure set FAIL_MSG.
run_lftp() {
    local srv=$1 limit=$2 commands=$3 script=$WORK/lftp.script out=$WORK/client.log
    write_lftp_script "$srv" "$script" "$commands"
    if ! HOME=$WORK/lftp-home timeout -k 5 "$limit" lftp -f "$script" >"$out" 2>&1; then
        FAIL_MSG="lftp session to ${SRV_NAME[$srv]} (${SRV_MODE[$srv]}) failed:$(log_tail "$out" 10)$(log_tail "${SRV_LOG[$srv]}" 5)"
        return 1
    fi
}

# Helper for the TLS probe and the idle connections: python's ftplib, with an
# unverified TLS context under FTPS.
write_py_helpers() {
    cat >"$WORK/ftpclient.py" <<'EOF'
import ftplib, os, signal, ssl, sys

class ResumingFTP_TLS(ftplib.FTP_TLS):
    """Data connections resume the control connection's TLS session (as curl, lftp and
    FileZilla do; the stock FTP_TLS makes a full handshake per data connection)."""
    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        return conn, size

def connect(host, port, user, password, mode):
    if mode == "ftps":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        f = ResumingFTP_TLS(context=ctx, timeout=60)
        f.connect(host, port)
        f.auth()
        f.login(user, password)
        f.prot_p()
    else:
        f = ftplib.FTP(timeout=60)
        f.connect(host, port)
        f.login(user, password)
    return f

def probe(host, port, user, password, mode):
    """Log in, list the directory over a data connection, report TLS details."""
    f = connect(host, port, user, password, mode)
    conn = f.transfercmd("NLST")
    if mode == "ftps":
        data = "data %s %s" % (conn.version(), conn.cipher()[0])
    else:
        data = "data plain"
    names = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        names += chunk
    conn.close()
    f.voidresp()
    if b"big.bin" not in names:
        sys.exit("NLST did not list big.bin: %r" % names[:200])
    if mode == "ftps":
        print("control %s %s, %s" % (f.sock.version(), f.sock.cipher()[0], data))
    else:
        print("plain")
    f.quit()

def smallup(host, port, user, password, mode, src, folder):
    """Upload every file of SRC into FOLDER in one session: a STOR and a data connection each."""
    f = connect(host, port, user, password, mode)
    f.mkd(folder)
    f.cwd(folder)
    for name in sorted(os.listdir(src)):
        with open(os.path.join(src, name), "rb") as fp:
            f.storbinary("STOR " + name, fp)
    f.quit()

def report(path, word, conns, failed, first):
    with open(path + ".tmp", "w") as out:
        out.write("%s %d failed %d %s\n" % (word, len(conns), failed, first))
    os.rename(path + ".tmp", path)

def idle(host, port, user, password, mode, n, ready_file):
    """Open N logged-in connections, report, then idle until SIGTERM.
    With N >= 4, report after N/2 and wait for SIGUSR1 before going on."""
    def on_term(signum, frame):
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, on_term)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    conns, failed, first = [], 0, ""
    try:
        for i in range(n):
            if n >= 4 and i == n // 2:
                report(ready_file + ".half", "half", conns, failed, first)
                signal.sigwait({signal.SIGUSR1})
            try:
                f = connect(host, port, user, password, mode)
                f.pwd()
                conns.append(f)
            except Exception as e:  # count it, keep the first reason
                failed += 1
                first = first or repr(e)
        report(ready_file, "ready", conns, failed, first)
        while True:
            signal.pause()
    finally:
        for f in conns:
            try:
                f.close()
            except Exception:
                pass

if __name__ == "__main__":
    cmd, host, port, user, password, mode = sys.argv[1:7]
    if cmd == "probe":
        probe(host, int(port), user, password, mode)
    elif cmd == "smallup":
        smallup(host, int(port), user, password, mode, sys.argv[7], sys.argv[8])
    else:
        idle(host, int(port), user, password, mode, int(sys.argv[7]), sys.argv[8])
EOF
}

# Before measuring anything: one lftp session that lists the directory, and
# one python session that reports the negotiated TLS version and cipher suite
# on the control and on a data connection. A broken setup fails here with the
# client's error instead of mid-benchmark.
smoke_test() {
    local srv=$1 out=$WORK/probe.log
    run_lftp "$srv" 60 "cls -1" || return 1
    if ! grep -qx 'big.bin' "$WORK/client.log"; then
        FAIL_MSG="${SRV_NAME[$srv]}: lftp's listing does not show big.bin:$(log_tail "$WORK/client.log")"
        return 1
    fi
    if ! timeout -k 5 60 python3 "$WORK/ftpclient.py" probe 127.0.0.1 "${SRV_PORT[$srv]}" \
        "${SRV_USER[$srv]}" "$PASSWORD" "${SRV_MODE[$srv]}" >"$out" 2>&1; then
        FAIL_MSG="${SRV_NAME[$srv]}: python ftplib probe failed:$(log_tail "$out" 5)"
        return 1
    fi
    SRV_TLS["${SRV_MODE[$srv]}|$srv"]=$(tail -n 1 "$out")
    log "${SRV_NAME[$srv]} (${SRV_MODE[$srv]}): login works (${SRV_TLS["${SRV_MODE[$srv]}|$srv"]})"
}

# CPU seconds (user+sys) of all reaped children of this shell so far, into
# CHILD_CPU. `times` must run in this shell, not in a $(...) subshell, which
# would only see its own children. lftp runs under `timeout`, which waits for
# it, so lftp's CPU reaches us through timeout.
children_cpu() {
    times >"$WORK/times.out"
    CHILD_CPU=$(awk 'NR == 2 { s = 0
        for (i = 1; i <= NF; i++) { split($i, p, "m"); s += p[1] * 60 + p[2] }
        printf "%.6f", s }' "$WORK/times.out")
}

# Run lftp with COMMANDS against SERVER and set M_WALL (seconds) and M_CPU
# (server CPU seconds). Wall time covers the whole client session,
# including connecting, logging in and (FTPS) the TLS handshakes.
measure_session() {
    local srv=$1 limit=$2 commands=$3
    measure_client "$srv" run_lftp "$srv" "$limit" "$commands"
}

# Run the client command CMD... (which sets FAIL_MSG on failure) and set M_WALL,
# M_CPU (server) and M_CLIENT (client CPU seconds) as measure_session does.
measure_client() {
    local srv=$1 c0 c1 t0 t1 k0 k1
    shift
    settle "$srv"
    c0=$(tree_cpu_ticks "${SRV_PID[$srv]}")
    t0=$(now)
    children_cpu; k0=$CHILD_CPU
    "$@" || return 1
    children_cpu; k1=$CHILD_CPU
    t1=$(now)
    settle "$srv"
    c1=$(tree_cpu_ticks "${SRV_PID[$srv]}")
    M_WALL=$(calc "$t1 - $t0")
    M_CPU=$(calc "($c1 - $c0) / $CLK_TCK")
    M_CLIENT=$(calc "$k1 - $k0")
}

# One python ftplib session uploading every small file into FOLDER.
run_ftplib_small() {
    local srv=$1 folder=$2 out=$WORK/client.log
    if ! timeout -k 5 900 python3 "$WORK/ftpclient.py" smallup 127.0.0.1 "${SRV_PORT[$srv]}" \
        "${SRV_USER[$srv]}" "$PASSWORD" "${SRV_MODE[$srv]}" "$WORK/small-src" "$folder" >"$out" 2>&1; then
        FAIL_MSG="ftplib session to ${SRV_NAME[$srv]} (${SRV_MODE[$srv]}) failed:$(log_tail "$out" 10)$(log_tail "${SRV_LOG[$srv]}" 5)"
        return 1
    fi
}

# One curl invocation uploading every small file into FOLDER over one control
# connection (curl reuses it for every URL of a glob), a data connection each.
run_curl_small() {
    local srv=$1 folder=$2 out=$WORK/client.log last
    local -a tls=()
    last=$(printf '%04d' $(( N_SMALL - 1 )))
    [[ ${SRV_MODE[$srv]} == ftps ]] && tls=(--ssl-reqd --cacert "$WORK/tls/cert.pem")
    if ! timeout -k 5 900 "$CURL_BIN" -sS "${tls[@]}" --ftp-create-dirs -u "${SRV_USER[$srv]}:$PASSWORD" \
        -T "$WORK/small-src/f[0000-$last]" "ftp://127.0.0.1:${SRV_PORT[$srv]}/$folder/" >"$out" 2>&1; then
        FAIL_MSG="curl session to ${SRV_NAME[$srv]} (${SRV_MODE[$srv]}) failed:$(log_tail "$out" 10)$(log_tail "${SRV_LOG[$srv]}" 5)"
        return 1
    fi
}

# libcurl (PycURL's own libcurl 8) uploading every small file into FOLDER on one
# handle: one control connection, a data connection per file, as curl's glob.
run_pycurl_small() {
    local srv=$1 folder=$2 out=$WORK/client.log
    if ! timeout -k 5 900 "$PYCURL_PYTHON" - "${SRV_PORT[$srv]}" "${SRV_USER[$srv]}" "$PASSWORD" \
        "${SRV_MODE[$srv]}" "$WORK/small-src" "$folder" "$WORK/tls/cert.pem" >"$out" 2>&1 <<'EOF'
import os, sys, pycurl
port, user, password, mode, src, folder, ca = sys.argv[1:8]
c = pycurl.Curl()
c.setopt(pycurl.USERPWD, "%s:%s" % (user, password))
c.setopt(pycurl.UPLOAD, 1)
c.setopt(pycurl.FTP_CREATE_MISSING_DIRS, 1)
if mode == "ftps":
    c.setopt(pycurl.USE_SSL, pycurl.USESSL_ALL)
    c.setopt(pycurl.CAINFO, ca)
for name in sorted(os.listdir(src)):
    path = os.path.join(src, name)
    with open(path, "rb") as f:
        c.setopt(pycurl.URL, "ftp://127.0.0.1:%s/%s/%s" % (port, folder, name))
        c.setopt(pycurl.READDATA, f)
        c.setopt(pycurl.INFILESIZE_LARGE, os.path.getsize(path))
        c.perform()
c.close()
EOF
    then
        FAIL_MSG="pycurl session to ${SRV_NAME[$srv]} (${SRV_MODE[$srv]}) failed:$(log_tail "$out" 10)$(log_tail "${SRV_LOG[$srv]}" 5)"
        return 1
    fi
}

# ------------------------------------------------------------ measurements ---

declare -A R   # results: R[mode|server|metric]

# Generous time limit for one big transfer: at least 1 MiB/s.
BIG_LIMIT=$(( 120 + SIZE_MIB ))

bench_download() {
    local srv=$1 mode=${SRV_MODE[$1]}
    measure_session "$srv" "$BIG_LIMIT" "get big.bin -o /dev/null" || return 1
    put_r "$mode" "$srv" dl_mibs "$(calc "$SIZE_MIB / $M_WALL")"
    put_r "$mode" "$srv" dl_cpu "$(calc "$M_CPU * 1024 / $SIZE_MIB")"
    log "  download: ${M_WALL}s wall, ${M_CPU}s server CPU, ${M_CLIENT}s client CPU"
}

bench_upload() {
    local srv=$1 mode=${SRV_MODE[$1]} size want=$(( SIZE_MIB * 1024 * 1024 ))
    rm -f "$WORK/files/up.bin"
    # The local source is a separate tmpfs file, not files/big.bin, so the
    # server never writes the file the client is reading.
    measure_session "$srv" "$BIG_LIMIT" "put $WORK/upload-src.bin -o up.bin" || return 1
    size=$(stat -c %s "$WORK/files/up.bin" 2>/dev/null || echo missing)
    rm -f "$WORK/files/up.bin"
    if [[ $size != "$want" ]]; then
        FAIL_MSG="${SRV_NAME[$srv]}: uploaded up.bin has size $size, expected $want"
        return 1
    fi
    put_r "$mode" "$srv" ul_mibs "$(calc "$SIZE_MIB / $M_WALL")"
    put_r "$mode" "$srv" ul_cpu "$(calc "$M_CPU * 1024 / $SIZE_MIB")"
    log "  upload: ${M_WALL}s wall, ${M_CPU}s server CPU, ${M_CLIENT}s client CPU"
}

# One `mput` of all files in a single session: one STOR and one data connection
# (with its own TLS handshake under FTPS) per file, so the figure is dominated
# by per-file round trips and handshakes, not by the login.
bench_small_files() {
    local srv=$1 mode=${SRV_MODE[$1]} n
    rm -rf "$WORK/files/small"
    measure_session "$srv" 900 "mkdir small
lcd $WORK/small-src
mput -O small f*" || return 1
    n=$(find "$WORK/files/small" -type f -size 4k 2>/dev/null | wc -l)
    rm -rf "$WORK/files/small"
    if (( n != N_SMALL )); then
        FAIL_MSG="${SRV_NAME[$srv]}: $n of $N_SMALL small files arrived"
        return 1
    fi
    put_r "$mode" "$srv" small_fps "$(calc "$N_SMALL / $M_WALL")"
    put_r "$mode" "$srv" small_cpu "$M_CPU"
    put_r "$mode" "$srv" small_client "$M_CLIENT"
    log "  $N_SMALL small files: ${M_WALL}s wall, ${M_CPU}s server CPU, ${M_CLIENT}s client CPU"
}

# The same small files with python's ftplib (data connections resume the control
# connection's TLS session) and with curl (one invocation, a glob of -T files).
bench_small_client() {
    local srv=$1 client=$2 mode=${SRV_MODE[$1]} n folder=small-$2
    rm -rf "${WORK:?}/files/$folder"
    case $client in
        ftplib) measure_client "$srv" run_ftplib_small "$srv" "$folder" || return 1 ;;
        curl)   measure_client "$srv" run_curl_small "$srv" "$folder" || return 1 ;;
        pycurl) measure_client "$srv" run_pycurl_small "$srv" "$folder" || return 1 ;;
    esac
    n=$(find "$WORK/files/$folder" -type f -size 4k 2>/dev/null | wc -l)
    if (( n == N_SMALL )) && ! diff -rq "$WORK/small-src" "$WORK/files/$folder" >/dev/null 2>&1; then
        n="$n (contents differ)"
    fi
    rm -rf "${WORK:?}/files/$folder"
    if [[ $n != "$N_SMALL" ]]; then
        FAIL_MSG="${SRV_NAME[$srv]}: $n of $N_SMALL small files arrived intact with $client"
        return 1
    fi
    put_r "$mode" "$srv" "small_${client}_fps" "$(calc "$N_SMALL / $M_WALL")"
    log "  $N_SMALL small files with $client: ${M_WALL}s wall, ${M_CPU}s server CPU, ${M_CLIENT}s client CPU"
}

# Wait until FILE is non-empty while the idle client PID runs; else FAIL_MSG.
wait_idle_file() {
    local srv=$1 pid=$2 file=$3 what=$4 limit=$5 deadline=$(( SECONDS + $5 ))
    while [[ ! -s $file ]]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            FAIL_MSG="${SRV_NAME[$srv]}: the idle-connection client exited:$(log_tail "$WORK/idle-client.log" 5)"
            return 1
        fi
        if (( SECONDS >= deadline )); then
            FAIL_MSG="${SRV_NAME[$srv]}: $what idle connections did not come up within $limit s"
            return 1
        fi
        sleep 0.2
    done
}

# Server memory per idle connection. One python process opens N control
# connections, logs each in (AUTH TLS + PBSZ/PROT P under FTPS) and runs PWD,
# then idles until we TERM it. It pauses after the first half until SIGUSR1, so
# memory is sampled three times: before, at N/2 and at N connections. The
# average (N vs before) includes one-time growth on the first logins (caches,
# allocator arenas, password-hash buffers); the marginal figure (N vs N/2) is
# the steady-state cost of one more connection.
bench_idle() {
    local srv=$1 mode=${SRV_MODE[$1]} n=$N_IDLE ready_file=$WORK/idle.ready
    local rss0 pss0 rssh pssh rss1 pss1 ready=0 failed=0 reason='' pid est line
    local half=0 limit=$(( 60 + N_IDLE / 2 ))
    # A fresh server process, so memory an allocator kept from the big transfers
    # cannot absorb the new connections; one warm-up login first, so one-time
    # start-up initialisation is not counted either.
    log "  restarting ${SRV_NAME[$srv]} for the idle-connection test"
    restart_server "$srv" || return 1
    timeout -k 5 60 python3 "$WORK/ftpclient.py" probe 127.0.0.1 "${SRV_PORT[$srv]}" \
        "${SRV_USER[$srv]}" "$PASSWORD" "$mode" >/dev/null 2>&1 || true
    settle "$srv"
    read -r rss0 pss0 < <(tree_mem_kib "${SRV_PID[$srv]}")
    rm -f "$ready_file" "$ready_file.half"
    python3 "$WORK/ftpclient.py" idle 127.0.0.1 "${SRV_PORT[$srv]}" "${SRV_USER[$srv]}" \
        "$PASSWORD" "$mode" "$n" "$ready_file" >"$WORK/idle-client.log" 2>&1 &
    pid=$!
    IDLE_PIDS=("$pid")
    if (( n >= 4 )); then
        if ! wait_idle_file "$srv" "$pid" "$ready_file.half" $(( n / 2 )) "$limit"; then
            stop_pids "$pid"; IDLE_PIDS=(); return 1
        fi
        read -r _ half _ <"$ready_file.half"
        sleep 1
        read -r rssh pssh < <(tree_mem_kib "${SRV_PID[$srv]}")
        if is_our_child "$pid"; then kill -USR1 "$pid"; fi
    fi
    if ! wait_idle_file "$srv" "$pid" "$ready_file" "$n" "$limit"; then
        stop_pids "$pid"; IDLE_PIDS=(); return 1
    fi
    read -r line <"$ready_file"
    read -r _ ready _ failed reason <<<"$line"
    # Give the server a moment to finish post-login work before sampling.
    sleep 1
    read -r rss1 pss1 < <(tree_mem_kib "${SRV_PID[$srv]}")
    est=$(count_established "${SRV_PORT[$srv]}")
    log "  idle: $ready/$n connections up, $est established; server RSS ${rss0}->${rssh:-?}->${rss1} KiB, PSS ${pss0}->${pssh:-?}->${pss1} KiB (0, $half, $ready connections)"
    if (( failed > 0 )); then
        warn "${SRV_NAME[$srv]}: $failed of $n idle connections failed, first error: $reason"
    fi
    stop_pids "$pid"
    IDLE_PIDS=()
    settle "$srv"
    if (( ready == 0 )); then
        FAIL_MSG="${SRV_NAME[$srv]}: no idle connection came up: $reason"
        return 1
    fi
    put_r "$mode" "$srv" idle_n "$ready"
    put_r "$mode" "$srv" idle_rss "$(calc "($rss1 - $rss0) / $ready")"
    put_r "$mode" "$srv" idle_pss "$(calc "($pss1 - $pss0) / $ready")"
    if (( half > 0 && ready > half )); then
        put_r "$mode" "$srv" idle_rss_marg "$(calc "($rss1 - $rssh) / ($ready - $half)")"
        put_r "$mode" "$srv" idle_pss_marg "$(calc "($pss1 - $pssh) / ($ready - $half)")"
    fi
}

NOTES=()   # failures and skips, listed under the table

bench_server() {
    local srv=$1 mode=$2
    launch_server "$srv" "$mode" || return 1
    smoke_test "$srv" || return 1
    bench_download "$srv" || return 1
    bench_upload "$srv" || return 1
    if want_client lftp; then bench_small_files "$srv" || return 1; fi
    local client
    for client in ftplib curl pycurl; do
        want_client "$client" || continue
        # One client failing (curl's FTPS against one server, say) leaves the others measured.
        if ! bench_small_client "$srv" "$client"; then
            warn "${SRV_NAME[$srv]} ($mode, $client): ${FAIL_MSG:-failed}"
            NOTES+=("${SRV_NAME[$srv]} ($mode) small files with $client: $(one_line "${FAIL_MSG:-failed}")")
        fi
    done
    bench_idle "$srv" || return 1
}

# ------------------------------------------------------------------ report ---

SIZE_LABEL="$SIZE_MIB MiB"
(( SIZE_MIB % 1024 == 0 )) && SIZE_LABEL="$(( SIZE_MIB / 1024 )) GiB"

METRICS=(dl_mibs dl_cpu ul_mibs ul_cpu small_fps small_cpu small_client
    small_ftplib_fps small_curl_fps small_pycurl_fps idle_rss idle_pss idle_rss_marg idle_pss_marg)
declare -A M_LABEL M_BETTER M_DIGITS
M_LABEL[dl_mibs]="Download $SIZE_LABEL (MiB/s)";             M_BETTER[dl_mibs]=higher;     M_DIGITS[dl_mibs]=1
M_LABEL[dl_cpu]="Download: server CPU (s/GiB)";             M_BETTER[dl_cpu]=lower;       M_DIGITS[dl_cpu]=2
M_LABEL[ul_mibs]="Upload $SIZE_LABEL (MiB/s)";               M_BETTER[ul_mibs]=higher;     M_DIGITS[ul_mibs]=1
M_LABEL[ul_cpu]="Upload: server CPU (s/GiB)";               M_BETTER[ul_cpu]=lower;       M_DIGITS[ul_cpu]=2
M_LABEL[small_fps]="$N_SMALL x 4 KiB upload, 1 session (files/s)"; M_BETTER[small_fps]=higher; M_DIGITS[small_fps]=0
M_LABEL[small_cpu]="$N_SMALL x 4 KiB upload: server CPU (s)"; M_BETTER[small_cpu]=lower; M_DIGITS[small_cpu]=2
M_LABEL[small_client]="$N_SMALL x 4 KiB upload: lftp client CPU (s)"; M_BETTER[small_client]=info; M_DIGITS[small_client]=2
M_LABEL[small_ftplib_fps]="$N_SMALL x 4 KiB upload, 1 ftplib session (files/s)"; M_BETTER[small_ftplib_fps]=higher; M_DIGITS[small_ftplib_fps]=0
M_LABEL[small_curl_fps]="$N_SMALL x 4 KiB upload, 1 curl run (files/s)"; M_BETTER[small_curl_fps]=higher; M_DIGITS[small_curl_fps]=0
M_LABEL[small_pycurl_fps]="$N_SMALL x 4 KiB upload, 1 libcurl 8 handle (files/s)"; M_BETTER[small_pycurl_fps]=higher; M_DIGITS[small_pycurl_fps]=0
M_LABEL[idle_rss]="$N_IDLE idle connections: server RSS (KiB/conn)"; M_BETTER[idle_rss]=lower; M_DIGITS[idle_rss]=0
M_LABEL[idle_pss]="$N_IDLE idle connections: server PSS (KiB/conn)"; M_BETTER[idle_pss]=lower; M_DIGITS[idle_pss]=0
M_LABEL[idle_rss_marg]="Idle, marginal (2nd half): server RSS (KiB/conn)"; M_BETTER[idle_rss_marg]=lower; M_DIGITS[idle_rss_marg]=0
M_LABEL[idle_pss_marg]="Idle, marginal (2nd half): server PSS (KiB/conn)"; M_BETTER[idle_pss_marg]=lower; M_DIGITS[idle_pss_marg]=0
PEERS=(vsftpd unftp)

# Best peer value for MODE and METRIC ("value server"), or nothing.
best_peer() {
    local mode=$1 m=$2 p v best='' who=''
    for p in "${PEERS[@]}"; do
        v=${R["$mode|$p|$m"]:-}
        [[ -n $v ]] || continue
        if [[ -z $best ]] || awk -v v="$v" -v b="$best" -v d="${M_BETTER[$m]}" \
            'BEGIN { exit !((d == "higher") ? v > b : v < b) }'; then
            best=$v; who=$p
        fi
    done
    [[ -n $best ]] && echo "$best $who"
    return 0
}

# Print the Markdown table. The ratio is ferry / the best peer for that metric
# (the faster or leaner of vsftpd and unFTP); the "better" column says which
# direction wins, the verdict applies it (+-5% = tie).
print_table() {
    local mode m f v s ratio verdict fs bp bv bw
    local -a cells
    echo "| Mode | Metric | Better | ferry | vsftpd | unFTP | ferry / best peer | Verdict |"
    echo "|---|---|---|---:|---:|---:|---:|---|"
    for mode in "${MODES[@]}"; do
        for m in "${METRICS[@]}"; do
            cells=()
            for s in ferry vsftpd unftp; do
                v=${R["$mode|$s|$m"]:-}
                if [[ -n $v ]]; then cells+=("$(fmt "$v" "${M_DIGITS[$m]}")"); else cells+=(-); fi
            done
            f=${R["$mode|ferry|$m"]:-}
            bp=''
            [[ ${M_BETTER[$m]} == info ]] || bp=$(best_peer "$mode" "$m")
            ratio=-; verdict=-
            if [[ -n $f && -n $bp ]]; then
                read -r bv bw <<<"$bp"
                ratio=$(awk -v f="$f" -v o="$bv" 'BEGIN { if (o > 0) printf("%.2f", f / o); else print "n/a" }')
                verdict=$(awk -v r="$ratio" -v b="${M_BETTER[$m]}" -v peer="${SRV_NAME[$bw]}" 'BEGIN {
                    if (r == "n/a") { print "-"; exit }
                    if (r >= 0.95 && r <= 1.05) { print "tie with " peer; exit }
                    if ((b == "higher") == (r > 1)) print "ferry better"; else print peer " better" }')
                ratio="$ratio (vs ${SRV_NAME[$bw]})"
            fi
            fs=${mode^^}
            echo "| $fs | ${M_LABEL[$m]} | ${M_BETTER[$m]} | ${cells[0]} | ${cells[1]} | ${cells[2]} | $ratio | $verdict |"
        done
    done
    echo
    print_targets
    echo
    print_notes
}

# The goals ferry is held to; "n/a" when ferry or the peers were not measured.
print_targets() {
    local mode m f bp bv bw ok
    echo "Targets:"
    echo
    for mode in "${MODES[@]}"; do
        for m in dl_mibs ul_mibs small_fps small_ftplib_fps small_curl_fps small_pycurl_fps; do
            f=${R["$mode|ferry|$m"]:-}
            bp=$(best_peer "$mode" "$m")
            if [[ -n $f && -n $bp ]]; then
                read -r bv bw <<<"$bp"
                ok=$(awk -v f="$f" -v o="$bv" 'BEGIN { print (f >= o) ? "PASS" : "FAIL" }')
                echo "- ${mode^^} ${M_LABEL[$m]}: ferry >= 1.0x the faster peer (${SRV_NAME[$bw]} $(fmt "$bv" "${M_DIGITS[$m]}")): $ok ($(fmt "$f" "${M_DIGITS[$m]}"))"
            else
                echo "- ${mode^^} ${M_LABEL[$m]}: ferry >= 1.0x the faster peer: n/a"
            fi
        done
    done
    local client
    for m in small_fps small_ftplib_fps small_curl_fps small_pycurl_fps; do
        client=lftp
        [[ $m == small_ftplib_fps ]] && client=ftplib
        [[ $m == small_curl_fps ]] && client=curl
        [[ $m == small_pycurl_fps ]] && client="libcurl 8 (PycURL)"
        f=${R["ftps|ferry|$m"]:-}
        if [[ -n $f ]]; then
            ok=$(awk -v f="$f" 'BEGIN { print (f >= 1000) ? "PASS" : "FAIL" }')
            echo "- FTPS small files with $client: ferry >= 1,000 files/s: $ok ($(fmt "$f" 0))"
        else
            echo "- FTPS small files with $client: ferry >= 1,000 files/s: n/a"
        fi
    done
    local what
    for mode in "${MODES[@]}"; do
        for m in idle_rss idle_rss_marg; do
            what="average over all $N_IDLE"
            [[ $m == idle_rss_marg ]] && what="marginal, 2nd half"
            f=${R["$mode|ferry|$m"]:-}
            if [[ -n $f ]]; then
                ok=$(awk -v f="$f" 'BEGIN { print (f < 64) ? "PASS" : "FAIL" }')
                echo "- ${mode^^} idle connections ($what): ferry < 64 KiB RSS per connection: $ok ($(fmt "$f" 1) KiB)"
            else
                echo "- ${mode^^} idle connections ($what): ferry < 64 KiB RSS per connection: n/a"
            fi
        done
    done
}

CERT_LABEL="RSA-2048"
[[ $CERT_KEY == ec ]] && CERT_LABEL="ECDSA P-256"

lftp_version() {
    local v tls
    v=$(lftp --version 2>/dev/null | sed -n 's/^LFTP | Version \([^ ]*\).*/\1/p' | head -n 1)
    tls=$(lftp --version 2>/dev/null | grep -o 'GnuTLS [0-9.]*\|OpenSSL [0-9.a-z]*' | head -n 1)
    echo "lftp ${v:-?}${tls:+ ($tls)}"
}

print_notes() {
    local s mode got t
    echo "- Loopback, client and servers on the same $(nproc)-CPU host; the $(lftp_version) client for all servers, one server at a time."
    if want_client pycurl; then
        echo "- libcurl client: $("$PYCURL_PYTHON" -c 'import pycurl; print(pycurl.version)' 2>/dev/null)."
    fi
    if want_client ftplib || want_client curl; then
        echo "- Small-file clients: $(python3 --version 2>&1) ftplib ($(python3 -c 'import ssl; print(ssl.OPENSSL_VERSION)' 2>/dev/null)); $("$CURL_BIN" --version 2>/dev/null | head -n 1 | cut -d' ' -f1-5)."
    fi
    echo "- Wall time covers the whole lftp session (connect, login, TLS handshakes); CPU is utime+stime summed over each server's process tree (vsftpd forks per connection)."
    echo "- lftp runs with ftp:use-feat and SITE UTIME off, so it never sets the remote mtime after an upload (it would use MFMT only on servers that list it in FEAT): every server gets PASV + STOR per file. Its CA file is the one test certificate (loading the system bundle for each TLS data connection costs the client ~2 ms per file)."
    echo "- Idle connections: \"average\" is the server's memory growth from a fresh process with one warm-up login to $N_IDLE logged-in idle connections, divided by $N_IDLE (it includes one-time growth on the first logins); \"marginal\" is the growth from $(( N_IDLE / 2 )) to $N_IDLE connections, per connection."
    echo "- FTPS: explicit AUTH TLS, PBSZ 0 + PROT P (every data connection is TLS), the same self-signed $CERT_LABEL certificate for all servers; vsftpd and unFTP do not require TLS session reuse on data connections, ferry does (its default); every client resumes the control connection's session (python's ftplib through an ntransfercmd override)."
    for mode in "${MODES[@]}"; do
        [[ $mode == ftps ]] || continue
        for s in "${SERVERS[@]}"; do
            t=${SRV_TLS["ftps|$s"]:-}
            [[ -n $t ]] && echo "- ${SRV_NAME[$s]} FTPS as negotiated with python/OpenSSL: $t."
        done
    done
    for s in "${SERVERS[@]}"; do
        [[ -n ${SKIPPED[$s]:-} ]] && echo "- ${SRV_NAME[$s]} not measured: $(one_line "${SKIPPED[$s]}")"
        for mode in "${MODES[@]}"; do
            got=${R["$mode|$s|idle_n"]:-}
            if [[ -n $got ]] && (( got != N_IDLE )); then
                echo "- Note: ${SRV_NAME[$s]} ($mode): only $got of $N_IDLE idle connections came up; per-connection memory is over those."
            fi
        done
    done
    for t in "${NOTES[@]}"; do echo "- $t"; done
    return 0
}

append_report() {
    local table=$1
    {
        echo
        echo "## ferry vs vsftpd and unFTP (FTP / FTPS), $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
        echo
        print_run_metadata
        want_server ferry && echo "- ferry binary: ${FERRY_BIN:-?}"
        if want_server vsftpd; then
            echo "- vsftpd: $(dpkg-query -W -f '${Version}' vsftpd 2>/dev/null || echo "$VSFTPD_BIN")"
        fi
        if want_server unftp; then
            echo "- unFTP: $("$UNFTP_BIN" --version 2>/dev/null | head -n 1 || echo "${UNFTP_BIN:-?}")"
        fi
        echo
        echo "$table"
    } >>"$OUT_FILE"
    log "appended results to $OUT_FILE"
}

# -------------------------------------------------------------------- main ---

log "work directory: $WORK"
mkdir -p "$WORK/files" "$WORK/small-src" "$WORK/tls" "$WORK/lftp-home"

log "creating files/big.bin ($SIZE_MIB MiB), the upload source and $N_SMALL x 4 KiB local files"
dd if=/dev/urandom of="$WORK/files/big.bin" bs=1M count="$SIZE_MIB" iflag=fullblock status=none
cp "$WORK/files/big.bin" "$WORK/upload-src.bin"
# One random blob split into 4 KiB pieces: f0000, f0001, ...
dd if=/dev/urandom of="$WORK/small.blob" bs=4096 count="$N_SMALL" iflag=fullblock status=none
(cd "$WORK/small-src" && split -b 4096 -a 4 -d "$WORK/small.blob" f)
rm -f "$WORK/small.blob"
# vsftpd's sessions run as $VSFTPD_USER: the served tree must be writable by it.
chmod 0777 "$WORK/files"
chmod 0644 "$WORK/files/big.bin"
make_cert
write_py_helpers

for s in "${SERVERS[@]}"; do
    [[ -n ${SKIPPED[$s]:-} ]] && continue
    FAIL_MSG=
    case $s in
        ferry)  setup_ferry || skip_server ferry "$FAIL_MSG" ;;
        vsftpd) setup_vsftpd || skip_server vsftpd "$FAIL_MSG" ;;
        unftp)  setup_unftp || skip_server unftp "$FAIL_MSG" ;;
    esac
done

for mode in "${MODES[@]}"; do
    for s in "${SERVERS[@]}"; do
        [[ -n ${SKIPPED[$s]:-} ]] && continue
        log "== ${SRV_NAME[$s]}, $mode"
        FAIL_MSG=
        if ! bench_server "$s" "$mode"; then
            warn "${SRV_NAME[$s]} ($mode): ${FAIL_MSG:-failed}"
            NOTES+=("${SRV_NAME[$s]} ($mode) incomplete: $(one_line "${FAIL_MSG:-failed}")")
        fi
        stop_server "$s"
    done
done

TABLE=$(print_table)
echo "$TABLE"
[[ -n $OUT_FILE ]] && append_report "$TABLE"
exit 0
