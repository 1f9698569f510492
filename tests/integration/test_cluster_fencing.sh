#!/usr/bin/env bash
# A lost host is fenced at the target (issue 4, acceptance 1 and the figures of 5): holdfastd
# and three agents on loopback, each host with its own initiator writing random 4 KiB blocks
# at queue depth 8 to one shared LUN. SIGSTOP freezes one agent; the box declares it lost and
# fences it: its writes stop succeeding (RESERVATION CONFLICT) and its logins are refused,
# while the other two hosts write on without one error. After SIGCONT the agent learns it was
# fenced, runs its fence action and rejoins under a higher epoch, and only then may its
# initiator write again. Prints the time from the freeze and from the last heartbeat to the
# declaration, and from the declaration to writes refused, as the test saw them.
#
# usage: test_cluster_fencing.sh BUILD_DIR
. "$(dirname "$0")/lib.sh"
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
. "$HF_LIB_DIR/cluster_lib.sh"

HB=200
MISS=5
hf_free_port PORT
hf_free_port APORT
hf_free_port JPORT
LOG=$HF_WORK/holdfastd.log
cl_config "$HF_WORK/holdfastd.conf" "$HF_WORK/data" 127.0.0.1 "$PORT" "$APORT" "$JPORT" "$HB" \
	"$MISS" true h1 h2 h3
cl_start_box "$HF_WORK/holdfastd.conf" "$LOG" "$PORT"
hf_wait_port "$JPORT" "$CL_SID" "$LOG"
FP=$(cl_ca_sha256)
URL=iscsi://127.0.0.1:$PORT/$CL_IQN/0
declare -A AGENT
for h in h1 h2 h3; do
	out=$(cl_join "127.0.0.1:$JPORT" "$(cl_token 60)" "$FP" "$h" "iqn.2026-11.org.holdfast:$h" \
		"$HF_WORK/$h") || hf_die "join of $h failed: $out"
	cl_run_agent pid "$HF_WORK/$h" "127.0.0.1:$APORT" "$HB" "$MISS" "$HF_WORK/$h.fenced" \
		"$HF_WORK/agent-$h.log"
	AGENT[$h]=$pid
done
for h in h1 h2 h3; do
	cl_wait_log "$HF_WORK/agent-$h.log" 'lease ok' 10 || hf_die "agent $h got no lease"
done
cl_wait_q "s['quorum']['quorate'] and all(h[n]['state'] == 'live' for n in ('h1', 'h2', 'h3'))" 10 ||
	hf_die "the cluster did not become quorate with three live hosts"
# An agent started more than a lease after its join is fenced once and rejoins; the epoch
# that counts is the one it holds now.
EPOCH0=$(cl_q "h['h3']['epoch']")
rm -f "$HF_WORK/h3.fenced"
LOST_OTHERS0=$(cl_q "sum(1 for e in s['events'] if e['kind'] == 'lost' and e['host'] in ('h1', 'h2'))")
hf_log "three hosts live and quorate; h3 at epoch $EPOCH0"

# Three writers, QD 8, long enough to span the freeze, the fence and the rejoin.
for h in h1 h2 h3; do
	cl_bg wpid "$HF_WORK/writer-$h.out" "$CL_WRITER" "$URL" \
		--initiator "iqn.2026-11.org.holdfast:$h" --qd 8 --seconds 100
	eval "W_$h=$wpid"
done
sleep 1.5

T_STOP=$(date +%s%3N)
kill -STOP "${AGENT[h3]}"
hf_log "SIGSTOP agent h3 (pid ${AGENT[h3]})"
cl_check "the box declares h3 lost" \
	cl_wait_q "any(e['kind'] == 'lost' and e['host'] == 'h3' for e in s['events'])" 5
cl_check "the box fences h3 at the target" \
	cl_wait_q "any(e['kind'] == 'fenced' and e['host'] == 'h3' for e in s['events'])" 5
T_LOST=$(cl_event_ms lost h3)
FENCED_TEXT=$(cl_q "[e['text'] for e in s['events'] if e['kind'] == 'fenced' and e['host'] == 'h3'][-1]")
hf_log "lost event at $T_LOST; fenced: $FENCED_TEXT"
cl_check "still quorate with two of three hosts" cl_true "s['quorum']['quorate']"
sleep 0.5

# While the agent is frozen, a new session for h3's initiator is refused.
rc=0
"$CL_WRITER" "$URL" --initiator iqn.2026-11.org.holdfast:h3 --qd 8 --seconds 1 \
	>"$HF_WORK/h3-during.out" 2>&1 || rc=$?
