#!/usr/bin/env bash
# A pool that fills up (issue 5, acceptance 4). The pool lives on a 48 MiB filesystem the test
# mounts and removes (tmpfs; a loop-mounted ext4 image when tmpfs is refused; SKIP when neither
# can be mounted). A 16 MiB ballast file of ours takes part of it. The pool's alert threshold
# is 25 %; a thin disk of 128 MiB, larger than the filesystem, is attached to h1, which writes
# sequential 1 MiB blocks of a known pattern:
#   - 8 and 16 MiB in, free space is still above 25 %: no pool_alert event, no alert in pool
#     list; 22 MiB in (10 MiB, 21 %, free) the coordinator logs pool_alert with the free space;
#   - writing on until the filesystem is full: the write that finds no space gets CHECK
#     CONDITION, DATA PROTECT, SPACE ALLOCATION FAILED WRITE PROTECT (27/07);
#   - every block written before that reads back as written;
#   - the ballast is deleted: pool_alert_cleared is logged and writes succeed again.
#
# usage: test_pool.sh BUILD_DIR   (as root, for the mount)
. "$(dirname "$0")/lib.sh"
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
. "$HF_LIB_DIR/cluster_lib.sh"
PW=$BUILD/tests/pool_writer
[ -x "$PW" ] || hf_die "$PW is not built"

HB=200
MISS=5
I1=iqn.2026-11.org.holdfast:pool-h1
FS=$HF_WORK/fs

# The filesystem is ours: unmounted (after holdfastd is stopped, which holds the disk's file)
# before lib.sh's cleanup removes the work folder.
MOUNTED=""
pool_cleanup() {
	local rc=$? sid
	set +e
	if [ -n "$MOUNTED" ]; then
		for sid in "${HF_PIDS[@]}"; do
			hf_stop_session "$sid" 3
		done
		umount "$FS" || umount -l "$FS"
	fi
	(exit "$rc")
	hf_cleanup
}
trap pool_cleanup EXIT

mkdir -p "$FS"
if mount -t tmpfs -o size=48M tmpfs "$FS" 2>"$HF_WORK/mount.err"; then
	MOUNTED=tmpfs
elif command -v mkfs.ext4 >/dev/null && truncate -s 48M "$HF_WORK/fs.img" &&
	mkfs.ext4 -q -F -m 0 "$HF_WORK/fs.img" 2>>"$HF_WORK/mount.err" &&
	mount -o loop "$HF_WORK/fs.img" "$FS" 2>>"$HF_WORK/mount.err"; then
	MOUNTED=ext4
else
	hf_log "SKIP ******************************************************************"
	hf_log "SKIP test_pool: neither tmpfs nor a loop-mounted ext4 could be mounted:"
	hf_log "SKIP $(tr '\n' ' ' <"$HF_WORK/mount.err")"
	hf_log "SKIP ******************************************************************"
	exit 0
fi
hf_log "pool filesystem: $MOUNTED at $FS ($(df -h --output=size "$FS" | tail -1 | tr -d ' '))"
mkdir -p "$FS/pool"
dd if=/dev/zero of="$FS/ballast" bs=1M count=16 status=none || hf_die "cannot write the ballast"

hf_free_port PORT
hf_free_port APORT
hf_free_port JPORT
LOG=$HF_WORK/holdfastd.log
cl_config "$HF_WORK/box.conf" "$HF_WORK/data" 127.0.0.1 "$PORT" "$APORT" "$JPORT" "$HB" "$MISS" \
	false h1
cl_start_box "$HF_WORK/box.conf" "$LOG" "$PORT"
hf_wait_port "$JPORT" "$CL_SID" "$LOG"
FP=$(cl_ca_sha256)
out=$(cl_join "127.0.0.1:$JPORT" "$(cl_token 60)" "$FP" h1 "$I1" "$HF_WORK/h1") ||
	hf_die "join of h1 failed: $out"
cl_run_agent apid "$HF_WORK/h1" "127.0.0.1:$APORT" "$HB" "$MISS" "$HF_WORK/h1.fenced" \
	"$HF_WORK/agent-h1.log"
cl_wait_q "h['h1']['state'] == 'live'" 10 || hf_die "h1 did not become live"
cl_wait_q "s['quorum']['quorate']" 10 || hf_die "not quorate"

pool_alert() { # pool_alert: print the pool's alert flag from pool list (True/False)
	cl_vd pool list >/dev/null && cl_j "[p['alert'] for p in r['pools'] if p['name'] == 'tiny'][0]"
}
events() { # events KIND: how many events of that kind name the pool
	cl_q "len([e for e in s['events'] if e['kind'] == '$1' and 'pool tiny:' in e['text']])"
}
event_text() { cl_q "[e['text'] for e in s['events'] if e['kind'] == '$1'][-1]"; }

