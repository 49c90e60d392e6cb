#!/usr/bin/env bash
# The test command: installs what is needed, builds, and runs every test:
# unit and integration tests (release), the same tests under ASan+UBSan, and each fuzz
# target for a bounded time.
#   scripts/test.sh            everything
#   SIBYL_SKIP_ASAN=1 / SIBYL_SKIP_FUZZ=1 to leave a part out while developing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
jobs=$(nproc)

echo "== release build and tests"
scripts/build.sh release
ctest --test-dir build --output-on-failure -j "$jobs"

if [ "${SIBYL_SKIP_ASAN:-0}" != 1 ]; then
  echo "== ASan+UBSan build and tests"
  scripts/build.sh asan
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j "$jobs" -LE slow
fi

if [ "${SIBYL_SKIP_FUZZ:-0}" != 1 ]; then
  echo "== fuzz targets (bounded)"
  scripts/build.sh fuzz
  for target in build-fuzz/fuzz/fuzz_*; do
    [ -x "$target" ] || continue
    name=$(basename "$target")
    corpus=fuzz/corpus/${name#fuzz_}
    work=$(mktemp -d)
    [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
    echo "-- $name"
    "$target" -max_total_time="${SIBYL_FUZZ_SECONDS:-30}" -rss_limit_mb=2048 "$work" 2>&1 | tail -n 3
    rm -rf "$work"
  done
fi
echo "all tests passed"
