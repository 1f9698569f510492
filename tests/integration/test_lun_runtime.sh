#!/usr/bin/env bash
# LUNs exported while the target runs (target/lunmap.h): add a file-backed LUN, use it, grow
# it (initiators see the new capacity), remove it while it is being written (new commands no
# longer find it, the target keeps serving the other LUNs), and add it back under the same
# name with the same identity. LUNs from the configuration file cannot be removed.
#
# usage: test_lun_runtime.sh BUILD_DIR
. "$(dirname "$0")/lib.sh"

BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
LOADGEN=$BUILD/tests/loadgen
[ -x "$LOADGEN" ] || hf_die "$LOADGEN is not built"
IQN=iqn.2026-11.org.holdfast:runtime

hf_free_port PORT
hf_write_config "$HF_WORK/holdfastd.conf" "$HF_WORK/data" "$IQN" "$PORT" memory:64M
LOG=$HF_WORK/holdfastd.log
hf_start_holdfastd SID "$BUILD" "$HF_WORK/holdfastd.conf" "$LOG"
hf_wait_port "$PORT" "$SID" "$LOG"
PORTAL=iscsi://127.0.0.1:$PORT
SOCK=$HF_WORK/data/holdfastd.sock
ctl() { hf_ctl "$SOCK" "$1"; }
luns() { iscsi-ls -s "$PORTAL" 2>/dev/null | grep -o 'Lun:[0-9]*' | tr '\n' ' '; }
capacity() { iscsi-readcapacity16 "$PORTAL/$IQN/5" 2>/dev/null | awk -F: '/Total size/ { print $2 + 0 }'; }
serial() { ctl '{"cmd":"luns"}' | python3 -c 'import json,sys
for t in json.load(sys.stdin)["targets"]:
    for l in t["luns"]:
        if l["id"] == 5: print(l["serial"])'; }

ADD="{\"cmd\":\"lun_add\",\"target\":\"$IQN\",\"lun\":5,\"name\":\"vd-1\",\"path\":\"$HF_WORK/vd-1.img\",\"size\":67108864}"
hf_check "a LUN is added at run time" grep -q '"added"' <<<"$(ctl "$ADD")"
hf_log "LUNs: $(luns)"
hf_check "initiators see it" grep -q 'Lun:5' <<<"$(luns)"
hf_check "the number cannot be taken twice" grep -q 'in use' <<<"$(ctl "$ADD")"
SERIAL=$(serial)
"$LOADGEN" "$PORTAL/$IQN/5" --rw randwrite --bs 4096 --qd 8 --seconds 1 >"$HF_WORK/w1.out" 2>&1 || true
hf_log "writes to LUN 5: $(tail -1 "$HF_WORK/w1.out")"
hf_check "it takes writes" grep -q ' 0 errors' "$HF_WORK/w1.out"

hf_check "it grows" grep -q '"size":134217728' <<<"$(ctl "{\"cmd\":\"lun_resize\",\"target\":\"$IQN\",\"lun\":5,\"size\":134217728}")"
CAP=$(capacity)
hf_log "READ CAPACITY(16) after the resize: $CAP"
hf_check "initiators read the new capacity" test "$CAP" = 134217728
hf_check "it does not shrink" grep -q 'only grows' <<<"$(ctl "{\"cmd\":\"lun_resize\",\"target\":\"$IQN\",\"lun\":5,\"size\":4096}")"

"$LOADGEN" "$PORTAL/$IQN/5" --rw randwrite --bs 4096 --qd 8 --seconds 3 >"$HF_WORK/w2.out" 2>&1 &
WPID=$!
"$LOADGEN" "$PORTAL/$IQN/0" --rw randwrite --bs 4096 --qd 8 --seconds 3 >"$HF_WORK/w0.out" 2>&1 &
W0PID=$!
sleep 1
hf_check "it is removed while being written" grep -q '"removed"' <<<"$(ctl "{\"cmd\":\"lun_remove\",\"target\":\"$IQN\",\"lun\":5}")"
hf_check "initiators no longer see it" bash -c "! grep -q 'Lun:5' <<<\"$(luns)\""
wait "$WPID" || true
wait "$W0PID" || true
hf_log "writer on the removed LUN: $(tail -1 "$HF_WORK/w2.out")"
hf_log "writer on LUN 0 meanwhile: $(tail -1 "$HF_WORK/w0.out")"
# LUN 0's writer hears REPORTED LUNS DATA HAS CHANGED (06/3F/0E) once, as SPC-4 asks; it
# must see nothing else go wrong.
hf_check "the other LUN was served throughout (one 3F/0E unit attention at most)" \
	bash -c "! grep 'command failed' $HF_WORK/w0.out | grep -vq '0x3f0e' &&
		[ \$(grep -c 'command failed' $HF_WORK/w0.out) -le 1 ]"
hf_check "a LUN from the configuration cannot be removed" \
	grep -q 'configuration' <<<"$(ctl "{\"cmd\":\"lun_remove\",\"target\":\"$IQN\",\"lun\":0}")"

hf_check "it can be added back" grep -q '"added"' <<<"$(ctl "$ADD")"
hf_check "with the same identity" test "$(serial)" = "$SERIAL"
hf_check "and the data it had" bash -c "iscsi-ls -s $PORTAL | grep -q 'Lun:5'"
hf_check "the daemon logged the changes" grep -q 'LUN 5 (.*) removed' "$LOG"

[ "$HF_FAILED" = 0 ] || hf_die "run-time LUNs: failures above; logs in $HF_WORK"
hf_log "run-time LUNs: all checks passed"
