#!/bin/bash
# run-sdk-test.sh — meson test gw_openai_sdk (suite gateway): drives a running gateway (the
# test-only gw-fake-stack: gateway core + runner backend + a fake runner over real ZeroMQ)
# with the official `openai` npm client, version pinned in package.json / package-lock.json.
#
# Usage: run-sdk-test.sh PATH/TO/gw-fake-stack
# Installs the pinned package into tests/sdk/node_modules when it is missing or not the
# locked version (`npm ci`; CI reaches the npm registry), under a lock so parallel runs do not
# race. Missing node/npm is a failure with a clear message, never a skip: node 20 and npm are
# listed in scripts/install-deps.sh. Output: TAP (printed by sdk.test.mjs).
set -u
STACK="${1:-}"
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

fail() {
  echo "1..1"
  echo "not ok 1 openai_sdk_setup"
  echo "# $*"
  exit 1
}

[ -n "$STACK" ] && [ -x "$STACK" ] || fail "usage: run-sdk-test.sh PATH/TO/gw-fake-stack (got '$STACK')"
command -v node >/dev/null 2>&1 || fail "node is not installed: install Node.js 20 (scripts/install-deps.sh lists it)"
command -v npm >/dev/null 2>&1 || fail "npm is not installed: install npm (scripts/install-deps.sh lists it)"
major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$major" -ge 20 ] 2>/dev/null || fail "node $(node --version) is too old: the test needs Node.js 20 or newer"

want="$(node -p 'require(process.argv[1]).dependencies.openai' "$DIR/package.json")"
have_version() {
  node -p 'try { require(process.argv[1]).version } catch (e) { "" }' \
    "$DIR/node_modules/openai/package.json" 2>/dev/null
}
if [ "$(have_version)" != "$want" ]; then
  lock="${REALM_BUILD_ROOT:-${TMPDIR:-/tmp}}/.realm-sdk-npm.lock"
  (
    flock -w 300 9 || exit 1
    if [ "$(have_version)" != "$want" ]; then
      cd "$DIR" && npm ci --no-audit --no-fund --loglevel=error 1>&2
    fi
  ) 9>"$lock" || fail "npm ci in $DIR failed (it needs the npm registry); run it by hand to see why"
  [ "$(have_version)" = "$want" ] || fail "openai $want is not installed in $DIR/node_modules after npm ci"
fi

exec node "$DIR/sdk.test.mjs" "$STACK"
