#!/usr/bin/env python3
"""Catalog operations through holdfastd's control socket (issue 5, acceptance 3).

Every request is durable when its answer arrives (the coord plane answers after the catalog
commit), so the latency measured here is the durable latency. The control protocol answers one
request per connection before it reads the next, so concurrency comes from connections: with N
connections, N requests are in flight and the coord plane can put them in one group commit.

usage: catalog_bench.py SOCKET POOL --conns N --disks K [--from h1 --to h2] [--tag T]

Per phase (create, attach, transfer) each connection works on its own K disks, one request
after the other; the phase's ops/s is all its requests over its wall time. Prints one line per
phase and a JSON summary on the last line; exits 1 only when a request is refused.
"""
import argparse
import json
import socket
import sys
import threading
import time


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
                raise ConnectionError("holdfastd closed the control connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)


def pct(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    i = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[i]


def run_phase(conns, work, on_answer=None):
    """work[i] is the list of requests (callables returning a request) of connection i;
    on_answer(i, request, answer) sees every answer."""
    lat = []
    errors = []
    lock = threading.Lock()
    start = threading.Barrier(len(conns) + 1)

    def worker(i):
        mine = []
        start.wait()
        for make in work[i]:
            req = make()
            t0 = time.perf_counter()
            ans = conns[i].call(req)
            mine.append(time.perf_counter() - t0)
            if on_answer:
                on_answer(i, req, ans)
            if "error" in ans:
                with lock:
                    errors.append((req, ans))
        with lock:
            lat.extend(mine)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(len(conns))]
    for t in ts:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    lat.sort()
    return {
        "ops": len(lat),
        "seconds": round(wall, 4),
        "ops_per_s": round(len(lat) / wall, 1) if wall > 0 else 0,
        "p50_ms": round(pct(lat, 50) * 1000, 3),
        "p99_ms": round(pct(lat, 99) * 1000, 3),
        "max_ms": round(lat[-1] * 1000, 3) if lat else 0,
        "errors": len(errors),
        "first_error": errors[0][1] if errors else None,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("socket")
    ap.add_argument("pool")
    ap.add_argument("--conns", type=int, default=1)
    ap.add_argument("--disks", type=int, default=100, help="disks per connection")
    ap.add_argument("--size", type=int, default=1 << 20)
    ap.add_argument("--from", dest="frm", default="h1")
    ap.add_argument("--to", default="h2")
    ap.add_argument("--tag", default="b")
    a = ap.parse_args()

    conns = [Conn(a.socket) for _ in range(a.conns)]
    results = {}

    # create: the id of each new disk is kept (per connection) for the next phases.
    def creator(i, k):
        def make():
            return {"cmd": "vdisk_create", "pool": a.pool, "name": f"{a.tag}-c{i}-d{k}",
                    "size": a.size}
        return make

    ids = [[] for _ in range(a.conns)]

    def keep_id(i, req, ans):
        if "vdisk" in ans:
            ids[i].append(ans["vdisk"]["id"])

    results["create"] = run_phase(
        conns, [[creator(i, k) for k in range(a.disks)] for i in range(a.conns)], keep_id)

    # attach to an unowned disk: the host becomes its owner, epoch 1 -> 2.
    results["attach"] = run_phase(conns, [
        [(lambda d=d: {"cmd": "vdisk_attach", "id": d, "host": a.frm, "epoch": 1})
         for d in ids[i]] for i in range(a.conns)])
    # transfer owner -> other host, epoch 2 -> 3.
    results["transfer"] = run_phase(conns, [
        [(lambda d=d: {"cmd": "vdisk_transfer", "id": d, "from": a.frm, "to": a.to,
                       "epoch": 2}) for d in ids[i]] for i in range(a.conns)])

    total_ops = sum(r["ops"] for r in results.values())
    total_s = sum(r["seconds"] for r in results.values())
    allp = {"ops": total_ops, "ops_per_s": round(total_ops / total_s, 1) if total_s else 0}
    for kind in ("create", "attach", "transfer"):
        r = results[kind]
        print(f"conns={a.conns:<2} {kind:<9} {r['ops']:6d} ops in {r['seconds']:7.3f} s: "
              f"{r['ops_per_s']:8.1f} ops/s  p50 {r['p50_ms']:7.3f} ms  p99 {r['p99_ms']:7.3f} ms"
              f"  max {r['max_ms']:7.3f} ms" + (f"  ERRORS {r['errors']}: {r['first_error']}"
                                               if r["errors"] else ""))
    print(f"conns={a.conns:<2} all       {total_ops:6d} ops: {allp['ops_per_s']:8.1f} ops/s")
    print(json.dumps({"conns": a.conns, "phases": results, "all": allp}))
    return 1 if any(r["errors"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
