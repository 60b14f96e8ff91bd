#!/usr/bin/env bash
# The one test command: installs what the tests need on a fresh Debian machine with Rust,
# then runs the whole suite (unit tests and the tests/it integration binary): OpenSSH client and
# server, lftp, curl, rclone, chromium, slapd, ldap-utils, prometheus (prometheus and
# promtool), haproxy and postgresql (the tests initdb their own throwaway clusters) from Debian; paramiko, the moto S3 emulator (also behind the GCS
# emulator shim), azure-storage-blob, schemathesis and ssh-audit in a venv; the azurite Blob emulator and
# playwright-core (driving Debian's chromium) from npm; s3s-fs from crates.io (the tests start
# the emulators and services themselves on loopback ports).
#   tests/run.sh            # everything
#   tests/run.sh openssh    # only tests whose name matches a filter (passed to cargo test)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v sftp >/dev/null || need_apt+=(openssh-client)
command -v ssh-keygen >/dev/null || need_apt+=(openssh-client)
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
command -v lftp >/dev/null || need_apt+=(lftp)
command -v curl >/dev/null || need_apt+=(curl)
command -v rclone >/dev/null || need_apt+=(rclone)
command -v npm >/dev/null || need_apt+=(npm)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/sbin/slapd ] || need_apt+=(slapd)
command -v ldapmodify >/dev/null || need_apt+=(ldap-utils)
command -v promtool >/dev/null || need_apt+=(prometheus)
[ -x /usr/sbin/haproxy ] || need_apt+=(haproxy)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "==> apt-get install ${need_apt[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
    # The slapd package may start a system-wide server on port 389; the tests start their own
    # on loopback ports (tests/fixtures/ldap/start-slapd.sh), so stop the packaged one.
    if [[ " ${need_apt[*]} " == *" slapd "* ]] && command -v service >/dev/null; then
        $SUDO service slapd stop >/dev/null 2>&1 || true
    fi
    # Likewise the packaged Prometheus (port 9090): the tests run their own on a free port.
    if [[ " ${need_apt[*]} " == *" prometheus "* ]] && command -v service >/dev/null; then
        $SUDO service prometheus stop >/dev/null 2>&1 || true
    fi
    # And the packaged HAProxy: the tests start their own in front of ferry on loopback.
    if [[ " ${need_apt[*]} " == *" haproxy "* ]] && command -v service >/dev/null; then
        $SUDO service haproxy stop >/dev/null 2>&1 || true
    fi
    # And the packaged PostgreSQL cluster: the tests make their own in temp folders.
    if [[ " ${need_apt[*]} " == *" postgresql "* ]] && command -v service >/dev/null; then
        $SUDO service postgresql stop >/dev/null 2>&1 || true
    fi
fi

# paramiko and the moto S3 emulator in a venv kept outside the clone, so reruns are quick.
VENV="${FERRY_TEST_VENV:-$HOME/.cache/ferry-test-venv}"
if ! "$VENV/bin/python" -c 'import paramiko, moto.server, azure.storage.blob' 2>/dev/null \
    || [ ! -x "$VENV/bin/moto_server" ] || [ ! -x "$VENV/bin/schemathesis" ]; then
    echo "==> creating $VENV with paramiko, moto[server], azure-storage-blob and schemathesis"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check paramiko "moto[server]" azure-storage-blob schemathesis
fi
# ssh-audit checks the default SSH algorithms (tests/it/ssh_audit.rs).
if [ ! -x "$VENV/bin/ssh-audit" ]; then
    echo "==> installing ssh-audit into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check ssh-audit
fi
export FERRY_TEST_SSH_AUDIT="$VENV/bin/ssh-audit"
export FERRY_TEST_PYTHON="$VENV/bin/python"

# The azurite Blob emulator from npm, also outside the clone.
NODE_DIR="${FERRY_TEST_NODE:-$HOME/.cache/ferry-test-node}"
if [ ! -x "$NODE_DIR/node_modules/.bin/azurite-blob" ] || [ ! -d "$NODE_DIR/node_modules/playwright-core" ]; then
    echo "==> installing azurite and playwright-core into $NODE_DIR"
    mkdir -p "$NODE_DIR"
    (cd "$NODE_DIR" && npm install --silent --no-audit --no-fund azurite@3 playwright-core)
fi
export FERRY_TEST_AZURITE="$NODE_DIR/node_modules/.bin/azurite-blob"
export FERRY_TEST_NODE="$NODE_DIR"

# s3s-fs, a fast S3 server over a folder (crates.io), for the gigabyte transfers; built once
# into a folder outside the clone. The GCS tests use tests/clients/gcs_emulator.py (moto).
TOOLS="${FERRY_TEST_TOOLS:-$HOME/.cache/ferry-tools}"
if ! "$TOOLS/bin/s3s-fs" --version 2>/dev/null | grep -q '0.14.1'; then
    echo "==> cargo install s3s-fs 0.14.1 into $TOOLS"
    cargo install -q --locked s3s-fs --version 0.14.1 --features binary --root "$TOOLS"
fi
export FERRY_TEST_S3S="$TOOLS/bin/s3s-fs"

echo "==> monitoring assets (promtool check/test rules, dashboard queries)"
tests/monitoring/check.sh
echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "==> cargo test"
cargo test --locked -- "$@"
