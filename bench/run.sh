#!/usr/bin/env bash
# One command for every figure in docs/performance.md:
#
#   bench/run.sh [--rate 200] [--duration 20] [--hold-ms 1000] [--transport udp|tcp]
#                [--held 5000] [--rounds 2] [--kill9] [--only LIST] [--out DIR]
#                [--through-prosody] [--prosody-rate N]
#
# Installs what is missing (sip-tester, kamailio, sqlite3, tcpdump; for through-prosody
# also prosody, lua-unbound, python3-slixmpp), builds the gateway and stox-bench in
# release mode, then runs, at the same rate and call shape:
#   sipp-direct   SIPp UAC -> SIPp UAS, nothing between (SIPp's own floor)
#   kamailio      SIPp UAC -> Kamailio (tm + rr, stateful) -> SIPp UAS: the anchor,
#                 tuned as operators run it (-x tlsf -X tlsf -m 2048 -M 8)
#   kamailio-qm   the same with Debian's default memory manager (qm, -m 512 -M 16)
#   xmpp-to-sip   stox-bench (XMPP server + caller) -> gateway -> SIPp UAS
#   sip-to-xmpp   SIPp UAC -> gateway -> stox-bench (XMPP server + callee)
#   latency       both gateway directions again at min(rate, 1000)/s for 10 s,
#                 captured with tcpdump on lo: gateway-added latency on the wire
#                 (kept apart from the CPU runs, since capturing costs CPU)
#   held          N concurrent held calls: RSS per call, RSS after they end,
#                 in --rounds rounds on one gateway (is freed memory reused?)
#                 (with --kill9: kill -9 while held, time the restart)
#   through-prosody  (only with --through-prosody or in --only) the real path at
#                 a low rate: slixmpp c2s users -> Prosody -> gateway -> SIPp UAS,
#                 and SIPp UAC -> gateway -> Prosody -> slixmpp users, at
#                 --prosody-rate (default min(rate, 20)) calls/s, UDP
#                 (bench/through_prosody.py; needs root, Prosody runs as `prosody`)
# and prints the summary with the gateway/Kamailio CPU ratio. --only takes a
# comma list of those names. Everything listens on 127.0.0.1; every process
# started is stopped at the end (each stox-bench runs in its own process
# group, its gateway, SIPp and Kamailio children with it; through_prosody.py
# stops its Prosody, gateway and SIPp on exit or SIGTERM).
# STOX_BENCH_SKIP_BUILD=1 uses the binaries already in target/release.
set -euo pipefail

cd "$(dirname "$0")/.."
RATE=200
DURATION=20
HOLD_MS=1000
TRANSPORT=udp
HELD=5000
ROUNDS=2
KILL9=0
ONLY="sipp-direct,kamailio,kamailio-qm,xmpp-to-sip,sip-to-xmpp,latency,held"
OUT=""
THROUGH_PROSODY=0
PROSODY_RATE=""

while [ $# -gt 0 ]; do
    case "$1" in
        --rate) RATE="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --hold-ms) HOLD_MS="$2"; shift 2 ;;
        --transport) TRANSPORT="$2"; shift 2 ;;
        --held) HELD="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --kill9) KILL9=1; shift ;;
        --only) ONLY="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --through-prosody) THROUGH_PROSODY=1; shift ;;
        --prosody-rate) PROSODY_RATE="$2"; shift 2 ;;
        -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

if [ "$THROUGH_PROSODY" = 1 ] && [[ ",$ONLY," != *",through-prosody,"* ]]; then
    ONLY="$ONLY,through-prosody"
fi
want() { [[ ",$ONLY," == *",$1,"* ]]; }

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}
missing=()
for pkg in sip-tester kamailio sqlite3 tcpdump; do
    installed "$pkg" || missing+=("$pkg")
done
if want through-prosody; then
    for pkg in prosody lua-unbound python3-slixmpp; do
        installed "$pkg" || missing+=("$pkg")
    done
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "run.sh: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# STOX_BENCH_GATEWAY_BIN measures another gateway build (e.g. one built from a
# clean checkout of a commit); by default the gateway of this tree is built.
if [ "${STOX_BENCH_SKIP_BUILD:-0}" = 1 ]; then
    GATEWAY_BIN=${STOX_BENCH_GATEWAY_BIN:-target/release/stox-gateway}
elif [ -n "${STOX_BENCH_GATEWAY_BIN:-}" ]; then
    cargo build --release -q -p stox-bench
    GATEWAY_BIN=$STOX_BENCH_GATEWAY_BIN
