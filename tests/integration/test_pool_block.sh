#!/usr/bin/env bash
# Block-device pools (issue 5, "Pools"), on a loop device over a 512 MiB sparse image (XFS needs 300 MB):
#   - pool add --device on a device holding an ext4 file system, without --format: refused,
#     and the ext4 is still there;
#   - with --format xfs (ext4 when mkfs.xfs is missing): taken, mounted at
#     data/pools/NAME, listed as a block pool, online, with its UUID and capacity;
#   - a disk in it, written by h1 through libiscsi, reads back after a restart of the box and
#     after a kill -9 and restart (the pool is mounted again at start, found by UUID); a file
#     system mounted under data/pools that no pool names (an add cut short) is unmounted at
#     start;
#   - the box stopped and the loop device detached: at start the pool is "missing", a
#     pool_offline event is logged, the disk is neither marked missing nor deleted nor
#     exported, a new disk or an extend is refused as unavailable, and nothing is written
#     into the empty mount point;
#   - the device attached again (under whatever loop name it gets) and the box restarted:
#     online again and the data reads back;
#   - pool remove is refused while the disk exists, then (disk deleted) unmounts the pool and
#     leaves the file system on the device;
#   - mkfs and mount run off the coord loop: a second device lives in an image on a file
#     system of its own (a loop device in a loop device), which is frozen (fsfreeze) while a
#     pool add --format of it runs, so that mkfs waits on its writes. Meanwhile cluster status
#     answers quickly, h1 stays live with no lost/fenced event, and a second add of the name
#     or of the device and a remove of the pool are refused busy; after the thaw the add
#     answers with the pool online. The same for pool remove (the unmount waits on the frozen
#     file system; a new disk in the pool is refused busy meanwhile);
#   - an mkfs that fails (XFS on a 64 MiB device) answers with mkfs's message and leaves no
#     pool and no mount.
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
OUTER=$HF_WORK/outer
OLOOP=""
SLOOP=""
TLOOP=""
GLOOP=""

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
	[ -n "$OLOOP" ] && fsfreeze -u "$OUTER" 2>/dev/null
	for m in "$DATA/pools/slow" "$DATA/pools/tiny"; do
		mountpoint -q "$m" 2>/dev/null && { umount "$m" || umount -l "$m"; }
	done
	[ -n "$SLOOP" ] && losetup -d "$SLOOP" 2>/dev/null
	[ -n "$TLOOP" ] && losetup -d "$TLOOP" 2>/dev/null
	mountpoint -q "$DATA/pools/ghost" 2>/dev/null && { umount "$DATA/pools/ghost" || umount -l "$DATA/pools/ghost"; }
	[ -n "$GLOOP" ] && losetup -d "$GLOOP" 2>/dev/null
	if [ -n "$OLOOP" ]; then
		mountpoint -q "$OUTER" && { umount "$OUTER" || umount -l "$OUTER"; }
		losetup -d "$OLOOP" 2>/dev/null
	fi
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
# A pool add cut short between its mount and its row leaves a mount no pool names: the next
# start unmounts it (and leaves the device alone).
truncate -s 32M "$HF_WORK/ghost.img" && mkfs.ext4 -q -F "$HF_WORK/ghost.img" ||
	hf_die "cannot make ghost.img"
GLOOP=$(losetup -f --show "$HF_WORK/ghost.img") || hf_die "cannot attach ghost.img"
mkdir -p "$DATA/pools/ghost" && mount "$GLOOP" "$DATA/pools/ghost" || hf_die "cannot mount the ghost"
start_box
hf_check "after a restart the pool is mounted again" mountpoint -q "$MNT"
hf_check "a mount under pools/ that no pool names is unmounted at start" \
	bash -c "! mountpoint -q '$DATA/pools/ghost'"
hf_check "and the log says so" grep -q "pools/ghost was mounted but is no pool's" "$LOG"
hf_check "the device keeps its file system" bash -c "blkid -p '$GLOOP' | grep -q ext4"
losetup -d "$GLOOP" && GLOOP=""
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

# 9. The slow part off the loop. The device's image is on a file system of its own, frozen:
#    mkfs blocks on its first write until the thaw, as on a very slow or large device.
command -v fsfreeze >/dev/null || skip "fsfreeze is not installed (util-linux)"
truncate -s 1G "$HF_WORK/outer.img" && mkfs.ext4 -q -F "$HF_WORK/outer.img" ||
	hf_die "cannot make the outer image"
