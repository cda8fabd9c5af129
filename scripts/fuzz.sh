#!/usr/bin/env bash
# Fuzzing entry point for CI and developers: builds the libFuzzer targets of tests/fuzz with
# clang (ASan + UBSan), runs the allocation-failure tests, then runs every target for
# SECONDS_PER_TARGET seconds (default 60; CI passes a small value, e.g. `scripts/fuzz.sh 10`).
# Extra arguments are target names (gguf frame gateway_request tokenizer output_stream
# guest_request). Exits non-zero when a target crashes (the input is kept under
# build-fuzz/libfuzzer/crashes/TARGET/) or an allocation-failure case is not clean.
# Environment: FUZZ_DIR, CC, REALM_MODELS_DIR (see tests/fuzz/run.sh). See docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-${FUZZ_SECONDS:-60}}
[ $# -gt 0 ] && shift
bash scripts/install-deps.sh || { echo "fuzz: installing dependencies failed"; exit 2; }
exec bash tests/fuzz/run.sh -s "$secs" "$@"
