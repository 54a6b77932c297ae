#!/usr/bin/env bash
# The local stack's performance targets: time from `ordergrid dev` to "local stack is
# ready", and the time from publishing a NewOrder to its email file existing in the outbox and to
# its confirmationSent update reaching an operators' client of the live feed, at 1 and at 500
# orders/s; then a short sweep of higher rates to find where latency blows up.
#
# Usage (from a fresh clone, anywhere): bench/stack.sh
#   RUNS=3          rounds; every configuration runs once per round, rounds interleave them
#   STARTS=20       stacks started per startup run
#   SWEEP="750 1000 1500"  rates of the sweep (10 s each); SWEEP="" skips it
# Each run first waits until the machine is idle (another build would be measured too).
# Results: one JSON line per run in target/bench-tmp/stack-<time>.jsonl, then a summary
# (median [min – max] across rounds) per configuration.
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"

STARTS="${STARTS:-20}"
SWEEP="${SWEEP-750 1000 1500}"

RUN_ARGS=(--app .)
bench_prepare stack stack_load

one_round() {
    run --mode startup --runs "$STARTS" --label startup
    run --mode rate --rate 1 --warmup 2 --duration 60 --label rate-1
    run --mode rate --rate 500 --warmup 2 --duration 20 --label rate-500
    for rate in $SWEEP; do
        run --mode rate --rate "$rate" --warmup 2 --duration 10 --label "sweep-$rate"
    done
}

bench_rounds one_round
bench_finish
