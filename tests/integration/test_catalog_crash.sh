#!/usr/bin/env bash
# The catalog survives kill -9 (issue 5, acceptance 2): CYCLES times (100 by default), start
# holdfastd (cluster section, the catalog in its data folder, two agents h1 and h2 that keep
# running across the restarts so the cluster becomes quorate again and the hosts hold leases),
# check what the previous crash left, run a random mix of catalog operations (create, extend,
# attach, detach, transfer, delete) on four control connections from a client that logs each
# request before it sends it and each answer after it arrives (fsync'd), and kill -9 every
# holdfastd process at a random moment. The check after each restart:
#   - every acknowledged create is in vdisk_list unless an acknowledged delete followed, no
#     acknowledged delete is there, and a request that was in flight is either way;
#   - epochs and sizes are at least what was acknowledged, and at most one step more for a disk
#     that had a request in flight;
#   - every disk is ready, its backing file has the catalog size, and its LUN is exported with
#     that size ({"cmd":"luns"});
#   - no file in the pool folder without a catalog row (an orphan); what reconciliation moved to
#     .quarantine is reported.
#
# usage: test_catalog_crash.sh BUILD_DIR [CYCLES]   (HF_CRASH_SEED repeats a run)
. "$(dirname "$0")/lib.sh"
BUILD=$(cd "${1:?usage: $0 BUILD_DIR [CYCLES]}" && pwd)
. "$HF_LIB_DIR/cluster_lib.sh"
CYCLES=${2:-100}
SEED=${HF_CRASH_SEED:-$RANDOM}
RANDOM=$SEED
hf_log "catalog crash test: $CYCLES cycles, seed $SEED"

# A short heartbeat so the agents are back within ~100 ms of a restart, and a long miss
# threshold (3 s) so the restart gap never costs them their lease.
HB=100
MISS=30
hf_free_port PORT
hf_free_port APORT
hf_free_port JPORT
DATA=$HF_WORK/data
POOL=$HF_WORK/pool1
SOCK=$DATA/holdfastd.sock
cl_config "$HF_WORK/box.conf" "$DATA" 127.0.0.1 "$PORT" "$APORT" "$JPORT" "$HB" "$MISS" false h1 h2
cl_start_box "$HF_WORK/box.conf" "$HF_WORK/holdfastd-0.log" "$PORT"
hf_wait_port "$JPORT" "$CL_SID" "$HF_WORK/holdfastd-0.log"
FP=$(cl_ca_sha256)
for h in h1 h2; do
	out=$(cl_join "127.0.0.1:$JPORT" "$(cl_token 60)" "$FP" "$h" "iqn.2026-11.org.holdfast:cr-$h" \
		"$HF_WORK/$h") || hf_die "join of $h failed: $out"
	cl_run_agent pid "$HF_WORK/$h" "127.0.0.1:$APORT" "$HB" "$MISS" "$HF_WORK/$h.fenced" \
		"$HF_WORK/agent-$h.log"
	cl_wait_q "h['$h']['state'] == 'live'" 10 || hf_die "$h did not become live"
done
mkdir -p "$POOL"
ans=$(hf_ctl "$SOCK" "{\"cmd\":\"pool_add\",\"name\":\"pool1\",\"path\":\"$POOL\",\"alert\":0}")
case $ans in *'"pool"'*) ;; *) hf_die "pool_add: $ans" ;; esac

PY=$HF_WORK/crash.py
cat >"$PY" <<'PYEOF'
import json, os, random, socket, sys, threading, time

IQN = "iqn.2026-11.org.holdfast:cluster"
HOSTS = ("h1", "h2")


class Conn:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.buf = b""

    def call(self, req):
        self.s.sendall((json.dumps(req) + "\n").encode())
        while b"\n" not in self.buf:
            chunk = self.s.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)


def connect(path, timeout):
    end = time.time() + timeout
    while True:
        try:
            return Conn(path)
        except OSError:
            if time.time() > end:
                raise
            time.sleep(0.02)


def ask(path, req, timeout=10):
    end = time.time() + timeout
    while True:
        try:
            return connect(path, timeout).call(req)
        except (OSError, ValueError):
            if time.time() > end:
                raise
            time.sleep(0.02)


