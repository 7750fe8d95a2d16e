#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine or a developer's:
#   tests/run.sh [extra pytest arguments, e.g. -k cancel]
# Installs the real peers the end-to-end tests need (Prosody, SIPp, slixmpp,
# pytest) when missing, then: fmt, clippy, the gates of tests/gates.sh
# (rust-version, cargo-deny, docs, fuzz targets, pure crates), build, unit
# tests, e2e tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# ejabberd: the second XMPP server (tests/e2e/test_ejabberd.py runs a private
# instance of it: its own node name, spool and ports, no epmd). Its package
# would start a system ejabberd and epmd; install_missing keeps package
# services from starting (policy-rc.d). On a machine with systemd running,
# `systemctl disable --now ejabberd epmd.socket epmd.service` if a system
# instance was started before.
# PostgreSQL: the shared store of several gateways (the store's tests run on
# it as well as on SQLite; tests/e2e/test_scale_out.py runs two gateways on
# it behind Kamailio's dispatcher). Neither package's system service is used.
PACKAGES=(prosody lua-unbound sip-tester python3-slixmpp python3-pytest python3-venv sqlite3 baresip-core chromium dnsmasq-base rtpengine-daemon ejabberd postgresql kamailio)
DEBIAN_PYTHON=/usr/bin/python3   # Debian's: the python3 first on PATH may not see Debian packages
# The e2e tests run in a venv on Debian's python that also sees its packages
# (slixmpp, pytest) and adds aiortc for the media tests (requirements.txt).
VENV=tests/.venv
PYTHON=$VENV/bin/python

step() { printf '\n==> %s\n' "$*"; }
die() { printf '\ntests/run.sh: FAILED: %s\n' "$*" >&2; exit 1; }
run() { local what=$1; shift; step "$what"; "$@" || die "$what ($*)"; }

install_missing() {
    local missing=()
    # Installed means "install ok installed": a removed package whose config
    # files remain still answers `dpkg -s`.
    for pkg in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$pkg")
    done
    command -v sipp >/dev/null || [[ " ${missing[*]} " == *" sip-tester "* ]] || missing+=(sip-tester)
    command -v prosodyctl >/dev/null || [[ " ${missing[*]} " == *" prosody "* ]] || missing+=(prosody)
    command -v baresip >/dev/null || [[ " ${missing[*]} " == *" baresip-core "* ]] || missing+=(baresip-core)
    command -v rtpengine >/dev/null || [[ " ${missing[*]} " == *" rtpengine-daemon "* ]] || missing+=(rtpengine-daemon)
    # Node.js may come from elsewhere (nodesource): only when there is none.
    command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
    [ ${#missing[@]} -eq 0 ] && { step "test peers already installed"; return; }
    step "installing ${missing[*]}"
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update || die "apt-get update"
    # The packages must not start their system services (Prosody, ejabberd,
    # epmd, rtpengine on the standard ports): the tests run their own. A
    # policy-rc.d that denies starts (exit 101) is in place while apt runs,
    # unless the machine has one already.
    local guard=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null \
            && "${sudo[@]}" chmod 755 /usr/sbin/policy-rc.d && guard=1
    fi
    local status=0
    "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" || status=$?
    [ -z "$guard" ] || "${sudo[@]}" rm -f /usr/sbin/policy-rc.d
    [ "$status" -eq 0 ] || die "apt-get install ${missing[*]}"
}

# Incremental compilation only pays back in an edit-build loop; here it
# would only take disk.
export CARGO_INCREMENTAL=0
step "disk free before the build"
df -h . | tail -1
command -v cargo >/dev/null || die "cargo not found (install Rust: https://rustup.rs)"
command -v apt-get >/dev/null || die "apt-get not found: the e2e peers come from Debian packages"
install_missing
"$DEBIAN_PYTHON" -c 'import slixmpp, pytest' || die "$DEBIAN_PYTHON cannot import slixmpp and pytest"
if ! "$PYTHON" -c 'import slixmpp, pytest, aiortc' 2>/dev/null \
    || ! cmp -s tests/e2e/requirements.txt "$VENV/requirements.txt"; then
    run "venv $VENV" "$DEBIAN_PYTHON" -m venv --system-site-packages --clear "$VENV"
    run "pip install (tests/e2e/requirements.txt)" "$VENV/bin/pip" install --quiet \
        --disable-pip-version-check -r tests/e2e/requirements.txt
    cp tests/e2e/requirements.txt "$VENV/requirements.txt"
fi
"$PYTHON" -c 'import slixmpp, pytest, aiortc' || die "$PYTHON cannot import slixmpp, pytest and aiortc"
# JsSIP, playwright-core and esbuild for the browser tests (tests/e2e/browser).
if [ ! -d tests/e2e/browser/node_modules ]; then
    run "npm ci (tests/e2e/browser)" npm ci --prefix tests/e2e/browser --no-audit --no-fund
fi

run "cargo fmt --check" cargo fmt --all --check
run "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
run "gates (tests/gates.sh)" tests/gates.sh
run "cargo build -p stox-gateway" cargo build -p stox-gateway
# The store's tests run on a private PostgreSQL too (a cluster of its own on
# a free loopback port, removed afterwards): STOX_TEST_POSTGRES_URL names a
# role that may create a database per test.
start_postgres() {
    local bin
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    [ -x "$bin/initdb" ] || die "PostgreSQL's initdb not found under /usr/lib/postgresql"
    PG_DIR=$(mktemp -d /tmp/stox-test-pg.XXXXXX)
    local as=()
    # initdb refuses root: the cluster belongs to the postgres user then.
    if [ "$(id -u)" -eq 0 ]; then chown postgres "$PG_DIR"; as=(runuser -u postgres --); fi
    local port
    port=$("$DEBIAN_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "${as[@]}" "$bin/initdb" -D "$PG_DIR/data" -A trust -U stox --no-sync >"$PG_DIR/initdb.log" 2>&1 \
        || { cat "$PG_DIR/initdb.log"; die "initdb"; }
    "${as[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 30 \
        -o "-h 127.0.0.1 -p $port -k $PG_DIR -F" start >/dev/null \
        || { cat "$PG_DIR/server.log"; die "starting PostgreSQL"; }
    PG_STOP=("${as[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -m fast -w stop)
    export STOX_TEST_POSTGRES_URL="postgres://stox@127.0.0.1:$port/postgres" STOX_TEST_REQUIRE_POSTGRES=1
}
stop_postgres() {
    [ -n "${PG_DIR:-}" ] || return 0
    "${PG_STOP[@]}" >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
    PG_DIR=""
}
trap stop_postgres EXIT
run "PostgreSQL for the store's tests" start_postgres
run "cargo test" cargo test --workspace
stop_postgres
step "end-to-end tests (Prosody, ejabberd, slixmpp, SIPp, baresip, Chromium, rtpengine, aiortc, PostgreSQL, Kamailio)"
STOX_E2E_REQUIRE_GATEWAY=1 STOX_E2E_REQUIRE_MEDIA=1 "$PYTHON" -m pytest -v tests/e2e "$@" \
    || die "end-to-end tests"
step "disk free after the tests"
df -h . | tail -1
step "all tests passed"
