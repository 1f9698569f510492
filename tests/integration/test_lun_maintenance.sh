#!/usr/bin/env bash
# Maintenance at the target (lun_access with "paused", target/hold.c), with a real initiator:
# while a shared volume is paused, reads go on and the owner's writes are held, not failed;
# when the pause ends they run in the order they came; a write held past maintenance_hold_ms
# is answered BUSY; a held write taken back by ABORT TASK, LUN RESET or a lost connection never
# reaches the disk; fencing answers a held write with RESERVATION CONFLICT.
#
# usage: test_lun_maintenance.sh BUILD_DIR
. "$(dirname "$0")/lib.sh"

BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
HW_BIN=$BUILD/tests/held_write
[ -x "$HW_BIN" ] || hf_die "$HW_BIN is not built"
IQN=iqn.2026-11.org.holdfast:shared
A=iqn.2026-11.org.holdfast:host-a
B=iqn.2026-11.org.holdfast:host-b
# Long enough that the checks made while a write is held (each a process start, on a
# machine that may be busy) finish well before the write would get BUSY.
HOLD_MS=4000

hf_free_port PORT
CONF=$HF_WORK/holdfastd.conf
hf_write_config "$CONF" "$HF_WORK/data" "$IQN" "$PORT" file:16M
echo "maintenance_hold_ms = $HOLD_MS;" >>"$CONF"
[ -z "${HF_DEBUG:-}" ] || echo "log_level = \"debug\";" >>"$CONF"
LOG=$HF_WORK/holdfastd.log
hf_start_holdfastd SID "$BUILD" "$CONF" "$LOG"
hf_wait_port "$PORT" "$SID" "$LOG"
URL=iscsi://127.0.0.1:$PORT/$IQN/0
SOCK=$HF_WORK/data/holdfastd.sock
IMG=$HF_WORK/data/bs0.img

ctl() { hf_ctl "$SOCK" "$1"; }
policy() { # policy PAUSED(true|false) [EPOCH]
	ctl "{\"cmd\":\"lun_access\",\"target\":\"$IQN\",\"lun\":0,\"epoch\":${2:-1},\"owners\":[\"$A\"],\"members\":[\"$A\",\"$B\"],\"paused\":$1}"
}
# The first byte of block N of the backing file, in hex.
disk() { od -An -tx1 -j $(($1 * 512)) -N1 "$IMG" | tr -d ' \n'; }

# One held_write initiator as a coprocess; hw CMD sends a line and prints the answer line.
hw_start() {
	coproc HW { "$HW_BIN" "$URL" "$A" 2>>"$HF_WORK/held_write.err"; }
	HW_CHILD=$HW_PID
	local l
	read -r -t 20 l <&"${HW[0]}" || hf_die "held_write did not log in: $(cat "$HF_WORK/held_write.err")"
	hf_log "held_write: $l"
}
hw() {
	local l
	echo "$1" >&"${HW[1]}"
	read -r -t 30 l <&"${HW[0]}" || l="(no answer)"
	echo "$l"
}
is() { # is WANT GOT: GOT starts with WANT
	[[ $2 == "$1"* ]] || {
		hf_log "  want '$1...', got '$2'"
		return 1
	}
}

policy false >/dev/null
hw_start
hf_check "a write before maintenance completes" is "done 0 GOOD" "$(hw 'write 0 0 11' >/dev/null; hw 'wait 0 5000')"

# Held, reads go on, then it lands.
hf_check "maintenance on at the target" grep -q '"paused":true' <<<"$(policy true)"
hw 'write 1 1 22' >/dev/null
hf_check "a write to the paused LUN does not complete" is "pending 1" "$(hw 'wait 1 800')"
hf_check "reads go on during maintenance" is "read GOOD 11" "$(hw 'read 0')"
hf_check "the held write is not on the disk" is "00" "$(disk 1)"
hf_check "the LUN list shows the pause" grep -q '"paused":true' <<<"$(ctl '{"cmd":"luns"}')"
policy false >/dev/null
hf_check "after maintenance off the held write completes" is "done 1 GOOD" "$(hw 'wait 1 5000')"
hf_check "its data is on the disk" is "22" "$(disk 1)"

# In order: two writes to the same block, held, land in the order they were sent.
policy true >/dev/null
hw 'write 2 2 31' >/dev/null
hw 'write 3 2 32' >/dev/null
hw 'write 4 3 33' >/dev/null
hf_check "three held writes wait" is "pending 4" "$(hw 'wait 4 300')"
policy false >/dev/null
hf_check "held write 2 completes" is "done 2 GOOD" "$(hw 'wait 2 5000')"
hf_check "held write 3 completes" is "done 3 GOOD" "$(hw 'wait 3 5000')"
hf_check "held write 4 completes" is "done 4 GOOD" "$(hw 'wait 4 5000')"
hf_check "the later write to the same block wins: they ran in order" is "32" "$(disk 2)"