else
    cargo build --release -q -p stox-gateway -p stox-bench
    GATEWAY_BIN=target/release/stox-gateway
fi
BENCH=${STOX_BENCH_BIN:-target/release/stox-bench}
OUT=${OUT:-$(mktemp -d /tmp/stox-bench-XXXXXX)}
mkdir -p "$OUT"

PGIDS=()
cleanup() {
    for g in "${PGIDS[@]}"; do
        kill -TERM -- "-$g" 2>/dev/null || true
    done
}
trap cleanup EXIT INT TERM

# Runs one stox-bench command in its own process group and waits for it.
bench() {
    setsid "$BENCH" "$@" --work-dir "$OUT" --clk-tck "$(getconf CLK_TCK)" --gateway-bin "$GATEWAY_BIN" &
    local pid=$!
    PGIDS+=("$pid")
    wait "$pid"
}

COMMON=(--rate "$RATE" --duration "$DURATION" --hold-ms "$HOLD_MS" --transport "$TRANSPORT")

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
    if [ -n "${STOX_BENCH_GATEWAY_BIN:-}" ]; then
        echo "gateway: $GATEWAY_BIN (given by STOX_BENCH_GATEWAY_BIN)"
    else
        echo "gateway: built from $(git log -1 --format='%h' 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' + uncommitted changes')"
    fi
    echo "before: $(uptime)"
} | tee "$OUT/machine.txt"

want sipp-direct && bench anchor --direct "${COMMON[@]}" --name "sipp-direct" --out "$OUT/1-sipp-direct.kv"
want kamailio && bench anchor "${COMMON[@]}" --mem tlsf --name "kamailio" --out "$OUT/2-kamailio.kv"
want kamailio-qm && bench anchor "${COMMON[@]}" --mem qm --name "kamailio-qm" --out "$OUT/2-kamailio-qm.kv"
want xmpp-to-sip && bench xmpp-to-sip "${COMMON[@]}" --name "gateway-xmpp-to-sip" --out "$OUT/3-gateway-xmpp-to-sip.kv"
want sip-to-xmpp && bench sip-to-xmpp "${COMMON[@]}" --name "gateway-sip-to-xmpp" --out "$OUT/4-gateway-sip-to-xmpp.kv"
if want latency; then
    LAT_RATE=$(( RATE > 1000 ? 1000 : RATE ))
    LAT=(--rate "$LAT_RATE" --duration 10 --hold-ms "$HOLD_MS" --transport "$TRANSPORT" --pcap)
    bench xmpp-to-sip "${LAT[@]}" --name "latency-xmpp-to-sip" --out "$OUT/7-latency-xmpp-to-sip.kv"
    bench sip-to-xmpp "${LAT[@]}" --name "latency-sip-to-xmpp" --out "$OUT/8-latency-sip-to-xmpp.kv"
fi
if want held && [ "$HELD" -gt 0 ]; then
    HELD_RATE=$(( RATE > 1000 ? 1000 : RATE ))
    bench held --calls "$HELD" --rounds "$ROUNDS" --rate "$HELD_RATE" --transport "$TRANSPORT" --name "held-$HELD" --out "$OUT/5-held.kv"
    if [ "$KILL9" = 1 ]; then
        bench held --calls "$HELD" --rate "$HELD_RATE" --transport "$TRANSPORT" --kill9 --name "held-$HELD-kill9" --out "$OUT/6-held-kill9.kv"
    fi
fi

if want through-prosody; then
    TP_RATE=${PROSODY_RATE:-$(( RATE > 20 ? 20 : RATE ))}
    [ "$TRANSPORT" = udp ] || echo "run.sh: through-prosody runs over UDP only"
    setsid /usr/bin/python3 bench/through_prosody.py --rate "$TP_RATE" --duration "$DURATION" \
        --hold-ms "$HOLD_MS" --direction both --work-dir "$OUT" --clk-tck "$(getconf CLK_TCK)" \
        --gateway-bin "$GATEWAY_BIN" --out "$OUT/9-through-prosody-{direction}.kv" &
    tp_pid=$!
    PGIDS+=("$tp_pid")
    wait "$tp_pid"
fi

echo "after: $(uptime)" | tee -a "$OUT/machine.txt"
"$BENCH" summary "$OUT"
echo "run.sh: logs, configs and SIPp files in $OUT"
