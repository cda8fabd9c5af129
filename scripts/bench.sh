#!/usr/bin/env bash
# bench.sh — one entry point for the whole-stack benchmarks (docs/benchmarks-stack.md):
# isolation overhead (engine vs worker socket vs HTTP through the whole stack), tenant
# scaling, memory per tenant, gateway requests/s. Installs wrk and gnuplot when missing (same
# idempotent style as install-deps.sh; kept out of the test install on purpose), builds only
# the programs the benchmarks need, then runs bench/stack/run_stack.py, which starts the
# stack with `realmctl up`, writes a JSON result and a PNG plot per benchmark, and prints a
# summary table of ratios against the targets.
#
# Usage: scripts/bench.sh [all|isolation|scaling|memory|gateway[,...]] [run_stack.py options]
#   e.g. scripts/bench.sh isolation --rounds 11 --threads 2
# Environment: BUILD_DIR (default build), BENCH_OUT (default $BUILD_DIR/bench-stack/<time>),
# REALM_MODELS_DIR (for the llama vocabulary the synthesized model uses).
# The whole run is bounded: about 2 minutes on 2 cores, with a hard 10 minute timeout. Every
# process it starts is in run_stack.py's process groups, killed on any exit; the trap below
# also ends run_stack.py itself if this script is interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}

which="all"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then which="$1"; shift; fi
[ "$which" = "all" ] && which="isolation,scaling,gateway"

# --- tools: installed on demand, only what is missing ------------------------------------
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v gnuplot >/dev/null 2>&1 || need+=(gnuplot-nox)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "bench: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- build: just the benchmark's programs (a broken unrelated target does not stop it) ----
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  # shellcheck disable=SC2086
  meson setup "$BUILD_DIR" ${MESON_ARGS:-} >"$BUILD_DIR.setup.log" 2>&1 ||
    { cat "$BUILD_DIR.setup.log"; echo "bench: meson setup failed (log above)"; exit 1; }
fi
targets=(bench/stack/stack_bench compute-worker/worker/realm-worker
         tenant-runner/runner/realm-runner gateway/realm-gateway tools/realmctl/realmctl)
# The default guest needs the wasm toolchain; without it realmctl up has no module to run.
if ninja -C "$BUILD_DIR" -t targets all 2>/dev/null | grep -q '^tenant-runner/guest-sdk/default/guest/default.wasm:'; then
  targets+=(tenant-runner/guest-sdk/default/guest/default.wasm)
fi
ninja -C "$BUILD_DIR" -j"${BENCH_JOBS:-2}" "${targets[@]}" >"$BUILD_DIR.bench-build.log" 2>&1 ||
  { tail -n 40 "$BUILD_DIR.bench-build.log"; echo "bench: build failed (log above)"; exit 1; }

OUT=${BENCH_OUT:-$BUILD_DIR/bench-stack/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
echo "bench: load average now: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs (numbers are noisy on a busy machine)"
echo "bench: results in $OUT"

# run_stack.py in its own process group; on INT/TERM/exit it is told to stop (it kills the
# stacks it started), then the group is killed in case it could not.
child=""
# shellcheck disable=SC2317  # called by the traps
cleanup() {
  if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
    kill -TERM "$child" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$child" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$child" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM
setsid timeout --kill-after=20 600 python3 bench/stack/run_stack.py \
  --build "$BUILD_DIR" --out "$OUT" --only "$which" "$@" &
child=$!
rc=0
wait "$child" || rc=$?
child=""
exit "$rc"
