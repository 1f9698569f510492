#!/usr/bin/env bash
# Fencing at the target (target/fence.h): a fenced host's in-flight writes are aborted, its
# next writes get RESERVATION CONFLICT and its logins are refused, while other initiators go
# on; a stale epoch cannot lift the fence, a newer one can, and then the host writes again.
#
# usage: test_fence.sh BUILD_DIR
. "$(dirname "$0")/lib.sh"

BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
LOADGEN=$BUILD/tests/loadgen
[ -x "$LOADGEN" ] || hf_die "$LOADGEN is not built"
IQN=iqn.2026-11.org.holdfast:fence
VICTIM=iqn.2026-11.org.holdfast:loadgen # loadgen's initiator name
OTHER=iqn.2026-11.org.holdfast:fence-bystander

hf_free_port PORT
hf_write_config "$HF_WORK/holdfastd.conf" "$HF_WORK/data" "$IQN" "$PORT" memory:64M
LOG=$HF_WORK/holdfastd.log
hf_start_holdfastd SID "$BUILD" "$HF_WORK/holdfastd.conf" "$LOG"
hf_wait_port "$PORT" "$SID" "$LOG"
URL=iscsi://127.0.0.1:$PORT/$IQN/0
SOCK=$HF_WORK/data/holdfastd.sock

ctl() { hf_ctl "$SOCK" "$1"; }


# The victim writes at queue depth 32 while the fence lands.
"$LOADGEN" "$URL" --rw randwrite --bs 4096 --qd 32 --seconds 4 >"$HF_WORK/victim.out" 2>&1 &
VPID=$!
sleep 1.5
REPLY=$(ctl "{\"cmd\":\"fence\",\"host\":\"h1\",\"epoch\":1,\"initiators\":[\"$VICTIM\"]}")
hf_log "fence: $REPLY"
hf_check "fence reached the victim's session" grep -q '"sessions":1' <<<"$REPLY"
REFUSED_MS=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["writes_refused_ms"])' "$REPLY")
DRAINED_MS=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["tasks_drained_ms"])' "$REPLY")
hf_log "declaration to writes refused: $REFUSED_MS ms; to in-flight tasks gone: $DRAINED_MS ms"
hf_check "writes refused within 50 ms" python3 -c "import sys; sys.exit(0 if $REFUSED_MS < 50 else 1)"

hf_check "a fenced host cannot log in" bash -c "! iscsi-inq -i $VICTIM $URL >/dev/null 2>&1"
hf_check "another initiator still logs in and reads" iscsi-inq -i "$OTHER" "$URL"
"$LOADGEN" "$URL" --initiator "$OTHER" --rw randwrite --bs 4096 --qd 4 --seconds 1 \
	>"$HF_WORK/other.out" 2>&1 || true
hf_log "bystander: $(tail -1 "$HF_WORK/other.out")"
hf_check "another initiator writes on while the host is fenced" grep -q ' 0 errors' "$HF_WORK/other.out"
wait "$VPID" || true
hf_log "victim: $(tail -1 "$HF_WORK/victim.out")"
hf_check "the victim's writes were refused with RESERVATION CONFLICT" \
	grep -q 'RESERVATION CONFLICT' "$HF_WORK/victim.out"

hf_check "a stale epoch cannot lift the fence" \
	grep -q 'stale epoch' <<<"$(ctl '{"cmd":"unfence","host":"h1","epoch":1}')"
hf_check "still fenced after the stale attempt" bash -c "! iscsi-inq -i $VICTIM $URL >/dev/null 2>&1"
hf_check "a newer epoch lifts it" grep -q '"unfenced"' <<<"$(ctl '{"cmd":"unfence","host":"h1","epoch":2}')"
"$LOADGEN" "$URL" --rw randwrite --bs 4096 --qd 8 --seconds 1 >"$HF_WORK/after.out" 2>&1
hf_log "victim after rejoin: $(tail -1 "$HF_WORK/after.out")"
hf_check "the rejoined host writes again" grep -q ' 0 errors' "$HF_WORK/after.out"
hf_check "the fence is in the log" grep -q 'host h1 fenced' "$LOG"

[ "$HF_FAILED" = 0 ] || hf_die "fencing: failures above; logs in $HF_WORK"
hf_log "fencing: all checks passed"
