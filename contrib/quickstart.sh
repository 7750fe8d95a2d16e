#!/usr/bin/env bash
# Try stox-gateway on one Debian 12 machine: Prosody with the gateway as its
# component, two XMPP users, the gateway built from this repository and
# started with a generated config, its registrar for a SIP phone.
#
#   sudo contrib/quickstart.sh          # set up (again) and start; prints how to call
#   sudo contrib/quickstart.sh status   # what runs, the accounts
#   sudo contrib/quickstart.sh stop     # stop the gateway (and Prosody if this script started it)
#   sudo contrib/quickstart.sh remove   # stop, then undo everything it set up
#
# Run it again at will: it keeps its secret and passwords (in STATE_DIR) and
# rewrites only its own files. It never edits Prosody's own config: it adds
# /etc/prosody/conf.d/stox-quickstart.cfg.lua (which Debian's prosody.cfg.lua
# includes) and a self-signed certificate for DOMAIN in /etc/prosody/certs,
# and refuses to overwrite a file there that it did not write.
#
# Needs root (apt, /etc/prosody, prosodyctl) and Rust >= 1.94 (rustup; Debian's
# rustc is too old). Under sudo, the build and the gateway run as the owner
# of the repository, not as root. The gateway is a debug build (PROFILE=release
# for an optimised one; the first build takes minutes either way) run in the
# background from target/<profile>/stox-gateway; its log is STATE_DIR/gateway.log.
# For a real deployment use contrib/stox-gateway.service (contrib/README.md).
#
# Settings (environment variables):
#   DOMAIN          XMPP domain, a new Prosody VirtualHost     (stox.localhost)
#   COMPONENT       the gateway's component name               (sip.$DOMAIN)
#   SIP_DOMAIN      the registrar's domain, for SIP phones     (phones.$DOMAIN)
#   XMPP_USERS      XMPP accounts to create on DOMAIN          ("juliet romeo")
#   SIP_USER        SIP account on SIP_DOMAIN                  (carol)
#   LISTEN          IPv4 address of the gateway's SIP and HTTP listeners;
#                   127.0.0.1 also puts Prosody's c2s and s2s
#                   ports on loopback                          (127.0.0.1)
#   PUBLIC_ADDRESS  this machine's address as phones see it: needed when
#                   LISTEN is 0.0.0.0
#   SIP_PORT        UDP and TCP                                (5060)
#   HTTP_PORT       /metrics, /health, /ready                  (9090)
#   COMPONENT_PORT  Prosody's component listener (loopback)    (5347)
#   PROFILE         debug or release                           (debug)
#   STATE_DIR       config, database, log, secrets             (<repo>/target/quickstart)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DOMAIN=${DOMAIN:-stox.localhost}
COMPONENT=${COMPONENT:-sip.$DOMAIN}
SIP_DOMAIN=${SIP_DOMAIN:-phones.$DOMAIN}
XMPP_USERS=${XMPP_USERS:-juliet romeo}
SIP_USER=${SIP_USER:-carol}
LISTEN=${LISTEN:-127.0.0.1}
PUBLIC_ADDRESS=${PUBLIC_ADDRESS:-}
SIP_PORT=${SIP_PORT:-5060}
HTTP_PORT=${HTTP_PORT:-9090}
COMPONENT_PORT=${COMPONENT_PORT:-5347}
PROFILE=${PROFILE:-debug}
STATE_DIR=${STATE_DIR:-$REPO/target/quickstart}

PROSODY_SNIPPET=/etc/prosody/conf.d/stox-quickstart.cfg.lua
CERT_DIR=/etc/prosody/certs
MARKER="-- stox-quickstart: written by stox-gateway's contrib/quickstart.sh"
CONFIG=$STATE_DIR/gateway.toml
LOG=$STATE_DIR/gateway.log
PIDFILE=$STATE_DIR/gateway.pid
BIN=$REPO/target/$PROFILE/stox-gateway

say() { printf '==> %s\n' "$*"; }
die() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }

# --- checks -------------------------------------------------------------------

[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0): it installs Prosody and configures it"
case $PROFILE in debug | release) ;; *) die "PROFILE must be debug or release" ;; esac
[[ $LISTEN =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || die "LISTEN must be an IPv4 address"
[ "$LISTEN" != 0.0.0.0 ] || [ -n "$PUBLIC_ADDRESS" ] \
    || die "LISTEN=0.0.0.0 needs PUBLIC_ADDRESS (this machine's address as phones reach it)"
case $STATE_DIR in /?*) ;; *) die "STATE_DIR must be an absolute path" ;; esac
for name in "$DOMAIN" "$COMPONENT" "$SIP_DOMAIN"; do
    [[ $name =~ ^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$ ]] || die "not a domain name: $name"
