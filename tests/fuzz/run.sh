#!/usr/bin/env bash
# tests/fuzz/run.sh — builds Realm's libFuzzer targets and the allocation-failure tests with
# clang, generates their seed corpora, and runs each target for a bounded time.
#
# This is a standalone build on purpose: tests/meson.build walks a fixed list of directories
# (fuzz is not one of them) and the main build uses gcc, whereas libFuzzer needs clang. Each
# target compiles the .c files of the module it tests directly, plus what it needs generated
# (protoc-c output for the wire messages, the tokenizer's Unicode table), all into the work
# directory; nothing generated is ever written into the source tree.
#
# Usage: tests/fuzz/run.sh [-s SECONDS] [-b] [-F] [TARGET...]
#   -s SECONDS  run each fuzz target this long (default 60; FUZZ_SECONDS overrides too)
#   -b          build and generate seeds only, run nothing
#   -F          skip the fault-injection tests
#   TARGET      a subset of: gguf frame gateway_request tokenizer output_stream guest_request
# Environment: FUZZ_DIR (work directory, default <repo>/build-fuzz/libfuzzer), CC (default clang),
#   REALM_MODELS_DIR (shared models; default /work/shared/models), FUZZ_JOBS (parallel
#   compiles, default 2).
# Exit status: 0 when every target ran without a crash and every fault-injection test passed;
# 1 when a target found a crash (the input is saved under $FUZZ_DIR/crashes/TARGET/) or a test
# failed; 2 on a build or usage error.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=${FUZZ_DIR:-$ROOT/build-fuzz/libfuzzer}
CC=${CC:-clang}
MODELS=${REALM_MODELS_DIR:-/work/shared/models}
SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
JOBS=${FUZZ_JOBS:-2}
BUILD_ONLY=0
FAULTS=1
ALL_TARGETS=(gguf frame gateway_request tokenizer output_stream guest_request)

while getopts "s:bF" opt; do
  case $opt in
    s) SECONDS_PER_TARGET=$OPTARG ;;
    b) BUILD_ONLY=1 ;;
    F) FAULTS=0 ;;
    *) echo "usage: $0 [-s SECONDS] [-b] [-F] [TARGET...]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL_TARGETS[@]}")
for t in "${TARGETS[@]}"; do
  case " ${ALL_TARGETS[*]} " in *" $t "*) ;; *) echo "fuzz: unknown target '$t'" >&2; exit 2 ;; esac
done
case $SECONDS_PER_TARGET in ''|*[!0-9]*) echo "fuzz: -s wants whole seconds" >&2; exit 2 ;; esac

die() { echo "fuzz: $*" >&2; exit 2; }
command -v "$CC" >/dev/null || die "$CC not found (install clang)"
command -v protoc-c >/dev/null || die "protoc-c not found (install protobuf-c-compiler)"
command -v python3 >/dev/null || die "python3 not found"

mkdir -p "$W"/{gen,obj,bin,seeds,corpus,crashes,logs}

# ---- generated sources -------------------------------------------------------------------
# protoc-c writes <out>/realm/v1/*.pb-c.[ch]; regenerate only when a .proto is newer.
if [ ! -f "$W/gen/realm/v1/worker.pb-c.c" ] ||
   [ -n "$(find "$ROOT/proto/realm/v1" -name '*.proto' -newer "$W/gen/realm/v1/worker.pb-c.c")" ]; then
  (cd "$ROOT/proto" && protoc-c --proto_path=. --c_out="$W/gen" \
     realm/v1/common.proto realm/v1/runner.proto realm/v1/worker.proto) ||
    die "protoc-c failed"
fi
TOKDIR=$ROOT/tenant-runner/guest-sdk/default/tokenizer
if [ ! -f "$W/gen/tok_unicode_table.inc" ]; then
  python3 "$TOKDIR/gen_unicode_table.py" "$W/gen/tok_unicode_table.inc" || die "unicode table"
fi

# ---- compiling ---------------------------------------------------------------------------
# Two flavours of every object: "fz" is instrumented for libFuzzer (coverage feedback) and
# the sanitizers; "as" only for the sanitizers (seed generator, fault-injection programs).
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
BASE="-std=c11 -D_GNU_SOURCE -g -O1 $SAN"
INC=(-I"$ROOT/common/include" -I"$ROOT/proto/include" -I"$W/gen" -I"$ROOT/compute-worker/model"
     -I"$ROOT/gateway" -I"$TOKDIR" -I"$ROOT/tenant-runner/guest-sdk/default/sampler"
     -I"$ROOT/tenant-runner/guest-sdk/default/guest" -I"$ROOT/tenant-runner/guest-sdk/include")
# Our harness code is held to the project's warning rules; code of other modules is compiled
# with warnings but without -Werror (generated code and other modules' warnings under clang are
# not ours to fail on), and its warnings land in the log.
OURS_WARN="-Wall -Wextra -Werror"
THEIRS_WARN="-Wall -Wextra -Wno-unused-parameter"

