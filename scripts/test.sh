#!/usr/bin/env bash
# Install dependencies, build everything, and run the unit and integration tests with ctest.
# Exits non-zero when anything fails. Arguments go to ctest (for example: -R conformance).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${HOLDFAST_BUILD:-$ROOT/build}
"$ROOT/scripts/deps.sh"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
make -C "$BUILD" -j"$(nproc)"
# Integration tests pick their own ports and can run side by side; more than two at once
# only makes them fight for the CPU (and time out) on small machines.
jobs=$(nproc)
[ "$jobs" -le 2 ] || jobs=$((jobs / 2))
[ "$jobs" -ge 1 ] || jobs=1
cd "$BUILD"
exec ctest --output-on-failure -j"$jobs" "$@"