done
for user in $XMPP_USERS $SIP_USER; do
    [[ $user =~ ^[a-z0-9][a-z0-9._-]*$ ]] || die "not a plain user name: $user"
done

# The build and the gateway run as the owner of the repository (the user
# behind sudo), root only when root owns it.
OWNER=$(stat -c %U "$REPO")
as_owner() {
    if [ "$OWNER" = root ]; then
        "$@"
    else
        local home
        home=$(getent passwd "$OWNER" | cut -d: -f6)
        setpriv --reuid="$OWNER" --regid="$(id -g "$OWNER")" --init-groups \
            env HOME="$home" USER="$OWNER" LOGNAME="$OWNER" PATH="$home/.cargo/bin:$PATH" "$@"
    fi
}

# --- state: secret and passwords, made once ------------------------------------

random_secret() { od -An -N18 -tx1 /dev/urandom | tr -d ' \n'; }

# secret_for NAME: the value kept in STATE_DIR/secrets for NAME, made on first use.
secret_for() {
    local file=$STATE_DIR/secrets value
    touch "$file"
    chmod 0600 "$file"
    value=$(sed -n "s/^$1=//p" "$file")
    if [ -z "$value" ]; then
        value=$(random_secret)
        printf '%s=%s\n' "$1" "$value" >>"$file"
    fi
    printf '%s' "$value"
}

make_state_dir() {
    mkdir -p "$STATE_DIR"
    chmod 0700 "$STATE_DIR"
    [ "$OWNER" = root ] || chown "$OWNER:" "$STATE_DIR"
}

# --- the gateway process ---------------------------------------------------------

gateway_pid() {
    local pid
    [ -f "$PIDFILE" ] || return 1
    pid=$(cat "$PIDFILE")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    # Ours only: the pid must still be a stox-gateway of this repository
    # (its file replaced by a build since: "… (deleted)").
    case $(readlink "/proc/$pid/exe" 2>/dev/null) in
        "$(readlink -f "$BIN")" | "$(readlink -f "$BIN") (deleted)") printf '%s' "$pid" ;;
        *) return 1 ;;
    esac
}

stop_gateway() {
    local pid
    if pid=$(gateway_pid); then
        say "stopping the gateway (pid $pid; SIGTERM drains its calls)"
        kill -TERM "$pid"
        for _ in $(seq 1 400); do
            [ -e "/proc/$pid" ] || break
            sleep 0.1
        done
        [ ! -e "/proc/$pid" ] || die "the gateway (pid $pid) did not stop within 40 s"
    fi
    rm -f "$PIDFILE"
}

# http_get PATH: the status line of GET http://<gateway>:HTTP_PORT/PATH.
http_get() {
    local host=$LISTEN line
    [ "$host" != 0.0.0.0 ] || host=127.0.0.1
    exec 3<>"/dev/tcp/$host/$HTTP_PORT" || return 1
    printf 'GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$1" "$host" >&3
    IFS= read -r -t 5 line <&3 || line=""
    exec 3<&-
    printf '%s' "${line%$'\r'}"
}

start_gateway() {
    local pid cmd=(setsid "$BIN" --config "$CONFIG")
    say "starting the gateway: $BIN --config $CONFIG"
    : >>"$LOG"
    if [ "$OWNER" != root ]; then
        chown "$OWNER:" "$LOG"
        cmd=(setpriv --reuid="$OWNER" --regid="$(id -g "$OWNER")" --init-groups "${cmd[@]}")
    fi
    # setsid: a session of its own, apart from this script's terminal. Each
    # of setpriv and setsid (not a process group leader here) execs the
    # next, so $! is the gateway's pid.
    "${cmd[@]}" >>"$LOG" 2>&1 </dev/null &
    pid=$!
    printf '%s\n' "$pid" >"$PIDFILE"
    for _ in $(seq 1 150); do
        [ -e "/proc/$pid" ] || { tail -n 20 "$LOG" >&2; die "the gateway exited (log: $LOG)"; }
        if [[ $(http_get /ready 2>/dev/null) == *" 200"* ]]; then
            say "the gateway is ready (pid $pid; log $LOG)"
            return
        fi
        sleep 0.2
    done
    tail -n 20 "$LOG" >&2
    die "the gateway was not ready within 30 s (component not connected? log: $LOG)"
}

