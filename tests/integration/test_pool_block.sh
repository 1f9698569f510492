#!/usr/bin/env bash
# Block-device pools (issue 5, "Pools"), on a loop device over a 512 MiB sparse image (XFS needs 300 MB):
#   - pool add --device on a device holding an ext4 file system, without --format: refused,
#     and the ext4 is still there;
#   - with --format xfs (ext4 when mkfs.xfs is missing): taken, mounted at
#     data/pools/NAME, listed as a block pool, online, with its UUID and capacity;
#   - a disk in it, written by h1 through libiscsi, reads back after a restart of the box and
#     after a kill -9 and restart (the pool is mounted again at start, found by UUID);
#   - the box stopped and the loop device detached: at start the pool is "missing", a
#     pool_offline event is logged, the disk is neither marked missing nor deleted nor
#     exported, a new disk or an extend is refused as unavailable, and nothing is written
#     into the empty mount point;
#   - the device attached again (under whatever loop name it gets) and the box restarted:
#     online again and the data reads back;
#   - pool remove is refused while the disk exists, then (disk deleted) unmounts the pool and
#     leaves the file system on the device.
# Needs root and loop devices; says SKIP and exits 0 when it cannot have them.
#
# usage: test_pool_block.sh BUILD_DIR
. "$(dirname "$0")/lib.sh"
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
. "$HF_LIB_DIR/cluster_lib.sh"
PW=$BUILD/tests/pool_writer
[ -x "$PW" ] || hf_die "$PW is not built"

HB=200
MISS=5
I1=iqn.2026-11.org.holdfast:pblk-h1
IMG=$HF_WORK/pool.img
DATA=$HF_WORK/data
MNT=$DATA/pools/blk
LOOP=""

skip() {
	hf_log "SKIP ******************************************************************"
	hf_log "SKIP test_pool_block: $*"
	hf_log "SKIP ******************************************************************"
	exit 0
}

