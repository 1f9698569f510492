#!/usr/bin/env bash
# A partitioned host stops first (issue 4, acceptance 2; docs/coordinator-timing.md): the box
# runs in one network namespace and a host's agent in another, joined by a veth pair. The
# test cuts the link; the agent, hearing no lease ack, runs its fence action before the box
# declares it lost. The order is read from both sides' logs (wall clock, one machine) and
# from the fence action's own timestamp. Then the link comes back and the host rejoins under
# a higher epoch.
#
# Needs root (network namespaces). When the kernel refuses `ip netns add` with EPERM the test
# prints SKIP and exits 0.
#
# usage: test_cluster_partition.sh BUILD_DIR
. "$(dirname "$0")/lib.sh"
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
. "$HF_LIB_DIR/cluster_lib.sh"

NSB=hfbox$$
NSH=hfhost$$
NETS=()
# Stop our processes first (they live in the namespaces), then drop the namespaces, then let
# lib.sh finish (work folder, port claims, exit status).
cl_partition_cleanup() {
	local rc=$? sid n
	set +e
	for sid in "${HF_PIDS[@]}"; do
		kill -CONT "$sid" 2>/dev/null
		hf_stop_session "$sid" 3
	done
	for n in "${NETS[@]}"; do
		ip netns del "$n" 2>/dev/null
	done
	(exit "$rc")
	hf_cleanup
}
trap cl_partition_cleanup EXIT

if ! err=$(ip netns add "$NSB" 2>&1); then
	if grep -qi 'not permitted' <<<"$err"; then
		echo "SKIP: test_cluster_partition: this machine refuses network namespaces ($err)" >&2
		echo "SKIP: the partition acceptance test did NOT run" >&2
		exit 0
	fi
	hf_die "ip netns add: $err"
fi
NETS+=("$NSB")
ip netns add "$NSH" || hf_die "ip netns add $NSH"
NETS+=("$NSH")
# A /24 of 10.222.0.0/16 per run, so parallel runs do not share addresses (they could not
# see each other anyway: each pair lives only in its own namespaces).
NET=10.222.$(($$ % 250 + 1))
BOX=$NET.1
HOST=$NET.2
ip link add "vb$$" netns "$NSB" type veth peer name "vh$$" netns "$NSH" || hf_die "veth pair"
ip -n "$NSB" addr add "$BOX/24" dev "vb$$"
ip -n "$NSH" addr add "$HOST/24" dev "vh$$"
for n in "$NSB" "$NSH"; do ip -n "$n" link set lo up; done
ip -n "$NSB" link set "vb$$" up
ip -n "$NSH" link set "vh$$" up

HB=200
MISS=5
hf_free_port PORT
hf_free_port APORT
hf_free_port JPORT
LOG=$HF_WORK/holdfastd.log
cl_config "$HF_WORK/holdfastd.conf" "$HF_WORK/data" "$BOX" "$PORT" "$APORT" "$JPORT" "$HB" \
	"$MISS" false h1 h2
CL_CONF=$HF_WORK/holdfastd.conf
cl_bg CL_SID "$LOG" ip netns exec "$NSB" "$BUILD/holdfastd" -c "$CL_CONF"
HF_LOGS+=("$LOG")
for _ in $(seq 100); do
	ip netns exec "$NSH" bash -c "exec 3<>/dev/tcp/$BOX/$JPORT" 2>/dev/null && break
	kill -0 "$CL_SID" 2>/dev/null || { cat "$LOG" >&2; hf_die "holdfastd exited"; }
	sleep 0.1
done
FP=$(cl_ca_sha256)
out=$(ip netns exec "$NSH" "$CL_AGENT" join "$BOX:$JPORT" "$(cl_token 60)" --ca-sha256 "$FP" \
	--name h1 --initiator iqn.2026-11.org.holdfast:h1 --state-dir "$HF_WORK/h1" 2>&1) ||
	hf_die "join across the veth pair failed: $out"
