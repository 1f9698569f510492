#!/usr/bin/env bash
# Virtual disks asked for by the agents themselves (issue 5: "agents can ask for the same
# operations through the agent protocol, within what their host is allowed to do"), with a
# box and two running agents h1 (A) and h2 (B). Each request is a one-shot `holdfast-agent
# vdisk ...` over a request-only connection with the host's certificate, beside the running
# agent's lease session. A creates a disk (A owns it), attaches, writes as A's initiator,
# extends (A's READ CAPACITY shows it), transfers it to B: B writes, A gets RESERVATION
# CONFLICT. A may not transfer, extend or delete B's disk (forbidden); a stale epoch is
# refused; pool operations and clone are refused; B may not delete while A is attached; A
# detaches, B detaches and deletes. The lease sessions never notice.
#
# usage: test_vdisk_agent.sh BUILD_DIR
. "$(dirname "$0")/lib.sh"
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
. "$HF_LIB_DIR/cluster_lib.sh"
LOADGEN=$BUILD/tests/loadgen
[ -x "$LOADGEN" ] || hf_die "$LOADGEN is not built"
command -v iscsi-readcapacity16 >/dev/null || hf_die "iscsi-readcapacity16 (libiscsi-bin) is missing"

HB=200
MISS=5
I1=iqn.2026-11.org.holdfast:va-h1
I2=iqn.2026-11.org.holdfast:va-h2

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
AGENT1=$(cl_q "h['h1']['agent']")

# av HOST ARGS...: holdfast-agent ARGS --json as HOST; answer in last.json, exit status kept.
av() {
	local host=$1
	shift
	"$CL_AGENT" "$@" --state-dir "$HF_WORK/$host" --box "127.0.0.1:$APORT" --json >"$HF_WORK/last.json" \
		2>"$HF_WORK/last.err"
	AV_RC=$?
	hf_log "$host: holdfast-agent $* -> $AV_RC: $(tr -d '\n ' <"$HF_WORK/last.json" | cut -c1-160)"
	return $AV_RC
}
refused() { # refused CODE EXIT: the last request was refused with that code and exit status
	[ "$AV_RC" = "$2" ] && [ "$(cl_j "r.get('code')")" = "$1" ]
}
vdisk() { cl_j "r['vdisk']['$1']"; }

mkdir -p "$HF_WORK/pool1"
hf_check "the admin adds pool1" cl_ctl pool add pool1 "$HF_WORK/pool1"

av h1 pool add pool2 "$HF_WORK/pool1" || true
hf_check "pool add from an agent is refused as forbidden (exit 10)" refused forbidden 10
av h1 pool remove pool1 || true
hf_check "pool remove from an agent is refused as forbidden" refused forbidden 10
hf_check "pool1 is still there" bash -c "'$CL_CTL' -c '$CL_CONF' --json pool list | grep -q pool1"

hf_check "A creates disk1 in pool1" av h1 vdisk create pool1 disk1 32M
ID=$(vdisk id)
LUN=$(vdisk lun)
hf_check "A owns the new disk, epoch 1, not attached yet, with a LUN of the cluster target" \
	[ "$(cl_j "(r['vdisk']['owner'], r['vdisk']['epoch'], r['vdisk']['attached'], r['vdisk']['target'], r['vdisk']['lun'] > 0)")" = "('h1', 1, False, '$CL_IQN', True)" ]
hf_check "the admin sees A as the owner" \
	bash -c "'$CL_CTL' -c '$CL_CONF' --json vdisk list | grep -q '\"owner\": \"h1\"'"
av h1 vdisk create pool1 disk1 16M || true
hf_check "a second disk1 is refused as existing" refused exists 8
av h1 vdisk create nopool disk9 16M || true
hf_check "a create in an unknown pool is refused as not found (exit 13)" refused not_found 13

