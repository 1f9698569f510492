#!/usr/bin/env bash
# Durability across kill -9: every write the target acknowledged as durable survives the
# death of every holdfastd process at once.
#
# For each mode (FUA writes; plain writes followed by SYNCHRONIZE CACHE) it starts holdfastd
# with a file-backed LUN, runs kill9_write, kills -9 the daemon's whole process tree while the
# writer is busy, restarts the daemon on the same data folder and verifies that each LBA holds
# its last acknowledged pattern (or a later one whose write was in flight at the kill).
#
# usage: test_kill9.sh BUILD_DIR
#   HF_KILL9_TARGET=tgt runs the harness against Debian's tgtd instead (to check the harness).
#   HF_KILL9_ACKS=N: acknowledged writes to wait for before the kill (default 300).
. "$(dirname "$0")/lib.sh"

BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
WRITER=$BUILD/tests/kill9_write
[ -x "$WRITER" ] || hf_die "$WRITER is not built (libiscsi-dev missing?)"
IQN=iqn.2026-11.org.holdfast:kill9
ACKS=${HF_KILL9_ACKS:-300}
TARGET=${HF_KILL9_TARGET:-holdfast}

hf_free_port PORT
if [ "$TARGET" = tgt ]; then
	truncate -s 64M "$HF_WORK/tgt.img"
	URL=iscsi://127.0.0.1:$PORT/$IQN/1
else
	hf_write_config "$HF_WORK/holdfastd.conf" "$HF_WORK/data" "$IQN" "$PORT" file:64M:512
	URL=iscsi://127.0.0.1:$PORT/$IQN/0
fi
LOG=$HF_WORK/daemon.log

start_target() {
	if [ "$TARGET" = tgt ]; then
		hf_start_tgtd SID "$HF_WORK/tgt.img" "$IQN" "$PORT"
	else
		hf_start_holdfastd SID "$BUILD" "$HF_WORK/holdfastd.conf" "$LOG"
		hf_wait_port "$PORT" "$SID" "$LOG"
	fi
}

acked() {
	if [ -f "$1" ]; then grep -c '^A ' "$1" || true; else echo 0; fi
}

# one_round MODE
one_round() {
	local mode=$1 wlog=$HF_WORK/writes-$1.log out=$HF_WORK/writer-$1.out wpid i n
	hf_log "$mode: starting $TARGET on $URL"
	start_target
	"$WRITER" write "$URL" "$wlog" --mode "$mode" >"$out" 2>&1 &
	wpid=$!
	for ((i = 0; i < 600; i++)); do
		n=$(acked "$wlog")
		[ "$n" -ge "$ACKS" ] && break
		if ! kill -0 "$wpid" 2>/dev/null; then
			sed 's/^/    | /' "$out" >&2
			hf_die "$mode: the writer stopped after $n acknowledged writes, before the kill"
		fi
		sleep 0.1
	done
	[ "$n" -ge "$ACKS" ] || hf_die "$mode: only $n acknowledged writes after 60 s"
	kill -0 "$wpid" 2>/dev/null || hf_die "$mode: the writer finished before the kill"
	hf_log "$mode: kill -9 of every $TARGET process with $n writes acknowledged"
	hf_kill9_session "$SID"
	# Without its target the writer fails its next command and exits.
	for ((i = 0; i < 600; i++)); do
		kill -0 "$wpid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$wpid" 2>/dev/null; then
		kill -KILL "$wpid"
		hf_log "$mode: the writer hung after the kill; killed it"
	fi
	wait "$wpid" || true
	sed 's/^/    | /' "$out" >&2
	hf_log "$mode: restarting $TARGET on the same data"
	start_target
	if ! "$WRITER" verify "$URL" "$wlog"; then
		hf_die "$mode: acknowledged writes were lost (log $wlog, daemon log $LOG)"
	fi
	hf_stop_session "$SID" 10
}

one_round fua
one_round sync
hf_log "kill -9: no acknowledged write lost"
