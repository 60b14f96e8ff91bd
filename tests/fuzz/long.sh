#!/usr/bin/env bash
# The long run of ferry's property and fuzz tests (stable Rust, proptest): the same tests CI
# runs in seconds, with many more cases and a fresh random seed each round, for FUZZ_MINUTES
# (default 60). Covered: the SFTP packet decoder (src/protocols/sftp/wire_props.rs) and
# dispatcher over a real SSH channel (tests/it/sftp_fuzz.rs), the SCP control-line parser
# (src/protocols/sftp/scp_props.rs), the FTP command parser (src/protocols/ftp/command_props.rs),
# the HTTP Range parser (src/protocols/http/range_props.rs), the virtual-path normaliser
# (src/vfs/path_props.rs) and the configuration loader (src/config/props.rs).
#
# A failing case stops the run. proptest records it (shrunk) under proptest-regressions/ next
# to the source path, and replays it first on every later run: commit that file with the fix.
# The dispatcher test prints its seed; FERRY_FUZZ_SEED=<seed> replays it.
#
# Usage: tests/fuzz/long.sh            (FUZZ_MINUTES, PROPTEST_CASES, CARGO_TARGET_DIR honoured)
# Loopback only: the dispatcher test starts its own server on 127.0.0.1:0.

set -euo pipefail
cd "$(dirname "$0")/../.."

MINUTES=${FUZZ_MINUTES:-60}
UNIT_CASES=${PROPTEST_CASES:-20000}
# Each dispatcher case is a pipelined batch over the network: fewer per round.
CHANNEL_CASES=$(( UNIT_CASES / 10 > 0 ? UNIT_CASES / 10 : 1 ))
[[ $MINUTES =~ ^[0-9]+$ && $MINUTES -gt 0 ]] || { echo "FUZZ_MINUTES must be a positive integer" >&2; exit 2; }
FERRY_TEST_PYTHON=${FERRY_TEST_PYTHON:-/root/.cache/ferry-test-venv/bin/python}
export FERRY_TEST_PYTHON

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

log "building the test binaries"
cargo test --locked --lib --no-run
cargo test --locked --test it --no-run

deadline=$(( $(date +%s) + MINUTES * 60 ))
round=0
while (( $(date +%s) < deadline )); do
    round=$(( round + 1 ))
    log "round $round: unit properties, $UNIT_CASES cases each"
    if ! PROPTEST_CASES=$UNIT_CASES cargo test --locked --lib props -- --test-threads 2; then
        log "round $round: a property failed; its case is recorded under proptest-regressions/"
        git status --short -- proptest-regressions >&2 || true
        exit 1
    fi
    (( $(date +%s) < deadline )) || break
    log "round $round: SFTP dispatcher over SSH and FTP control connection, $CHANNEL_CASES batches each"
    if ! PROPTEST_CASES=$CHANNEL_CASES cargo test --locked --test it fuzz -- --nocapture; then
        log "round $round: the dispatcher test failed; replay with the FERRY_FUZZ_SEED printed above"
        exit 1
    fi
done
log "no failure in $round rounds over $MINUTES minutes"
