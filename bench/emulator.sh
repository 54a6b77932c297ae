#!/usr/bin/env bash
# The Event Grid emulator's performance targets: sustained publish-to-delivery
# throughput with two webhook subscribers (durable acknowledgement included), publish-to-delivery
# latency at a steady 1,000 events/s, and memory with a backlog of one million undelivered events
# (held two ways: subscribers that failed validation, and validated subscribers in an outage),
# then the drain once they recover.
#
# Usage (from a fresh clone, anywhere): bench/emulator.sh
#   RUNS=3          rounds; every configuration runs once per round, rounds interleave them
#   DURATION=20     measured seconds of the throughput and latency runs (after a 5 s warm-up)
#   BACKLOG=1000000 events in the backlog runs
#   BASELINE=path   another ordergrid binary (an earlier build): its throughput and latency runs
#                   interleave with this build's in every round, labelled "-baseline"
#   ONLY=fast       the throughput and latency runs only (no backlog runs)
#   ONLY=scaling    issue 15's side by side: throughput with 1, 2, 8 and 32 subscriptions
#                   matching every event (the emulator's CPU per delivery as the number of
#                   subscriptions grows; SUBS= changes the list), then one event per publish to 2
#                   subscribers, the emulator and the seed's Flask broker (FLASK_BROKER=, default
#                   ../shared/peers/flask_broker.py; flask and requests are installed from
#                   bench/requirements-peers.txt into target/bench-env/venv) in the same rounds
# Each run first waits until the machine is idle (another build would be measured too).
# Results: one JSON line per run in target/bench-tmp/emulator-<time>.jsonl, then a summary
# (median [min – max] across rounds) per configuration.
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"

DURATION="${DURATION:-20}"
BACKLOG="${BACKLOG:-1000000}"

bench_prepare emulator emulator_load

# A venv with the Flask broker's packages, made once.
flask_python() {
    local venv=target/bench-env/venv
    if ! "$venv/bin/python" -c 'import flask, requests' 2>/dev/null; then
        python3 -m venv "$venv" >&2
        "$venv/bin/pip" install --quiet -r bench/requirements-peers.txt >&2
    fi
    echo "$venv/bin/python"
}

if [ "${ONLY:-}" = scaling ]; then
    PYTHON="$(flask_python)"
fi

one_round() {
    if [ "${ONLY:-}" = scaling ]; then
        for subs in ${SUBS:-1 2 8 32}; do
            run --mode throughput --subscriptions "$subs" --publishers 4 --batch 500 --max-backlog 20000 --duration "$DURATION" --label "throughput-subs-$subs"
            if [ -n "${BASELINE:-}" ]; then
                run_with "$BASELINE" --mode throughput --subscriptions "$subs" --publishers 4 --batch 500 --max-backlog 20000 --duration "$DURATION" --label "throughput-subs-$subs-baseline"
            fi
        done
        # One event per publish, 16 publishers with one request in flight each, as the seed's
        # clients would post orders.
        run --mode throughput --subscriptions 2 --publishers 16 --batch 1 --max-backlog 20000 --duration "$DURATION" --label one-per-publish
        run --mode throughput --subscriptions 2 --publishers 16 --batch 1 --max-backlog 20000 --duration "$DURATION" --broker flask --python "$PYTHON" --flask-broker "${FLASK_BROKER:-../shared/peers/flask_broker.py}" --label one-per-publish-flask
        return
    fi
    run --mode throughput --publishers 4 --batch 500 --max-backlog 20000 --duration "$DURATION" --label throughput
    if [ -n "${BASELINE:-}" ]; then
        run_with "$BASELINE" --mode throughput --publishers 4 --batch 500 --max-backlog 20000 --duration "$DURATION" --label throughput-baseline
    fi
    run --mode latency --rate 1000 --duration "$DURATION" --label latency-1000
    if [ -n "${BASELINE:-}" ]; then
        run_with "$BASELINE" --mode latency --rate 1000 --duration "$DURATION" --label latency-1000-baseline
    fi
    if [ "${ONLY:-}" = fast ]; then
        return
    fi
    run --mode backlog --hold unvalidated --events "$BACKLOG" --batch 1000 --publishers 4 --label backlog-unvalidated
    # Retries on Azure's schedule scaled by 0.01 (10 s -> 100 ms; the TTL becomes 14.4 min),
    # so the retried events come due within the run once the subscribers recover.
    run --mode backlog --hold outage --time-scale 0.01 --events "$BACKLOG" --batch 1000 --publishers 4 --label backlog-outage
}

bench_rounds one_round
bench_finish