hf_check "B lists the disks its host may see" av h2 vdisk list
hf_check "B sees disk1 as a cluster member: owner h1, not attached" \
	[ "$(cl_j "[(v['name'], v['owner'], v['attached'], v['lun']) for v in r['vdisks']]")" = "[('disk1', 'h1', False, $LUN)]" ]

av h1 vdisk attach "$ID" --epoch 4 || true
hf_check "an attach with a stale epoch is refused (stale_epoch, exit 11)" refused stale_epoch 11
hf_check "A attaches itself" av h1 vdisk attach "$ID" --epoch 1
hf_check "A is attached and still the owner, epoch 1" \
	[ "$(cl_j "(r['vdisk']['attached'], r['vdisk']['owner'], r['vdisk']['epoch'])")" = "(True, 'h1', 1)" ]

URL=iscsi://127.0.0.1:$PORT/$CL_IQN/$LUN
load() { # load NAME IQN RW
	"$LOADGEN" "$URL" --initiator "$2" --rw "$3" --bs 4096 --qd 4 --seconds 1 \
		>"$HF_WORK/$1.out" 2>&1 || true
	hf_log "$1: $(tail -1 "$HF_WORK/$1.out")"
}
clean() { grep -q ' 0 errors' "$HF_WORK/$1.out" && ! grep -q ' 0 ops' "$HF_WORK/$1.out"; }
conflict() { grep -q 'RESERVATION CONFLICT' "$HF_WORK/$1.out"; }
cap() { iscsi-readcapacity16 -i "$1" "$URL" 2>/dev/null | awk -F: '/Total size/ { print $2 + 0 }'; }

load a-write "$I1" randwrite
hf_check "A writes through its initiator" clean a-write
load b-write "$I2" randwrite
hf_check "B's writes get RESERVATION CONFLICT" conflict b-write

av h2 vdisk extend "$ID" 64M --epoch 1 || true
hf_check "B may not extend A's disk (forbidden)" refused forbidden 10
av h1 vdisk extend "$ID" 64M --epoch 9 || true
hf_check "an extend with a stale epoch is refused" refused stale_epoch 11
hf_check "A sees 32 MiB before the extend" [ "$(cap "$I1")" = $((32 << 20)) ]
hf_check "A extends its disk to 64M" av h1 vdisk extend "$ID" 64M --epoch 1
hf_check "the answer has the new size" [ "$(vdisk size)" = $((64 << 20)) ]
hf_check "A's READ CAPACITY shows 64 MiB" [ "$(cap "$I1")" = $((64 << 20)) ]

av h1 vdisk transfer "$ID" h9 --epoch 1 || true
hf_check "a transfer to an unknown host is refused as not found" refused not_found 13
av h1 vdisk transfer "$ID" h2 --epoch 3 || true
hf_check "a transfer with a stale epoch is refused" refused stale_epoch 11
hf_check "A transfers the disk to B (live migration)" av h1 vdisk transfer "$ID" h2 --epoch 1
hf_check "B owns it under epoch 2; A stays attached" \
	[ "$(cl_j "(r['vdisk']['owner'], r['vdisk']['epoch'], r['vdisk']['attached'])")" = "('h2', 2, True)" ]
load b-write2 "$I2" randwrite
hf_check "B's writes now succeed" clean b-write2
load a-write2 "$I1" randwrite
hf_check "A's writes now get RESERVATION CONFLICT" conflict a-write2

av h1 vdisk transfer "$ID" h1 --epoch 2 || true
hf_check "A may not transfer B's disk (forbidden)" refused forbidden 10
av h1 vdisk extend "$ID" 128M --epoch 2 || true
hf_check "A may not extend B's disk (forbidden)" refused forbidden 10
av h1 vdisk delete "$ID" --epoch 2 || true
hf_check "A may not delete B's disk (forbidden)" refused forbidden 10
av h1 vdisk clone "$ID" copy1 --epoch 2 || true
hf_check "clone from an agent is refused as forbidden" refused forbidden 10
hf_check "after the refusals B still owns it under epoch 2 with 64 MiB" \
	bash -c "'$CL_CTL' -c '$CL_CONF' --json vdisk list | python3 -c 'import json,sys; v=json.load(sys.stdin)[\"vdisks\"][0]; sys.exit(0 if (v[\"owner\"], v[\"epoch\"], v[\"size\"]) == (\"h2\", 2, 64 << 20) else 1)'"