hf_check "pool add (alert at 25 %)" cl_vd pool add tiny "$FS/pool" --alert 25
hf_check "vdisk create: thin, 128 MiB on a 48 MiB filesystem" cl_vd vdisk create tiny big 128M
ID=$(cl_j "r['vdisk']['id']")
LUN=$(cl_j "r['vdisk']['lun']")
hf_check "attach to h1" cl_vd vdisk attach "$ID" h1 --epoch 1
URL=iscsi://127.0.0.1:$PORT/$CL_IQN/$LUN

writer() { # writer NAME ARGS...: pool_writer from h1's initiator; output in NAME.out
	local rc=0
	"$PW" "$URL" --initiator "$I1" "$@" >"$HF_WORK/$1.out" 2>&1 || rc=$?
	hf_log "pool_writer $* -> $rc: $(tr '\n' ';' <"$HF_WORK/$1.out")"
	return $rc
}

# 8 MiB of 48 with 16 taken by the ballast: about half is still free.
hf_check "h1 writes the first 8 MiB" writer write --from 0 --count 8
sleep 2.5
hf_check "no pool_alert while free space is above 25 %" [ "$(events pool_alert)" = 0 ]
hf_check "pool list shows no alert yet" [ "$(pool_alert)" = False ]

# 8 MiB more: 16 MiB (33 %) free, still above. 6 MiB more: 10 MiB (21 %) free, below 25 %: the
# alert fires within a look (every second), before the pool is full.
hf_check "h1 writes 8 MiB more" writer write --from 8 --count 8
sleep 2.5
hf_check "no pool_alert at 33 % free" [ "$(events pool_alert)" = 0 ]
hf_check "h1 writes 6 MiB more, past the threshold" writer write --from 16 --count 6
hf_check "the coordinator logged pool_alert once free space fell to 25 %" cl_wait_q \
	"len([e for e in s['events'] if e['kind'] == 'pool_alert' and 'pool tiny:' in e['text']]) == 1" 5
hf_log "pool_alert event: $(event_text pool_alert 2>/dev/null)"
hf_check "the event gives the free space, at or below 25 % and above 0" cl_true \
	"[0 < int(e['text'].split()[2]) <= 50331648 // 4 for e in s['events'] if e['kind'] == 'pool_alert'][-1]"
hf_check "pool list shows the alert" [ "$(pool_alert)" = True ]

writer write --from 22 || true
hf_check "writing on stops with an error once the filesystem is full" \
	grep -q '^write_error' "$HF_WORK/write.out"
hf_check "the write to the full pool gets CHECK CONDITION, DATA PROTECT 27/07" \
	grep -Eq '^write_error .*status=0x02 sense_key=0x7 asc=0x27 ascq=0x07' "$HF_WORK/write.out"
FULL_AT=$(sed -n 's/^write_error at_mib=\([0-9]*\) .*/\1/p' "$HF_WORK/write.out")
FULL_AT=${FULL_AT:-0}
hf_log "the pool filled at $FULL_AT MiB of the disk; df: $(df -B1 --output=avail "$FS" | tail -1)"
hf_check "it filled past the first 8 MiB and before the disk's end" \
	[ "$FULL_AT" -gt 8 -a "$FULL_AT" -lt 128 ]

hf_check "still one pool_alert (it is logged when it turns on, not at every look)" \
	[ "$(events pool_alert)" = 1 ]
hf_check "pool list shows the alert" [ "$(pool_alert)" = True ]
hf_check "holdfastctl pool list (table) marks the pool" \
	bash -c "'$CL_CTL' -c '$CL_CONF' pool list | grep -q '!'"

# Everything acknowledged before the pool filled reads back as written: no corruption.
hf_check "the $FULL_AT MiB written before the pool filled read back intact" \
	writer verify --from 0 --count "$FULL_AT"

rm -f "$FS/ballast"
hf_check "with the ballast deleted, pool_alert_cleared is logged" cl_wait_q \
	"len([e for e in s['events'] if e['kind'] == 'pool_alert_cleared' and 'pool tiny:' in e['text']]) == 1" 5
hf_log "pool_alert_cleared event: $(event_text pool_alert_cleared 2>/dev/null)"
hf_check "pool list shows no alert again" [ "$(pool_alert)" = False ]
hf_check "writes succeed again where the pool was full" writer write --from "$FULL_AT" --count 4
hf_check "and read back as written" writer verify --from 0 --count $((FULL_AT + 4))

[ "$HF_FAILED" = 0 ] || hf_die "pool: failures above; logs in $HF_WORK"
hf_log "pool: all checks passed"
