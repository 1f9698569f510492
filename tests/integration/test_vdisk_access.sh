#!/usr/bin/env bash
# Access states of shared volumes (issue 5): a box with two portals and two agents h1, h2,
# both preferring the first portal (holdfastctl host portals). A host logged in through its
# preferred portal shows "direct", one logged in only through the other "redirected", one
# without a session "not connected". Maintenance on (holdfastctl vdisk maintenance): the
# owner's write does not complete while paused, reads go on, and the write completes with its
# data on disk once maintenance is off; a write held past maintenance_hold_ms gets BUSY. A
# fenced host shows "fenced". Maintenance is durable: after a restart the target has it again.
#
# usage: test_vdisk_access.sh BUILD_DIR
. "$(dirname "$0")/lib.sh"
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
. "$HF_LIB_DIR/cluster_lib.sh"
HW_BIN=$BUILD/tests/held_write
[ -x "$HW_BIN" ] || hf_die "$HW_BIN is not built"

HB=200
MISS=5
# Long enough that the checks made while a write is held (each a process start, on a
# machine that may be busy) finish well before the write would get BUSY.
HOLD_MS=4000
I1=iqn.2026-11.org.holdfast:va-h1
I2=iqn.2026-11.org.holdfast:va-h2

hf_free_port PORT
hf_free_port PORT2
hf_free_port APORT
hf_free_port JPORT
LOG=$HF_WORK/holdfastd.log
DATA=$HF_WORK/data
mkdir -p "$DATA"
cat >"$HF_WORK/box.conf" <<EOF
data_dir = "$DATA";
control_socket = "$DATA/holdfastd.sock";
workers = ${HF_WORKERS:-2};
maintenance_hold_ms = $HOLD_MS;
portals = ( { name = "p1"; address = "127.0.0.1"; port = $PORT; tpgt = 1; },
            { name = "p2"; address = "127.0.0.1"; port = $PORT2; tpgt = 2; } );
backstores = ( { name = "bs0"; type = "memory"; size = "64M"; } );
targets = ( { iqn = "$CL_IQN"; portals = [ "p1", "p2" ]; luns = ( { id = 0; backstore = "bs0"; } ); } );
cluster = { name = "c1"; address = "127.0.0.1"; agent_port = $APORT; join_port = $JPORT;
	heartbeat_ms = $HB; miss_threshold = $MISS; wait_for_all = false;
	hosts = ( { name = "h1"; votes = 1; }, { name = "h2"; votes = 1; } ); };
EOF
cl_start_box "$HF_WORK/box.conf" "$LOG" "$PORT"
hf_wait_port "$JPORT" "$CL_SID" "$LOG"
FP=$(cl_ca_sha256)

cl_bring_up h1 "$I1"
cl_bring_up h2 "$I2"
cl_wait_q "s['quorum']['quorate']" 10 || hf_die "not quorate"

eq() { # eq WANT GOT
	[ "$1" = "$2" ] || {
		hf_log "  want '$1', got '$2'"
		return 1
	}
}
starts() { # starts WANT GOT: GOT begins with WANT
	[[ $2 == "$1"* ]] || {
		hf_log "  want '$1...', got '$2'"
		return 1
	}
}
# The access line of HOST in the last "vdisk access" answer: role, shown state, portals.
acc() { cl_j "[(h['role'], h['shown'], h['portals']) for h in r['hosts'] if h['host'] == '$1'][0]"; }
# The first byte of block N of the disk's file, in hex.
disk() { od -An -tx1 -j $(($1 * 512)) -N1 "$IMG" | tr -d ' \n'; }
# Does the target hold the disk's writes (its LUN paused)?
target_paused() {
	"$CL_CTL" -c "$HF_WORK/box.conf" --json luns 2>/dev/null | python3 -c "import json,sys; print([l['paused'] for t in json.load(sys.stdin)['targets'] for l in t['luns'] if l['id'] == $LUN])" | grep -q True
}