def wait_for(path, what, pred, timeout):
    end = time.time() + timeout
    while True:
        ans = ask(path, what, timeout)
        if pred(ans):
            return ans
        if time.time() > end:
            sys.exit(f"timeout waiting on {what}: {json.dumps(ans)[:300]}")
        time.sleep(0.02)


def check(sock, pool, model_path, log_path, report_path):
    """Compare the restarted box with the model (the catalog as last checked) and the log of
    the cycle since; on success the model becomes what the box has."""
    model = json.load(open(model_path)) if os.path.exists(model_path) else {}
    acked, inflight = {}, {}
    creates_inflight = set()
    deletes_acked = set()
    sent = {}
    sent_creates = []
    if os.path.exists(log_path):
        for line in open(log_path):
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a torn last line: the client died while writing it
            if rec["ev"] == "send":
                sent[rec["seq"]] = rec["req"]
            elif rec["ev"] == "ack":
                req = sent.pop(rec["seq"])
                ans = rec["ans"]
                if "error" in ans:
                    continue
                if req["cmd"] == "vdisk_delete":
                    deletes_acked.add(req["id"])
                    model.pop(req["id"], None)
                else:
                    v = ans["vdisk"]
                    model[v["id"]] = {"name": v["name"], "epoch": v["epoch"], "size": v["size"]}
        sent_creates = [r for r in sent.values() if r["cmd"] == "vdisk_create"]
        for req in sent.values():  # sent, never answered: in flight at the kill
            if req["cmd"] == "vdisk_create":
                creates_inflight.add(req["name"])
            else:
                inflight[req["id"]] = req
    errs = []
    status = wait_for(sock, {"cmd": "cluster_status"},
                      lambda a: a.get("quorum", {}).get("quorate"), 10)
    lst = ask(sock, {"cmd": "vdisk_list", "pool": "pool1"})
    if "vdisks" not in lst:
        sys.exit(f"vdisk_list: {lst}")
    have = {v["id"]: v for v in lst["vdisks"]}
    for vid, m in model.items():
        v = have.get(vid)
        r = inflight.get(vid)
        if v is None:
            if not (r and r["cmd"] == "vdisk_delete"):
                errs.append(f"acknowledged disk {m['name']} ({vid}) is lost")
            continue
        step = 1 if r else 0
        if not m["epoch"] <= v["epoch"] <= m["epoch"] + step:
            errs.append(f"{m['name']}: epoch {v['epoch']}, acknowledged {m['epoch']}"
                        f"{' (+1 in flight)' if step else ''}")
        grown = r and r["cmd"] == "vdisk_extend"
        if v["size"] != m["size"] and not (grown and v["size"] == r["size"]):
            errs.append(f"{m['name']}: size {v['size']}, acknowledged {m['size']}")
    for vid in deletes_acked:
        if vid in have:
            errs.append(f"acknowledged delete of {have[vid]['name']} ({vid}) is undone")
    for vid, v in have.items():
        if vid not in model and vid not in deletes_acked:
            if v["name"] in creates_inflight:
                creates_inflight.discard(v["name"])
            else:
                errs.append(f"disk {v['name']} ({vid}) was never created by the client")
        if v["state"] != "ready":
            errs.append(f"{v['name']}: state {v['state']}")
        try:
            sz = os.stat(v["path"]).st_size
            if sz != v["size"]:
                errs.append(f"{v['name']}: file is {sz} bytes, catalog says {v['size']}")
        except OSError as e:
            errs.append(f"{v['name']}: backing file: {e}")

    def exported(a):
        luns = {}
        for t in a.get("targets", []):
            if t["iqn"] == IQN:
                luns = {l["id"]: l for l in t["luns"]}
        return all(v["lun"] in luns and luns[v["lun"]]["size"] == v["size"]
                   for v in have.values()), luns

    end = time.time() + 5
    while True:
        ok, luns = exported(ask(sock, {"cmd": "luns"}))
        if ok or time.time() > end:
            break
        time.sleep(0.05)
    for v in have.values():
        l = luns.get(v["lun"])
        if l is None:
            errs.append(f"{v['name']}: LUN {v['lun']} is not exported")
        elif l["size"] != v["size"]:
            errs.append(f"{v['name']}: LUN {v['lun']} has size {l['size']}, catalog {v['size']}")
    paths = {os.path.realpath(v["path"]) for v in have.values()}
    quarantined = []
    for name in sorted(os.listdir(pool)):
        p = os.path.join(pool, name)
        if name == ".quarantine":
            quarantined = sorted(os.listdir(p))
        elif os.path.realpath(p) not in paths:
            errs.append(f"orphan in the pool folder: {name}")
    rep = {"disks": len(have), "in_flight": len(inflight) + len(sent_creates),
           "quarantine": quarantined}
    with open(report_path, "w") as f:
        json.dump(rep, f)
    for e in errs:
        print("  " + e, file=sys.stderr)
    model = {vid: {"name": v["name"], "epoch": v["epoch"], "size": v["size"]}
             for vid, v in have.items()}
    with open(model_path + ".new", "w") as f:
        json.dump(model, f)
    os.replace(model_path + ".new", model_path)
    return 1 if errs else 0