# --- Prosody ---------------------------------------------------------------------------

prosody_running() { prosodyctl status >/dev/null 2>&1; }

# prosody_ctl start|stop|restart: through systemd where it runs. Without it
# (a container), prosodyctl itself: Debian 12's init script cannot stop
# Prosody (it looks for a process named lua5.2; Prosody runs on lua5.4).
prosody_ctl() {
    if [ -d /run/systemd/system ]; then
        systemctl "$1" prosody
        return
    fi
    prosodyctl "$1" >/dev/null 2>&1 || true
    for _ in $(seq 1 100); do
        if prosody_running; then
            [ "$1" = stop ] || return 0
        else
            [ "$1" != stop ] || return 0
        fi
        sleep 0.1
    done
    return 1
}

# Writes $2 to $1 unless it has that content already; refuses to replace a
# file without our marker. Returns 0 when it wrote.
write_ours() {
    local path=$1 content=$2
    if [ -e "$path" ]; then
        head -n 1 "$path" | grep -qxF -- "$MARKER" \
            || die "$path exists and was not written by this script: not touching it"
        [ "$(cat "$path")" != "$content" ] || return 1
    fi
    printf '%s\n' "$content" >"$path"
}

# The main config sets `interfaces` itself: then ours would silently change it.
main_sets_interfaces() {
    grep -Eq '^[[:space:]]*interfaces[[:space:]]*=' /etc/prosody/prosody.cfg.lua
}

prosody_snippet() {
    local secret=$1
    printf '%s\n' "$MARKER"
    printf '%s\n' "-- Remove it with \`contrib/quickstart.sh remove\`; a run of the script rewrites it."
    printf '%s\n' "-- An included file starts in the global section:"
    if [ "$LISTEN" = 127.0.0.1 ] && ! main_sets_interfaces; then
        printf '%s\n' "-- Prosody's own ports (c2s, s2s) on loopback only, as LISTEN=127.0.0.1 asks."
        printf '%s\n' 'interfaces = { "127.0.0.1" }'
    fi
    printf '%s\n' "component_interfaces = { \"127.0.0.1\" }" "component_ports = { $COMPONENT_PORT }"
    printf '\n%s\n' "VirtualHost \"$DOMAIN\""
    printf '%s\n' "    -- c2s needs TLS (Prosody's default): certs/$DOMAIN.crt is self-signed,"
    printf '%s\n' "    -- clients must be told to trust it."
    printf '\n%s\n' "Component \"$COMPONENT\""
    printf '%s\n' "    component_secret = \"$secret\""
}

