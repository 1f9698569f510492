#!/usr/bin/env bash
# The life of a virtual disk through holdfastctl, with two agents h1 and h2 (issue 5,
# acceptance 1): a pool in the work folder; create (exported as a new LUN of the cluster
# target before the answer); attach to h1, which makes h1 the owner (epoch 2); h1 writes, h2
# reads but its writes get RESERVATION CONFLICT; extend (READ CAPACITY from h1 shows the new
# size); transfer to h2 (roles swap); a stale-epoch transfer is refused; delete while owned or
# attached is refused; detach, transfer to nobody, delete: the LUN is gone.
#
# usage: test_vdisk.sh BUILD_DIR
. "$(dirname "$0")/lib.sh"
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
. "$HF_LIB_DIR/cluster_lib.sh"
LOADGEN=$BUILD/tests/loadgen
[ -x "$LOADGEN" ] || hf_die "$LOADGEN is not built"
command -v iscsi-readcapacity16 >/dev/null || hf_die "iscsi-readcapacity16 (libiscsi-bin) is missing"

HB=200
MISS=5
I1=iqn.2026-11.org.holdfast:vd-h1
I2=iqn.2026-11.org.holdfast:vd-h2

hf_free_port PORT
hf_free_port APORT
hf_free_port JPORT
LOG=$HF_WORK/holdfastd.log
cl_config "$HF_WORK/box.conf" "$HF_WORK/data" 127.0.0.1 "$PORT" "$APORT" "$JPORT" "$HB" "$MISS" \
	false h1 h2
cl_start_box "$HF_WORK/box.conf" "$LOG" "$PORT"
hf_wait_port "$JPORT" "$CL_SID" "$LOG"
FP=$(cl_ca_sha256)

cl_bring_up h1 "$I1"
cl_bring_up h2 "$I2"
cl_wait_q "s['quorum']['quorate']" 10 || hf_die "not quorate"

refused() { # refused CODE: the last answer was an error with that code, exit status 1
	[ "$VD_RC" = 1 ] && [ "$(cl_j "r.get('code')")" = "$1" ]
}

mkdir -p "$HF_WORK/pool1"
hf_check "pool add" cl_vd pool add pool1 "$HF_WORK/pool1" --alert 5
cl_vd pool list
hf_check "pool list shows the pool" [ "$(cl_j "[p['name'] for p in r['pools']]")" = "['pool1']" ]

hf_check "vdisk create" cl_vd vdisk create pool1 disk1 32M
ID=$(cl_j "r['vdisk']['id']")
LUN=$(cl_j "r['vdisk']['lun']")
hf_check "the new disk has epoch 1, no owner, a LUN other than the configured 0" \
	[ "$(cl_j "(r['vdisk']['epoch'], r['vdisk']['owner'], r['vdisk']['lun'] > 0)")" = "(1, None, True)" ]
URL=iscsi://127.0.0.1:$PORT/$CL_IQN/$LUN
hf_check "the LUN is exported when create answers" \
	bash -c "iscsi-ls -s -i $I1 iscsi://127.0.0.1:$PORT 2>/dev/null | grep -q 'Lun:$LUN '"
hf_check "a host outside the cluster does not see it" \
	bash -c "! iscsi-ls -s -i iqn.2026-11.org.holdfast:outsider iscsi://127.0.0.1:$PORT 2>/dev/null | grep -q 'Lun:$LUN '"

cl_vd vdisk attach "$ID" h1 --epoch 7 || true
hf_check "attach with a stale epoch is refused" refused stale_epoch
hf_check "attach to h1 (epoch 1)" cl_vd vdisk attach "$ID" h1 --epoch 1
hf_check "attaching an unowned disk makes h1 the owner under epoch 2" \
	[ "$(cl_j "(r['vdisk']['owner'], r['vdisk']['epoch'], r['vdisk']['hosts'])")" = "('h1', 2, ['h1'])" ]
hf_check "attach h2 too (read access, the owner stays)" cl_vd vdisk attach "$ID" h2 --epoch 2
hf_check "h1 still owns it" [ "$(cl_j "(r['vdisk']['owner'], r['vdisk']['epoch'])")" = "('h1', 2)" ]

load() { # load NAME IQN RW
	"$LOADGEN" "$URL" --initiator "$2" --rw "$3" --bs 4096 --qd 4 --seconds 1 \
		>"$HF_WORK/$1.out" 2>&1 || true
	hf_log "$1: $(tail -1 "$HF_WORK/$1.out")"
}
clean() { grep -q ' 0 errors' "$HF_WORK/$1.out"; }
conflict() { grep -q 'RESERVATION CONFLICT' "$HF_WORK/$1.out"; }

load h1-write "$I1" randwrite
hf_check "the owner h1 writes" clean h1-write
load h2-read "$I2" randread
hf_check "h2 reads" clean h2-read
load h2-write "$I2" randwrite
hf_check "h2's writes get RESERVATION CONFLICT" conflict h2-write

