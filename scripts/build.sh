#!/usr/bin/env bash
# Configures and builds one flavour of the tree.
#   scripts/build.sh [release|asan|fuzz]     (default: release)
# Build folders: build/ (release), build-asan/ (ASan+UBSan, tests), build-fuzz/ (clang libFuzzer).
set -euo pipefail
cd "$(dirname "$0")/.."
flavour=${1:-release}
jobs=$(nproc)
case $flavour in
  release) dir=build;      args=(-DCMAKE_BUILD_TYPE=Release) ;;
  asan)    dir=build-asan; args=(-DCMAKE_BUILD_TYPE=Debug -DSIBYL_SANITIZE=ON -DSIBYL_BENCHMARKS=OFF) ;;
  # The fuzz targets cover the parsers of outside input: only their components are built.
  fuzz)    dir=build-fuzz; args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++
                                 -DSIBYL_FUZZ=ON -DSIBYL_BENCHMARKS=OFF -DSIBYL_TESTS=OFF
                                 "-DSIBYL_COMPONENTS=common;event;ingest") ;;
  *) echo "unknown flavour: $flavour (release|asan|fuzz)" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" -G Ninja "${args[@]}" >/dev/null
cmake --build "$dir" -j "$jobs"