hf_check "B attaches itself" av h2 vdisk attach "$ID" --epoch 2
av h2 vdisk delete "$ID" --epoch 2 || true
hf_check "B may not delete while A is attached (in_use, exit 14)" refused in_use 14
hf_check "A detaches itself" av h1 vdisk detach "$ID" --epoch 2
hf_check "A is detached; B still owns it, epoch 2" \
	[ "$(cl_j "(r['vdisk']['attached'], r['vdisk']['owner'], r['vdisk']['epoch'])")" = "(False, 'h2', 2)" ]
hf_check "B detaches itself" av h2 vdisk detach "$ID" --epoch 2
hf_check "B gave the disk up with the detach: nobody owns it, epoch 3" \
	[ "$(cl_j "(r['vdisk']['attached'], r['vdisk']['owner'], r['vdisk']['epoch'])")" = "(False, None, 3)" ]
load b-write3 "$I2" randwrite
hf_check "after the detach B's writes get RESERVATION CONFLICT" conflict b-write3
av h2 vdisk delete "$ID" --epoch 2 || true
hf_check "a delete with a stale epoch is refused" refused stale_epoch 11
hf_check "B deletes the disk" av h2 vdisk delete "$ID" --epoch 3
hf_check "the answer names the deleted disk" [ "$(cl_j "r['deleted']")" = "$ID" ]
hf_check "the LUN is gone" \
	bash -c "! iscsi-ls -s -i $I2 iscsi://127.0.0.1:$PORT 2>/dev/null | grep -q 'Lun:$LUN '"
hf_check "the backing file is gone" bash -c "! ls $HF_WORK/pool1/*.img 2>/dev/null | grep -q ."
hf_check "A lists no disks" av h1 vdisk list
hf_check "the list is empty" [ "$(cl_j "len(r['vdisks'])")" = 0 ]

# Text output and exit codes without --json.
"$CL_AGENT" vdisk list --state-dir "$HF_WORK/h1" --box "127.0.0.1:$APORT" >"$HF_WORK/text.out" 2>&1
hf_check "vdisk list in text says there are none" grep -q 'no virtual disks' "$HF_WORK/text.out"
rc=0
"$CL_AGENT" vdisk extend "$ID" 1G --state-dir "$HF_WORK/h1" --box "127.0.0.1:$APORT" \
	>"$HF_WORK/text.out" 2>&1 || rc=$?
hf_check "a missing --epoch is a usage error (exit 2)" [ "$rc" = 2 ]
rc=0
"$CL_AGENT" vdisk attach "$ID" --epoch 1 --state-dir "$HF_WORK/h1" --box "127.0.0.1:$APORT" \
	>"$HF_WORK/text.out" 2>&1 || rc=$?
hf_check "attaching a deleted disk exits 13 and says why on stderr" \
	bash -c "[ $rc = 13 ] && grep -q 'VDISK_ATTACH refused: not found' '$HF_WORK/text.out'"

# The one-shot connections never disturbed the lease sessions.
hf_check "both hosts are still live" cl_true "h['h1']['state'] == 'live' and h['h2']['state'] == 'live'"
hf_check "status still names h1's lease session" [ "$(cl_q "h['h1']['agent']")" = "$AGENT1" ]
hf_check "no host was fenced" bash -c "! ls '$HF_WORK'/h?.fenced 2>/dev/null | grep -q ."
hf_check "no host was lost" bash -c "! grep -Eq 'coord: (lost|fenced)' '$LOG'"

[ "$HF_FAILED" = 0 ] || hf_die "agent virtual disks: failures above; logs in $HF_WORK"
hf_log "agent virtual disks: all checks passed"
