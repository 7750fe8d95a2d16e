#!/usr/bin/env bash
# Gates beyond fmt/clippy/tests, run by tests/run.sh (so by .ci/run):
#   1. the rust-version in Cargo.toml really builds the workspace;
#   2. cargo-deny: licences, banned crates, duplicate versions, sources;
#   3. cargo doc with -D warnings;
#   4. the fuzz targets build;
#   5. the pure crates (mapping, call, sipcore, rtpengine) depend on no runtime, database or socket crate;
#   6. the SIP message crate is named in one module only (replaceable).
# Each installs what it needs (a toolchain, cargo-deny) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
die() { printf '\ntests/gates.sh: FAILED: %s\n' "$*" >&2; exit 1; }

# 1. MSRV: the toolchain named by rust-version checks every target.
msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml | head -1)
[ -n "$msrv" ] || die "no rust-version in Cargo.toml"
toolchain=$msrv
[[ $msrv =~ ^[0-9]+\.[0-9]+$ ]] && toolchain=$msrv.0   # "1.94" means 1.94.0
step "rust-version $msrv builds the workspace (toolchain $toolchain)"
rustup toolchain list | grep -q "^$toolchain-" \
    || rustup toolchain install "$toolchain" --profile minimal \
    || die "rustup toolchain install $toolchain"
CARGO_TARGET_DIR=target/msrv cargo "+$toolchain" check --workspace --all-targets --locked \
    || die "the workspace does not build with rust-version $msrv"
# Each gate's own target directory goes once the gate passed: CI machines
# may have little disk (a clean run once failed with ENOSPC).
rm -rf target/msrv

# 2. cargo-deny (advisories need the network: not checked here).
step "cargo deny check licenses bans sources"
command -v cargo-deny >/dev/null || cargo install --locked cargo-deny || die "cargo install cargo-deny"
cargo deny --locked check licenses bans sources || die "cargo deny"

# 3. Docs.
step "cargo doc -D warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked || die "cargo doc"

# 4. Fuzz targets: built as ordinary binaries (libFuzzer's main, no
# sanitizer), sharing the workspace's target directory for the common crates.
step "fuzz targets build"
CARGO_TARGET_DIR=target/fuzz cargo build --manifest-path fuzz/Cargo.toml --bins --locked \
    || die "the fuzz targets do not build"
rm -rf target/fuzz

# 5. Pure crates: no IO underneath them.
step "pure crates depend on no tokio / sqlx / socket crate"
IO_CRATES='^(tokio|tokio-[a-z-]+|mio|socket2|sqlx|sqlx-[a-z-]+|libsqlite3-sys|tungstenite|hyper|reqwest|async-std|smol|async-io|futures-io|rustls)$'
for crate in stox-mapping stox-call stox-sipcore stox-rtpengine; do
    found=$(cargo tree -p "$crate" -e normal --prefix none --format '{p}' --locked \
        | awk '{print $1}' | sort -u | grep -E "$IO_CRATES" || true)
    [ -z "$found" ] || die "$crate depends on IO crates: $(echo "$found" | tr '\n' ' ')"
    echo "$crate: pure"
done
# 6. sipx-sip stays behind crates/sipcore/src/msg.rs (decision 0008).
step "sipx-sip is named only in crates/sipcore/src/msg.rs"
outside=$(grep -rln 'sipx_sip' crates/*/src | grep -v '^crates/sipcore/src/msg.rs$' || true)
[ -z "$outside" ] || die "sipx_sip named outside msg.rs: $(echo "$outside" | tr '\n' ' ')"
echo "one module"

step "gates passed"