# Past the hold limit: BUSY, and nothing lands.
policy true >/dev/null
hw 'write 5 4 44' >/dev/null
out=$(hw 'wait 5 6000')
hf_log "held past the limit: $out"
hf_check "a write held past maintenance_hold_ms gets BUSY" is "done 5 BUSY" "$out"
ms=$(awk '{print $4}' <<<"$out")
hf_check "BUSY comes at the hold limit ($HOLD_MS ms), not before, not much later" \
	test "${ms:-0}" -ge $((HOLD_MS - 50)) -a "${ms:-0}" -le $((HOLD_MS + 1000))
hf_check "the BUSY write is not on the disk" is "00" "$(disk 4)"

# ABORT TASK of a held write.
hw 'write 6 5 55' >/dev/null
hf_check "ABORT TASK of a held write: function complete" is "tmf 0" "$(hw 'abort 6')"
# LUN RESET with a held write.
hw 'write 7 6 66' >/dev/null
hf_check "LUN RESET with a held write: function complete" is "tmf 0" "$(hw 'lunreset')"
policy false >/dev/null
sleep 0.5
hf_check "the aborted write never reaches the disk" is "00" "$(disk 5)"
hf_check "the write cleared by LUN RESET never reaches the disk" is "00" "$(disk 6)"
hw 'read 0' >/dev/null # the reset's unit attention
hf_check "the LUN works after the reset" is "done 8 GOOD" "$(hw 'write 8 7 77' >/dev/null; hw 'wait 8 5000')"

# A lost connection takes its held write with it.
policy true >/dev/null
hw 'write 9 8 88' >/dev/null
hf_check "another held write waits" is "pending 9" "$(hw 'wait 9 200')"
kill -9 "$HW_CHILD" 2>/dev/null || true
wait "$HW_CHILD" 2>/dev/null || true
sleep 0.3
policy false >/dev/null
sleep 0.5
hf_check "the write of the lost connection never reaches the disk" is "00" "$(disk 8)"

# Fencing answers a held write with RESERVATION CONFLICT.
hw_start
policy true >/dev/null
hw 'write 10 9 99' >/dev/null
hf_check "a held write before the fence" is "pending 10" "$(hw 'wait 10 200')"
ctl "{\"cmd\":\"fence\",\"host\":\"host-a\",\"epoch\":1,\"initiators\":[\"$A\"]}" >/dev/null
hf_check "fencing answers the held write with RESERVATION CONFLICT" \
	is "done 10 RESERVATION_CONFLICT" "$(hw 'wait 10 3000')"
policy false >/dev/null
sleep 0.3
hf_check "the fenced write never reaches the disk" is "00" "$(disk 9)"

# LUN removal: a held write on a LUN added at run time ends with LOGICAL UNIT NOT SUPPORTED.
ctl "{\"cmd\":\"unfence\",\"host\":\"host-a\",\"epoch\":2}" >/dev/null
echo quit 1>&"${HW[1]}" 2>/dev/null || true
wait "$HW_CHILD" 2>/dev/null || true
RT=$HF_WORK/data/rt1.img
hf_check "a paused LUN added at run time" grep -q '"added"' <<<"$(ctl "{\"cmd\":\"lun_add\",\"target\":\"$IQN\",\"lun\":5,\"name\":\"rt1\",\"path\":\"$RT\",\"size\":1048576,\"epoch\":1,\"owners\":[\"$A\"],\"members\":[\"$A\"],\"paused\":true}")"
URL=iscsi://127.0.0.1:$PORT/$IQN/5
hw_start
hw 'write 11 3 aa' >/dev/null
hf_check "a write to it is held" is "pending 11" "$(hw 'wait 11 300')"
hf_check "lun_remove" grep -q '"removed"' <<<"$(ctl "{\"cmd\":\"lun_remove\",\"target\":\"$IQN\",\"lun\":5}")"
hf_check "the held write ends with LOGICAL UNIT NOT SUPPORTED" \
	is "done 11 CHECK_CONDITION/05/25/00" "$(hw 'wait 11 3000')"
hf_check "and is not in the file" is "00" "$(od -An -tx1 -j 1536 -N1 "$RT" | tr -d ' \n')"
hf_check "the daemon is still up" kill -0 "$SID"

echo quit 1>&"${HW[1]}" 2>/dev/null || true
[ "$HF_FAILED" = 0 ] || hf_die "maintenance at the target: failures above; logs in $HF_WORK"
hf_log "maintenance at the target: all checks passed"
