#!/usr/bin/env bash
# Compare ferry's SFTP server with OpenSSH (sshd + internal-sftp) on loopback.
#
# Both servers serve the same tmpfs directory to the same OpenSSH `sftp` client,
# with the same cipher, so the only variable is the server. Measured per cipher:
#   - download / upload of one big file: MiB/s and server CPU seconds per GiB
#   - many 4 KiB uploads in one session: files/s and server CPU seconds
#   - sequential logins: wall time and server CPU per login
#   - many idle logged-in sessions: server RSS (and PSS) per session
#
# The script never builds ferry; build it first (cargo build --release).
# It only ever signals processes it started itself, by PID.
#
# Usage: tests/bench/sftp_vs_openssh.sh [options]   (see --help)

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
bench_init "$@"

usage() {
    cat <<'EOF'
Usage: tests/bench/sftp_vs_openssh.sh [options]

Benchmarks ferry against OpenSSH sshd (internal-sftp) on 127.0.0.1 and prints
a Markdown table to stdout (progress goes to stderr).

Options:
  --size-mib N      size of the big download/upload file in MiB (default 1024)
  --quick           quick run: 64 MiB, 200 small files, 20 idle sessions
  --files N         number of 4 KiB files uploaded in one session (default 2000)
  --logins N        number of sequential logins measured (default 20)
  --idle N          number of concurrent idle sessions (default 200)
  --servers LIST    comma-separated subset of "openssh,ferry" (default both)
  --ciphers LIST    comma-separated ciphers
                    (default aes128-gcm@openssh.com,chacha20-poly1305@openssh.com)
  --kex LIST        pin the client's KexAlgorithms (e.g. curve25519-sha256) so
                    both servers use the same key exchange; default: client
                    default, the negotiated one is shown under the table
  --out FILE        also append the table plus run metadata to FILE
  --keep            keep the work directory under /dev/shm (logs, configs)
  -h, --help        this help

Environment:
  FERRY_BIN         ferry binary (default $CARGO_TARGET_DIR/release/ferry if
                    CARGO_TARGET_DIR is set, else <repo>/target/release/ferry)
  SSHD_BIN          sshd binary (default /usr/sbin/sshd)
EOF
}

# ---------------------------------------------------------------- options ---

opt_size='' opt_files='' opt_idle='' QUICK=0
N_LOGINS=20
SERVERS_CSV="openssh,ferry"
CIPHERS_CSV="aes128-gcm@openssh.com,chacha20-poly1305@openssh.com"
KEX=''

while [[ $# -gt 0 ]]; do
    case $1 in
        --size-mib) need_arg "$@"; is_uint "$2" --size-mib; opt_size=$2; shift 2 ;;
        --quick)    QUICK=1; shift ;;
        --files)    need_arg "$@"; is_uint "$2" --files; opt_files=$2; shift 2 ;;
        --logins)   need_arg "$@"; is_uint "$2" --logins; N_LOGINS=$2; shift 2 ;;
        --idle)     need_arg "$@"; is_uint "$2" --idle; opt_idle=$2; shift 2 ;;
        --servers)  need_arg "$@"; SERVERS_CSV=$2; shift 2 ;;
        --ciphers)  need_arg "$@"; CIPHERS_CSV=$2; shift 2 ;;
        --kex)      need_arg "$@"; KEX=$2; shift 2 ;;
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

