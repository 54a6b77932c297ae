#!/bin/sh
# Builds dist/web-pubsub-client.js, the ES module bundle of @azure/web-pubsub-client that the web
# function embeds and serves (src/functions/web.rs). The bundle is committed, so building ordergrid
# needs no Node.js; run this after changing package.json, and commit the result.
#
#   web/build.sh          install the pinned packages (npm ci) and build
#   web/build.sh --check  build into a temporary file and fail if it differs from the committed one
#
# Deterministic: pinned versions (package-lock.json), no source maps, no timestamps.
set -eu
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error >/dev/null
out=dist/web-pubsub-client.js
version=$(node -p 'require("./node_modules/@azure/web-pubsub-client/package.json").version')
if [ "${1:-}" = "--check" ]; then
    out=$(mktemp)
    trap 'rm -f "$out"' EXIT
fi
./node_modules/.bin/esbuild entry.js --bundle --format=esm --platform=browser --target=es2020 \
    --minify --legal-comments=eof --log-level=warning \
    --banner:js="/*! @azure/web-pubsub-client $version with its browser dependencies (@azure/core-util, @azure/logger, @azure/abort-controller, @typespec/ts-http-runtime, events), all MIT licensed. Built by web/build.sh from web/package-lock.json; do not edit. */" \
    --outfile="$out"
if [ "${1:-}" = "--check" ]; then
    if cmp -s "$out" dist/web-pubsub-client.js; then
        echo "web/dist/web-pubsub-client.js is what build.sh produces"
    else
        echo "web/dist/web-pubsub-client.js differs from what build.sh produces: run web/build.sh and commit" >&2
        exit 1
    fi
fi
