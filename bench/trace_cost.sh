#!/usr/bin/env bash
# What traces cost the custom handler when they are off (no OTLP endpoint, the default and so on
# Azure unless configured): OrderProcessor throughput with 64 connections and start-up to the
# first answered readiness probe, this tree against the commit before traces (BASE), in
# interleaved rounds. Off, the handler still reads the host's `traceparent` and the event's
# `data.traceparent` and forwards one of them; nothing is recorded or exported.
#
# Usage (from a fresh clone, anywhere): bench/trace_cost.sh
#   BASE=63ed831  the commit to compare with (built in a worktree, sharing target/)
#   RUNS=3        rounds
#   DURATION=10   measured seconds of each throughput run (after a 2 s warm-up)
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"

BASE="${BASE:-63ed831}"
DURATION="${DURATION:-10}"

base_src="target/bench-tmp/trace-cost-base-src"
base_bin="target/bench-tmp/trace-cost-base-bin/ordergrid"
if [ ! -x "$base_bin" ] || [ "$(cat "$base_bin.commit" 2>/dev/null)" != "$BASE" ]; then
    rm -rf "$base_src"
    git worktree prune
    git worktree add --detach "$base_src" "$BASE"
    # Built as bench_prepare builds this tree's (with the generator, so cargo unifies the same
    # features, reqwest's `json` among them, into both binaries).
    (cd "$base_src" && CARGO_TARGET_DIR="$PWD/../../../target" cargo build --release --bin ordergrid --example handler_load)
    mkdir -p "$(dirname "$base_bin")"
    cp target/release/ordergrid "$base_bin"
    echo "$BASE" > "$base_bin.commit"
    git worktree remove --force "$base_src"
fi
echo "base: $BASE, sha256 $(sha256sum "$base_bin" | cut -c1-16), $(stat -c %s "$base_bin") bytes"

bench_prepare trace-cost handler_load
echo "this tree: $(stat -c %s "$bin/ordergrid") bytes"

one_round() {
    run --mode max --concurrency 64 --duration "$DURATION" --log warn --label max-c64-traces-off
    run_with "$base_bin" --mode max --concurrency 64 --duration "$DURATION" --log warn --label max-c64-base
    run --mode startup --runs 50 --log warn --label startup-traces-off
    run_with "$base_bin" --mode startup --runs 50 --log warn --label startup-base
}

bench_rounds one_round
bench_finish
