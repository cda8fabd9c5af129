#!/usr/bin/env bash
# Configures (once) and builds Realm in $BUILD_DIR (default: build). Extra `meson setup`
# arguments come from MESON_ARGS, e.g. MESON_ARGS="-Db_sanitize=address,undefined".
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  # shellcheck disable=SC2086
  meson setup "$BUILD_DIR" ${MESON_ARGS:-} >"$BUILD_DIR.setup.log" 2>&1 ||
    { cat "$BUILD_DIR.setup.log"; echo "build: meson setup failed (log above)"; exit 1; }
fi
ninja -C "$BUILD_DIR" >"$BUILD_DIR.ninja.log" 2>&1 ||
  { tail -n 60 "$BUILD_DIR.ninja.log"; echo "build: compilation failed (log above)"; exit 1; }
echo "build: ok ($BUILD_DIR)"