# obj FLAVOUR SRC -> prints the object path; compiles when the source or a header is newer.
obj() {
  local flavour=$1 src=$2 rel o flags warn
  rel=${src#"$ROOT"/}; rel=${rel#"$W"/}
  o="$W/obj/$flavour/${rel//\//_}.o"
  if [ "$flavour" = fz ]; then flags="$BASE -fsanitize=fuzzer-no-link"; else flags="$BASE"; fi
  case $src in "$ROOT"/tests/fuzz/*) warn=$OURS_WARN ;; *) warn=$THEIRS_WARN ;; esac
  # -ffp-contract=off as the sampler's own build uses, so behaviour matches.
  case $src in */sampler/*) flags="$flags -ffp-contract=off" ;; esac
  if [ ! -f "$o" ] || [ "$src" -nt "$o" ] || [ "$0" -nt "$o" ] ||
     [ -n "$(find "$ROOT/common/include" "$(dirname "$src")" -name '*.h' -newer "$o" 2>/dev/null | head -n 1)" ]; then
    mkdir -p "$(dirname "$o")"
    # shellcheck disable=SC2086
    "$CC" $flags $warn "${INC[@]}" -c "$src" -o "$o" 2>>"$W/logs/compile.log" ||
      { tail -n 30 "$W/logs/compile.log" >&2; die "compiling $rel failed"; }
  fi
  echo "$o"
}

GEN_PROTO=("$W/gen/realm/v1/common.pb-c.c" "$W/gen/realm/v1/runner.pb-c.c" "$W/gen/realm/v1/worker.pb-c.c")
SRC_GGUF=("$ROOT/compute-worker/model/gguf.c" "$ROOT/common/src/error.c")
SRC_FRAME=("$ROOT/common/src/frame.c" "$ROOT/common/src/error.c" "${GEN_PROTO[@]}")
SRC_GATEWAY=("$ROOT/gateway/params.c" "$ROOT/gateway/parse_chat.c" "$ROOT/gateway/parse_completions.c"
             "$ROOT/gateway/buf.c" "$ROOT/gateway/utf8.c" "$ROOT/common/src/error.c")
SRC_TOK=("$TOKDIR/tokenizer.c" "$TOKDIR/tok_spm.c" "$TOKDIR/tok_bpe.c" "$TOKDIR/tok_unicode.c"
         "${SRC_GGUF[@]}")
SAMPDIR=$ROOT/tenant-runner/guest-sdk/default/sampler
SRC_STREAM=("$SAMPDIR/output_stream.c" "$SAMPDIR/stop.c" "$SAMPDIR/utf8_stream.c")
SRC_GREQ=("$ROOT/tenant-runner/guest-sdk/default/guest/guest_request.c")

sources_of() {
  case $1 in
    gguf) echo "${SRC_GGUF[@]}" ;;
    frame) echo "${SRC_FRAME[@]}" ;;
    gateway_request) echo "${SRC_GATEWAY[@]}" ;;
    tokenizer) echo "${SRC_TOK[@]}" ;;
    output_stream) echo "${SRC_STREAM[@]}" ;;
    guest_request) echo "${SRC_GREQ[@]}" ;;
  esac
}
libs_of() {
  case $1 in
    frame) echo "-lprotobuf-c" ;;
    gateway_request) echo "-ljansson" ;;
    tokenizer) echo "-lm" ;;
    output_stream) echo "-lm" ;;
    *) echo "" ;;
  esac
}

# link FLAVOUR OUT LIBS SRC... (compiles what is missing or stale, then links).
link() {
  local flavour=$1 out=$2 libs=$3; shift 3
  local objs=() s
  for s in "$@"; do objs+=("$(obj "$flavour" "$s")"); done
  local lflags="$SAN"
  [ "$flavour" = fz ] && lflags="$SAN -fsanitize=fuzzer"
  # shellcheck disable=SC2086
  "$CC" $lflags "${objs[@]}" -o "$out" $libs 2>>"$W/logs/compile.log" ||
    { tail -n 30 "$W/logs/compile.log" >&2; die "linking $(basename "$out") failed"; }
}

: >"$W/logs/compile.log"
echo "fuzz: building in $W"
WRAP="-Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=strndup"
# Every object first, $JOBS compiles at a time (each object once: sources are shared between
# targets), then the links, which recompile nothing and stop at the first error.
declare -A seen=()
want=()
for t in "${TARGETS[@]}"; do
  for s in "$ROOT/tests/fuzz/fuzz_$t.c" $(sources_of "$t"); do want+=("fz $s"); done
done
for s in "$ROOT/tests/fuzz/seedgen.c" "$ROOT/compute-worker/model/gguf_write.c" "${SRC_FRAME[@]}" \
         "$ROOT/tests/fuzz/faultinject.c" "${SRC_GGUF[@]}"; do want+=("as $s"); done
for w in "${want[@]}"; do
  [ -n "${seen[$w]:-}" ] && continue
  seen[$w]=1
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
  # shellcheck disable=SC2086
  (obj $w >/dev/null) &
done
wait || true
for t in "${TARGETS[@]}"; do
  # shellcheck disable=SC2046
  link fz "$W/bin/fuzz_$t" "$(libs_of "$t")" "$ROOT/tests/fuzz/fuzz_$t.c" $(sources_of "$t")
done
link as "$W/bin/seedgen" "-lprotobuf-c" "$ROOT/tests/fuzz/seedgen.c" \
  "$ROOT/compute-worker/model/gguf_write.c" "$ROOT/compute-worker/model/gguf.c" "${SRC_FRAME[@]}"
# --wrap routes every allocation the code under test makes through the countdown in
# faultinject.c; libc's and libprotobuf-c's internal allocations are not wrapped, which is what
# we want: the failure points are the allocations our own code must check.
link as "$W/bin/faultinject" "-lprotobuf-c $WRAP" "$ROOT/tests/fuzz/faultinject.c" \
  "$ROOT/compute-worker/model/gguf_write.c" "${SRC_GGUF[@]}" "$ROOT/common/src/frame.c" "${GEN_PROTO[@]}"

# ---- seeds -------------------------------------------------------------------------------
# Synthesized by seedgen (GGUF files from the writer, encoded frames, JSON bodies, request
# blobs, stream scripts), plus the heads of the real model files: nothing binary is committed.
rm -rf "$W/seeds"
mkdir -p "$W/seeds"
"$W/bin/seedgen" "$W/seeds" || die "seed generation failed"
for f in "$MODELS"/gguf/*.gguf "$MODELS"/vocab/*.gguf; do
  [ -f "$f" ] && head -c 65536 "$f" >"$W/seeds/gguf/head-$(basename "$f")"
done
for f in "$MODELS"/vocab/*.inp; do
  [ -f "$f" ] && cp "$f" "$W/seeds/tokenizer/$(basename "$f")"
done
echo "fuzz: seeds: $(for t in "${ALL_TARGETS[@]}"; do printf '%s=%s ' "$t" "$(ls "$W/seeds/$t" | wc -l)"; done)"
[ $BUILD_ONLY -eq 1 ] && { echo "fuzz: built (run nothing: -b)"; exit 0; }

status=0

# ---- fault injection ---------------------------------------------------------------------
if [ $FAULTS -eq 1 ]; then
  real_model="$MODELS/gguf/stories260K.gguf"
  [ -f "$real_model" ] || real_model=""
  if ASAN_OPTIONS=detect_leaks=1 "$W/bin/faultinject" $real_model >"$W/logs/faultinject.log" 2>&1; then
    grep '^faultinject:' "$W/logs/faultinject.log" || true
  else
    tail -n 40 "$W/logs/faultinject.log"
    echo "fuzz: FAULT INJECTION FAILED (log: $W/logs/faultinject.log)"
    status=1
  fi
fi

# ---- fuzzing -----------------------------------------------------------------------------
max_len_of() {
  case $1 in
    gguf) echo 65536 ;;
    tokenizer) echo 1024 ;;
    gateway_request) echo 8192 ;;
    *) echo 4096 ;;
  esac
}
for t in "${TARGETS[@]}"; do
  if [ "$t" = tokenizer ] && { [ ! -f "$MODELS/vocab/ggml-vocab-llama-spm.gguf" ] ||
                               [ ! -f "$MODELS/vocab/ggml-vocab-gpt-2.gguf" ]; }; then
    echo "fuzz: tokenizer: SKIPPED (vocabulary files not found under $MODELS/vocab)"
    continue
  fi
  mkdir -p "$W/corpus/$t" "$W/crashes/$t"
  log="$W/logs/$t.log"
  rc=0
  REALM_MODELS_DIR=$MODELS ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
  UBSAN_OPTIONS=print_stacktrace=1 \
    "$W/bin/fuzz_$t" -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 \
      -max_len="$(max_len_of "$t")" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$W/crashes/$t/" "$W/corpus/$t" "$W/seeds/$t" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1)
  crashes=$(find "$W/crashes/$t" -type f | wc -l)
  if [ $rc -ne 0 ]; then
    echo "fuzz: $t: CRASH after ${execs:-?} execs (exit $rc); log $log; inputs in $W/crashes/$t/"
    grep -E 'ERROR: |runtime error|SUMMARY|Test unit written' "$log" | head -n 8 | sed 's/^/  /'
    status=1
  else
    echo "fuzz: $t: ok: ${execs:-?} execs in ${SECONDS_PER_TARGET}s (${speed:-?}/s), ${cov:-cov ?}, corpus $(ls "$W/corpus/$t" | wc -l), saved crashes $crashes"
  fi
done
exit $status
