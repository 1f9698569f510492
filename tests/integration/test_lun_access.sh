#!/usr/bin/env bash
# Shared-volume access at the target (target/lun.h, "lun_access" control command), with real
# initiators: the owner writes, another cluster host reads but its writes get RESERVATION
# CONFLICT, a host outside the cluster does not see the LUN; a transfer (epoch + 1) swaps the
# roles and a stale epoch is refused.
#
# usage: test_lun_access.sh BUILD_DIR
. "$(dirname "$0")/lib.sh"

BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
LOADGEN=$BUILD/tests/loadgen
[ -x "$LOADGEN" ] || hf_die "$LOADGEN is not built"
IQN=iqn.2026-11.org.holdfast:shared
A=iqn.2026-11.org.holdfast:host-a
B=iqn.2026-11.org.holdfast:host-b
C=iqn.2026-11.org.holdfast:outsider

hf_free_port PORT
hf_write_config "$HF_WORK/holdfastd.conf" "$HF_WORK/data" "$IQN" "$PORT" memory:64M
LOG=$HF_WORK/holdfastd.log
hf_start_holdfastd SID "$BUILD" "$HF_WORK/holdfastd.conf" "$LOG"
hf_wait_port "$PORT" "$SID" "$LOG"
URL=iscsi://127.0.0.1:$PORT/$IQN/0
SOCK=$HF_WORK/data/holdfastd.sock

ctl() { hf_ctl "$SOCK" "$1"; }

# load NAME IQN RW: a one-second load from that initiator; its summary line goes to NAME.out
load() {
	"$LOADGEN" "$URL" --initiator "$2" --rw "$3" --bs 4096 --qd 4 --seconds 1 \
		>"$HF_WORK/$1.out" 2>&1 || true
	hf_log "$1: $(tail -1 "$HF_WORK/$1.out")"
}
clean() { grep -q ' 0 errors' "$HF_WORK/$1.out"; }
conflict() { grep -q 'RESERVATION CONFLICT' "$HF_WORK/$1.out"; }

access() { # access OWNER EPOCH
	ctl "{\"cmd\":\"lun_access\",\"target\":\"$IQN\",\"lun\":0,\"epoch\":$2,\"owners\":[\"$1\"],\"members\":[\"$A\",\"$B\"]}"
}

hf_check "policy with A as owner (epoch 1)" grep -q '"epoch":1' <<<"$(access "$A" 1)"
load a-write "$A" randwrite
hf_check "the owner writes" clean a-write
load b-read "$B" randread
hf_check "another cluster host reads" clean b-read
load b-write "$B" randwrite
hf_check "another cluster host's writes get RESERVATION CONFLICT" conflict b-write
hf_check "a host outside the cluster sees no LUN" \
	bash -c "! iscsi-ls -s -i $C iscsi://127.0.0.1:$PORT 2>/dev/null | grep -q 'Lun:0'"
hf_check "a cluster host sees the LUN" \
	bash -c "iscsi-ls -s -i $B iscsi://127.0.0.1:$PORT 2>/dev/null | grep -q 'Lun:0'"

hf_check "transfer to B (epoch 2)" grep -q '"epoch":2' <<<"$(access "$B" 2)"
load b-write2 "$B" randwrite
hf_check "the new owner writes" clean b-write2
load a-write2 "$A" randwrite
hf_check "the old owner's writes are refused" conflict a-write2
hf_check "a stale epoch is refused" grep -q 'stale epoch' <<<"$(access "$A" 1)"
load b-write3 "$B" randwrite
hf_check "after the stale attempt B still owns it" clean b-write3

[ "$HF_FAILED" = 0 ] || hf_die "shared-volume access: failures above; logs in $HF_WORK"
hf_log "shared-volume access: all checks passed"