# Everything of ours goes, whatever happened: the box (which holds the mount), the mount,
# the loop device.
blk_cleanup() {
	local rc=$? sid
	set +e
	for sid in "${HF_PIDS[@]}"; do
		hf_stop_session "$sid" 3
	done
	if mountpoint -q "$MNT" 2>/dev/null; then
		umount "$MNT" || umount -l "$MNT"
	fi
	[ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null
	(exit "$rc")
	hf_cleanup
}
trap blk_cleanup EXIT

[ "$(id -u)" = 0 ] || skip "needs root (losetup, mount)"
command -v losetup >/dev/null || skip "losetup is not installed (util-linux)"
command -v mkfs.ext4 >/dev/null || skip "mkfs.ext4 is not installed (e2fsprogs)"
FSTYPE=xfs
command -v mkfs.xfs >/dev/null || FSTYPE=ext4
truncate -s 512M "$IMG" || hf_die "cannot make $IMG"
LOOP=$(losetup -f --show "$IMG" 2>"$HF_WORK/losetup.err") ||
	{ LOOP=""; skip "no loop device: $(tr '\n' ' ' <"$HF_WORK/losetup.err")"; }
hf_log "loop device $LOOP over $IMG; the pool gets $FSTYPE"
mkfs.ext4 -q -F "$LOOP" || hf_die "mkfs.ext4 on $LOOP failed"

hf_free_port PORT
hf_free_port APORT
hf_free_port JPORT
LOG=$HF_WORK/holdfastd.log
cl_config "$HF_WORK/box.conf" "$DATA" 127.0.0.1 "$PORT" "$APORT" "$JPORT" "$HB" "$MISS" false h1
start_box() {
	cl_start_box "$HF_WORK/box.conf" "$LOG" "$PORT"
	hf_wait_port "$JPORT" "$CL_SID" "$LOG"
}
start_box
FP=$(cl_ca_sha256)
cl_bring_up h1 "$I1" APID
cl_wait_q "s['quorum']['quorate']" 10 || hf_die "not quorate"

pool_field() { # pool_field KEY: the field of pool blk in pool list
	cl_vd pool list >/dev/null && cl_j "[p.get('$1') for p in r['pools'] if p['name'] == 'blk'][0]"
}

# 1. Data on the device and no --format: refused, the ext4 untouched.
cl_vd pool add blk --device "$LOOP" || true
hf_check "pool add without --format on a device holding ext4 is refused" [ "$VD_RC" != 0 ]
hf_check "the refusal names the ext4 and --format" \
	grep -q "ext4.*--format" "$HF_WORK/last.json"
hf_check "the ext4 is still on the device" [ "$(blkid -o value -s TYPE "$LOOP")" = ext4 ]
hf_check "nothing is mounted for the pool" bash -c "! mountpoint -q '$MNT'"
cl_vd pool add 'bad/name' --device "$LOOP" --format "$FSTYPE" || true
hf_check "a pool name with a slash is refused" [ "$VD_RC" != 0 ]
cl_vd pool add blk2 --device /dev/holdfast-nonexistent --format "$FSTYPE" || true
hf_check "a device that does not exist is refused as not found" \
	grep -q "not found" "$HF_WORK/last.json"

# 2. With --format: taken and mounted.
hf_check "pool add --device --format $FSTYPE" \
	cl_vd pool add blk --device "$LOOP" --format "$FSTYPE" --alert 10
UUID=$(cl_j "r['pool']['fs_uuid']")
hf_log "pool blk: file system $UUID"
hf_check "the device holds $FSTYPE with the UUID the pool reports" \
	[ "$(blkid -o value -s UUID "$LOOP")" = "$UUID" ]
hf_check "it is mounted at data/pools/blk" mountpoint -q "$MNT"
hf_check "mounted noatime" bash -c "findmnt -no OPTIONS '$MNT' | grep -q noatime"
hf_check "pool list: block, online, $FSTYPE, device, capacity" [ "$(pool_field kind)/$(
	pool_field state)/$(pool_field fs_type)/$(pool_field device)" = "block/online/$FSTYPE/$LOOP" ]
hf_check "pool list: capacity about 512 MiB" [ "$(pool_field capacity)" -gt $((400 << 20)) ]
cl_vd pool add blk3 --device "$LOOP" --format "$FSTYPE" || true
hf_check "the mounted device cannot be taken twice" grep -q '"busy"' "$HF_WORK/last.json"

# 3. A disk in it, written by h1.
hf_check "vdisk create in the block pool" cl_vd vdisk create blk d1 64M
ID=$(cl_j "r['vdisk']['id']")
LUN=$(cl_j "r['vdisk']['lun']")
DISK=$(cl_j "r['vdisk']['path']")
hf_check "attach to h1" cl_vd vdisk attach "$ID" h1 --epoch 1
hf_check "the disk's file is on the pool's file system" \
	[ "$(stat -c %d "$DISK")" = "$(stat -c %d "$MNT")" ]
URL=iscsi://127.0.0.1:$PORT/$CL_IQN/$LUN
writer() { # writer NAME ARGS...: pool_writer from h1's initiator
	local rc=0
	"$PW" "$URL" --initiator "$I1" "$@" >"$HF_WORK/$1.out" 2>&1 || rc=$?
	hf_log "pool_writer $* -> $rc: $(tr '\n' ';' <"$HF_WORK/$1.out")"
	return $rc
}
hf_check "h1 writes 8 MiB" writer write --from 0 --count 8

# 4. Restart: mounted again, the data is there.
hf_stop_session "$CL_SID" 10
hf_check "a clean stop leaves the pool mounted (the box unmounts only on pool remove)" \
	mountpoint -q "$MNT"
umount "$MNT" || hf_die "cannot unmount $MNT for the restart"
start_box
hf_check "after a restart the pool is mounted again" mountpoint -q "$MNT"
cl_wait_q "h['h1']['state'] == 'live'" 10 || hf_die "h1 did not come back"
hf_check "after a restart the data reads back" writer verify --from 0 --count 8
hf_check "pool online after the restart" [ "$(pool_field state)" = online ]

# 5. kill -9 and restart: the mount stays, the box takes it as it is.
hf_kill9_session "$CL_SID"
start_box
cl_wait_q "h['h1']['state'] == 'live'" 10 || hf_die "h1 did not come back"
hf_check "after kill -9 and restart the data reads back" writer verify --from 0 --count 8
hf_check "after kill -9 only one mount of the pool" [ "$(findmnt -n "$MNT" | wc -l)" = 1 ]

# 6. The device goes away while the box is down.
hf_stop_session "$CL_SID" 10
umount "$MNT" || hf_die "cannot unmount $MNT"
losetup -d "$LOOP" || hf_die "cannot detach $LOOP"
LOOP=""
start_box
hf_check "the pool is reported missing" [ "$(pool_field state)" = missing ]
hf_check "pool list says why" bash -c "grep -q 'no device holds' '$HF_WORK/last.json'"
hf_check "a pool_offline event is logged" \
	cl_true "len([e for e in s['events'] if e['kind'] == 'pool_offline' and 'pool blk' in e['text']]) == 1"
cl_vd vdisk show "$ID" || true
hf_check "the disk is still ready (not marked missing)" [ "$(cl_j "r['vdisk']['state']")" = ready ]
hf_check "the disk is not exported" [ "$(cl_j "r['vdisk']['exported']")" = False ]
EP=$(cl_j "r['vdisk']['epoch']")
cl_vd vdisk create blk d2 16M || true
hf_check "a new disk in the missing pool is refused as unavailable" \
	grep -q '"unavailable"' "$HF_WORK/last.json"
cl_vd vdisk extend "$ID" 128M --epoch "$EP" || true
hf_check "extending a disk of the missing pool is refused as unavailable" \
	grep -q '"unavailable"' "$HF_WORK/last.json"
hf_check "nothing was written into the empty mount point" \
	[ -z "$(ls -A "$MNT" 2>/dev/null)" ]
hf_check "the log says the pool was left alone" grep -q "1 block pool(s) offline" "$LOG"

# 7. Back: attached again (maybe under another name), restart, online, data intact.
hf_stop_session "$CL_SID" 10
LOOP=$(losetup -f --show "$IMG") || hf_die "cannot attach $IMG again"
hf_log "attached again as $LOOP"
start_box
hf_check "the pool is online again" [ "$(pool_field state)" = online ]
cl_wait_q "h['h1']['state'] == 'live'" 10 || hf_die "h1 did not come back"
hf_check "the data reads back after the device came back" writer verify --from 0 --count 8
cl_vd vdisk show "$ID" || true
hf_check "the disk is exported again" [ "$(cl_j "r['vdisk']['exported']")" = True ]

# 8. Remove: refused with a disk, then unmounts and keeps the file system.
cl_vd pool remove blk || true
hf_check "pool remove with a disk is refused" grep -q '"busy"' "$HF_WORK/last.json"
hf_check "detach" cl_vd vdisk detach "$ID" h1 --epoch "$EP"
EP=$(cl_j "r['vdisk']['epoch']")
hf_check "delete the disk" cl_vd vdisk delete "$ID" --epoch "$EP"
hf_check "pool remove" cl_vd pool remove blk
hf_check "pool remove unmounted it" bash -c "! mountpoint -q '$MNT'"
hf_check "the file system is still on the device (not wiped)" \
	[ "$(blkid -o value -s UUID "$LOOP")" = "$UUID" ]
cl_vd pool list
hf_check "the pool is gone from the list" [ "$(cl_j "len(r['pools'])")" = 0 ]

[ "$HF_FAILED" = 0 ] || hf_die "pool_block: failures above; logs in $HF_WORK"
hf_log "pool_block: all checks passed"
