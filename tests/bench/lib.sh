# shellcheck shell=bash
# Helpers shared by the benchmark scripts in this directory, which source this file. It only
# defines functions: the common prologue (bench_init: shell options, paths, the command line),
# the options every script takes (common_opt: --out, --keep, --help), finding the ferry binary
# (need_ferry), the work directory and exit cleanup (bench_workdir), starting and stopping ferry
# (start_ferry, stop_ferry, listeners_off), messages and option checks, signalling and reaping
# our own child processes, /proc accounting of a server's process tree, small number and port
# utilities (ratio, calc, fmt, free_port), and a few report helpers.
#
# A script starts like this:
#   source "$(dirname "$0")/lib.sh"
#   bench_init "$@"
#   while [[ $# -gt 0 ]]; do
#       case $1 in
#           --runs) need_arg "$@"; is_uint "$2" --runs; RUNS=$2; shift 2 ;;
#           *) common_opt "$@"; shift "$SHIFT_BY" ;;
#       esac
#   done
#   need_ferry
#   bench_workdir httpsbench /dev/shm
#
# Globals (set by bench_init and bench_workdir, or by the script; read when a function runs):
#   WORK          the run's work directory (its *.log files are shown on failure)
#   KEEP          1 to keep WORK at the end, else 0 (--keep)
#   OUT_FILE      where the report is appended too, or empty (--out)
#   PIDS          processes to stop at exit (start_ferry adds to it)
#   REPO_ROOT     the repository, for git_commit
#   CMDLINE       the script's command line, for print_run_metadata
#   SERVERS_CSV   comma-separated servers of this run, for want_server
#   HAVE_SS       1 if `ss` is available, for count_established
#   SRV_PID SRV_BASE SRV_NAME   associative arrays keyed by server, for settle
#   R             associative array of results, for put_r
# A script that must undo more at exit (a daemon's pidfile, a second folder) defines on_exit;
# it runs before the processes in PIDS are stopped.

die() { echo "error: $*" >&2; exit 1; }
warn() { echo "warning: $*" >&2; }
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# --------------------------------------------------------------- prologue ---

# The common start of every script: strict shell options, '.' as the decimal separator
# (EPOCHREALTIME, awk, printf), SCRIPT_DIR and REPO_ROOT, CMDLINE (pass the script's "$@"),
# and the defaults of the common options.
bench_init() {
    set -euo pipefail
    shopt -s inherit_errexit
    export LC_ALL=C
    SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
    REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
    CMDLINE=$(printf '%q ' "$0" "$@")
    CMDLINE=${CMDLINE% }
    OUT_FILE='' KEEP=0 SHIFT_BY=1
}

# ---------------------------------------------------------------- options ---

# One of the options every script takes, else an error. SHIFT_BY tells how many words it used.
#   --out FILE   also append the report to FILE
#   --keep       keep the work directory
#   -h, --help   the script's `usage` function if it has one, else its opening comment
common_opt() {
    case $1 in
        --out)     need_arg "$@"; OUT_FILE=$2; SHIFT_BY=2 ;;
        --keep)    KEEP=1; SHIFT_BY=1 ;;
        -h|--help) bench_usage; exit 0 ;;
        *)         die "unknown option: $1 (see --help)" ;;
    esac
}

# The script's `usage`, or the comment block after its first line, without the '# '.
bench_usage() {
    if declare -F usage >/dev/null; then usage; return; fi
    awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"
}

