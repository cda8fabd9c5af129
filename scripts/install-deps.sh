#!/usr/bin/env bash
# Installs the Debian packages Realm needs to build, test and run. Idempotent: when every
# package is already present it prints nothing and touches nothing. Needs root (or sudo).
set -euo pipefail

PACKAGES=(
  build-essential meson ninja-build pkg-config python3
  libzmq3-dev libprotobuf-c-dev protobuf-c-compiler
  libseccomp-dev libmicrohttpd-dev libjansson-dev libsodium-dev
  wabt clang lld wasi-libc libclang-rt-14-dev-wasm32 libclang-rt-14-dev
  curl nodejs npm docker-compose yamllint python3-yaml
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Node may come from outside Debian (e.g. /usr/bin/node from nodesource); accept any working one.
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
filtered=()
for p in "${missing[@]}"; do [ -n "$p" ] && filtered+=("$p"); done
[ ${#filtered[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${filtered[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${filtered[@]}" >/dev/null
