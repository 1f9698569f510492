#!/usr/bin/env bash
# Clones off the coord loop (issue 5, robustness 1). A 1 GiB disk holds 512 MiB of data in eight
# parts with holes between them. A clone answers at once with the new disk in state
# cloning; while it copies, the coordinator keeps answering (cluster_status every 20 ms, its
# slowest answer is checked) and no host loses its lease; its progress (bytes done of total)
# only grows; the clone ends ready, exported, sparse, with the source's bytes. A rate-limited
# clone followed with `vdisk clone --wait` prints its progress; a delete cancels a clone in
# progress and leaves nothing; a kill -9 of the whole box in the middle of a clone leaves no
# row and no file once the box is back, and the source untouched.
#
# usage: test_vdisk_clone.sh BUILD_DIR
. "$(dirname "$0")/lib.sh"
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
. "$HF_LIB_DIR/cluster_lib.sh"
WATCH=$HF_LIB_DIR/clone_watch.py

HB=200
MISS=5
MAX_STATUS_MS=${HF_CLONE_MAX_STATUS_MS:-250} # the slowest cluster_status allowed during a copy
hf_free_port PORT
hf_free_port APORT
hf_free_port JPORT
DATA=$HF_WORK/data
SOCK=$DATA/holdfastd.sock
POOL=$HF_WORK/pool1
cl_config "$HF_WORK/box.conf" "$DATA" 127.0.0.1 "$PORT" "$APORT" "$JPORT" "$HB" "$MISS" false h1 h2
cl_start_box "$HF_WORK/box.conf" "$HF_WORK/holdfastd.log" "$PORT"
hf_wait_port "$JPORT" "$CL_SID" "$HF_WORK/holdfastd.log"
FP=$(cl_ca_sha256)
for h in h1 h2; do
	out=$(cl_join "127.0.0.1:$JPORT" "$(cl_token 60)" "$FP" "$h" "iqn.2026-11.org.holdfast:cl-$h" \
		"$HF_WORK/$h") || hf_die "join of $h failed: $out"
	cl_run_agent pid "$HF_WORK/$h" "127.0.0.1:$APORT" "$HB" "$MISS" "$HF_WORK/$h.fenced" \
		"$HF_WORK/agent-$h.log"
	cl_wait_q "h['$h']['state'] == 'live'" 10 || hf_die "$h did not become live"
done
cl_wait_q "s['quorum']['quorate']" 10 || hf_die "not quorate"

w() { python3 -c "import json,sys; r=json.load(open('$HF_WORK/$1')); print($2)"; }

mkdir -p "$POOL"
cl_vd pool add pool1 "$POOL" >/dev/null || hf_die "pool add"
cl_vd vdisk create pool1 src 1G || hf_die "vdisk create"
SRC=$(cl_j "r['vdisk']['id']")
SRC_PATH=$(cl_j "r['vdisk']['path']")
SIZE=$((1 << 30))
# Eight parts of 64 MiB, holes between them (the copy skips holes): random data, each part
# stamped with its number so that no two are alike.
dd if=/dev/urandom of="$HF_WORK/part" bs=1M count=64 status=none
for k in 0 1 2 3 4 5 6 7; do
	dd if="$HF_WORK/part" of="$SRC_PATH" bs=1M seek=$((k * 128 + k)) conv=notrunc status=none
	printf 'part %d of the source' "$k" |
		dd of="$SRC_PATH" bs=1 seek=$(((k * 128 + k) << 20)) conv=notrunc status=none
done
sync "$SRC_PATH"
SUM=$(sha256sum <"$SRC_PATH" | cut -d' ' -f1)
hf_log "source $SRC: 1 GiB, $(du -m "$SRC_PATH" | cut -f1) MiB allocated, sha256 ${SUM:0:16}"

# 1. A clone at full speed: the answer comes before the copy, and the loop stays responsive.
t0=$(date +%s%N)
hf_check "vdisk clone answers" cl_vd vdisk clone "$SRC" c1
t1=$(date +%s%N)
C1=$(cl_j "r['vdisk']['id']")
hf_check "the answer came in under 200 ms ($(((t1 - t0) / 1000000)) ms)" [ $(((t1 - t0) / 1000000)) -lt 200 ]
hf_check "the answer is the new disk in state cloning, with its progress" \
	[ "$(cl_j "(r['vdisk']['state'], r['vdisk']['progress']['total'])")" = "('cloning', $SIZE)" ]
