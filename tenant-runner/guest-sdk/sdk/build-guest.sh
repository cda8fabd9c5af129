#!/bin/sh
# build-guest.sh — compile one C file into a Realm guest module (ABI v1).
#   usage: build-guest.sh guest.c [out.wasm]
# Needs clang (14+), wasm-ld (Debian: lld) and wasi-libc (Debian: wasi-libc, sysroot /usr with
# include/wasm32-wasi and lib/wasm32-wasi) plus libclang-rt-14-dev-wasm32 (compiler builtins).
# The one-line equivalent:
#   clang --target=wasm32-wasi --sysroot=/usr -O2 -nostartfiles -Wl,--no-entry \
#         -I tenant-runner/guest-sdk/include -o guest.wasm guest.c
# Exports come from REALM_GUEST_EXPORT(...) in the source (export_name attributes), so no
# -Wl,--export flags are needed. Then vet and pre-compile it with:
#   realmctl module build guest.wasm --check
set -eu
src=${1:?usage: build-guest.sh guest.c [out.wasm]}
out=${2:-${src%.c}.wasm}
here=$(cd "$(dirname "$0")" && pwd)
exec clang --target=wasm32-wasi --sysroot=/usr -O2 -nostartfiles -Wl,--no-entry \
  -I "$here/../include" -o "$out" "$src"
