#!/usr/bin/env bash
# Installs every Debian package the build, the tests and the benchmarks need, the vendors'
# Node SDKs the SDK test drives (tests/sdk), and Chromium with puppeteer-core for the
# browser test (tests/web); the npm packages pinned in each folder's package-lock.json.
# Idempotent: packages already present are skipped quickly.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
  libsimdjson-dev libxgboost-dev libcli11-dev libfmt-dev libzstd-dev zlib1g-dev
  libcpp-httplib-dev libboost1.74-dev libssl-dev nlohmann-json3-dev libabsl-dev libjemalloc-dev curl
  libgtest-dev libgmock-dev libbenchmark-dev
  python3-numpy python3-scipy
  clickhouse-server clickhouse-client
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node and npm for tests/sdk: Debian's, unless a node/npm is already on PATH (another
# package, e.g. nodesource's nodejs, may provide both and conflict with Debian's npm).
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# Chromium for tests/web (headless, driven by puppeteer-core): Debian's.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The npm packages, exactly as locked, when node_modules is missing or older than the lock
# file: the SDKs (tests/sdk), puppeteer-core and the browser SDKs (tests/web).
for dir in sdk web; do
  folder="$(dirname "$0")/../tests/$dir"
  if [ ! -d "$folder/node_modules" ] || [ "$folder/package-lock.json" -nt "$folder/node_modules" ]; then
    echo "installing the npm packages of tests/$dir" >&2
    (cd "$folder" && npm ci --no-audit --no-fund >/dev/null)
    touch "$folder/node_modules"
  fi
done