# held_write initiators behind FIFOs: hw_open NAME URL IQN; hw NAME CMD prints its answer.
declare -A HW_FD
hw_open() {
	local fd
	mkfifo "$HF_WORK/$1.in"
	"$HW_BIN" "$2" "$3" <"$HF_WORK/$1.in" >"$HF_WORK/$1.out" 2>"$HF_WORK/$1.err" &
	exec {fd}>"$HF_WORK/$1.in"
	HW_FD[$1]=$fd
	for _ in $(seq 100); do
		grep -q '^ready' "$HF_WORK/$1.out" 2>/dev/null && return 0
		sleep 0.1
	done
	hf_die "held_write $1 did not log in: $(cat "$HF_WORK/$1.err")"
}
hw() {
	local n i
	n=$(wc -l <"$HF_WORK/$1.out")
	echo "$2" >&"${HW_FD[$1]}"
	for ((i = 0; i < 300; i++)); do
		[ "$(wc -l <"$HF_WORK/$1.out")" -gt "$n" ] && break
		sleep 0.05
	done
	tail -1 "$HF_WORK/$1.out"
}

mkdir -p "$HF_WORK/pool1"
cl_vd pool add pool1 "$HF_WORK/pool1" >/dev/null
cl_vd vdisk create pool1 disk1 32M
ID=$(cl_j "r['vdisk']['id']")
LUN=$(cl_j "r['vdisk']['lun']")
IMG=$(cl_j "r['vdisk']['path']")
cl_vd vdisk attach "$ID" h1 --epoch 1 >/dev/null
cl_vd vdisk attach "$ID" h2 --epoch 2 >/dev/null
hf_check "h1 owns the disk (epoch 2), h2 attached" \
	eq "('h1', 2, ['h1', 'h2'])" "$(cl_j "(r['vdisk']['owner'], r['vdisk']['epoch'], r['vdisk']['hosts'])")"

hf_check "host portals h1 (the first portal)" cl_vd host portals h1 "127.0.0.1:$PORT"
hf_check "the portal is stored in canonical form" eq "['127.0.0.1:$PORT']" "$(cl_j "r['portals']")"
cl_vd host portals h2 "127.0.0.1/32" >/dev/null
hf_check "a network spec is accepted (canonical: the address)" eq "['127.0.0.1']" "$(cl_j "r['portals']")"
hf_check "host portals h2 (the first portal only)" cl_vd host portals h2 "127.0.0.1:$PORT"
cl_vd host portals h2 bogus:name || true
hf_check "a portal that is no address is refused" eq "1 invalid" "$VD_RC $(cl_j "r.get('code')")"
cl_vd host portals h9 "127.0.0.1:$PORT" || true
hf_check "an unknown host is refused" eq "1 not_found" "$VD_RC $(cl_j "r.get('code')")"
cl_vd host portals h2 >/dev/null
hf_check "the refused change lost nothing" eq "['127.0.0.1:$PORT']" "$(cl_j "r['portals']")"

hf_check "vdisk access without sessions" cl_vd vdisk access "$ID"
hf_check "h1 without a session is not connected" eq "('owner', 'not connected', [])" "$(acc h1)"
hf_check "h2 without a session is not connected" eq "('reader', 'not connected', [])" "$(acc h2)"

# h1 through its preferred portal, h2 only through the other one.
hw_open h1 "iscsi://127.0.0.1:$PORT/$CL_IQN/$LUN" "$I1"
hw_open h2 "iscsi://127.0.0.1:$PORT2/$CL_IQN/$LUN" "$I2"
cl_vd vdisk access "$ID"
hf_check "h1 through its preferred portal shows direct" \
	eq "('owner', 'direct', ['127.0.0.1:$PORT'])" "$(acc h1)"
hf_check "h2 only through a non-preferred portal shows redirected" \
	eq "('reader', 'redirected', ['127.0.0.1:$PORT2'])" "$(acc h2)"
