#!/usr/bin/env bash
# Holdfast against Debian's tgt, same machine, same run, same loads; loopback TCP (iperf3) as
# the ceiling. Prints figures and ratios; it never fails on a number.
#
# usage: tests/bench/bench.sh [BUILD_DIR]      (default: ./build)
#   BENCH_SECONDS=10  length of each load
#   BENCH_SIZE=1G     LUN size (both targets)
#   BENCH_SESSIONS=50 idle sessions for the memory-per-session figure
#   BENCH_ONLY=tgt    skip holdfastd (or BENCH_ONLY=holdfast to skip tgt)
. "$(dirname "$0")/../integration/lib.sh"

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
SECONDS_PER_LOAD=${BENCH_SECONDS:-10}
SIZE=${BENCH_SIZE:-1G}
NSESS=${BENCH_SESSIONS:-50}
ONLY=${BENCH_ONLY:-}
LOADGEN=$BUILD/tests/loadgen
IDLE=$BUILD/tests/idle_sessions
IQN=iqn.2026-11.org.holdfast:bench
[ -x "$LOADGEN" ] && [ -x "$IDLE" ] || hf_die "build loadgen and idle_sessions first ($BUILD/tests)"

# Each load: name, loadgen arguments.
LOADS=(
	"4K randread QD1|--rw randread --bs 4096 --qd 1"
	"4K randread QD32|--rw randread --bs 4096 --qd 32"
	"4K randwrite QD1|--rw randwrite --bs 4096 --qd 1"
	"4K randwrite QD32|--rw randwrite --bs 4096 --qd 32"
	"1M read QD8|--rw read --bs 1048576 --qd 8"
	"1M write QD8|--rw write --bs 1048576 --qd 8"
)

declare -A URL SID
TARGETS=()

# tgt: its closest thing to a memory LUN is the rdwr backing on a tmpfs file (its "null"
# backing store discards data and reads zeroes, which no real target does).
if [ "$ONLY" != holdfast ]; then
	hf_free_port TP
	SHM=$(mktemp /dev/shm/holdfast-bench-tgt.XXXXXX)
	trap 'rm -f "$SHM"; hf_cleanup' EXIT
	truncate -s "$SIZE" "$SHM"
	hf_start_tgtd TSID "$SHM" "$IQN" "$TP"
	URL[tgt]=iscsi://127.0.0.1:$TP/$IQN/1
	SID[tgt]=$TSID
	TARGETS+=(tgt)
fi

if [ "$ONLY" != tgt ]; then
	hf_free_port HP
	hf_write_config "$HF_WORK/holdfastd.conf" "$HF_WORK/data" "$IQN" "$HP" "memory:$SIZE"
	HLOG=$HF_WORK/holdfastd.log
	if [ -x "$BUILD/holdfastd" ]; then
		hf_start_holdfastd HSID "$BUILD" "$HF_WORK/holdfastd.conf" "$HLOG"
		for _ in $(seq 100); do
			hf_port_open "$HP" && break
			kill -0 "$HSID" 2>/dev/null || break
			sleep 0.1
		done
	fi
	if [ -x "$BUILD/holdfastd" ] && hf_port_open "$HP" && iscsi-ls "iscsi://127.0.0.1:$HP" \
		>/dev/null 2>&1; then
		URL[holdfast]=iscsi://127.0.0.1:$HP/$IQN/0
		SID[holdfast]=$HSID
		TARGETS+=(holdfast)
	else
		hf_log "holdfastd did not come up; its columns stay empty. Log:"
		sed 's/^/    | /' "$HLOG" 2>/dev/null | tail -20 >&2 || true
	fi
fi

# Memory, before any data is written (a memory LUN's pages would count as RSS, a tmpfs file's
# would not): RSS of every process of each target idle, then with NSESS idle sessions held.
MEM=$HF_WORK/memory.txt
: >"$MEM"
for t in "${TARGETS[@]}"; do
	rss0=$(hf_session_rss_kib "${SID[$t]}")
	fifo=$HF_WORK/idle-$t.fifo
	mkfifo "$fifo"
	"$IDLE" "${URL[$t]}" "$NSESS" <"$fifo" >"$HF_WORK/idle-$t.out" 2>&1 &
	ipid=$!
	exec 7>"$fifo"
	for _ in $(seq 600); do
		grep -q ready "$HF_WORK/idle-$t.out" 2>/dev/null && break
		kill -0 "$ipid" 2>/dev/null || break
		sleep 0.1
	done
	sleep 1
	if grep -q ready "$HF_WORK/idle-$t.out"; then
		rssn=$(hf_session_rss_kib "${SID[$t]}")
	else
		rssn=""
		hf_log "$t: could not hold $NSESS sessions: $(tail -1 "$HF_WORK/idle-$t.out")"
	fi
	exec 7>&-
	wait "$ipid" || true
	echo "$t|$rss0|$rssn" >>"$MEM"
