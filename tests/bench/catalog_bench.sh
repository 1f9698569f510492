#!/usr/bin/env bash
# Catalog operations through the API (issue 5, acceptance 3): holdfastd with a cluster section
# and two joined agents (h1, h2, holding leases, so the cluster is quorate and ownership may
# move), a pool in the work folder, then create, attach (h1 becomes the owner) and transfer
# (h1 -> h2) through the control socket, at 1 connection and at 8 concurrent connections.
# Every answer means committed (durable); the figures are ops/s and p50/p99 latency per kind.
# It prints figures and never fails on a number. Goal: >= 1,000 ops/s and p99 < 10 ms.
#
# usage: catalog_bench.sh BUILD_DIR [DISKS_PER_CONNECTION]   (HF_BENCH_CONNS="1 8" by default)
. "$(dirname "$0")/../integration/lib.sh"
BUILD=$(cd "${1:?usage: $0 BUILD_DIR [DISKS_PER_CONNECTION]}" && pwd)
. "$HF_LIB_DIR/cluster_lib.sh"
DISKS=${2:-200}
CONNS=${HF_BENCH_CONNS:-1 8}
LOAD=$BUILD/tests/catalog_load
[ -x "$LOAD" ] || hf_die "build catalog_load first ($LOAD)"

HB=200
MISS=10
hf_free_port PORT
hf_free_port APORT
hf_free_port JPORT
LOG=$HF_WORK/holdfastd.log
cl_config "$HF_WORK/box.conf" "$HF_WORK/data" 127.0.0.1 "$PORT" "$APORT" "$JPORT" "$HB" "$MISS" \
	false h1 h2
cl_start_box "$HF_WORK/box.conf" "$LOG" "$PORT"
hf_wait_port "$JPORT" "$CL_SID" "$LOG"
FP=$(cl_ca_sha256)
for h in h1 h2; do
	out=$(cl_join "127.0.0.1:$JPORT" "$(cl_token 60)" "$FP" "$h" "iqn.2026-11.org.holdfast:b-$h" \
		"$HF_WORK/$h") || hf_die "join of $h failed: $out"
	cl_run_agent pid "$HF_WORK/$h" "127.0.0.1:$APORT" "$HB" "$MISS" "$HF_WORK/$h.fenced" \
		"$HF_WORK/agent-$h.log"
	cl_wait_q "h['$h']['state'] == 'live'" 10 || hf_die "$h did not become live"
done
cl_wait_q "s['quorum']['quorate']" 10 || hf_die "not quorate"

SOCK=$HF_WORK/data/holdfastd.sock
mkdir -p "$HF_WORK/pool1"
ans=$(hf_ctl "$SOCK" "{\"cmd\":\"pool_add\",\"name\":\"pool1\",\"path\":\"$HF_WORK/pool1\",\"alert\":0}")
case $ans in *'"pool"'*) ;; *) hf_die "pool_add: $ans" ;; esac

FS=$(df -PT "$HF_WORK/pool1" | awk 'NR == 2 { print $2 " on " $7 }')
hf_log "catalog bench: $DISKS disks per connection, 1 MiB each, pool on $FS"
rc=0
for c in $CONNS; do
	"$LOAD" "$SOCK" pool1 --conns "$c" --disks "$DISKS" --tag "c$c" \
		>"$HF_WORK/bench-$c.out" || rc=1
	grep -v '^{' "$HF_WORK/bench-$c.out"
done
[ "$rc" = 0 ] || hf_log "warning: some requests were refused (see ERRORS above)"
hf_log "goal: >= 1000 ops/s and p99 < 10 ms (durable); figures above"