OLOOP=$(losetup -f --show "$HF_WORK/outer.img") || hf_die "no loop device for the outer image"
mkdir -p "$OUTER" && mount "$OLOOP" "$OUTER" || hf_die "cannot mount $OLOOP"
truncate -s 512M "$OUTER/slow.img" || hf_die "cannot make the slow image"
SLOOP=$(losetup -f --show "$OUTER/slow.img") || hf_die "no loop device for the slow image"
hf_log "slow device $SLOOP over $OUTER/slow.img on $OLOOP"

now_ms() { echo $(($(date +%s%N) / 1000000)); }
# status_for MS: cluster status again and again for MS ms; STATUS_N answers, STATUS_MAX the
# slowest in ms, STATUS_BAD the ones that failed.
status_for() {
	local end=$(($(now_ms) + $1)) t0 t1
	STATUS_N=0 STATUS_MAX=0 STATUS_BAD=0
	while [ "$(now_ms)" -lt "$end" ]; do
		t0=$(now_ms)
		cl_status >/dev/null 2>&1 || STATUS_BAD=$((STATUS_BAD + 1))
		t1=$(now_ms)
		STATUS_N=$((STATUS_N + 1))
		[ $((t1 - t0)) -gt "$STATUS_MAX" ] && STATUS_MAX=$((t1 - t0))
	done
	hf_log "cluster status: $STATUS_N answers in $1 ms, slowest $STATUS_MAX ms, $STATUS_BAD failed"
}
# Events that would say the loop stalled: a host lost or fenced, quorum lost.
bad_events() {
	cl_q "len([e for e in s['events'] if e['kind'] in ('lost', 'fenced', 'quorum_lost')])"
}
# wait_answer FILE: wait up to 30 s for a backgrounded holdfastctl's answer.
wait_answer() {
	local i
	for ((i = 0; i < 300; i++)); do
		[ -s "$1" ] && return 0
		sleep 0.1
	done
	return 1
}
STALL_MS=2500
SLOW_MS=300 # a status answer slower than this means the loop waited (H is 200 ms)
cl_wait_q "h['h1']['state'] == 'live'" 10 || hf_die "h1 is not live"
BAD0=$(bad_events)
status_for 500
hf_log "idle: cluster status slowest $STATUS_MAX ms"

fsfreeze -f "$OUTER" || hf_die "cannot freeze $OUTER"
# Thawed in any case, in case the box itself waits on the frozen device.
cl_bg THAW "$HF_WORK/thaw.log" bash -c "sleep $((STALL_MS / 1000 + 5)); fsfreeze -u '$OUTER'"
cl_bg ADDPID "$HF_WORK/add.log" "$CL_CTL" -c "$CL_CONF" --json pool add slow --device "$SLOOP" \
	--format "$FSTYPE"
sleep 0.2
status_for "$STALL_MS"
cl_vd pool add slow --device "$LOOP" --format "$FSTYPE" || true
hf_check "a second add of the same name during the add is refused busy" \
	grep -q '"busy"' "$HF_WORK/last.json"
cl_vd pool add slow2 --device "$SLOOP" --format "$FSTYPE" || true
hf_check "an add of the same device under another name is refused busy" \
	grep -q '"busy"' "$HF_WORK/last.json"
cl_vd pool remove slow || true
hf_check "a remove of the pool being added is refused busy" grep -q '"busy"' "$HF_WORK/last.json"
hf_check "the add is still waiting on the frozen device (the check means something)" \
	[ ! -s "$HF_WORK/add.log" ]
hf_check "cluster status answered all along during the add ($STATUS_N times)" \
	[ "$STATUS_BAD" = 0 -a "$STATUS_N" -gt 5 ]
hf_check "every status answer during the add under $SLOW_MS ms (slowest $STATUS_MAX)" \
	[ "$STATUS_MAX" -lt "$SLOW_MS" ]
hf_check "h1 stayed live during the add" cl_true "h['h1']['state'] == 'live'"
fsfreeze -u "$OUTER" 2>/dev/null || hf_log "$OUTER was thawed already (by the safety thaw)"
hf_stop_session "$THAW" 1
hf_check "the add answers after the thaw" wait_answer "$HF_WORK/add.log"
hf_log "pool add slow -> $(tr -d '\n ' <"$HF_WORK/add.log" | cut -c1-300)"
hf_check "the add made the pool, online, on the slow device" python3 -c "
import json; p = json.load(open('$HF_WORK/add.log'))['pool']
assert p['name'] == 'slow' and p['state'] == 'online' and p['device'] == '$SLOOP', p"
hf_check "the slow pool is mounted" mountpoint -q "$DATA/pools/slow"
hf_check "no host lost or fenced, quorum kept during the add" [ "$(bad_events)" = "$BAD0" ]
hf_check "the add's log line gives its time" grep -q "pool slow: .* mounted at .* s)" "$LOG"

