#!/usr/bin/env bash
# The local Web PubSub service's fan-out targets, side by side with a peer written the way the
# seed document's backend would broadcast (bench/fanout_peer.mjs: Node.js, ws 8.23.0 from
# tests/support, updates POSTed to it, `client.send` to every client): 10,000 WebSocket clients
# held (RSS per connection, idle), then a ramp of broadcast rates to every client, each with a
# warm-up and a measured window: frames delivered per second, p50/p99 from the update's
# scheduled send to its receipt, up to the first rate a server does not sustain (p99 ≥ 100 ms,
# a frame lost or a client dropped).
#
# Usage (from a fresh clone, anywhere; needs node and `npm ci` in tests/support): bench/webpubsub.sh
#   RUNS=3            rounds; every configuration runs once per round, rounds interleave them
#                     (peer, ordergrid simple, json, reliable, peer, …)
#   CLIENTS=10000     WebSocket clients
#   RATES=2,5,10,15,20 broadcast rates (updates/s) of the ramp, ascending
#   WARMUP=2          seconds at each rate before its window
#   DURATION=5        measured seconds at each rate
#   PROTOCOLS="simple json reliable"   ordergrid's client kinds to measure
#   SERVER_CPUS=      pin the server with taskset -c (e.g. 0-1); empty: not pinned
#   SMOKE=1           a quick look: 1 round, 500 clients, rates 5,20, 1 s windows (about 1 min)
# Each run first waits until the machine is idle (another build would be measured too).
# Results: one JSON line per run in target/bench-tmp/webpubsub-<time>.jsonl, then a summary
# (median [min – max] across rounds) per configuration.
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"

if [ -n "${SMOKE:-}" ]; then
    RUNS=1
    CLIENTS="${CLIENTS:-500}"
    RATES="${RATES:-5,20}"
    WARMUP="${WARMUP:-1}"
    DURATION="${DURATION:-1}"
fi
CLIENTS="${CLIENTS:-10000}"
RATES="${RATES:-2,5,10,15,20}"
WARMUP="${WARMUP:-2}"
DURATION="${DURATION:-5}"
PROTOCOLS="${PROTOCOLS:-simple json reliable}"

# Each client is a socket in the generator and one in the server.
ulimit -n "$(ulimit -Hn)"
[ -d tests/support/node_modules/ws ] || {
    echo "tests/support/node_modules/ws is missing: run (cd tests/support && npm ci)"
    exit 1
}

bench_prepare webpubsub webpubsub_load
RUN_ARGS=(--clients "$CLIENTS" --rates "$RATES" --warmup "$WARMUP" --duration "$DURATION" --no-perf)
if [ -n "${SERVER_CPUS:-}" ]; then
    RUN_ARGS+=(--server-cpus "$SERVER_CPUS")
fi
echo "node: $(node --version), ws $(node -p "require('./tests/support/node_modules/ws/package.json').version")"

one_round() {
    local protocol
    run --server peer --label peer
    for protocol in $PROTOCOLS; do
        run --server ordergrid --protocol "$protocol" --label "ordergrid-$protocol"
    done
}

bench_rounds one_round
bench_finish
