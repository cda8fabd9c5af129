#!/usr/bin/env bash
# README command 1: install what is missing, build, and start the Realm stack with a default
# model. Components that are not built yet are named plainly instead of being faked.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
echo "up: the services (realm-worker, realm-runner, realm-gateway) are not implemented yet;"
echo "up: the build above is all that exists at this commit. See docs/architecture.md."
