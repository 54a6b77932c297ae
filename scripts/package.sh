#!/usr/bin/env bash
# Build the Azure Functions deployment package: target/package/ordergrid.zip.
#
# The zip holds exactly what the Functions host needs on Linux (Flex
# Consumption or any other plan):
#   host.json
#   <Function>/function.json      for every top-level folder that has one
#   <defaultExecutablePath>       the static x86_64-unknown-linux-musl release
#                                 binary, mode 0755, at the path host.json names
# It is staged in target/package/app/ and zipped with Info-ZIP so the unix mode
# bits survive (a zip made on Windows loses the execute bit and the host then
# cannot start the handler). Entries are sorted, stamped with a fixed time and
# carry no uid/gid extras, so the same inputs give a byte-identical zip.
#
# Installs what is missing, saying so: the rustup target, and (apt-get) the
# Debian packages musl-tools and zip.
#
# Usage: scripts/package.sh        (prints the zip path as the LAST stdout line)
# Check the result with scripts/check-package.
#
# Environment:
#   SOURCE_DATE_EPOCH  timestamp for the zip entries (default: last commit time)
set -euo pipefail

log() { printf 'package: %s\n' "$*" >&2; }
die() { printf 'package: ERROR: %s\n' "$*" >&2; exit 1; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"

TARGET="x86_64-unknown-linux-musl"
OUT_DIR="$ROOT/target/package"
STAGE="$OUT_DIR/app"
ZIP="$OUT_DIR/ordergrid.zip"

# rustup installs to ~/.cargo/bin, which a non-login shell may not have on PATH.
if ! command -v cargo >/dev/null 2>&1 && [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]]; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust with rustup)"
command -v python3 >/dev/null 2>&1 || die "python3 not found (needed to read host.json)"


# --- tools ------------------------------------------------------------------
if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
    command -v rustup >/dev/null 2>&1 \
        || die "Rust target $TARGET is missing and rustup is not available to add it"
    log "Rust target $TARGET is missing: rustup target add $TARGET"
    rustup target add "$TARGET" >&2 || die "rustup target add $TARGET failed"
fi
# C dependencies (aws-lc-sys, ring) need a C compiler for musl.
scripts/apt-install musl-tools musl-gcc zip zip

# --- where host.json wants the binary -----------------------------------------
exe_path="$(
    python3 - "$ROOT/host.json" <<'PY'
import json, posixpath, sys
desc = json.load(open(sys.argv[1]))["customHandler"]["description"]
path = desc["defaultExecutablePath"]
if (not path or path.startswith("/") or "\\" in path
        or ".." in path.split("/") or posixpath.normpath(path) != path):
    sys.exit(f"host.json: defaultExecutablePath {path!r} must be a plain relative path")
if desc.get("workingDirectory"):
    sys.exit("host.json: a non-empty workingDirectory is not supported by this packager")
print(path)
PY
)" || die "cannot read customHandler.description.defaultExecutablePath from host.json"

mapfile -t function_dirs < <(find . -mindepth 2 -maxdepth 2 -name function.json \
    -not -path './target/*' -not -path './.*' -printf '%h\n' | sed 's|^\./||' | LC_ALL=C sort)
[[ "${#function_dirs[@]}" -gt 0 ]] || die "no <Function>/function.json found at the repository root"

# --- build --------------------------------------------------------------------
log "building the static release binary (cargo build --release --target $TARGET)"
CC_x86_64_unknown_linux_musl=musl-gcc \
    cargo build --release --locked --bin ordergrid --target "$TARGET" >&2 \
    || die "cargo build for $TARGET failed"
bin="$ROOT/target/$TARGET/release/ordergrid"
[[ -x "$bin" ]] || die "the build produced no executable at $bin"

# --- stage --------------------------------------------------------------------
rm -rf "$STAGE"
mkdir -p "$STAGE"
install -m 0644 host.json "$STAGE/host.json"
for dir in "${function_dirs[@]}"; do
    install -D -m 0644 "$dir/function.json" "$STAGE/$dir/function.json"
done
install -D -m 0755 "$bin" "$STAGE/$exe_path"

# --- zip (reproducible) -------------------------------------------------------
epoch="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 315532800)}"
[[ "$epoch" =~ ^[0-9]+$ ]] || die "SOURCE_DATE_EPOCH must be a unix timestamp, got '$epoch'"
find "$STAGE" -exec touch -h -d "@$epoch" {} +
rm -f "$ZIP" "$ZIP.tmp"
# -X: no uid/gid/extended-time extras (mode bits are kept); -D: no directory
# entries; -@: names from stdin in sorted order; TZ=UTC: DOS times are local.
(cd "$STAGE" && find . -type f -printf '%P\n' | LC_ALL=C sort \
    | TZ=UTC zip -X -D -q -9 -@ "$ZIP.tmp") || die "zip failed"
mv -f "$ZIP.tmp" "$ZIP"

bin_bytes="$(stat -c %s "$STAGE/$exe_path")"
zip_bytes="$(stat -c %s "$ZIP")"
log "binary $exe_path: $bin_bytes bytes ($(numfmt --to=iec-i --suffix=B "$bin_bytes"))"
log "package $ZIP: $zip_bytes bytes ($(numfmt --to=iec-i --suffix=B "$zip_bytes"))"
printf '%s\n' "$ZIP"
