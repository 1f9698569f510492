#!/usr/bin/env bash
# Install dependencies, build, and run holdfastd in the foreground on its embedded default
# (a data folder in the working directory, one 1 GiB LUN, iSCSI on 127.0.0.1:3260).
# Extra arguments go to holdfastd (for example: -c my.conf). Stop it with Ctrl-C.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/scripts/deps.sh"
cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
make -C "$ROOT/build" -j"$(nproc)" holdfastd holdfastctl
exec "$ROOT/build/holdfastd" "$@"