def run(sock, log_path, cycle, seed, nconn=4):
    """Random catalog operations on nconn connections until the box dies. Thread i works on
    the disks whose id hashes to i (no two requests on one disk at once) and on its own names."""
    rnd = random.Random(seed)
    try:
        lst = Conn(sock).call({"cmd": "vdisk_list", "pool": "pool1"})
    except (OSError, ValueError):
        return 0  # killed before the first request: nothing to log
    disks = [dict() for _ in range(nconn)]
    for v in lst.get("vdisks", []):
        disks[sum(v["id"].encode()) % nconn][v["id"]] = v
    log = open(log_path, "a")
    lock = threading.Lock()
    seqs = iter(range(1 << 30))
    stats = {"acked": 0, "refused": 0}

    def write(rec):
        with lock:
            log.write(json.dumps(rec) + "\n")
            log.flush()
            os.fsync(log.fileno())

    def worker(i):
        r = random.Random(rnd.random())
        mine = disks[i]
        try:
            c = Conn(sock)
        except OSError:
            return
        n = 0
        while True:
            vs = list(mine.values())
            v = r.choice(vs) if vs else None
            pick = r.random()
            if v is None or (pick < 0.25 and len(vs) < 6):
                req = {"cmd": "vdisk_create", "pool": "pool1", "name": f"k{cycle}-t{i}-{n}",
                       "size": r.choice((64, 128, 256)) << 10}
            elif pick < 0.45:
                if v["hosts"]:
                    req = {"cmd": "vdisk_detach", "id": v["id"], "host": r.choice(v["hosts"])}
                elif v["owner"]:
                    req = {"cmd": "vdisk_transfer", "id": v["id"], "from": v["owner"], "to": ""}
                else:
                    req = {"cmd": "vdisk_delete", "id": v["id"]}
            elif pick < 0.65:
                req = {"cmd": "vdisk_attach", "id": v["id"], "host": r.choice(HOSTS)}
            elif pick < 0.85 and v["owner"]:
                to = "h2" if v["owner"] == "h1" else "h1"
                req = {"cmd": "vdisk_transfer", "id": v["id"], "from": v["owner"], "to": to}
            else:
                req = {"cmd": "vdisk_extend", "id": v["id"], "size": v["size"] + (64 << 10)}
            if v is not None and req["cmd"] != "vdisk_create":
                req["epoch"] = v["epoch"]
            n += 1
            with lock:
                seq = next(seqs)
            write({"ev": "send", "seq": seq, "req": req})
            try:
                ans = c.call(req)
            except (OSError, ValueError):
                return  # the box died: this request stays in flight
            write({"ev": "ack", "seq": seq, "ans": ans})
            with lock:
                stats["refused" if "error" in ans else "acked"] += 1
            if "error" in ans:
                continue
            if req["cmd"] == "vdisk_delete":
                mine.pop(req["id"], None)
            else:
                mine[ans["vdisk"]["id"]] = ans["vdisk"]

    ts = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(nconn)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    write({"ev": "end", "acked": stats["acked"], "refused": stats["refused"]})
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "check":
        sys.exit(check(*sys.argv[2:7]))
    sys.exit(run(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
PYEOF

# kill9_box: SIGKILL to holdfastd's process group at once (the parent and every plane), then to
# anything of its session that left the group; wait until none of them runs any more (a zombie
# counts as gone: it holds no lock, socket or file).
kill9_box() {
	local p left i
	kill -KILL -- "-$CL_SID" 2>/dev/null || true
	p=$(pgrep -s "$CL_SID" 2>/dev/null || true)
	[ -z "$p" ] || kill -KILL $p 2>/dev/null || true
	for ((i = 0; i < 500; i++)); do
		left=0
		for p in $(pgrep -s "$CL_SID" 2>/dev/null); do
			[ "$(awk '{ print $3 }' "/proc/$p/stat" 2>/dev/null)" = Z ] || left=1
		done
		[ "$left" = 0 ] && return 0
		sleep 0.01
	done
	hf_die "holdfastd (session $CL_SID) survives SIGKILL"
}

# The first box runs the first cycle's load too; every later one starts after a kill -9.
MODEL=$HF_WORK/model.json
fails=0
total_acked=0
total_refused=0
for ((cy = 1; cy <= CYCLES; cy++)); do
	CLOG=$HF_WORK/ops-$cy.log
	if ((cy > 1)); then
		cl_start_box "$HF_WORK/box.conf" "$HF_WORK/holdfastd-$cy.log" "$PORT"
		if ! python3 "$PY" check "$SOCK" "$POOL" "$MODEL" "$HF_WORK/ops-$((cy - 1)).log" \
			"$HF_WORK/report.json"; then
			hf_log "FAIL cycle $cy: the box after the kill -9 of cycle $((cy - 1)) disagrees (above)"
			fails=$((fails + 1))
		fi
	else
		python3 "$PY" check "$SOCK" "$POOL" "$MODEL" /nonexistent "$HF_WORK/report.json" ||
			hf_die "the first box is not in order"
	fi
	python3 "$PY" run "$SOCK" "$CLOG" "$cy" "$RANDOM" &
	client=$!
	sleep "$(printf '0.%03d' $((50 + RANDOM % 450)))"
	kill9_box
	wait "$client" || true
	a=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    pass
r=json.loads(l); print(r.get("acked",0), r.get("refused",0))' "$CLOG" 2>/dev/null || echo "0 0")
	total_acked=$((total_acked + ${a% *}))
	total_refused=$((total_refused + ${a#* }))
	((cy % 10)) || hf_log "cycle $cy: $(cat "$HF_WORK/report.json"); acknowledged so far $total_acked, refused $total_refused"
done
cl_start_box "$HF_WORK/box.conf" "$HF_WORK/holdfastd-final.log" "$PORT"
python3 "$PY" check "$SOCK" "$POOL" "$MODEL" "$HF_WORK/ops-$CYCLES.log" "$HF_WORK/report.json" ||
	fails=$((fails + 1))
hf_log "final: $(cat "$HF_WORK/report.json")"
hf_log "$CYCLES kill -9 cycles: $total_acked requests acknowledged, $total_refused refused"
# What the reconciliation at each start repaired, summed over the restarts.
hf_log "reconciled at the restarts: $(cat "$HF_WORK"/holdfastd-*.log | python3 -c '
import re, sys
keys = ["create(s)", "clone(s)", "delete(s) finished", "size(s) fixed", "orphan(s) removed",
        "quarantined", "missing"]
tot = dict.fromkeys(keys, 0)
for line in sys.stdin:
    if "reconciled:" in line:
        for k in keys:
            m = re.search(r"(\d+) " + re.escape(k), line)
            tot[k] += int(m.group(1)) if m else 0
print(", ".join(f"{v} {k}" for k, v in tot.items()).replace("create(s)", "create(s) rolled back"))')"
q=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["quarantine"]))' \
	"$HF_WORK/report.json")
[ "$q" = 0 ] || hf_log "note: $q file(s) in $POOL/.quarantine"
[ "$fails" = 0 ] || hf_die "catalog crash: $fails check(s) failed (seed $SEED); logs in $HF_WORK"
hf_log "catalog crash: all checks passed (seed $SEED)"
