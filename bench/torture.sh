#!/usr/bin/env bash
# Crash and fault torture of the local stack (issue 14): tests/stack/torture.rs with many faults.
# Each run: steady load (valid, invalid and duplicate orders; a webhook failing one delivery in
# four), records in Azurite, email to a real SMTP server, and ITERATIONS faults at random moments
# (SIGKILL of `ordergrid dev` and restart, SIGKILL of the handler, SMTP or Azurite stopped for a
# while); then every invariant of the test is checked. Prints the runs' summaries.
#
# Usage (from a fresh clone, after scripts/test-env): bench/torture.sh
#   ITERATIONS=40  faults per run
#   FAULTS=        the faults drawn from, comma-separated (dev, handler, smtp, azurite; all when
#                  empty), to see what one kind of fault causes
#   RUNS=3         runs, each with its own random seed (printed, to replay one:
#                  ORDERGRID_TORTURE_SEED=<seed>)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ITERATIONS="${ITERATIONS:-40}"
RUNS="${RUNS:-3}"
for run in $(seq "$RUNS"); do
    echo "=== run $run of $RUNS: $ITERATIONS faults${FAULTS:+ ($FAULTS)}"
    ORDERGRID_TORTURE_ITERATIONS="$ITERATIONS" ORDERGRID_TORTURE_FAULTS="${FAULTS:-}" cargo test --test stack torture -- --nocapture 2>&1 |
        grep -E '^torture:|^test torture|panicked|test result' || true
done