python3 "$WATCH" "$SOCK" "$C1" 60 >"$HF_WORK/w1.json"
hf_log "full speed: $(w w1.json "len(r['progress'])") progress samples, $(w w1.json "len(r['status_ms'])") status answers, slowest $(w w1.json "round(max(r['status_ms']),1)") ms, median $(w w1.json "round(sorted(r['status_ms'])[len(r['status_ms'])//2],1)") ms"
hf_check "cluster_status answered within $MAX_STATUS_MS ms throughout the copy" \
	[ "$(w w1.json "max(r['status_ms']) < $MAX_STATUS_MS")" = True ]
hf_check "no host was declared lost during the copy" [ "$(w w1.json "r['lost_events']")" = "[]" ]
hf_log "coord: $(grep -o "clone of $SRC ready.*" "$HF_WORK/holdfastd.log" | tail -1)"
hf_check "the clone ended ready and exported" \
	[ "$(w w1.json "(r['last']['vdisk']['state'], r['last']['vdisk']['exported'])")" = "('ready', True)" ]
C1_PATH=$(w w1.json "r['last']['vdisk']['path']")
hf_check "the clone holds the source's bytes" [ "$(sha256sum <"$C1_PATH" | cut -d' ' -f1)" = "$SUM" ]
hf_check "the clone stayed sparse ($(du -m "$C1_PATH" | cut -f1) MiB allocated of 1024)" \
	[ "$(du -m "$C1_PATH" | cut -f1)" -lt 600 ]
C1_LUN=$(w w1.json "r['last']['vdisk']['lun']")
hf_check "the clone's LUN is exported at the target" \
	bash -c "iscsi-ls -s -i iqn.2026-11.org.holdfast:cl-h1 iscsi://127.0.0.1:$PORT 2>/dev/null | grep -q 'Lun:$C1_LUN '"

# 2. A clone at 256 MiB/s (about 4 s), followed by --wait and watched: progress only grows.
cl_ctl vdisk clone "$SRC" c2 --wait --rate 256M >"$HF_WORK/wait.out" 2>"$HF_WORK/wait.err" &
waiter=$!
for _ in $(seq 50); do
	C2=$(cl_ctl --json vdisk list | python3 -c 'import json,sys
print(next((v["id"] for v in json.load(sys.stdin)["vdisks"] if v["name"] == "c2"), ""))')
	[ -n "$C2" ] && break
	sleep 0.05
done
[ -n "$C2" ] || hf_die "the clone c2 does not show in vdisk list"
python3 "$WATCH" "$SOCK" "$C2" 60 >"$HF_WORK/w2.json"
wait "$waiter"
WRC=$?
hf_log "rate-limited: $(w w2.json "len(r['progress'])") progress samples over $(w w2.json "r['progress'][-1][0] if r['progress'] else 0") s, slowest status $(w w2.json "round(max(r['status_ms']),1)") ms"
hf_check "progress was seen at 10 or more points" [ "$(w w2.json "len(r['progress']) >= 10")" = True ]
hf_check "progress never went back and did grow" \
	[ "$(w w2.json "all(a[1] <= b[1] for a, b in zip(r['progress'], r['progress'][1:])) and r['progress'][-1][1] > r['progress'][0][1]")" = True ]
hf_check "the rate was kept (took 3 s or more for 1 GiB at 256 MiB/s)" \
	[ "$(w w2.json "r['progress'][-1][0] >= 3.0")" = True ]
hf_check "cluster_status answered within $MAX_STATUS_MS ms" [ "$(w w2.json "max(r['status_ms']) < $MAX_STATUS_MS")" = True ]
hf_check "vdisk clone --wait exited 0" [ "$WRC" = 0 ]
hf_log "--wait printed: $(head -2 "$HF_WORK/wait.err" | tr '\n' '|') ... $(tail -1 "$HF_WORK/wait.err")"
hf_check "--wait printed its progress" [ "$(grep -c '^cloning .* of 1GiB' "$HF_WORK/wait.err")" -ge 5 ]
hf_check "--wait ended with the ready disk" grep -q ' ready ' "$HF_WORK/wait.out"
C2_PATH=$(w w2.json "r['last']['vdisk']['path']")
hf_check "c2 holds the source's bytes" [ "$(sha256sum <"$C2_PATH" | cut -d' ' -f1)" = "$SUM" ]

# 3. A delete cancels a clone in progress.
cl_vd vdisk clone "$SRC" c3 --rate 32M || hf_die "clone c3"
C3=$(cl_j "r['vdisk']['id']")
C3_PATH=$(cl_j "r['vdisk']['path']")
sleep 1
cl_vd vdisk delete "$SRC" --epoch 1 || true
hf_check "the source of a clone in progress cannot be deleted (busy)" \
	[ "$VD_RC:$(cl_j "r['code']")" = 1:busy ]
hf_check "delete of the cloning disk" cl_vd vdisk delete "$C3" --epoch 1
hf_check "the answer says the clone was cancelled" [ "$(cl_j "r.get('cancelled')")" = True ]
hf_check "the partial copy is gone" [ ! -e "$C3_PATH" ]
cl_vd vdisk show "$C3" || true
hf_check "vdisk show of it answers clone_failed" [ "$(cl_j "r['code']")" = clone_failed ]
hf_check "and says the clone was cancelled" grep -q cancelled "$HF_WORK/last.json"

# 4. kill -9 of the whole box in the middle of a clone: rolled back at the restart.
cl_vd vdisk clone "$SRC" c4 --rate 32M || hf_die "clone c4"
C4=$(cl_j "r['vdisk']['id']")
C4_PATH=$(cl_j "r['vdisk']['path']")
sleep 1.5
hf_check "the partial copy exists before the crash" [ -e "$C4_PATH" ]
hf_kill9_session "$CL_SID"
cl_start_box "$HF_WORK/box.conf" "$HF_WORK/holdfastd-2.log" "$PORT"
for _ in $(seq 100); do cl_ctl vdisk list >/dev/null 2>&1 && break; sleep 0.1; done
hf_check "the restart rolled one clone back" grep -q '1 clone(s) rolled back' "$HF_WORK/holdfastd-2.log"
cl_vd vdisk list
hf_check "no disk is left cloning and c4 is gone" \
	[ "$(cl_j "sorted((v['name'], v['state']) for v in r['vdisks'])")" = "[('c1', 'ready'), ('c2', 'ready'), ('src', 'ready')]" ]
hf_check "no file of c4 is left" [ ! -e "$C4_PATH" ]
hf_check "the pool holds exactly the three disks' files" \
	[ "$(find "$POOL" -type f | wc -l)" = 3 ]
hf_check "the source is untouched" [ "$(sha256sum <"$SRC_PATH" | cut -d' ' -f1)" = "$SUM" ]

[ "$HF_FAILED" = 0 ] || hf_die "some checks failed"
hf_log "vdisk clone: all checks passed"
