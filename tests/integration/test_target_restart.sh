#!/usr/bin/env bash
# A target plane restarted alone (issue 5, robustness 2 and 3). Two agents: h1 owns disk d1, h2
# owns disk d2, then h2's agent is killed, so h2 is declared lost and fenced. With coord frozen
# (SIGSTOP), the target child is killed with SIGKILL: the supervisor restarts it, and until
# coord has given it its fences again nobody may log in (every login is refused, the fenced
# h2's and the owner h1's alike). Once coord runs again it gives the new target run the fence,
# the LUNs of d1 and d2 with their policies, and opens the logins: h1 writes d1 (owner), h1's
# writes to d2 get RESERVATION CONFLICT (not the owner), h2 stays fenced (login refused), the
# configured LUN 0 is unreachable for h2 too.
#
# Then the target is frozen (SIGSTOP) while an ownership change is made: the catalog commits it,
# the target does not answer within the relay timeout, and holdfastctl says "committed in the
# catalog at epoch N; not yet applied at the target" with code not_applied and exit status 4.
# Once the target runs again the change is applied by the retries: h1 loses its writes to d1.
#
# usage: test_target_restart.sh BUILD_DIR
. "$(dirname "$0")/lib.sh"
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
. "$HF_LIB_DIR/cluster_lib.sh"
LOADGEN=$BUILD/tests/loadgen
[ -x "$LOADGEN" ] || hf_die "$LOADGEN is not built"

# A long miss threshold (6 s leases): coord is frozen for about 3 s below and must not find
# every lease expired when it runs again.
HB=200
MISS=30
I1=iqn.2026-11.org.holdfast:tr-h1
I2=iqn.2026-11.org.holdfast:tr-h2
hf_free_port PORT
hf_free_port APORT
hf_free_port JPORT
LOG=$HF_WORK/holdfastd.log
SOCK=$HF_WORK/data/holdfastd.sock
cl_config "$HF_WORK/box.conf" "$HF_WORK/data" 127.0.0.1 "$PORT" "$APORT" "$JPORT" "$HB" "$MISS" \
	false h1 h2
cl_start_box "$HF_WORK/box.conf" "$LOG" "$PORT"
hf_wait_port "$JPORT" "$CL_SID" "$LOG"
FP=$(cl_ca_sha256)
cl_bring_up h1 "$I1" A1
cl_bring_up h2 "$I2" A2
cl_wait_q "s['quorum']['quorate']" 10 || hf_die "not quorate"

# io NAME IQN LUN RW: one second of 4 KiB I/O; the output is kept in NAME.out.
io() {
	"$LOADGEN" "iscsi://127.0.0.1:$PORT/$CL_IQN/$3" --initiator "$2" --rw "$4" --bs 4096 \
		--qd 2 --seconds 0.5 >"$HF_WORK/$1.out" 2>&1 || true
	hf_log "$1: $(tail -1 "$HF_WORK/$1.out")"
}
clean() { grep -q ' 0 errors' "$HF_WORK/$1.out"; }
conflict() { grep -q 'RESERVATION CONFLICT' "$HF_WORK/$1.out"; }
refused_login() { grep -q 'login to .* failed' "$HF_WORK/$1.out"; }
child_pid() { grep -o "started $1 (pid [0-9]*" "$LOG" | tail -1 | grep -o '[0-9]*$'; }
target_runs() { grep -c 'started target (pid' "$LOG"; }

mkdir -p "$HF_WORK/pool1"
cl_vd pool add pool1 "$HF_WORK/pool1" >/dev/null || hf_die "pool add"
cl_vd vdisk create pool1 d1 32M || hf_die "create d1"
D1=$(cl_j "r['vdisk']['id']")
L1=$(cl_j "r['vdisk']['lun']")
cl_vd vdisk create pool1 d2 32M || hf_die "create d2"
D2=$(cl_j "r['vdisk']['id']")
L2=$(cl_j "r['vdisk']['lun']")
cl_vd vdisk attach "$D1" h1 --epoch 1 || hf_die "attach d1 h1"
cl_vd vdisk attach "$D2" h2 --epoch 1 || hf_die "attach d2 h2"
cl_vd vdisk attach "$D2" h1 --epoch 2 || hf_die "attach d2 h1"

io before-h1-d1 "$I1" "$L1" randwrite
hf_check "before: the owner h1 writes d1" clean before-h1-d1
io before-h2-d2 "$I2" "$L2" randwrite
hf_check "before: the owner h2 writes d2" clean before-h2-d2

# h2 is lost: its agent dies, coord declares it lost after the lease (6 s) and fences it.
kill -KILL "$A2"
cl_wait_q "h['h2']['fenced']" 15 || hf_die "h2 was not fenced"
cl_wait_log "$LOG" "fenced.*h2|h2.*fence confirmed|FENCED" 5 || true
io fenced-h2-d2 "$I2" "$L2" randwrite
hf_check "before: the fenced h2 cannot log in" refused_login fenced-h2-d2