# The remove's unmount waits on the frozen file system the same way.
fsfreeze -f "$OUTER" || hf_die "cannot freeze $OUTER"
cl_bg THAW "$HF_WORK/thaw.log" bash -c "sleep $((STALL_MS / 1000 + 5)); fsfreeze -u '$OUTER'"
cl_bg RMPID "$HF_WORK/remove.log" "$CL_CTL" -c "$CL_CONF" --json pool remove slow
sleep 0.2
cl_vd vdisk create slow d9 16M || true
hf_check "a new disk in the pool being removed is refused busy" \
	grep -q '"busy"' "$HF_WORK/last.json"
status_for 1500
hf_check "the remove is still waiting on the frozen file system" [ ! -s "$HF_WORK/remove.log" ]
hf_check "cluster status answered quickly during the remove (slowest $STATUS_MAX ms)" \
	[ "$STATUS_BAD" = 0 -a "$STATUS_MAX" -lt "$SLOW_MS" ]
fsfreeze -u "$OUTER" 2>/dev/null || hf_log "$OUTER was thawed already (by the safety thaw)"
hf_stop_session "$THAW" 1
hf_check "the remove answers after the thaw" wait_answer "$HF_WORK/remove.log"
hf_check "the remove says removed" grep -q '"removed"' "$HF_WORK/remove.log"
hf_check "the slow pool is unmounted" bash -c "! mountpoint -q '$DATA/pools/slow'"
hf_check "no host lost or fenced during the remove" [ "$(bad_events)" = "$BAD0" ]

# 10. A failing mkfs: its message, no pool, nothing mounted.
if [ "$FSTYPE" = xfs ]; then
	truncate -s 64M "$HF_WORK/tiny.img"
	TLOOP=$(losetup -f --show "$HF_WORK/tiny.img") || hf_die "no loop device for tiny.img"
	cl_vd pool add tiny --device "$TLOOP" --format xfs || true
	hf_check "an add whose mkfs fails is refused" [ "$VD_RC" != 0 ]
	hf_check "the refusal carries mkfs.xfs's message" grep -q 'mkfs.xfs' "$HF_WORK/last.json"
	cl_vd pool list
	hf_check "no pool tiny was recorded" [ "$(cl_j "len([p for p in r['pools'] if p['name'] == 'tiny'])")" = 0 ]
	hf_check "nothing is mounted for tiny" bash -c "! mountpoint -q '$DATA/pools/tiny'"
	cl_vd pool add tiny --device "$TLOOP" --format xfs || true
	hf_check "the name and device are free again after the failure (not busy)" \
		grep -q 'mkfs.xfs' "$HF_WORK/last.json"
fi

# 11. The box stopped while an add waits on the device (SIGTERM ends the coord process, whose
#     worker goes with it; mkfs, its child, finishes on its own after the thaw): no row, nothing
#     mounted, and the next start knows no such pool.
fsfreeze -f "$OUTER" || hf_die "cannot freeze $OUTER"
cl_bg ADDPID "$HF_WORK/add2.log" "$CL_CTL" -c "$CL_CONF" --json pool add late --device "$SLOOP" \
	--format "$FSTYPE"
cl_wait_log "$LOG" "pool late: taking" 5 || hf_die "the add of pool late did not start"
cl_bg THAW "$HF_WORK/thaw.log" bash -c "sleep 1; fsfreeze -u '$OUTER'"
hf_stop_session "$CL_SID" 9
sleep 1.5
hf_check "nothing is left mounted for the add cut short" \
	bash -c "! mountpoint -q '$DATA/pools/late'"
start_box
cl_vd pool list
hf_check "after the restart there is no pool late" \
	[ "$(cl_j "len([p for p in r['pools'] if p['name'] == 'late'])")" = 0 ]
losetup -d "$SLOOP" && SLOOP=""

[ "$HF_FAILED" = 0 ] || hf_die "pool_block: failures above; logs in $HF_WORK"
hf_log "pool_block: all checks passed"
