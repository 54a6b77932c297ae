#!/usr/bin/env bash
# Coverage-guided fuzzing (issue 14) of the parsers that face the outside, with cargo-fuzz and
# libFuzzer: the publish body in both schemas, SAS tokens and keys, the subscriptions file,
# filters on any event, the invocation envelope, Web PubSub frames and tokens
# (src/fuzzing.rs, fuzz/fuzz_targets/). Needs the nightly toolchain (rustup toolchain install
# nightly); installs cargo-fuzz into ~/.cargo/bin when it is missing. The corpus is kept in the
# repository as fuzz/corpus.tar.gz (a few thousand small inputs): unpacked into
# fuzz/corpus/<target> before the runs, minimised (cargo fuzz cmin) and packed again after them,
# with what the runs found. A crash is kept in fuzz/artifacts/<target> and fails the script.
#
# Usage: bench/fuzz.sh            every target for SECONDS each
#   SECONDS_EACH=60   how long each target runs
#   TARGETS="publish_body sas_token"   a subset
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECONDS_EACH="${SECONDS_EACH:-60}"
TARGETS="${TARGETS:-publish_body sas_token subscriptions_file filter invocation webpubsub}"
if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz: the nightly toolchain is not installed (rustup toolchain install nightly); nothing run" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo +nightly install cargo-fuzz --locked --version 0.13.2
fi
cargo +nightly fuzz build --release
[ -d fuzz/corpus ] || tar -xzf fuzz/corpus.tar.gz -C fuzz
failed=0
for target in $TARGETS; do
    log="target/fuzz-$target.log"
    echo "=== $target: $SECONDS_EACH s"
    if cargo +nightly fuzz run --release "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$SECONDS_EACH" -max_len=65536 -print_final_stats=1 >"$log" 2>&1; then
        result="no finding"
    else
        result="FINDING: see fuzz/artifacts/$target and $log"
        failed=$((failed + 1))
    fi
    executions=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo '?')
    coverage=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+' || echo '?')
    corpus=$(find "fuzz/corpus/$target" -type f | wc -l)
    echo "$target: $executions executions, coverage $coverage, corpus $corpus inputs, $result"
    cargo +nightly fuzz cmin --release "$target" "fuzz/corpus/$target" >"target/fuzz-$target-cmin.log" 2>&1
done
tar -czf fuzz/corpus.tar.gz -C fuzz corpus
exit "$failed"