# The target dies while coord is frozen: the new target run must refuse every login until
# coord has given it the fence again.
COORD=$(child_pid coord)
TARGET=$(child_pid target)
RUNS=$(target_runs)
hf_log "coord pid $COORD, target pid $TARGET; freezing coord, killing the target"
kill -STOP "$COORD"
kill -KILL "$TARGET"
for _ in $(seq 100); do [ "$(target_runs)" -gt "$RUNS" ] && break; sleep 0.05; done
[ "$(target_runs)" -gt "$RUNS" ] || { kill -CONT "$COORD"; hf_die "the target was not restarted"; }
hf_wait_port "$PORT" "$CL_SID" "$LOG"
hf_log "the target runs again (pid $(child_pid target)); coord is still frozen"
hf_ctl "$SOCK" '{"cmd":"fences"}' >"$HF_WORK/fences-held.json" || true
io held-h2-lun0 "$I2" 0 write
io held-h2-d2 "$I2" "$L2" write
io held-h1-lun0 "$I1" 0 write
kill -CONT "$COORD"
hf_check "while coord was frozen the new target held logins" \
	python3 -c "import json; r=json.load(open('$HF_WORK/fences-held.json')); assert r['logins'] == 'held' and r['fences'] == [], r"
hf_check "while held, the fenced h2 could not log in (configured LUN 0)" refused_login held-h2-lun0
hf_check "while held, the fenced h2 could not log in (its disk d2)" refused_login held-h2-d2
hf_check "while held, nobody logged in (h1, LUN 0)" refused_login held-h1-lun0

cl_wait_q "s['target']['logins'] == 'open' and s['target']['generation'] == 2" 10 ||
	hf_die "coord did not open the logins of the new target run"
hf_log "coord: $(grep -o 'target run 2: fences and LUNs given.*' "$LOG" | tail -1)"
hf_ctl "$SOCK" '{"cmd":"fences"}' >"$HF_WORK/last.json"
hf_check "the fence of h2 is back at the target" \
	[ "$(cl_j "[(f['host'], f['fenced']) for f in r['fences']]")" = "[('h2', True)]" ]
cl_vd luns
hf_check "d1 and d2 are exported again" \
	[ "$(cl_j "sorted(l['id'] for t in r['targets'] for l in t['luns'])")" = "[0, $L1, $L2]" ]
io after-h1-d1 "$I1" "$L1" randwrite
hf_check "after: the owner h1 writes d1" clean after-h1-d1
io after-h1-d2 "$I1" "$L2" randwrite
hf_check "after: h1's writes to d2 (owned by h2) get RESERVATION CONFLICT" conflict after-h1-d2
io after-h1-d2r "$I1" "$L2" randread
hf_check "after: h1 reads d2" clean after-h1-d2r
io after-h2-d2 "$I2" "$L2" randwrite
hf_check "after: the fenced h2 still cannot log in" refused_login after-h2-d2

# Not applied: the target is frozen while d1 goes from h1 to nobody.
TARGET=$(child_pid target)
kill -STOP "$TARGET"
t0=$(date +%s%N)
cl_vd vdisk transfer "$D1" h1 none --epoch 2 || true
t1=$(date +%s%N)
kill -CONT "$TARGET"
hf_log "the answer took $(((t1 - t0) / 1000000)) ms"
hf_check "holdfastctl exits 4 (not applied)" [ "$VD_RC" = 4 ]
hf_check "the answer has code not_applied and the catalog's epoch 3" \
	[ "$(cl_j "(r['code'], r['epoch'], r['vdisk']['epoch'], r['vdisk']['owner'])")" = "('not_applied', 3, 3, None)" ]
hf_check "the text says it is committed and retried" \
	grep -q 'committed in the catalog at epoch 3; not yet applied at the target' "$HF_WORK/last.json"
for _ in $(seq 100); do
	cl_vd vdisk show "$D1" >/dev/null && [ "$(cl_j "r['vdisk']['exported']")" = True ] && break
	sleep 0.1
done
hf_check "the target took the change once it ran again" [ "$(cl_j "r['vdisk']['exported']")" = True ]
io late-h1-d1 "$I1" "$L1" randwrite
hf_check "h1, no longer the owner, gets RESERVATION CONFLICT on d1" conflict late-h1-d1
ANS=$(hf_ctl "$SOCK" '{"cmd":"logins_open"}')
hf_check "logins_open is refused on the control socket ($ANS)" grep -q 'unknown command' <<<"$ANS"

[ "$HF_FAILED" = 0 ] || hf_die "some checks failed"
hf_log "target restart: all checks passed"
