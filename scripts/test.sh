#!/usr/bin/env bash
# README command 2: install what is missing, build, and run the whole test suite.
# Ends with one line "N passed, N failed, N skipped" and exits non-zero on any failure.
# Environment: BUILD_DIR (default build), MESON_ARGS (extra `meson setup` arguments),
# REALM_TEST_ARGS (extra `meson test` arguments, e.g. a suite name).
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}

bash scripts/install-deps.sh || { echo "test: installing dependencies failed"; exit 1; }
bash scripts/build.sh || { echo "0 passed, 1 failed"; exit 1; }

# shellcheck disable=SC2086
meson test -C "$BUILD_DIR" --print-errorlogs --num-processes "$(nproc)" ${REALM_TEST_ARGS:-} \
  > "$BUILD_DIR/meson-test.out" 2>&1
meson_rc=$?
tail -n 40 "$BUILD_DIR/meson-test.out" | grep -v '^$' | grep -E -v '^(Ok|Expected Fail|Fail|Unexpected Pass|Skipped|Timeout):' || true
python3 scripts/test-summary.py "$BUILD_DIR/meson-logs/testlog.json"
summary_rc=$?
if [ $meson_rc -ne 0 ] || [ $summary_rc -ne 0 ]; then exit 1; fi
exit 0
