#!/usr/bin/env bash
# The Event Grid emulator's performance targets (issue 3): sustained publish-to-delivery
# throughput with two webhook subscribers (durable acknowledgement included), publish-to-delivery
# latency at a steady 1,000 events/s, and memory with a backlog of one million undelivered events
# (held two ways: subscribers that failed validation, and validated subscribers in an outage),
# then the drain once they recover.
#
# Usage (from a fresh clone, anywhere): bench/emulator.sh
#   RUNS=3          rounds; every configuration runs once per round, rounds interleave them
#   DURATION=20     measured seconds of the throughput and latency runs (after a 5 s warm-up)
#   BACKLOG=1000000 events in the backlog runs
# Each run first waits until the machine is idle (another build would be measured too).
# Results: one JSON line per run in target/bench-tmp/emulator-<time>.jsonl, then a summary
# (median [min – max] across rounds) per configuration.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${RUNS:-3}"
DURATION="${DURATION:-20}"
BACKLOG="${BACKLOG:-1000000}"

cargo build --release --bin ordergrid --example emulator_load
# Measure copies, so a rebuild during the (long) run cannot swap the binary under it.
mkdir -p target/bench-tmp/emulator-bin
cp target/release/ordergrid target/release/examples/emulator_load target/bench-tmp/emulator-bin/
gen=target/bench-tmp/emulator-bin/emulator_load
results="target/bench-tmp/emulator-$(date +%Y%m%d-%H%M%S).jsonl"

echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r)"
echo "disk: $(df -T target/bench-tmp | awk 'NR==2 {print $2 " on " $1}'), $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src 2>/dev/null || echo ' + uncommitted src changes')"
echo "binary: sha256 $(sha256sum target/bench-tmp/emulator-bin/ordergrid | cut -c1-16), built $(date -u -r target/bench-tmp/emulator-bin/ordergrid +%FT%TZ)"
echo "results: $results"

failed=0
run() {
    echo
    echo "--- $*"
    # A failed run (a refused publish, an acknowledged event that never arrived) is reported and
    # fails the script at the end.
    "$gen" --binary target/bench-tmp/emulator-bin/ordergrid --results "$results" "$@" || {
        echo "FAILED: $*"
        failed=$((failed + 1))
    }
}

for round in $(seq "$RUNS"); do
    echo
    echo "=== round $round of $RUNS"
    run --mode throughput --publishers 4 --batch 500 --max-backlog 20000 --duration "$DURATION" --label throughput
    run --mode latency --rate 1000 --duration "$DURATION" --label latency-1000
    run --mode backlog --hold unvalidated --events "$BACKLOG" --batch 1000 --publishers 4 --label backlog-unvalidated
    # Retries on Azure's schedule scaled by 0.01 (10 s -> 100 ms; the TTL becomes 14.4 min),
    # so the retried events come due within the run once the subscribers recover.
    run --mode backlog --hold outage --time-scale 0.01 --events "$BACKLOG" --batch 1000 --publishers 4 --label backlog-outage
done

echo
echo "=== summary: median [min – max] over $RUNS rounds ($results)"
"$gen" --mode summarize --results "$results"
if [ "$failed" -gt 0 ]; then
    echo "$failed run(s) failed; see FAILED above"
    exit 1
fi
