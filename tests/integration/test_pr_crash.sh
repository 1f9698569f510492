#!/usr/bin/env bash
# Persistent reservations survive kill -9 (issue 3, acceptance 4): CYCLES times, pr_crash sends
# random PR OUT commands with APTPL=1 from three initiators while this script kills every
# holdfastd process at once at a random moment; holdfastd is restarted on the same data folder
# and pr_crash verify reads the state back (READ FULL STATUS, READ KEYS, READ RESERVATION,
# REPORT CAPABILITIES) and compares it with the last acknowledged state, or that state plus the
# one command that was in flight. What is compared and why is written at the top of
# pr_crash.c. The state carries over from cycle to cycle, so each cycle also starts from a
# restored state.
#
# usage: test_pr_crash.sh BUILD_DIR
#   HF_PR_CRASH_CYCLES=N   cycles (default 50)
#   HF_PR_CRASH_SEED=N     base seed (default: from the clock; printed, so a run can be redone)
. "$(dirname "$0")/lib.sh"

BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
CLIENT=$BUILD/tests/pr_crash
[ -x "$CLIENT" ] || hf_die "$CLIENT is not built (libiscsi-dev missing?)"
IQN=iqn.2026-11.org.holdfast:prcrash
CYCLES=${HF_PR_CRASH_CYCLES:-50}
SEED=${HF_PR_CRASH_SEED:-$(($(date +%s) % 100000))}
RANDOM=$SEED

hf_free_port PORT
hf_write_config "$HF_WORK/holdfastd.conf" "$HF_WORK/data" "$IQN" "$PORT" memory:16M
URL=iscsi://127.0.0.1:$PORT/$IQN/0
LOG=$HF_WORK/daemon.log

start_target() {
	hf_start_holdfastd SID "$BUILD" "$HF_WORK/holdfastd.conf" "$LOG"
	hf_wait_port "$PORT" "$SID" "$LOG"
}

count_lines() { # count_lines KIND FILE
	if [ -f "$2" ]; then grep -c "^$1 " "$2" || true; else echo 0; fi
}

hf_log "seed $SEED, $CYCLES cycles, data folder $HF_WORK/data"
applied=0 not_applied=0 same=0 inflight_kills=0
start_target
for ((cycle = 1; cycle <= CYCLES; cycle++)); do
	plog=$HF_WORK/pr-$cycle.log
	out=$HF_WORK/client-$cycle.out
	"$CLIENT" run "$URL" "$plog" --seed "$((SEED * 1000 + cycle))" >"$out" 2>&1 &
	cpid=$!
	# Kill after a random number of acknowledged changes (1-12), then a random 0-29 ms
	# more, so the kill lands anywhere in a command: before, inside or after the save.
	want=$((1 + RANDOM % 12))
	for ((i = 0; i < 300; i++)); do
		[ "$(count_lines A "$plog")" -ge "$want" ] && break
		kill -0 "$cpid" 2>/dev/null || break
		sleep 0.01
	done
	kill -0 "$cpid" 2>/dev/null || {
		sed 's/^/    | /' "$out" >&2
		hf_die "cycle $cycle: the client stopped before the kill (log $plog)"
	}
	sleep "0.0$((RANDOM % 30))"
	hf_kill9_session "$SID"
	rc=0
	wait "$cpid" || rc=$?
	if [ "$rc" -ne 3 ]; then
		sed 's/^/    | /' "$out" >&2
		hf_die "cycle $cycle: the client ended with $rc, not on the lost connection"
	fi
	grep -q "in flight" "$out" && inflight_kills=$((inflight_kills + 1))
	start_target
	if ! res=$("$CLIENT" verify "$URL" "$plog" 2>&1); then
		echo "$res" | sed 's/^/    | /' >&2
		sed 's/^/    | /' "$out" >&2
		hf_die "cycle $cycle: the restored state is not the acknowledged one (log $plog)"
	fi
	case $res in
	*"verify: applied"*) applied=$((applied + 1)) ;;
	*"verify: not-applied"*) not_applied=$((not_applied + 1)) ;;
	*) same=$((same + 1)) ;;
	esac
	hf_log "cycle $cycle: $(count_lines A "$plog") acknowledged; $(tail -1 "$out" | sed 's/^pr_crash: //'); ${res#pr_crash: verify: }"
done
hf_stop_session "$SID" 10
hf_log "PR crash test: $CYCLES cycles passed; kill during a PR OUT: $inflight_kills;" \
	"in-flight command applied: $applied, not applied: $not_applied," \
	"indistinguishable (none in flight, or it changed nothing): $same"