hf_log "$out"
A=$HF_WORK/agent-h1.log
MARK=$HF_WORK/h1.fenced
cl_bg AGENT "$A" ip netns exec "$NSH" "$CL_AGENT" run --state-dir "$HF_WORK/h1" \
	--box "$BOX:$APORT" --heartbeat-ms "$HB" --miss-threshold "$MISS" \
	--fence-action "exec:date +%s.%N >>$MARK"
cl_wait_log "$A" 'lease ok' 10 || hf_die "the agent got no lease"
# Wait until the agent is live (its lease starts with its first heartbeat), then forget any
# earlier fence.
cl_wait_q "h['h1']['state'] == 'live'" 10 || hf_die "h1 is not live"
sleep 1
EPOCH0=$(cl_q "h['h1']['epoch']")
NLOST0=$(cl_q "sum(1 for e in s['events'] if e['kind'] == 'lost' and e['host'] == 'h1')")
rm -f "$MARK"
LINES0=$(wc -l <"$A")
hf_log "h1 live at epoch $EPOCH0 across the veth pair; cutting the link"

T_CUT=$(date +%s%3N)
ip -n "$NSH" link set "vh$$" down
cl_check "the agent self-fences" cl_wait_log "$A" 'self-fence: no lease ack' 5
cl_check "the box declares h1 lost" \
	cl_wait_q "sum(1 for e in s['events'] if e['kind'] == 'lost' and e['host'] == 'h1') > $NLOST0" 5
tail -n +"$((LINES0 + 1))" "$A" >"$A.after"
T_SELF=$(cl_log_ms "$A.after" 'self-fence: no lease ack')
T_DONE=$(cl_log_ms "$A.after" 'fence action done')
T_MARK=$(python3 -c "import sys; print(int(float(open(sys.argv[1]).readline()) * 1000))" "$MARK" 2>/dev/null || echo 0)
T_LOST_LOG=$(tail -n 200 "$LOG" | grep -E 'coord: lost h1' | tail -1 | cut -c1-12)
T_LOST=$(cl_event_ms lost h1)
hf_log "agent: $(grep -E 'self-fence' "$A.after" | tail -1)"
hf_log "box:   $(grep -E 'coord: lost h1' "$LOG" | tail -1)"
hf_log "cut $T_CUT; agent self-fence $T_SELF, fence action wrote its marker at $T_MARK, done $T_DONE; box declared lost at $T_LOST ($T_LOST_LOG)"
cl_check "the fence action ran (marker written)" test "$T_MARK" -gt 0
cl_check "order: agent self-fence < box lost ($T_SELF < $T_LOST)" test "${T_SELF:-9999999999999}" -lt "$T_LOST"
cl_check "order: fence action done < box lost ($T_DONE < $T_LOST)" test "${T_DONE:-9999999999999}" -lt "$T_LOST"
cl_check "order: fence marker < box lost ($T_MARK < $T_LOST)" test "$T_MARK" -lt "$T_LOST"
hf_log "cut -> agent self-fence $((T_SELF - T_CUT)) ms; cut -> box declaration $((T_LOST - T_CUT)) ms;" \
	"the host stopped $((T_LOST - T_DONE)) ms before the box declared it lost"

# Heal the link: the host learns it was fenced and rejoins under a higher epoch.
ip -n "$NSH" link set "vh$$" up
for _ in $(seq 100); do
	tail -n +"$((LINES0 + 1))" "$A" >"$A.after"
	grep -q 'rejoined with epoch' "$A.after" && break
	sleep 0.1
done
cl_check "after the link is back, the agent rejoins" grep -q 'rejoined with epoch' "$A.after"
EPOCH1=$(sed -n 's/.*rejoined with epoch \([0-9]*\).*/\1/p' "$A.after" | tail -1)
cl_check "with a higher epoch ($EPOCH0 -> $EPOCH1)" test "${EPOCH1:-0}" -gt "$EPOCH0"
cl_check "the box holds h1 live again" cl_wait_q "h['h1']['state'] == 'live'" 5

[ "$cl_fail" = 0 ] || hf_die "cluster partition: failures above; logs in $HF_WORK"
hf_log "cluster partition: all checks passed"
