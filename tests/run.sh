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
PACKAGES=(prosody lua-unbound sip-tester python3-slixmpp python3-pytest python3-venv sqlite3 baresip-core chromium dnsmasq-base rtpengine-daemon ejabberd)
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
run "cargo test" cargo test --workspace
step "end-to-end tests (Prosody, slixmpp, SIPp, baresip, Chromium, rtpengine, aiortc)"
STOX_E2E_REQUIRE_GATEWAY=1 STOX_E2E_REQUIRE_MEDIA=1 "$PYTHON" -m pytest -v tests/e2e "$@" \
    || die "end-to-end tests"
step "disk free after the tests"
df -h . | tail -1
step "all tests passed"