done

RESULTS=$HF_WORK/results.txt
: >"$RESULTS"
for t in "${TARGETS[@]}"; do
	hf_log "$t: prefill ($SIZE, 1 MiB writes)"
	"$LOADGEN" "${URL[$t]}" --rw fill --bs 1048576 --qd 8 >/dev/null ||
		hf_log "$t: prefill failed"
done
for load in "${LOADS[@]}"; do
	name=${load%%|*}
	args=${load#*|}
	for t in "${TARGETS[@]}"; do
		hf_log "$t: $name for ${SECONDS_PER_LOAD}s"
		# shellcheck disable=SC2086 # args is a word list on purpose.
		if out=$("$LOADGEN" "${URL[$t]}" $args --seconds "$SECONDS_PER_LOAD" --json); then
			echo "$name|$t|$out" >>"$RESULTS"
		else
			hf_log "$t: $name failed"
			echo "$name|$t|{}" >>"$RESULTS"
		fi
	done
done

# The ceiling: one TCP stream over loopback.
IPERF=""
if command -v iperf3 >/dev/null; then
	hf_free_port IP
	# Not a one-off server (-1): a probe connection would use up its one test.
	setsid iperf3 -s -p "$IP" >"$HF_WORK/iperf3-server.log" 2>&1 </dev/null &
	HF_PIDS+=($!)
	for _ in $(seq 50); do
		grep -q "Server listening" "$HF_WORK/iperf3-server.log" && break
		sleep 0.1
	done
	IPERF=$(iperf3 -c 127.0.0.1 -p "$IP" -t 5 -J 2>/dev/null |
		python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.0f" % (d["end"]["sum_received"]["bits_per_second"] / 8e6))' ||
		true)
fi

python3 - "$RESULTS" "$MEM" "$NSESS" "${IPERF:-}" <<'EOF'
import json, sys
results, mem, nsess, iperf = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
rows, order = {}, []
for line in open(results):
    name, target, js = line.rstrip("\n").split("|", 2)
    if name not in rows:
        rows[name] = {}
        order.append(name)
    rows[name][target] = json.loads(js)

def cols(d):
    if not d or "iops" not in d:
        return ["-"] * 4
    return ["%.0f" % d["iops"], "%.1f" % d["mbps"], "%.0f" % d["p50_us"], "%.0f" % d["p99_us"]]

hdr = ["load", "tgt IOPS", "MB/s", "p50 us", "p99 us",
       "holdfast IOPS", "MB/s", "p50 us", "p99 us", "ratio"]
table = [hdr]
for name in order:
    t, h = rows[name].get("tgt"), rows[name].get("holdfast")
    ratio = "-"
    if t and h and t.get("iops") and h.get("iops") is not None:
        ratio = "%.2fx" % (h["iops"] / t["iops"])
    table.append([name] + cols(t) + cols(h) + [ratio])
w = [max(len(r[i]) for r in table) for i in range(len(hdr))]
print()
for r in table:
    print("  ".join(c.rjust(w[i]) if i else c.ljust(w[i]) for i, c in enumerate(r)))
print()
if iperf:
    print("loopback TCP ceiling (iperf3, one stream, 5 s): %s MB/s" % iperf)
for line in open(mem):
    target, rss0, rssn = line.rstrip("\n").split("|")
    if rssn:
        per = (int(rssn) - int(rss0)) / nsess
        print("%s memory: RSS idle %.1f MiB, with %d idle sessions %.1f MiB: %.1f KiB per session"
              % (target, int(rss0) / 1024, nsess, int(rssn) / 1024, per))
    else:
        print("%s memory: RSS idle %.1f MiB (sessions not measured)" % (target, int(rss0) / 1024))
EOF
hf_log "ratio = holdfast IOPS / tgt IOPS; raw results in $RESULTS (kept with HF_KEEP=1)"
