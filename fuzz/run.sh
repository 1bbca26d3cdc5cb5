#!/usr/bin/env bash
# Runs every fuzz target for N seconds (default 30) and fails on the first crash.
# cargo-fuzz needs nightly-only flags (sanitizers, -Z options); on the stable
# toolchain RUSTC_BOOTSTRAP=1 unlocks them.
#   fuzz/run.sh [seconds]
set -euo pipefail
seconds="${1:-30}"
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

targets=$(cargo fuzz list)
for target in $targets; do
    echo "== fuzzing ${target} for ${seconds}s"
    # Work on a scratch copy of the seeds so the committed corpus stays small.
    work="target/corpus/${target}"
    mkdir -p "${work}"
    cp -n corpus/"${target}"/seed-* "${work}/" 2>/dev/null || true
    cargo fuzz run "${target}" "${work}" -- \
        -max_total_time="${seconds}" -rss_limit_mb=2048 -print_final_stats=1
done
echo "== all fuzz targets ran ${seconds}s without a crash"