IFS=, read -ra SERVERS <<<"$SERVERS_CSV"
IFS=, read -ra CIPHERS <<<"$CIPHERS_CSV"
[[ ${#SERVERS[@]} -gt 0 ]] || die "--servers is empty"
[[ ${#CIPHERS[@]} -gt 0 ]] || die "--ciphers is empty"
for s in "${SERVERS[@]}"; do
    [[ $s == openssh || $s == ferry ]] || die "unknown server '$s' (use openssh and/or ferry)"
done

# ------------------------------------------------------------ prerequisites ---

SSHD_BIN=${SSHD_BIN:-/usr/sbin/sshd}
OPENSSH_HINT="install OpenSSH with: apt-get install -y openssh-server openssh-client"
for tool in sftp ssh ssh-keygen; do
    command -v "$tool" >/dev/null || die "'$tool' not found; $OPENSSH_HINT"
done
if want_server openssh; then
    [[ -x $SSHD_BIN ]] || die "sshd not found at $SSHD_BIN; $OPENSSH_HINT (or set SSHD_BIN)"
fi
command -v python3 >/dev/null || die "python3 is needed (to pick free ports)"
for tool in timeout dd split awk getconf; do
    command -v "$tool" >/dev/null || die "'$tool' not found (coreutils/gawk/libc-bin)"
done
HAVE_SS=0
command -v ss >/dev/null && HAVE_SS=1

if want_server ferry; then
    need_ferry   # or run only the OpenSSH half with --servers openssh
fi

CLK_TCK=$(getconf CLK_TCK)

# tmpfs needs the big file, one uploaded copy and some slack.
need_kib=$(( (SIZE_MIB * 2 + 64) * 1024 ))
avail_kib=$(df --output=avail -k /dev/shm | tail -n 1 | tr -d ' ')
(( avail_kib >= need_kib )) ||
    die "/dev/shm has ${avail_kib} KiB free, need ${need_kib} KiB; try --size-mib"

# ---------------------------------------------------- process bookkeeping ---

bench_workdir bench /dev/shm   # PIDS: the long-running servers we started
IDLE_CLIENTS=()  # idle sftp clients of the current idle-session test
IDLE_HOLDERS=()  # the `sleep` processes holding their stdin fifos open

# Clients first, so server-side sessions end before the servers do.
on_exit() {
    if (( ${#IDLE_HOLDERS[@]} + ${#IDLE_CLIENTS[@]} )); then
        stop_pids "${IDLE_HOLDERS[@]}" "${IDLE_CLIENTS[@]}"
    fi
}

# ------------------------------------------------------------ small utils ---


# ----------------------------------------------------------------- servers ---

# Per-server attributes, filled in by launch_openssh/launch_ferry. Everything
# after startup is generic over these, so both servers are measured the same way.
declare -A SRV_PID SRV_PORT SRV_USER SRV_NAME SRV_BASE SRV_ALGS
SRV_NAME[openssh]="OpenSSH"
SRV_NAME[ferry]="ferry"

# One-time state: host key, authorized keys, privsep directory.
setup_openssh() {
    local dir=$WORK/sshd
    mkdir -p "$dir"
    ssh-keygen -q -t ed25519 -N '' -C ferry-bench-host -f "$dir/host_ed25519"
    cp "$WORK/client_key.pub" "$dir/authorized_keys"
    # Run as root, sshd needs its privilege-separation directory.
    if [[ $(id -u) -eq 0 && ! -d /run/sshd ]]; then
        log "creating /run/sshd (sshd's privilege separation directory)"
        mkdir -m 0755 /run/sshd
    fi
}

# Write the config for a fresh free port and start the listener.
launch_openssh() {
    local dir=$WORK/sshd conf=$WORK/sshd/sshd_config port pid
    port=$(free_port)
    cat >"$conf" <<EOF
# Generated by tests/bench/sftp_vs_openssh.sh
ListenAddress 127.0.0.1
Port $port
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
X11Forwarding no
AllowTcpForwarding no
PrintMotd no
Ciphers aes128-gcm@openssh.com,chacha20-poly1305@openssh.com
# The idle-session test opens many connections at once; the default
# MaxStartups 10:30:100 would randomly drop the unauthenticated ones.
MaxStartups 10000
Subsystem sftp internal-sftp
ForceCommand internal-sftp -d $WORK/files
EOF
    # OpenSSH >= 9.8 penalises sources that connect without authenticating (our
    # port probe does); 9.2 does not know the option, so add it only if accepted.
    if "$SSHD_BIN" -t -f "$conf" -o "PerSourcePenalties no" 2>/dev/null; then
        echo "PerSourcePenalties no" >>"$conf"
    fi
    "$SSHD_BIN" -t -f "$conf" 2>"$WORK/sshd-configtest.log" ||
        die "sshd rejected $conf: $(cat "$WORK/sshd-configtest.log")"
    # -D: no daemonising, so $! is the listener; -e: log to stderr (our log file).
    "$SSHD_BIN" -D -e -f "$conf" >>"$WORK/sshd.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_for_port "$port" "$pid" sshd
    SRV_PID[openssh]=$pid
    SRV_PORT[openssh]=$port
    SRV_USER[openssh]=$(id -un)
    log "sshd listening on 127.0.0.1:$port (pid $pid)"
}

write_ferry_config() {
    cat >"$WORK/ferry.toml" <<EOF
data_dir = "$WORK/ferry-data"
[storage]
root = "$WORK/files"
[sftp]
bind = "127.0.0.1:$1"
$(listeners_off sftp)
EOF
}

# One-time state: the user must exist before the server starts.
setup_ferry() {
    mkdir -p "$WORK/ferry-data"
    write_ferry_config "$(free_port)"
    "$FERRY_BIN" user add bench --home / --key "$WORK/client_key.pub" --config "$WORK/ferry.toml" \
        >"$WORK/ferry-useradd.log" 2>&1 ||
        die "'ferry user add' failed: $(cat "$WORK/ferry-useradd.log")"
}

# Write the config for a fresh free port and start the server.
launch_ferry() {
    local port pid
    port=$(free_port)
    write_ferry_config "$port"
    start_ferry ferry "$WORK/ferry.toml" "$port"
    pid=$FERRY_PID
    SRV_PID[ferry]=$pid
    SRV_PORT[ferry]=$port
    SRV_USER[ferry]=bench
    log "ferry listening on 127.0.0.1:$port (pid $pid)"
}

launch_server() {
    case $1 in
        openssh) launch_openssh ;;
        ferry)   launch_ferry ;;
    esac
    # Idle size of the process tree (1 for both); settle() waits for it.
    SRV_BASE[$1]=$(tree_count "${SRV_PID[$1]}")
}

# Stop SERVER (only the PID we started) and start it again on a new port.
restart_server() {
    stop_pids "${SRV_PID[$1]}"
    launch_server "$1"
}

# ----------------------------------------------------------------- client ---

# Fill SFTP_ARGS with the client command for SERVER and CIPHER, minus -b;
# any further arguments go right after `sftp -q`.
# -F /dev/null keeps user/system ssh_config from changing the comparison.
build_sftp_cmd() {
    local srv=$1 cipher=$2
    shift 2
    SFTP_ARGS=(sftp -q "$@" -F /dev/null -P "${SRV_PORT[$srv]}" -i "$WORK/client_key"
        -o IdentitiesOnly=yes -o StrictHostKeyChecking=no
        -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
        -o Ciphers="$cipher" -o Compression=no -o BatchMode=yes
        -o ControlMaster=no -o ControlPath=none -o ConnectTimeout=10)
    if [[ -n $KEX ]]; then SFTP_ARGS+=(-o KexAlgorithms="$KEX"); fi
    SFTP_TARGET="${SRV_USER[$srv]}@127.0.0.1"
}

# Run one sftp session with BATCH; die with its output if it fails.
run_batch() {
    local srv=$1 cipher=$2 batch=$3 limit=$4 out=$WORK/client.log
    build_sftp_cmd "$srv" "$cipher"
    if ! timeout -k 5 "$limit" "${SFTP_ARGS[@]}" -b "$batch" "$SFTP_TARGET" >"$out" 2>&1; then
        die "sftp session to ${SRV_NAME[$srv]} ($cipher) failed running $batch:
$(tail -n 20 "$out")"
    fi
}

# One verbose session per server and cipher before measuring anything: a broken
# setup fails here with the client's error instead of mid-benchmark, and the
# debug output tells which key exchange and host key each server negotiated.
smoke_test() {
    local srv=$1 cipher=$2 out=$WORK/smoke.log kex hostkey
    echo "pwd" >"$WORK/batch.smoke"
    # -v must come after -q and before -o LogLevel=ERROR to take effect.
    build_sftp_cmd "$srv" "$cipher" -v
    if ! timeout -k 5 60 "${SFTP_ARGS[@]}" -b "$WORK/batch.smoke" "$SFTP_TARGET" >"$out" 2>&1; then
        die "cannot log in to ${SRV_NAME[$srv]} with $cipher:
$(grep -v '^debug' "$out" | tail -n 20)"
    fi
    grep -q -F 'Remote working directory' "$out" ||
        die "${SRV_NAME[$srv]}: the smoke session did not answer pwd; see $out"
    kex=$(sed -n 's/^debug1: kex: algorithm: //p' "$out" | head -n 1)
    hostkey=$(sed -n 's/^debug1: kex: host key algorithm: //p' "$out" | head -n 1)
    SRV_ALGS[$srv]="kex ${kex:-?}, host key ${hostkey:-?}"
    log "${SRV_NAME[$srv]}: login with $cipher works (${SRV_ALGS[$srv]})"
}

# Run BATCH once against SERVER and set M_WALL (seconds) and M_CPU (server CPU
# seconds). Wall time covers the client process, including its SSH handshake.
measure_session() {
    local srv=$1 cipher=$2 batch=$3 limit=$4 c0 c1 t0 t1
    settle "$srv"
    c0=$(tree_cpu_ticks "${SRV_PID[$srv]}")
    t0=$(now)
    run_batch "$srv" "$cipher" "$batch" "$limit"
    t1=$(now)
    settle "$srv"
    c1=$(tree_cpu_ticks "${SRV_PID[$srv]}")
    M_WALL=$(calc "$t1 - $t0")
    M_CPU=$(calc "($c1 - $c0) / $CLK_TCK")
}

# ------------------------------------------------------------ measurements ---

declare -A R   # results: R[cipher|server|metric]

# Generous time limit for one big transfer: at least 1 MiB/s.
BIG_LIMIT=$(( 120 + SIZE_MIB ))

bench_download() {
    local srv=$1 cipher=$2 batch=$WORK/batch.download
    echo "get big.bin /dev/null" >"$batch"
    measure_session "$srv" "$cipher" "$batch" "$BIG_LIMIT"
    put_r "$cipher" "$srv" dl_mibs "$(calc "$SIZE_MIB / $M_WALL")"
    put_r "$cipher" "$srv" dl_cpu "$(calc "$M_CPU * 1024 / $SIZE_MIB")"
    log "  download: ${M_WALL}s wall, ${M_CPU}s server CPU"
}

bench_upload() {
    local srv=$1 cipher=$2 batch=$WORK/batch.upload size
    rm -f "$WORK/files/up.bin"
    # big.bin is on tmpfs too, so it doubles as the local upload source.
    echo "put $WORK/files/big.bin up.bin" >"$batch"
    measure_session "$srv" "$cipher" "$batch" "$BIG_LIMIT"
    size=$(stat -c %s "$WORK/files/up.bin" 2>/dev/null || echo missing)
    [[ $size == $(( SIZE_MIB * 1024 * 1024 )) ]] ||
        die "${SRV_NAME[$srv]}: uploaded up.bin has size $size, expected $(( SIZE_MIB * 1024 * 1024 ))"
    rm -f "$WORK/files/up.bin"
    put_r "$cipher" "$srv" ul_mibs "$(calc "$SIZE_MIB / $M_WALL")"
    put_r "$cipher" "$srv" ul_cpu "$(calc "$M_CPU * 1024 / $SIZE_MIB")"
    log "  upload: ${M_WALL}s wall, ${M_CPU}s server CPU"
}

# One `put` line per file in a single batch, so it is one session and the
# figure is dominated by per-file request round trips, not logins.
bench_small_files() {
    local srv=$1 cipher=$2 batch=$WORK/batch.small f n
    rm -rf "$WORK/files/small"
    {
        echo "mkdir small"
        for f in "$WORK"/small-src/f*; do echo "put $f small/${f##*/}"; done
    } >"$batch"
    measure_session "$srv" "$cipher" "$batch" 600
    n=$(find "$WORK/files/small" -type f -size 4k 2>/dev/null | wc -l)
    (( n == N_SMALL )) || die "${SRV_NAME[$srv]}: $n of $N_SMALL small files arrived"
    rm -rf "$WORK/files/small"
    put_r "$cipher" "$srv" small_fps "$(calc "$N_SMALL / $M_WALL")"
    put_r "$cipher" "$srv" small_cpu "$M_CPU"
    log "  $N_SMALL small files: ${M_WALL}s wall, ${M_CPU}s server CPU"
}

# N sequential sessions that only run `pwd`: the cost of key exchange, user
# authentication and SFTP subsystem start-up.
bench_logins() {
    local srv=$1 cipher=$2 batch=$WORK/batch.pwd i c0 c1 t0 t1 wall cpu
    echo "pwd" >"$batch"
    settle "$srv"
    c0=$(tree_cpu_ticks "${SRV_PID[$srv]}")
    t0=$(now)
    for (( i = 0; i < N_LOGINS; i++ )); do
        run_batch "$srv" "$cipher" "$batch" 60
    done
    t1=$(now)
    settle "$srv"
    c1=$(tree_cpu_ticks "${SRV_PID[$srv]}")
    wall=$(calc "($t1 - $t0) * 1000 / $N_LOGINS")
    cpu=$(calc "($c1 - $c0) * 1000 / $CLK_TCK / $N_LOGINS")
    put_r "$cipher" "$srv" login_ms "$wall"
    put_r "$cipher" "$srv" login_cpu_ms "$cpu"
    log "  $N_LOGINS logins: ${wall} ms wall/login, ${cpu} ms server CPU/login"
}

# Server memory per idle session. Each client is an `sftp -b -` reading its
# commands from its own fifo; a holder process writes `pwd` into the fifo and
# then sleeps with it open, so the client logs in, starts the SFTP subsystem,
# answers `pwd` (proof that the session is fully up) and then idles. Killing
# the holder gives the client EOF and it disconnects cleanly.
bench_idle() {
    local srv=$1 cipher=$2 dir=$WORK/idle i n=$N_IDLE
    local rss0 pss0 rss1 pss1 ready alive dead deadline pid est
    rm -rf "$dir"
    mkdir -p "$dir"
    # A fresh server process, so memory an allocator kept from the big transfers
    # (or from the previous idle test) cannot absorb the new sessions; one
    # warm-up login first, so one-time initialisation is not counted either.
    log "  restarting ${SRV_NAME[$srv]} for the idle-session test"
    restart_server "$srv"
    echo "pwd" >"$dir/batch.pwd"
    run_batch "$srv" "$cipher" "$dir/batch.pwd" 60
    settle "$srv"
    read -r rss0 pss0 < <(tree_mem_kib "${SRV_PID[$srv]}")
    build_sftp_cmd "$srv" "$cipher"
    IDLE_CLIENTS=()
    IDLE_HOLDERS=()
    for (( i = 0; i < n; i++ )); do
        mkfifo "$dir/in.$i"
        # `exec` makes $! the PID of the sleep itself.
        { echo pwd; exec sleep infinity; } >"$dir/in.$i" &
        IDLE_HOLDERS+=("$!")
        "${SFTP_ARGS[@]}" -b - "$SFTP_TARGET" <"$dir/in.$i" >"$dir/out.$i" 2>&1 &
        IDLE_CLIENTS+=("$!")
    done
    # Wait for every client to have printed the pwd answer (or died).
    deadline=$(( SECONDS + 60 + n / 2 ))
    while :; do
        ready=$( { grep -l -F 'Remote working directory' "$dir"/out.* 2>/dev/null || true; } | wc -l)
        alive=0
        for pid in "${IDLE_CLIENTS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=$(( alive + 1 )); done
        dead=$(( n - alive ))
        (( ready >= n || ready + dead >= n )) && break
        if (( SECONDS >= deadline )); then
            warn "${SRV_NAME[$srv]}: only $ready of $n idle sessions came up before the timeout"
            break
        fi
        sleep 0.5
    done
    if (( dead > 0 )); then
        warn "${SRV_NAME[$srv]}: $dead idle clients exited early; output of one of them:"
        for (( i = 0; i < n; i++ )); do
            if ! grep -q -F 'Remote working directory' "$dir/out.$i"; then
                tail -n 5 "$dir/out.$i" >&2
                break
            fi
        done
    fi
    # Give the server a moment to finish post-login work before sampling.
    sleep 1
    read -r rss1 pss1 < <(tree_mem_kib "${SRV_PID[$srv]}")
    est=$(count_established "${SRV_PORT[$srv]}")
    log "  idle: $ready/$n sessions up, $est established; server RSS ${rss0}->${rss1} KiB, PSS ${pss0}->${pss1} KiB"
    # Holders first: the clients then see EOF and disconnect on their own.
    stop_pids "${IDLE_HOLDERS[@]}"
    IDLE_HOLDERS=()
    stop_pids "${IDLE_CLIENTS[@]}"
    IDLE_CLIENTS=()
    settle "$srv"
    rm -rf "$dir"
    (( ready > 0 )) || die "${SRV_NAME[$srv]}: no idle session came up; see the client output above"
    put_r "$cipher" "$srv" idle_n "$ready"
    put_r "$cipher" "$srv" idle_rss "$(calc "($rss1 - $rss0) / $ready")"
    put_r "$cipher" "$srv" idle_pss "$(calc "($pss1 - $pss0) / $ready")"
}

# ------------------------------------------------------------------ report ---

SIZE_LABEL="$SIZE_MIB MiB"
(( SIZE_MIB % 1024 == 0 )) && SIZE_LABEL="$(( SIZE_MIB / 1024 )) GiB"

METRICS=(dl_mibs dl_cpu ul_mibs ul_cpu small_fps small_cpu login_ms login_cpu_ms idle_rss idle_pss)
declare -A M_LABEL M_BETTER M_DIGITS
M_LABEL[dl_mibs]="Download $SIZE_LABEL (MiB/s)";             M_BETTER[dl_mibs]=higher;     M_DIGITS[dl_mibs]=1
M_LABEL[dl_cpu]="Download: server CPU (s/GiB)";             M_BETTER[dl_cpu]=lower;       M_DIGITS[dl_cpu]=2
M_LABEL[ul_mibs]="Upload $SIZE_LABEL (MiB/s)";               M_BETTER[ul_mibs]=higher;     M_DIGITS[ul_mibs]=1
M_LABEL[ul_cpu]="Upload: server CPU (s/GiB)";               M_BETTER[ul_cpu]=lower;       M_DIGITS[ul_cpu]=2
M_LABEL[small_fps]="$N_SMALL x 4 KiB upload, 1 session (files/s)"; M_BETTER[small_fps]=higher; M_DIGITS[small_fps]=0
M_LABEL[small_cpu]="$N_SMALL x 4 KiB upload: server CPU (s)"; M_BETTER[small_cpu]=lower; M_DIGITS[small_cpu]=2
M_LABEL[login_ms]="Login + pwd, wall (ms/login)";           M_BETTER[login_ms]=lower;     M_DIGITS[login_ms]=1
M_LABEL[login_cpu_ms]="Login: server CPU (ms/login)";       M_BETTER[login_cpu_ms]=lower; M_DIGITS[login_cpu_ms]=1
M_LABEL[idle_rss]="$N_IDLE idle sessions: server RSS (KiB/session)"; M_BETTER[idle_rss]=lower; M_DIGITS[idle_rss]=0
M_LABEL[idle_pss]="$N_IDLE idle sessions: server PSS (KiB/session)"; M_BETTER[idle_pss]=lower; M_DIGITS[idle_pss]=0

# Print the Markdown table. Ratio is always ferry/OpenSSH; the "better" column
# says which direction wins for that metric, the verdict applies it (+-5% = tie).
print_table() {
    local cipher m f o ratio verdict fs os
    echo "| Cipher | Metric | Better | ferry | OpenSSH | ferry/OpenSSH | Verdict |"
    echo "|---|---|---|---:|---:|---:|---|"
    for cipher in "${CIPHERS[@]}"; do
        for m in "${METRICS[@]}"; do
            f=${R["$cipher|ferry|$m"]:-}
            o=${R["$cipher|openssh|$m"]:-}
            fs=-; os=-; ratio=-; verdict=-
            [[ -n $f ]] && fs=$(fmt "$f" "${M_DIGITS[$m]}")
            [[ -n $o ]] && os=$(fmt "$o" "${M_DIGITS[$m]}")
            if [[ -n $f && -n $o ]]; then
                ratio=$(ratio "$f" "$o")
                verdict=$(awk -v r="$ratio" -v b="${M_BETTER[$m]}" 'BEGIN {
                    if (r == "n/a") { print "-"; exit }
                    if (r >= 0.95 && r <= 1.05) { print "tie"; exit }
                    if ((b == "higher") == (r > 1)) print "ferry better"; else print "OpenSSH better" }')
            fi
            echo "| ${cipher%@openssh.com} | ${M_LABEL[$m]} | ${M_BETTER[$m]} | $fs | $os | $ratio | $verdict |"
        done
    done
    echo
    echo "- Loopback, client and servers on the same $(nproc)-CPU host; the $(ssh -V 2>&1 | cut -d, -f1) sftp client for both."
    echo "- Throughput and CPU include one SSH handshake per transfer; CPU is summed over each server's process tree."
    local s c
    for s in "${SERVERS[@]}"; do
        echo "- ${SRV_NAME[$s]}: ${SRV_ALGS[$s]:-?}."
    done
    for s in "${SERVERS[@]}"; do
        for c in "${CIPHERS[@]}"; do
            local got=${R["$c|$s|idle_n"]:-$N_IDLE}
            (( got == N_IDLE )) || echo "- Note: ${SRV_NAME[$s]} ($c): only $got of $N_IDLE idle sessions came up; per-session memory is over those."
        done
    done
}

append_report() {
    local table=$1
    {
        echo
        echo "## ferry vs OpenSSH SFTP, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
        echo
        print_run_metadata
        want_server ferry && echo "- ferry binary: $FERRY_BIN"
        want_server openssh && echo "- sshd: $("$SSHD_BIN" -V 2>&1 | head -n 1 || true)"
        echo
        echo "$table"
    } >>"$OUT_FILE"
    log "appended results to $OUT_FILE"
}

# -------------------------------------------------------------------- main ---

log "work directory: $WORK"
mkdir -p "$WORK/files" "$WORK/small-src"

log "creating files/big.bin ($SIZE_MIB MiB) and $N_SMALL x 4 KiB local files"
dd if=/dev/urandom of="$WORK/files/big.bin" bs=1M count="$SIZE_MIB" iflag=fullblock status=none
# One random blob split into 4 KiB pieces: f0000, f0001, ...
dd if=/dev/urandom of="$WORK/small.blob" bs=4096 count="$N_SMALL" iflag=fullblock status=none
(cd "$WORK/small-src" && split -b 4096 -a 4 -d "$WORK/small.blob" f)
rm -f "$WORK/small.blob"
ssh-keygen -q -t ed25519 -N '' -C ferry-bench-client -f "$WORK/client_key"

for s in "${SERVERS[@]}"; do
    case $s in
        openssh) setup_openssh ;;
        ferry)   setup_ferry ;;
    esac
    launch_server "$s"
done

for s in "${SERVERS[@]}"; do
    for c in "${CIPHERS[@]}"; do smoke_test "$s" "$c"; done
done

for cipher in "${CIPHERS[@]}"; do
    for s in "${SERVERS[@]}"; do
        log "== ${SRV_NAME[$s]}, $cipher"
        bench_download "$s" "$cipher"
        bench_upload "$s" "$cipher"
        bench_small_files "$s" "$cipher"
        bench_logins "$s" "$cipher"
        bench_idle "$s" "$cipher"
    done
done

TABLE=$(print_table)
echo "$TABLE"
[[ -n $OUT_FILE ]] && append_report "$TABLE"
exit 0
