#!/usr/bin/env bash
# Installs every Debian package the build, the tests and the benchmarks need, and the
# vendors' Node SDKs the SDK test drives (tests/sdk, pinned in its package-lock.json).
# Idempotent: packages already present are skipped quickly.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
  libsimdjson-dev libxgboost-dev libcli11-dev libfmt-dev libzstd-dev zlib1g-dev
  libcpp-httplib-dev libssl-dev nlohmann-json3-dev libabsl-dev libjemalloc-dev curl
  libgtest-dev libgmock-dev libbenchmark-dev
  python3-numpy python3-scipy
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node and npm for tests/sdk: Debian's, unless a node/npm is already on PATH (another
# package, e.g. nodesource's nodejs, may provide both and conflict with Debian's npm).
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The SDKs, exactly as locked, when node_modules is missing or older than the lock file.
sdk="$(dirname "$0")/../tests/sdk"
if [ ! -d "$sdk/node_modules" ] || [ "$sdk/package-lock.json" -nt "$sdk/node_modules" ]; then
  echo "installing the SDK test's npm packages (tests/sdk)" >&2
  (cd "$sdk" && npm ci --no-audit --no-fund >/dev/null)
  touch "$sdk/node_modules"
fi
