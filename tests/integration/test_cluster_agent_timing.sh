#!/usr/bin/env bash
# The box's lease timing and the start of a lease (docs/agent-protocol.md, "Lease timing";
# docs/coordinator-timing.md, "Timing from the box"):
#   1. a join without --box stores the box's agent address and its lease timing (H 300 ms,
#      M 4: not the defaults);
#   2. a joined host that does not run holds no lease: after more than M*H it is neither
#      declared lost nor fenced;
#   3. `run` without --box and without --heartbeat-ms/--miss-threshold then gets its lease at
#      epoch 1, with no fence, and logs the timing it took from the box;
#   4. flags that would self-fence later than the box allows are refused;
#   5. with the box stopped, the agent self-fences after the box's F (879 ms), not after the
#      defaults' 3910 ms, and before the box declares it lost;
#   6. a vdisk command needs no --box either.
#
# usage: test_cluster_agent_timing.sh BUILD_DIR
. "$(dirname "$0")/lib.sh"
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
. "$HF_LIB_DIR/cluster_lib.sh"

HB=300
MISS=4
F_MS=879 # (M-1)H - ceil(0.01 (2M-1) H) = 900 - 21 ms
hf_free_port PORT
hf_free_port APORT
hf_free_port JPORT
LOG=$HF_WORK/holdfastd.log
cl_config "$HF_WORK/holdfastd.conf" "$HF_WORK/data" 127.0.0.1 "$PORT" "$APORT" "$JPORT" "$HB" \
	"$MISS" false h1 h2
cl_start_box "$HF_WORK/holdfastd.conf" "$LOG" "$PORT"
hf_wait_port "$JPORT" "$CL_SID" "$LOG"
FP=$(cl_ca_sha256)
D=$HF_WORK/h1

# 1. Join without --box.
rc=0
cl_join "127.0.0.1:$JPORT" "$(cl_token 60)" "$FP" h1 iqn.2026-11.org.holdfast:h1 "$D" \
	>"$HF_WORK/join.out" || rc=$?
hf_log "join: exit $rc: $(tr '\n' ' ' <"$HF_WORK/join.out")"
cl_check "joined" test "$rc" -eq 0
cl_check "the join stored the box's agent address" grep -qx "box 127.0.0.1:$APORT" "$D/agent.state"
cl_check "the join stored the box's H and M" \
	grep -qx "box_heartbeat_ns $((HB * 1000000))" "$D/agent.state"
cl_check "  (M)" grep -qx "box_miss $MISS" "$D/agent.state"
cl_check "  (L = M*H + H/10)" grep -qx "box_lease_timeout_ns $(((MISS * HB + HB / 10) * 1000000))" \
	"$D/agent.state"

# 2. More than M*H (and the box's L) without running: no lease, nothing lost or fenced.
sleep 2
cl_check "a joined host that never ran is 'enrolled', without a lease" \
	cl_true "h['h1']['state'] == 'enrolled' and not h['h1']['leased'] and h['h1']['epoch'] == 1"
cl_check "  and was neither declared lost nor fenced" \
	cl_true "not any(e['kind'] in ('lost', 'fenced') and e['host'] == 'h1' for e in s['events'])"

# 4. Flags that would fence later than the box allows are refused at start.
rc=0
"$CL_AGENT" run --state-dir "$D" --miss-threshold 10 --fence-action "exec:true" \
	>"$HF_WORK/unsafe.out" 2>&1 || rc=$?
hf_log "run --miss-threshold 10: exit $rc: $(tr '\n' ' ' <"$HF_WORK/unsafe.out")"
cl_check "--miss-threshold above the box's is refused (exit 2)" test "$rc" -eq 2
cl_check "  with a reason" grep -q "later than the box" "$HF_WORK/unsafe.out"
rc=0
"$CL_AGENT" run --state-dir "$D" --heartbeat-ms 1000 --fence-action "exec:true" \
	>"$HF_WORK/unsafe2.out" 2>&1 || rc=$?
cl_check "--heartbeat-ms above the box's is refused (exit 2)" test "$rc" -eq 2

# 3. Run without --box and without timing flags.
A=$HF_WORK/agent.log
MARK=$HF_WORK/h1.fenced
cl_bg AGENT "$A" "$CL_AGENT" run --state-dir "$D" --fence-action "exec:date +%s.%N >>$MARK"
cl_check "run gets its lease" cl_wait_log "$A" 'lease ok' 10
cl_check "  at epoch 1" grep -q 'lease ok (epoch 1,' "$A"
cl_check "  with the box's timing" \
	grep -q "lease timing from the box: H $HB ms, M $MISS, fence after $F_MS ms" "$A"
cl_check "the box holds h1 live at epoch 1" \
	cl_wait_q "h['h1']['state'] == 'live' and h['h1']['epoch'] == 1 and h['h1']['leased']" 5
sleep 1
cl_check "no self-fence, no fence action" bash -c "! grep -q 'self-fence\|fenced by the box' '$A' && [ ! -e '$MARK' ]"
cl_check "no lost or fenced event for h1" \
	cl_true "not any(e['kind'] in ('lost', 'fenced') and e['host'] == 'h1' for e in s['events'])"

# 6. A vdisk command with the stored address.
rc=0
"$CL_AGENT" vdisk list --state-dir "$D" >"$HF_WORK/list.out" 2>&1 || rc=$?
hf_log "vdisk list: exit $rc: $(head -2 "$HF_WORK/list.out" | tr '\n' ' ')"
cl_check "vdisk list needs no --box" test "$rc" -eq 0

# 5. Stop the box (every process of it): the agent gets no ACK and fences itself after F.
LINES0=$(wc -l <"$A")
kill -STOP -- "-$CL_SID"
cl_check "the agent self-fences" cl_wait_log "$A" 'self-fence: no lease ack' 5
kill -CONT -- "-$CL_SID"
tail -n +"$((LINES0 + 1))" "$A" >"$A.after"
N=$(sed -n 's/.*self-fence: no lease ack for \([0-9]*\) ms.*/\1/p' "$A.after" | head -1)
hf_log "self-fence: $(grep 'self-fence' "$A.after" | head -1)"
cl_check "after the box's F ($F_MS ms), not the defaults' 3910 ms: $N ms" \
	test "${N:-0}" -ge "$F_MS" -a "${N:-99999}" -lt $((F_MS + 400))
cl_check "the fence action ran" cl_wait_log "$A" 'fence action done' 5
cl_check "the agent rejoins under epoch 2" cl_wait_log "$A" 'rejoined with epoch 2' 10
cl_check "and holds its lease again" cl_wait_q "h['h1']['state'] == 'live' and h['h1']['epoch'] == 2" 5

[ "$cl_fail" = 0 ] || hf_die "agent timing: failures above; logs in $HF_WORK"
hf_log "agent timing: all checks passed"
