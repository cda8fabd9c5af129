#!/usr/bin/env bash
# Runs the whole test suite in an AddressSanitizer + UndefinedBehaviorSanitizer build
# (BUILD_DIR, default build-asan), through scripts/test.sh so the summary line is the same.
# -Db_lundef=false is required: sanitized shared objects (the guest .so files wasm2c output is
# compiled into, dlopen'ed by the runner) leave the sanitizer runtime's symbols undefined.
# UBSan is made fatal (halt_on_error) so an undefined-behaviour report fails its test instead of
# scrolling past; LeakSanitizer is on (ASan's default). Extra `meson test` arguments come from
# REALM_TEST_ARGS as in scripts/test.sh, e.g. REALM_TEST_ARGS="--suite model"; the default
# "-t 3" triples every test's timeout (ASan makes the engine, runner and e2e tests 2-3x slower;
# they are slow, not stuck). The jailed daemons run sanitized too: common/src/seccomp.c adds
# the sanitizer runtime's few syscalls to every policy and runs LeakSanitizer's check before
# the filter is loaded (docs/security.md, "Sanitizers and jails").
# The CUDA backend is left out (-Dcuda=disabled; MESON_ARGS can turn it back on): nvcc output
# is not instrumented, the ASan runtime and the CUDA driver disagree about the shadow memory
# gap, and its host code is exercised only with a GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
export BUILD_DIR=${BUILD_DIR:-build-asan}
# debugoptimized (-O2 -g): at -O0 the sanitized engine tests run past their timeouts (the
# llama forward pass is ~10x slower); -O2 keeps ASan's overhead near 2x with usable traces.
export MESON_ARGS="--buildtype=debugoptimized -Dcuda=disabled ${MESON_ARGS:-} -Db_sanitize=address,undefined -Db_lundef=false"
export REALM_TEST_ARGS=${REALM_TEST_ARGS:--t 3}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Configure and build first with a bounded job count (SANITIZE_JOBS, default nproc): sanitized
# compiles are heavy, and scripts/build.sh (called by test.sh) then finds nothing left to do.
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  # shellcheck disable=SC2086
  meson setup "$BUILD_DIR" $MESON_ARGS >"$BUILD_DIR.setup.log" 2>&1 ||
    { cat "$BUILD_DIR.setup.log"; echo "sanitize: meson setup failed"; exit 1; }
fi
ninja -C "$BUILD_DIR" -j "${SANITIZE_JOBS:-$(nproc)}" >"$BUILD_DIR.ninja.log" 2>&1 ||
  { tail -n 60 "$BUILD_DIR.ninja.log"; echo "sanitize: compilation failed (log above)"; exit 1; }
# meson test sets its own *SAN_OPTIONS unless they are already in the environment; ours win.
exec bash scripts/test.sh