need_arg() { [[ $# -ge 2 && -n $2 ]] || die "option $1 needs an argument"; }
is_uint() { [[ $1 =~ ^[1-9][0-9]*$ ]] || die "$2 must be a positive integer, got '$1'"; }
want_server() { [[ ",$SERVERS_CSV," == *",$1,"* ]]; }

# Set FERRY_BIN to its default unless the caller set it:
# $CARGO_TARGET_DIR/release/ferry if CARGO_TARGET_DIR is set, else
# <repo>/target/release/ferry.
default_ferry_bin() {
    if [[ -z ${FERRY_BIN:-} ]]; then
        if [[ -n ${CARGO_TARGET_DIR:-} ]]; then
            FERRY_BIN=$CARGO_TARGET_DIR/release/ferry
        else
            FERRY_BIN=$REPO_ROOT/target/release/ferry
        fi
    fi
}

# Set FERRY_BIN (default_ferry_bin) and insist that it is there, as an absolute path.
need_ferry() {
    default_ferry_bin
    [[ -f $FERRY_BIN && -x $FERRY_BIN ]] ||
        die "ferry not found at $FERRY_BIN: build it first (cargo build --release --locked) or set FERRY_BIN"
    FERRY_BIN=$(cd "$(dirname "$FERRY_BIN")" && pwd)/$(basename "$FERRY_BIN")
}

# ---------------------------------------------------- process bookkeeping ---

# Make the run's work directory WORK (PARENT/ferry-NAME.XXXX, PARENT defaulting to /tmp), start
# an empty PIDS, and arrange the exit: the script's on_exit if it has one, then every PID in
# PIDS stopped, then finish_work (logs shown on failure, WORK removed unless --keep).
bench_workdir() {
    WORK=$(mktemp -d "${2:-/tmp}/ferry-$1.XXXX")
    PIDS=()
    trap bench_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# shellcheck disable=SC2317  # invoked via trap
bench_exit() {
    local rc=$?
    trap - EXIT INT TERM
    if declare -F on_exit >/dev/null; then on_exit || true; fi
    if (( ${#PIDS[@]} )); then stop_pids "${PIDS[@]}"; fi
    finish_work "$rc"
    exit "$rc"
}

# Start `ferry serve --config CONFIG` (output appended to WORK/NAME.log), add it to PIDS and
# wait until every PORT accepts connections. Its PID is left in FERRY_PID (so never call this
# in $(...): the PID must be a child of the script's own shell for stop_pids).
start_ferry() {
    local name=$1 config=$2 port
    shift 2
    # FERRY_CPUS (a taskset list such as "0") keeps ferry on those CPUs.
    local -a pin=()
    [[ -n ${FERRY_CPUS:-} ]] && pin=(taskset -c "$FERRY_CPUS")
    "${pin[@]}" "$FERRY_BIN" serve --config "$config" >>"$WORK/$name.log" 2>&1 &
    FERRY_PID=$!
    PIDS+=("$FERRY_PID")
    for port in "$@"; do wait_for_port "$port" "$FERRY_PID" "ferry ($name)"; done
}

# Stop one ferry that start_ferry started, by its PID, and forget it.
stop_ferry() {
    local pid=$1 p
    local -a rest=()
    stop_pids "$pid"
    for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || rest+=("$p"); done
    PIDS=("${rest[@]}")
}

# The TOML sections that turn off each ferry listener (sftp ftp ftps https ops) not named, so a
# benchmark listens on nothing it does not measure (and clashes with no default port).
listeners_off() {
    local name
    for name in sftp ftp ftps https ops; do
        [[ " $* " == *" $name "* ]] || printf '[%s]\nenabled = false\n' "$name"
    done
}


# True if PID is still a child of this shell. Checked before every signal so a
# PID that has exited and been reused by an unrelated process is never hit.
is_our_child() {
    local line rest
    local -a fields
    { read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
    rest=${line##*) }
    read -ra fields <<<"$rest"
    [[ ${fields[1]} == "$$" && ${fields[0]} != Z ]]
}

# Send TERM to each still-running PID, give them a few seconds, then KILL, and
# reap them. Only PIDs this script started are ever passed in here.
stop_pids() {
    local pid alive i
    for pid in "$@"; do
        if is_our_child "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
    done
    for (( i = 0; i < 50; i++ )); do
        alive=0
        for pid in "$@"; do
            if is_our_child "$pid"; then alive=1; break; fi
        done
        (( alive )) || break
        sleep 0.1
    done
    for pid in "$@"; do
        if is_our_child "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    done
    # `wait` reaps them and keeps bash from printing "Terminated" notices.
    for pid in "$@"; do { wait "$pid"; } 2>/dev/null || true; done
}

# The common end of the scripts' cleanup(), after their processes are stopped:
# if the exit status RC is not 0, show the last lines of every non-empty log in
# WORK; then remove WORK, unless KEEP is set.
finish_work() {
    local rc=$1
    if (( rc != 0 )); then
        local f
        for f in "$WORK"/*.log; do
            [[ -s $f ]] || continue
            echo "---- last lines of $f ----" >&2
            tail -n 15 "$f" >&2
        done
    fi
    if (( KEEP )); then
        echo "work directory kept: $WORK" >&2
    else
        rm -rf -- "$WORK"
    fi
}

# ------------------------------------------------------- /proc accounting ---

# Print ROOT and all its live descendants, one PID per line. sshd and vsftpd
# fork per connection, so per-server figures must cover the tree.
tree_pids() {
    local root=$1 f line rest pid ppid
    local -A kids=()
    local -a fields
    for f in /proc/[0-9]*/stat; do
        { read -r line <"$f"; } 2>/dev/null || continue   # it may just have exited
        pid=${f#/proc/}; pid=${pid%/stat}
        rest=${line##*) }            # the comm field may contain spaces and ')'
        read -ra fields <<<"$rest"   # fields[0] is field 3 (state), [1] is ppid
        ppid=${fields[1]}
        kids[$ppid]+=" $pid"
    done
    local -a queue=("$root")
    while (( ${#queue[@]} )); do
        pid=${queue[0]}
        queue=("${queue[@]:1}")
        echo "$pid"
        if [[ -n ${kids[$pid]:-} ]]; then
            # shellcheck disable=SC2206  # intentional split of a list of PIDs
            queue+=(${kids[$pid]})
        fi
    done
    return 0
}

# CPU clock ticks used so far by the server's process tree.
# For every process in the tree: utime+stime (fields 14,15) plus cutime+cstime
# (fields 16,17). A per-connection process (sshd, vsftpd) that has exited and
# been reaped is accounted in its parent's cutime/cstime (ultimately the
# listener's), so nothing is lost or double counted as long as the children get
# reaped; that is why measurements call settle() before reading the "after"
# figure.
tree_cpu_ticks() {
    local pid line rest total=0
    local -a fields
    while read -r pid; do
        { read -r line <"/proc/$pid/stat"; } 2>/dev/null || continue
        rest=${line##*) }
        read -ra fields <<<"$rest"
        # fields[i] is field i+3: utime=14 -> 11, stime 12, cutime 13, cstime 14
        total=$(( total + fields[11] + fields[12] + fields[13] + fields[14] ))
    done < <(tree_pids "$1")
    echo "$total"
}

# "RSS_KiB PSS_KiB" summed over the server's process tree. PSS splits shared
# pages (libc, libcrypto, ...) between the many processes of a forking server
# (sshd, vsftpd), so it is the fairer memory figure there; for single-process
# servers RSS ~= PSS.
tree_mem_kib() {
    local pid key val rest rss=0 pss=0
    while read -r pid; do
        while read -r key val rest; do
            [[ $key == VmRSS: ]] && { rss=$(( rss + val )); break; }
        done 2>/dev/null <"/proc/$pid/status" || true
        while read -r key val rest; do
            [[ $key == Pss: ]] && { pss=$(( pss + val )); break; }
        done 2>/dev/null <"/proc/$pid/smaps_rollup" || true
    done < <(tree_pids "$1")
    echo "$rss $pss"
}

tree_count() { tree_pids "$1" | wc -l; }

# Wait until the server's process tree is back to its idle size SRV_BASE, i.e.
# a forking server has reaped its per-connection processes (their CPU then
# shows up in the listener's cutime/cstime). For single-process servers this
# only waits the grace time.
settle() {
    local srv=$1 i
    sleep 0.2
    for (( i = 0; i < 100; i++ )); do
        if (( $(tree_count "${SRV_PID[$srv]}") <= ${SRV_BASE[$srv]} )); then return 0; fi
        sleep 0.1
    done
    warn "${SRV_NAME[$srv]}: process tree did not shrink back to ${SRV_BASE[$srv]} process(es)"
}

# Established TCP connections to local port PORT, or "?" without `ss`.
count_established() {
    if (( HAVE_SS )); then
        ss -Htn state established "( sport = :$1 )" | wc -l
    else
        echo "?"
    fi
}

# ------------------------------------------------------------ small utils ---

# Wait until 127.0.0.1:PORT accepts TCP connections, failing early if PID died.
wait_for_port() {
    local port=$1 pid=$2 name=$3 i
    for (( i = 0; i < 200; i++ )); do
        kill -0 "$pid" 2>/dev/null || die "$name (pid $pid) exited during startup"
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    die "$name did not accept connections on 127.0.0.1:$port within 10 s"
}

# A / B with DIGITS decimals (default 2), or "n/a" when B is 0.
ratio() {
    awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN { if (b == 0) print "n/a"; else printf("%." d "f", a / b) }'
}

calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
now() { echo "$EPOCHREALTIME"; }

free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# ------------------------------------------------------------------ report ---

# R[key1|key2|key3]=VALUE
# shellcheck disable=SC2034  # R is the sourcing script's results array
put_r() { R["$1|$2|$3"]=$4; }

# NUMBER with DIGITS decimals.
fmt() { awk -v x="$1" -v d="$2" 'BEGIN { printf("%." d "f", x) }'; }

# Short commit of the repository, with "-dirty" if tracked files are modified.
git_commit() {
    local c
    c=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null) || { echo unknown; return; }
    [[ -n $(git -C "$REPO_ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]] && c+="-dirty"
    echo "$c"
}

# The run's metadata as Markdown list items: kernel, CPU, the command line
# (CMDLINE) and the ferry commit.
print_run_metadata() {
    local cpu
    cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    echo "- Kernel: $(uname -r)"
    echo "- CPU: ${cpu:-unknown} ($(nproc) CPUs)"
    echo "- Command: \`$CMDLINE\`"
    echo "- ferry commit: $(git_commit)"
}