setup_prosody() {
    local secret=$1 changed=0 others
    # Someone else's host of the same name would clash (in the files Prosody
    # loads: its main file and conf.d).
    others=$(grep -lE "^[[:space:]]*(VirtualHost|Host|Component)[[:space:]]*\"($DOMAIN|$COMPONENT)\"" \
        /etc/prosody/prosody.cfg.lua /etc/prosody/conf.d/*.cfg.lua 2>/dev/null \
        | grep -vxF "$PROSODY_SNIPPET" | tr '\n' ' ' || true)
    [ -z "$others" ] || die "$DOMAIN or $COMPONENT is already configured in: ${others% } (set DOMAIN)"
    main_sets_interfaces && [ "$LISTEN" = 127.0.0.1 ] \
        && say "note: prosody.cfg.lua sets interfaces itself; Prosody keeps listening where it says"

    mkdir -p "$CERT_DIR"
    if [ ! -e "$CERT_DIR/$DOMAIN.crt" ]; then
        say "self-signed certificate for $DOMAIN in $CERT_DIR"
        openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=$DOMAIN" \
            -addext "subjectAltName=DNS:$DOMAIN" -keyout "$CERT_DIR/$DOMAIN.key" \
            -out "$CERT_DIR/$DOMAIN.crt" 2>/dev/null
        chown root:prosody "$CERT_DIR/$DOMAIN.key" "$CERT_DIR/$DOMAIN.crt"
        chmod 0640 "$CERT_DIR/$DOMAIN.key"
        chmod 0644 "$CERT_DIR/$DOMAIN.crt"
        printf '%s\n' "$CERT_DIR/$DOMAIN.crt" "$CERT_DIR/$DOMAIN.key" >>"$STATE_DIR/created"
        changed=1
    fi
    if write_ours "$PROSODY_SNIPPET" "$(prosody_snippet "$secret")"; then
        say "wrote $PROSODY_SNIPPET"
        chmod 0640 "$PROSODY_SNIPPET"
        chown root:prosody "$PROSODY_SNIPPET"
        changed=1
    fi
    prosodyctl check config >/dev/null 2>&1 || {
        prosodyctl check config || true
        die "prosodyctl check config failed"
    }
    if ! prosody_running; then
        say "starting Prosody"
        prosody_ctl start || die "Prosody did not start (see /var/log/prosody/)"
        touch "$STATE_DIR/started-prosody"
    elif [ "$changed" -eq 1 ]; then
        say "restarting Prosody (new host, component or certificate)"
        prosody_ctl restart || die "Prosody did not restart (see /var/log/prosody/)"
    fi
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$COMPONENT_PORT") 2>/dev/null && break
        sleep 0.1
    done
    (exec 3<>"/dev/tcp/127.0.0.1/$COMPONENT_PORT") 2>/dev/null \
        || die "Prosody does not listen on 127.0.0.1:$COMPONENT_PORT (see /var/log/prosody/)"
    for user in $XMPP_USERS; do
        prosodyctl register "$user" "$DOMAIN" "$(secret_for "xmpp-$user")" >/dev/null \
            || die "prosodyctl register $user $DOMAIN failed"
    done
}

# --- the gateway's config -----------------------------------------------------------

gateway_config() {
    local secret=$1
    cat <<EOF
# Written by contrib/quickstart.sh; rewritten on each run (keys: docs/configuration.md).

[xmpp]
server = "127.0.0.1:$COMPONENT_PORT"
component = "$COMPONENT"
secret = "$secret"
domains = ["$DOMAIN"]

[sip]
udp = "$LISTEN:$SIP_PORT"
tcp = "$LISTEN:$SIP_PORT"
${PUBLIC_ADDRESS:+public_address = \"$PUBLIC_ADDRESS\"}

# SIP phones register here (digest: stox-gateway user add). There is no
# outbound proxy and no peer: only registered users call in, and calls out
# go only to registered users.
[registrar]
domains = ["$SIP_DOMAIN"]
# MD5 only: baresip 1.0 (Debian 12) answers only the first challenge and
# fails on SHA-256 ("Function not implemented"), JsSIP only the last.
algorithms = ["MD5"]

[store]
database = "$STATE_DIR/stox-gateway.db"

[http]
listen = "$LISTEN:$HTTP_PORT"
EOF
}

# --- commands ----------------------------------------------------------------------------

install_packages() {
    local missing=() pkg
    for pkg in prosody openssl; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$pkg")
    done
    # cargo links with cc, and jemalloc's build needs make.
    command -v cc >/dev/null && command -v make >/dev/null || missing+=(build-essential)
    [ ${#missing[@]} -eq 0 ] && return
    say "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

build() {
    as_owner sh -c 'command -v cargo' >/dev/null \
        || die "cargo not found for $OWNER: install Rust with https://rustup.rs (Debian's rustc is too old)"
    local flags=()
    [ "$PROFILE" = release ] && flags=(--release)
    say "cargo build -p stox-gateway${flags[*]:+ ${flags[*]}} (as $OWNER)"
    (cd "$REPO" && as_owner cargo build --quiet -p stox-gateway "${flags[@]}")
}

accounts() {
    local user host=$LISTEN
    [ "$host" != 0.0.0.0 ] || host=$PUBLIC_ADDRESS
    cat <<EOF

XMPP accounts (Prosody; c2s on port 5222 with STARTTLS, self-signed certificate):
EOF
    for user in $XMPP_USERS; do
        printf '  %-32s password %s\n' "$user@$DOMAIN" "$(secret_for "xmpp-$user")"
    done
    cat <<EOF
  $DOMAIN may not resolve: give clients the server 127.0.0.1 (Gajim: custom
  host/port; profanity: /connect juliet@$DOMAIN server 127.0.0.1) and let
  them trust the certificate (profanity: /tls trust).

SIP account (the gateway's registrar, $host:$SIP_PORT over UDP or TCP):
  $(printf '%-32s' "$SIP_USER@$SIP_DOMAIN") password $(secret_for "sip-$SIP_USER")
  baresip (~/.baresip/accounts, one line):
    <sip:$SIP_USER@$SIP_DOMAIN>;auth_pass=$(secret_for "sip-$SIP_USER");outbound="sip:$host:$SIP_PORT";regint=600
  linphone: SIP address sip:$SIP_USER@$SIP_DOMAIN, SIP server (proxy)
    sip:$host:$SIP_PORT, transport UDP, the password above.

Calling
  SIP -> XMPP, dialled on the phone (sent to the gateway, $host:$SIP_PORT):
    sip:juliet@$DOMAIN              every device of juliet rings (XEP-0353)
    sip:juliet@$DOMAIN;gr=RESOURCE  only her client with that resource
  XMPP -> SIP, from juliet's Jingle client (Conversations, Dino, Gajim, …),
  call the contact:
    $SIP_USER\\40$SIP_DOMAIN@$COMPONENT
    (any sip:user@host is user\\40host@$COMPONENT; this gateway routes
    only to its registered users)
  Media goes straight between the phone and the XMPP client (pass-through,
  docs/media.md): both must reach each other's addresses.

Gateway: log $LOG, config $CONFIG, metrics http://$host:$HTTP_PORT/metrics
Stop with: $0 stop    Undo everything: $0 remove
EOF
}

cmd_start() {
    install_packages
    make_state_dir
    local secret
    secret=$(secret_for component)
    setup_prosody "$secret"
    build
    gateway_config "$secret" >"$CONFIG.new"
    chmod 0600 "$CONFIG.new"
    [ "$OWNER" = root ] || chown "$OWNER:" "$CONFIG.new"
    mv "$CONFIG.new" "$CONFIG"
    stop_gateway
    # The database is the gateway's: let its owner create it.
    secret_for "sip-$SIP_USER" | as_owner "$BIN" --config "$CONFIG" user add "$SIP_USER@$SIP_DOMAIN" >/dev/null
    start_gateway
    accounts
}

cmd_status() {
    local pid
    if pid=$(gateway_pid); then
        say "gateway: running (pid $pid), /ready: $(http_get /ready 2>/dev/null || echo 'no answer')"
    else
        say "gateway: not running"
    fi
    if prosody_running; then say "Prosody: running"; else say "Prosody: not running"; fi
    [ -f "$STATE_DIR/secrets" ] && accounts
    return 0
}

cmd_stop() {
    stop_gateway
    if [ -e "$STATE_DIR/started-prosody" ] && prosody_running; then
        say "stopping Prosody (this script started it)"
        prosody_ctl stop || die "Prosody did not stop"
    fi
    rm -f "$STATE_DIR/started-prosody"
}

cmd_remove() {
    local started=0 user path
    [ -e "$STATE_DIR/started-prosody" ] && started=1
    stop_gateway
    if [ -e "$PROSODY_SNIPPET" ]; then
        head -n 1 "$PROSODY_SNIPPET" | grep -qxF -- "$MARKER" \
            || die "$PROSODY_SNIPPET was not written by this script: not removing it"
        # While the snippet still defines the host (prosodyctl needs it).
        for user in $XMPP_USERS; do
            prosodyctl deluser "$user@$DOMAIN" >/dev/null 2>&1 || true
        done
        rm -f "$PROSODY_SNIPPET"
        # The host's directories in Prosody's internal storage, once empty
        # (its names escape every character but letters and digits).
        local data
        data=/var/lib/prosody/$(printf '%s' "$DOMAIN" | sed 's/\./%2e/g; s/-/%2d/g')
        [ ! -d "$data" ] || find "$data" -depth -type d -empty -delete
        say "removed $PROSODY_SNIPPET and the users of $DOMAIN"
    fi
    if [ -f "$STATE_DIR/created" ]; then
        while IFS= read -r path; do
            rm -f "$path"
        done <"$STATE_DIR/created"
        say "removed the certificate of $DOMAIN"
    fi
    if prosody_running; then
        if [ "$started" -eq 1 ]; then
            say "stopping Prosody (this script started it)"
            prosody_ctl stop || die "Prosody did not stop"
        else
            say "restarting Prosody without $DOMAIN"
            prosody_ctl restart || die "Prosody did not restart (see /var/log/prosody/)"
        fi
    fi
    if [ -f "$STATE_DIR/secrets" ] || [ -f "$CONFIG" ]; then
        rm -rf "$STATE_DIR"
        say "removed $STATE_DIR"
    fi
}

case ${1:-start} in
    start) cmd_start ;;
    status) cmd_status ;;
    stop) cmd_stop ;;
    remove) cmd_remove ;;
    *) die "usage: $0 [start|status|stop|remove]" ;;
esac
