#!/usr/bin/env bash
# README command 1: install what is missing, build, and start the whole Realm stack on this
# machine with `realmctl up` (realm-worker, the tenants' runners, realm-gateway; supervised,
# logs prefixed per process; Ctrl-C stops everything).
#
# Defaults: config deploy/config/local.example.json (tenants acme with 2 runners and globex),
# state under ./.realm/ (tenants file with key hashes, demo model, compiled modules, sockets).
# Without --model a small random-weight demo model is synthesized once (output is random text).
# Any argument is passed to `realmctl up`, e.g.:
#   bash scripts/up.sh --model ../shared/models/gguf/stories260K.gguf --port 8081
# Environment: BUILD_DIR (default build), REALM_UP_CONFIG (default the example config).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
BUILD_DIR=${BUILD_DIR:-build}
CONFIG=${REALM_UP_CONFIG:-deploy/config/local.example.json}
REALMCTL="$BUILD_DIR/tools/realmctl/realmctl"
if [ ! -x "$REALMCTL" ]; then
  echo "up: $REALMCTL was not built (see $BUILD_DIR.ninja.log)" >&2
  exit 1
fi
# The shared models directory next to the checkout gives the demo model a real vocabulary.
if [ -z "${REALM_MODELS_DIR:-}" ] && [ -d ../shared/models ]; then
  export REALM_MODELS_DIR="$(cd ../shared/models && pwd)"
fi
exec "$REALMCTL" up --config "$CONFIG" --state-dir .realm "$@"