cap() { iscsi-readcapacity16 -i "$1" "$URL" 2>/dev/null | awk -F: '/Total size/ { print $2 + 0 }'; }
CAP0=$(cap "$I1")
hf_check "READ CAPACITY from h1 shows 32 MiB" [ "$CAP0" = $((32 << 20)) ]
cl_vd vdisk extend "$ID" 64M --epoch 1 || true
hf_check "extend with a stale epoch is refused (stale_epoch)" refused stale_epoch
hf_check "extend to 64M" cl_vd vdisk extend "$ID" 64M --epoch 2
hf_check "the catalog has the new size" [ "$(cl_j "r['vdisk']['size']")" = $((64 << 20)) ]
hf_check "READ CAPACITY from h1 shows 64 MiB" [ "$(cap "$I1")" = $((64 << 20)) ]
hf_check "the backing file is 64 MiB" [ "$(stat -c %s "$(cl_j "r['vdisk']['path']")")" = $((64 << 20)) ]

hf_check "transfer h1 -> h2 (epoch 2 -> 3)" cl_vd vdisk transfer "$ID" h1 h2 --epoch 2
hf_check "h2 owns it under epoch 3" [ "$(cl_j "(r['vdisk']['owner'], r['vdisk']['epoch'])")" = "('h2', 3)" ]
load h2-write2 "$I2" randwrite
hf_check "the new owner h2 writes" clean h2-write2
load h1-write2 "$I1" randwrite
hf_check "the old owner h1's writes get RESERVATION CONFLICT" conflict h1-write2
load h1-read2 "$I1" randread
hf_check "h1 still reads" clean h1-read2

cl_vd vdisk transfer "$ID" h2 h1 --epoch 2 || true
hf_check "a stale-epoch transfer is refused" refused stale_epoch
grep -q 'epoch' "$HF_WORK/last.json" && hf_log "  $(cl_j "r['error']")"
cl_vd vdisk transfer "$ID" h1 h2 --epoch 3 || true
hf_check "a transfer from a host that is not the owner is refused" refused not_owner
load h2-write3 "$I2" randwrite
hf_check "after the refused transfers h2 still writes" clean h2-write3

cl_vd vdisk delete "$ID" --epoch 3 || true
hf_check "delete while owned and attached is refused" refused busy
hf_check "the LUN is still there after the refused delete" \
	bash -c "iscsi-ls -s -i $I1 iscsi://127.0.0.1:$PORT 2>/dev/null | grep -q 'Lun:$LUN '"

hf_check "detach h1" cl_vd vdisk detach "$ID" h1 --epoch 3
hf_check "detach h2, the owner: it gives the disk up (epoch 4)" cl_vd vdisk detach "$ID" h2 --epoch 3
hf_check "nobody owns it, nobody is attached, epoch 4" \
	[ "$(cl_j "(r['vdisk']['owner'], r['vdisk']['epoch'], r['vdisk']['hosts'])")" = "(None, 4, [])" ]
load h2-write4 "$I2" randwrite
hf_check "after the detach h2's writes get RESERVATION CONFLICT" conflict h2-write4

cl_vd vdisk list pool1
hf_check "vdisk list shows the disk" [ "$(cl_j "[v['name'] for v in r['vdisks']]")" = "['disk1']" ]
hf_check "delete" cl_vd vdisk delete "$ID" --epoch 4
hf_check "the LUN is gone" \
	bash -c "! iscsi-ls -s -i $I1 iscsi://127.0.0.1:$PORT 2>/dev/null | grep -q 'Lun:$LUN '"
hf_check "the backing file is gone" bash -c "! ls $HF_WORK/pool1/*.img 2>/dev/null | grep -q ."
cl_vd vdisk list
hf_check "vdisk list is empty" [ "$(cl_j "len(r['vdisks'])")" = 0 ]

hf_check "create disk2" cl_vd vdisk create pool1 disk2 16M
ID2=$(cl_j "r['vdisk']['id']")
LUN2=$(cl_j "r['vdisk']['lun']")
hf_check "a deleted disk's LUN number is not reused at once" [ "$LUN2" != "$LUN" ]
hf_check "attach disk2 to h1" cl_vd vdisk attach "$ID2" h1 --epoch 1
cl_vd pool remove pool1 || true
hf_check "pool remove while it holds a disk is refused" refused busy

# A restart of the box exports every ready disk again, with its access policy.
hf_stop_session "$CL_SID"
cl_start_box "$HF_WORK/box.conf" "$HF_WORK/holdfastd-2.log" "$PORT"
URL=iscsi://127.0.0.1:$PORT/$CL_IQN/$LUN2
for ((i = 0; i < 50; i++)); do
	iscsi-ls -s -i "$I1" "iscsi://127.0.0.1:$PORT" 2>/dev/null | grep -q "Lun:$LUN2 " && break
	sleep 0.1
done
hf_check "after a restart disk2 is exported again" \
	bash -c "iscsi-ls -s -i $I1 iscsi://127.0.0.1:$PORT 2>/dev/null | grep -q 'Lun:$LUN2 '"
load h1-write5 "$I1" randwrite
hf_check "after a restart its owner h1 writes" clean h1-write5
load h2-write5 "$I2" randwrite
hf_check "after a restart h2's writes get RESERVATION CONFLICT" conflict h2-write5

[ "$HF_FAILED" = 0 ] || hf_die "virtual disks: failures above; logs in $HF_WORK"
hf_log "virtual disks: all checks passed"