cl_ctl vdisk access "$ID" >"$HF_WORK/access.txt"
hf_check "the table shows h2 redirected" grep -Eq "^h2 +reader +redirected" "$HF_WORK/access.txt"
cl_vd vdisk list
hf_check "vdisk list carries the access states" \
	eq "{'h1': 'direct', 'h2': 'redirected'}" "$(cl_j "r['vdisks'][0]['access']")"

# Maintenance: held writes, reads go on, then the write lands.
hf_check "a write before maintenance" starts "done 0 GOOD" "$(hw h1 'write 0 100 11' >/dev/null; hw h1 'wait 0 5000')"
cl_vd vdisk maintenance "$ID" on || true
hf_check "maintenance needs the epoch" eq 2 "$VD_RC"
cl_vd vdisk maintenance "$ID" on --epoch 1 || true
hf_check "maintenance with a stale epoch is refused" eq "1 stale_epoch" "$VD_RC $(cl_j "r.get('code')")"
hf_check "maintenance on" cl_vd vdisk maintenance "$ID" on --epoch 2
hf_check "the disk says so" eq True "$(cl_j "r['vdisk']['maintenance']")"
hf_check "the target has the pause when the answer comes" target_paused
cl_vd vdisk access "$ID"
hf_check "h1 shows maintenance" eq "('owner', 'maintenance', ['127.0.0.1:$PORT'])" "$(acc h1)"
hw h1 'write 1 101 22' >/dev/null
hf_check "the owner's write does not complete during maintenance" starts "pending 1" "$(hw h1 'wait 1 1000')"
hf_check "the owner reads during maintenance" starts "read GOOD 11" "$(hw h1 'read 100')"
hf_check "another host reads during maintenance" starts "read GOOD 11" "$(hw h2 'read 100')"
hf_check "the held write is not on disk" eq 00 "$(disk 101)"
hf_check "maintenance off" cl_vd vdisk maintenance "$ID" off --epoch 2
hf_check "the held write completes after maintenance off" starts "done 1 GOOD" "$(hw h1 'wait 1 5000')"
hf_check "its data is on disk" eq 22 "$(disk 101)"
cl_vd vdisk access "$ID"
hf_check "h1 is direct again" eq "('owner', 'direct', ['127.0.0.1:$PORT'])" "$(acc h1)"

cl_vd vdisk maintenance "$ID" on --epoch 2 >/dev/null
hw h1 'write 2 102 33' >/dev/null
out=$(hw h1 'wait 2 6000')
hf_check "a write held past maintenance_hold_ms gets BUSY ($out)" starts "done 2 BUSY" "$out"
hf_check "the BUSY write is not on disk" eq 00 "$(disk 102)"

# A fenced host shows fenced.
hf_check "remove (fence) h2" cl_vd cluster host remove h2
cl_wait_q "h['h2']['fenced']" 10 || true
cl_vd vdisk access "$ID"
hf_check "h2 shows fenced" eq "fenced" "$(cl_j "[h['shown'] for h in r['hosts'] if h['host'] == 'h2'][0]")"

# Durable: after a restart the coordinator exports the disk paused again.
for n in h1 h2; do
	echo quit 1>&"${HW_FD[$n]}" 2>/dev/null || true
done
hf_stop_session "$CL_SID"
cl_start_box "$HF_WORK/box.conf" "$LOG" "$PORT"
ok=false
for _ in $(seq 100); do
	target_paused && ok=true && break
	sleep 0.1
done
hf_check "after a restart the target holds the disk's writes again" $ok
cl_vd vdisk list
hf_check "the catalog still says maintenance" eq True "$(cl_j "r['vdisks'][0]['maintenance']")"

[ "$HF_FAILED" = 0 ] || hf_die "vdisk access states: failures above; logs in $HF_WORK"
hf_log "vdisk access states: all checks passed"
