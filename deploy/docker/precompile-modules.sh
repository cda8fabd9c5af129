#!/usr/bin/env bash
# precompile-modules.sh BUILD_DIR OUT_DIR — runs in the image builder stage. Copies the
# default guest module to OUT_DIR/etc/realm/modules/default.wasm and compiles it with
# `realmctl module build` into OUT_DIR/var/cache/realm/modules, the SHA-256-keyed cache the
# runner reads. Why at image build time: the runner compiles a module (wasm2c + cc) only on a
# cache miss; with the cache filled here, the runner image needs neither wabt nor a C compiler,
# and its root filesystem can stay read-only. Tenant modules added later are compiled the same
# way with the tools image into a cache volume (docs/operations.md).
#
# The default guest is looked up under BUILD_DIR; when it is not built (no wasm toolchain, or
# not implemented yet at this commit) the directories are created empty and that is said
# plainly: a runner started from such an image reports the missing module at start-up.
set -euo pipefail
build=${1:?usage: precompile-modules.sh BUILD_DIR OUT_DIR}
out=${2:?usage: precompile-modules.sh BUILD_DIR OUT_DIR}
install -d "$out/etc/realm/modules" "$out/var/cache/realm/modules"

candidates=(
  "$build/tenant-runner/guest-sdk/default/guest/default.wasm"
  "$build/guests/default/default.wasm"
)
module=""
for c in "${candidates[@]}"; do
  if [ -f "$c" ]; then module=$c; break; fi
done
if [ -z "$module" ]; then
  echo "precompile-modules: no default guest module under $build (looked for: ${candidates[*]});"
  echo "precompile-modules: the runner image will carry no precompiled module"
  exit 0
fi
install -m 0644 "$module" "$out/etc/realm/modules/default.wasm"
"$out/usr/bin/realmctl" module build "$out/etc/realm/modules/default.wasm" \
  --cache "$out/var/cache/realm/modules" --check
