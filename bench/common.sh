# shellcheck shell=bash
# Shared by bench/handler.sh, bench/emulator.sh and bench/stack.sh (sourced, not run, as
# `source "$(dirname "$0")/common.sh"`): strict mode, the repository root as the working folder,
# RUNS (rounds, default 3), and
#
#   bench_prepare NAME EXAMPLE   builds the release binary and the load generator EXAMPLE, copies
#                                both to target/bench-tmp/NAME-bin (so a rebuild during a long run
#                                cannot swap them), picks the results file and prints the machine
#   bench_rounds FUNCTION        calls FUNCTION once per round, RUNS rounds, so rounds interleave
#                                the configurations FUNCTION runs
#   run ARGS...                  one run of the generator; a failure is reported and counted
#   run_with BINARY ARGS...      the same with another ordergrid binary (a baseline to compare)
#   bench_finish                 the summary across rounds; exits 1 if any run failed
#
# Extra arguments for every run go in the array RUN_ARGS (e.g. the stack's `--app .`).

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

RUNS="${RUNS:-3}"
RUN_ARGS=()
failed=0

bench_prepare() {
    local name="$1" example="$2"
    cargo build --release --bin ordergrid --example "$example"
    bin="target/bench-tmp/$name-bin"
    mkdir -p "$bin"
    # Copy then rename: an earlier copy may still be running.
    for f in target/release/ordergrid "target/release/examples/$example"; do
        cp "$f" "$bin/.$(basename "$f").new"
        mv -f "$bin/.$(basename "$f").new" "$bin/$(basename "$f")"
    done
    gen="$bin/$example"
    results="target/bench-tmp/$name-$(date +%Y%m%d-%H%M%S).jsonl"

    echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r)"
    echo "disk: $(df -T target/bench-tmp | awk 'NR==2 {print $2 " on " $1}'), $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src 2>/dev/null || echo ' + uncommitted src changes')"
    echo "binary: sha256 $(sha256sum "$bin/ordergrid" | cut -c1-16), built $(date -u -r "$bin/ordergrid" +%FT%TZ)"
    echo "results: $results"
}

bench_rounds() {
    local round
    for round in $(seq "$RUNS"); do
        echo
        echo "=== round $round of $RUNS"
        "$1"
    done
}

run() {
    run_with "$bin/ordergrid" "$@"
}

run_with() {
    local binary="$1"
    shift
    echo
    echo "--- $* ($binary)"
    "$gen" --binary "$binary" "${RUN_ARGS[@]}" --results "$results" "$@" || {
        echo "FAILED: $*"
        failed=$((failed + 1))
    }
}

bench_finish() {
    echo
    echo "=== summary: median [min – max] over $RUNS rounds ($results)"
    "$gen" --mode summarize --results "$results"
    if [ "$failed" -gt 0 ]; then
        echo "$failed run(s) failed; see FAILED above"
        exit 1
    fi
}
