#!/usr/bin/env bash
# The custom handler's performance targets (issue 2): start-up to first answered readiness
# probe, idle RSS, OrderProcessor throughput with the durable folder store, and latency at a
# fixed 1,000 requests/s. Also the one-fdatasync-per-order baseline of the disk.
#
# Usage (from a fresh clone, anywhere): bench/handler.sh
#   RUNS=3       rounds; every configuration runs once per round, rounds interleave them
#   DURATION=20  measured seconds of each max/rate run (after a 2 s warm-up)
# Each run first waits until the machine is idle (another build would be measured too).
# Results: one JSON line per run in target/bench-tmp/handler-<time>.jsonl, then a summary
# (median [min – max] across rounds) per configuration.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${RUNS:-3}"
DURATION="${DURATION:-20}"

cargo build --release --bin ordergrid --example handler_load
# Measure copies, so a rebuild during the (long) run cannot swap the binary under it. Copy then
# rename: an earlier copy may still be running.
bin=target/bench-tmp/handler-bin
mkdir -p "$bin"
for f in target/release/ordergrid target/release/examples/handler_load; do
    cp "$f" "$bin/.$(basename "$f").new"
    mv -f "$bin/.$(basename "$f").new" "$bin/$(basename "$f")"
done
gen="$bin/handler_load"
results="target/bench-tmp/handler-$(date +%Y%m%d-%H%M%S).jsonl"

echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r)"
echo "disk: $(df -T target/bench-tmp | awk 'NR==2 {print $2 " on " $1}'), $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src 2>/dev/null || echo ' + uncommitted src changes')"
echo "binary: sha256 $(sha256sum "$bin/ordergrid" | cut -c1-16), built $(date -u -r "$bin/ordergrid" +%FT%TZ)"
echo "results: $results"

failed=0
run() {
    echo
    echo "--- $*"
    # A failed run (a non-200 answer, a lost order) is reported and fails the script at the end.
    "$gen" --binary "$bin/ordergrid" --results "$results" "$@" || {
        echo "FAILED: $*"
        failed=$((failed + 1))
    }
}

for round in $(seq "$RUNS"); do
    echo
    echo "=== round $round of $RUNS"
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
done

echo
echo "=== summary: median [min – max] over $RUNS rounds ($results)"
"$gen" --mode summarize --results "$results"
if [ "$failed" -gt 0 ]; then
    echo "$failed run(s) failed; see FAILED above"
    exit 1
fi