hf_log "h3 writer while fenced: exit $rc: $(tr '\n' ' ' <"$HF_WORK/h3-during.out")"
cl_check "a new h3 session before the rejoin is refused" \
	bash -c "[ $rc -eq 3 ] || grep -q 'conflict=[1-9]' '$HF_WORK/h3-during.out'"
cl_check "no fence action ran while the agent was frozen" test ! -e "$HF_WORK/h3.fenced"

T_CONT=$(date +%s%3N)
kill -CONT "${AGENT[h3]}"
hf_log "SIGCONT agent h3"
A3=$HF_WORK/agent-h3.log
cl_check "the agent reports that the box fenced it" cl_wait_log "$A3" 'fenced by the box \(epoch' 5
cl_check "the agent runs its fence action" cl_wait_log "$A3" 'fence action done' 5
cl_check "the fence action ran (marker file written)" test -s "$HF_WORK/h3.fenced"
cl_check "the agent rejoins" cl_wait_log "$A3" 'rejoined with epoch' 5
EPOCH1=$(sed -n 's/.*rejoined with epoch \([0-9]*\).*/\1/p' "$A3" | tail -1)
hf_log "h3 rejoined with epoch $EPOCH1 (was $EPOCH0)"
cl_check "the new epoch is higher ($EPOCH0 -> $EPOCH1)" test "${EPOCH1:-0}" -gt "$EPOCH0"
cl_check "the box holds h3 live under the new epoch" \
	cl_wait_q "h['h3']['state'] == 'live' and h['h3']['epoch'] == ${EPOCH1:-0}" 5
cl_check "a 'rejoined' event" cl_true "any(e['kind'] == 'rejoined' and e['host'] == 'h3' for e in s['events'])"
# Order in the agent's log after the resume: told fenced, fence action, then the rejoin.
order=$(grep -nE 'fenced by the box|fence action done|rejoined with epoch' "$A3" |
	sed -E 's/.*(fenced by the box|fence action done|rejoined with epoch).*/\1/' | uniq | tr '\n' '|')
hf_log "agent h3 order: $order"
T_FA=$(cl_log_ms "$A3" 'fence action done')
T_RJ=$(cl_log_ms "$A3" 'rejoined with epoch')
cl_check "the fence action ran before the rejoin" test "$T_FA" -le "$T_RJ"
T_MARK=$(python3 -c "import sys; print(int(float(open(sys.argv[1]).readline()) * 1000))" "$HF_WORK/h3.fenced")
cl_check "the fence action ran after SIGCONT" test "$T_MARK" -ge "$T_CONT"

# After the rejoin, h3's initiator writes again.
rc=0
"$CL_WRITER" "$URL" --initiator iqn.2026-11.org.holdfast:h3 --qd 8 --seconds 1 \
	>"$HF_WORK/h3-after.out" 2>&1 || rc=$?
hf_log "h3 writer after the rejoin: exit $rc: $(tr '\n' ' ' <"$HF_WORK/h3-after.out")"
cl_check "h3 writes again after the rejoin" test "$rc" -eq 0

