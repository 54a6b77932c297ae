#!/usr/bin/env bash
# The custom handler's performance targets: start-up to first answered readiness
# probe, idle RSS, OrderProcessor throughput with the durable folder store, and latency at a
# fixed 1,000 requests/s. Also the one-fdatasync-per-order baseline of the disk.
#
# Usage (from a fresh clone, anywhere): bench/handler.sh
#   RUNS=3       rounds; every configuration runs once per round, rounds interleave them
#   DURATION=20  measured seconds of each max/rate run (after a 2 s warm-up)
#   ONLY=peer    issue 15's side by side only: OrderProcessor at 64 and 16 connections and at
#                1,000/s, ordergrid (durable) and the Node.js peer (PEER=, default
#                ../shared/peers/node_handler.js, in memory) in the same rounds
#   BASELINE=path  another ordergrid binary (an earlier build) in the same rounds (ONLY=peer)
# Each run first waits until the machine is idle (another build would be measured too).
# Results: one JSON line per run in target/bench-tmp/handler-<time>.jsonl, then a summary
# (median [min – max] across rounds) per configuration.
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"

DURATION="${DURATION:-20}"

bench_prepare handler handler_load

PEER="${PEER:-../shared/peers/node_handler.js}"

side_by_side() {
    local c
    for c in 64 16; do
        run --mode max --concurrency "$c" --duration "$DURATION" --log warn --label "max-c$c"
        run --mode max --concurrency "$c" --duration "$DURATION" --peer "$PEER" --label "max-c$c-peer"
        if [ -n "${BASELINE:-}" ]; then
            run_with "$BASELINE" --mode max --concurrency "$c" --duration "$DURATION" --log warn --label "max-c$c-baseline"
        fi
    done
    run --mode rate --rate 1000 --duration "$DURATION" --log warn --label rate-1000
    run --mode rate --rate 1000 --duration "$DURATION" --peer "$PEER" --label rate-1000-peer
}

one_round() {
    if [ "${ONLY:-}" = peer ]; then
        side_by_side
        return
    fi
    run --mode fsync-baseline --duration 5 --label fsync-baseline
    run --mode fsync-baseline --duration 20 --paced --rate 1000 --label fsync-paced-1000
    run --mode startup --runs 50 --log warn --label startup-warn
    run --mode startup --runs 50 --log info --label startup-info
    run --mode max --concurrency 64 --duration "$DURATION" --log warn --label max-c64-warn
    run --mode max --concurrency 16 --duration "$DURATION" --log warn --label max-c16-warn
    run --mode max --concurrency 128 --duration "$DURATION" --log warn --label max-c128-warn
    run --mode max --concurrency 64 --duration "$DURATION" --log info --label max-c64-info
    run --mode rate --rate 1000 --duration "$DURATION" --log warn --label rate-1000-warn
    run --mode rate --rate 1000 --duration "$DURATION" --log info --label rate-1000-info
}

bench_rounds one_round
bench_finish
