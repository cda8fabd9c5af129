#!/bin/bash
# run-e2e.sh — meson test e2e_stack (suite e2e): the whole product, end to end. Starts
# `realmctl up` (real realm-worker serving stories260K, real jailed realm-runner replicas with
# the default guest, real realm-gateway) on a free loopback port and drives it with the
# official `openai` npm client (tests/e2e/e2e.test.mjs): concurrent streams of three tenants,
# kill -9 of a runner replica and of the worker mid-stream, onboarding and key rotation.
#
# Usage: run-e2e.sh PATH/TO/realmctl MODULE_CACHE_DIR
# The `openai` package is the one pinned by tests/sdk/package.json, installed into
# tests/sdk/node_modules exactly as tests/sdk/run-sdk-test.sh does (npm ci under the same lock),
# so both tests share one install. Missing node/npm is a failure with a clear message (they are
# in scripts/install-deps.sh); a missing stories260K model is a skip. Output: TAP.
set -u
REALMCTL="${1:-}"
CACHE="${2:-}"
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SDK="$DIR/../sdk"

fail() {
  echo "1..1"
  echo "not ok 1 e2e_setup"
  echo "# $*"
  exit 1
}

[ -n "$REALMCTL" ] && [ -x "$REALMCTL" ] || fail "usage: run-e2e.sh PATH/TO/realmctl CACHE_DIR (got '$REALMCTL')"
[ -n "$CACHE" ] || fail "usage: run-e2e.sh PATH/TO/realmctl CACHE_DIR (no cache dir)"
MODEL="${REALM_MODELS_DIR:-$DIR/../../../shared/models}/gguf/stories260K.gguf"
if [ ! -r "$MODEL" ]; then
  echo "1..0 # SKIP model $MODEL not present (set REALM_MODELS_DIR)"
  exit 0
fi
command -v node >/dev/null 2>&1 || fail "node is not installed: install Node.js 20 (scripts/install-deps.sh lists it)"
command -v npm >/dev/null 2>&1 || fail "npm is not installed: install npm (scripts/install-deps.sh lists it)"
major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$major" -ge 20 ] 2>/dev/null || fail "node $(node --version) is too old: the test needs Node.js 20 or newer"

# The install step of tests/sdk/run-sdk-test.sh: same package dir, same lock file.
want="$(node -p 'require(process.argv[1]).dependencies.openai' "$SDK/package.json")"
have_version() {
  node -p 'try { require(process.argv[1]).version } catch (e) { "" }' \
    "$SDK/node_modules/openai/package.json" 2>/dev/null
}
if [ "$(have_version)" != "$want" ]; then
  lock="${REALM_BUILD_ROOT:-${TMPDIR:-/tmp}}/.realm-sdk-npm.lock"
  (
    flock -w 300 9 || exit 1
    if [ "$(have_version)" != "$want" ]; then
      cd "$SDK" && npm ci --no-audit --no-fund --loglevel=error 1>&2
    fi
  ) 9>"$lock" || fail "npm ci in $SDK failed (it needs the npm registry); run it by hand to see why"
  [ "$(have_version)" = "$want" ] || fail "openai $want is not installed in $SDK/node_modules after npm ci"
fi

mkdir -p "$CACHE" || fail "cannot create module cache $CACHE"
exec node "$DIR/e2e.test.mjs" "$REALMCTL" "$MODEL" "$CACHE" "$SDK/node_modules/openai/index.mjs"