# The writers that ran through it all: stop them now (they drain and print their result).
sleep 0.5
for h in h1 h2 h3; do
	eval "p=\$W_$h"
	kill -TERM "$p"
	for _ in $(seq 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	hf_log "writer $h: $(tr '\n' ' ' <"$HF_WORK/writer-$h.out")"
done
for h in h1 h2; do
	cl_check "$h wrote on without an error" \
		grep -Eq 'result good=[1-9][0-9]* conflict=0 check=0 other=0 unanswered=0' \
		"$HF_WORK/writer-$h.out"
	last=$(sed -n 's/.*result.* last_good_ms=\([0-9]*\).*/\1/p' "$HF_WORK/writer-$h.out")
	cl_check "$h was still writing after h3's rejoin" test "${last:-0}" -gt "$(cl_log_ms "$LOG" 'host h3 unfenced under epoch')"
done
V=$HF_WORK/writer-h3.out
cl_check "h3's writes were refused with RESERVATION CONFLICT" grep -q 'status=0x18 name=RESERVATION_CONFLICT' "$V"
V_FIRST_ERR=$(sed -n 's/.*first_error_ms=\([0-9]*\).*/\1/p' "$V")
V_LAST_GOOD=$(sed -n 's/^first_error.* last_good_ms=\([0-9]*\).*/\1/p' "$V")
V_AGAIN=$(sed -n 's/.*good_again_ms=\([0-9]*\).*/\1/p' "$V")
T_UNFENCE=$(cl_log_ms "$LOG" 'host h3 unfenced under epoch')
hf_log "h3 writer: last good write before the fence $V_LAST_GOOD, first refused $V_FIRST_ERR," \
	"first good again $V_AGAIN; target unfenced h3 at $T_UNFENCE"
cl_check "h3 wrote successfully before the freeze" test "${V_LAST_GOOD:-0}" -gt 0
# The fence lands a few milliseconds after the declaration (the coordinator asks the target
# through the parent); a write may complete in between, none after the target's fence.
T_FENCE_TGT=$(cl_log_ms "$LOG" 'tgt_fence: host h3 fenced')
V_LAST_SENT=$(sed -n 's/^first_error.* last_good_sent_ms=\([0-9]*\).*/\1/p' "$V")
cl_check "no h3 write sent after the target's fence succeeded (last good one sent $V_LAST_SENT, fenced $T_FENCE_TGT)" \
	test "${V_LAST_SENT:-9999999999999}" -le "${T_FENCE_TGT:-0}"
# Writes in flight when the fence lands are aborted. The target frees an aborted task without
# a response (target/iscsi_cmd.c task_abort), so the initiator may be left waiting for them;
# every write it still waits for must be one sent before the fence, and no more of them than
# the target says it aborted.
ABORTED=$(sed -n 's/.*h3 session tsih [0-9]* fenced (\([0-9]*\) tasks aborted.*/\1/p' "$LOG" | head -1)
NUNANS=$(grep -c '^unanswered submitted_ms=' "$V" || true)
hf_log "h3: $ABORTED task(s) aborted by the fence; $NUNANS write(s) never answered: $(grep '^unanswered' "$V" | tr '\n' ' ')"
cl_check "no more unanswered h3 writes ($NUNANS) than tasks the fence aborted (${ABORTED:-0})" \
	test "$NUNANS" -le "${ABORTED:-0}"
cl_check "every unanswered h3 write was sent before the fence" bash -c \
	"! awk -F= '/^unanswered submitted_ms=/ { if (\$2 > ${T_FENCE_TGT:-0}) bad = 1 } END { exit !bad }' '$V'"
# The old session's writes succeed again once the target lifts the fence under the new epoch
# (docs/target.md), and not a millisecond earlier (log times have 1 ms resolution).
cl_check "h3's old session wrote again, and only after the unfence (epoch $EPOCH1)" \
	test "${V_AGAIN:-0}" -ge "${T_UNFENCE:-9999999999999}"
cl_check "h3's first refused write came after the declaration" test "${V_FIRST_ERR:-0}" -ge "$T_LOST"
ABORT_LINES=$(grep -E 'iqn.2026-11.org.holdfast:h3 session tsih [0-9]+ fenced' "$LOG" || true)
hf_log "target: ${ABORT_LINES:-no session fenced line}"
cl_check "the target swept h3's session (abort of its in-flight tasks)" test -n "$ABORT_LINES"
cl_check "h1 and h2 were not declared lost meanwhile" \
	cl_true "sum(1 for e in s['events'] if e['kind'] == 'lost' and e['host'] in ('h1', 'h2')) == $LOST_OTHERS0"

# Figures.
BOX_HB=$(sed -n 's/.*last heartbeat to declaration \([0-9.]*\) ms.*/\1/p' <<<"$FENCED_TEXT")
BOX_CONF=$(sed -n 's/.*declaration to fence confirmed \([0-9.]*\) ms.*/\1/p' <<<"$FENCED_TEXT")
TGT_REF=$(sed -n 's/.*writes refused after \([0-9.]*\) ms.*/\1/p' <<<"$FENCED_TEXT")
LEASE=$(cl_q "s['lease_timeout_ms']")
FREEZE_TO_LOST=$((T_LOST - T_STOP))
LOST_TO_REFUSED=$((V_FIRST_ERR - T_LOST))
hf_log "FIGURES (H $HB ms, M $MISS, lease timeout $LEASE ms):"
hf_log "  last heartbeat -> declaration (box's clock):           $BOX_HB ms"
hf_log "  SIGSTOP -> declaration (test's clock):                  $FREEZE_TO_LOST ms"
hf_log "  declaration -> fence confirmed by the target (box):     $BOX_CONF ms"
hf_log "  fence request -> writes refused on every worker (target): $TGT_REF ms"
hf_log "  declaration -> first refused write seen by the initiator: $LOST_TO_REFUSED ms (goal < 50)"
cl_check "last heartbeat to declaration within lease + 2 heartbeats" \
	python3 -c "import sys; sys.exit(0 if float('$BOX_HB') < $LEASE + 2 * $HB else 1)"
cl_check "declaration to writes refused under 50 ms (box)" \
	python3 -c "import sys; sys.exit(0 if float('$BOX_CONF') < 50 else 1)"
cl_check "declaration to first refused write under 50 ms (initiator)" test "$LOST_TO_REFUSED" -lt 50

[ "$cl_fail" = 0 ] || hf_die "cluster fencing: failures above; logs in $HF_WORK"
hf_log "cluster fencing: all checks passed"
