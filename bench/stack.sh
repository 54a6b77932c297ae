#!/usr/bin/env bash
# The local stack's performance targets (issue 4): time from `ordergrid dev` to "local stack is
# ready", and the time from publishing a NewOrder to its email file existing in the outbox, at 1
# and at 500 orders/s; then a short sweep of higher rates to find where latency blows up.
#
# Usage (from a fresh clone, anywhere): bench/stack.sh
#   RUNS=3          rounds; every configuration runs once per round, rounds interleave them
#   STARTS=20       stacks started per startup run
#   SWEEP="750 1000 1500"  rates of the sweep (10 s each); SWEEP="" skips it
# Each run first waits until the machine is idle (another build would be measured too).
# Results: one JSON line per run in target/bench-tmp/stack-<time>.jsonl, then a summary
# (median [min – max] across rounds) per configuration.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${RUNS:-3}"
STARTS="${STARTS:-20}"
SWEEP="${SWEEP-750 1000 1500}"

cargo build --release --bin ordergrid --example stack_load
# Measure copies, so a rebuild during the (long) run cannot swap the binary under it. The stack
# starts the handler from its own executable (host.json names `ordergrid`), so that is the copy too.
mkdir -p target/bench-tmp/stack-bin
cp target/release/ordergrid target/release/examples/stack_load target/bench-tmp/stack-bin/
gen=target/bench-tmp/stack-bin/stack_load
results="target/bench-tmp/stack-$(date +%Y%m%d-%H%M%S).jsonl"

echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r)"
echo "disk: $(df -T target/bench-tmp | awk 'NR==2 {print $2 " on " $1}'), $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src 2>/dev/null || echo ' + uncommitted src changes')"
echo "binary: sha256 $(sha256sum target/bench-tmp/stack-bin/ordergrid | cut -c1-16), built $(date -u -r target/bench-tmp/stack-bin/ordergrid +%FT%TZ)"
echo "results: $results"

failed=0
run() {
    echo
    echo "--- $*"
    "$gen" --binary target/bench-tmp/stack-bin/ordergrid --app . --results "$results" "$@" || {
        echo "FAILED: $*"
        failed=$((failed + 1))
    }
}

for round in $(seq "$RUNS"); do
    echo
    echo "=== round $round of $RUNS"
    run --mode startup --runs "$STARTS" --label startup
    run --mode rate --rate 1 --warmup 2 --duration 60 --label rate-1
    run --mode rate --rate 500 --warmup 2 --duration 20 --label rate-500
    for rate in $SWEEP; do
        run --mode rate --rate "$rate" --warmup 2 --duration 10 --label "sweep-$rate"
    done
done

echo
echo "=== summary: median [min – max] over $RUNS rounds ($results)"
"$gen" --mode summarize --results "$results"
if [ "$failed" -gt 0 ]; then
    echo "$failed run(s) failed; see FAILED above"
    exit 1
fi
