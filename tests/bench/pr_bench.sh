#!/usr/bin/env bash
# PR OUT latency with APTPL against a bare fsync on the same file system (issue 3, acceptance
# 5). Starts holdfastd with its data folder in a fresh work folder and runs pr_latency with
# that folder, so the target's saves and the bare flushes hit the same file system. Prints
# figures and ratios; it never fails on a number.
#
# usage: tests/bench/pr_bench.sh [BUILD_DIR]      (default: ./build)
#   BENCH_PR_COUNT=1000   commands (and flushes) per load
#   TMPDIR                where the work folder (and so the data folder) goes
. "$(dirname "$0")/../integration/lib.sh"

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
COUNT=${BENCH_PR_COUNT:-1000}
TOOL=$BUILD/tests/pr_latency
IQN=iqn.2026-11.org.holdfast:prbench
[ -x "$TOOL" ] || hf_die "build pr_latency first ($TOOL)"

hf_free_port PORT
DATA=$HF_WORK/data
hf_write_config "$HF_WORK/holdfastd.conf" "$DATA" "$IQN" "$PORT" memory:16M
LOG=$HF_WORK/holdfastd.log
hf_start_holdfastd SID "$BUILD" "$HF_WORK/holdfastd.conf" "$LOG"
hf_wait_port "$PORT" "$SID" "$LOG"

fs=$(df -PT "$DATA" | awk 'NR == 2 { print $2 " on " $1 }')
hf_log "PR OUT latency, $COUNT commands per load; data folder $DATA ($fs)"
"$TOOL" "iscsi://127.0.0.1:$PORT/$IQN/0" "$DATA" --count "$COUNT"
hf_stop_session "$SID" 10
