#!/usr/bin/env python3
"""Follow a clone through the control socket while measuring how fast the coord plane answers.

usage: clone_watch.py SOCKET VDISK_ID TIMEOUT_S

Two threads, each on its own connection: one asks cluster_status every 20 ms and records how
long each answer took (cluster_status goes through the coord loop and the target); the other asks
vdisk_show every 100 ms and records the clone's progress. Both stop when the disk is ready and
exported, is gone, or TIMEOUT_S passes. Prints one JSON object: progress samples, status
latencies (ms), the last vdisk_show answer and whether a host was declared lost meanwhile."""
import json
import socket
import sys
import threading
import time


class Conn:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(20)
        self.s.connect(path)
        self.buf = b""

    def call(self, req):
        self.s.sendall(json.dumps(req).encode() + b"\n")
        while b"\n" not in self.buf:
            chunk = self.s.recv(1 << 20)
            if not chunk:
                raise ConnectionError("the daemon closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)


def main():
    path, vid, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
    out = {"progress": [], "status_ms": [], "last": None, "lost_events": []}
    done = threading.Event()
    t0 = time.monotonic()

    def status():
        c = Conn(path)
        seen = None
        while not done.is_set():
            a = time.monotonic()
            r = c.call({"cmd": "cluster_status"})
            out["status_ms"].append((time.monotonic() - a) * 1000.0)
            evs = r.get("events", [])
            if seen is None:
                seen = max([e["seq"] for e in evs], default=0)
            out["lost_events"] += [e for e in evs if e["seq"] > seen and e["kind"] == "lost"]
            seen = max([e["seq"] for e in evs], default=seen)
            time.sleep(0.02)

    th = threading.Thread(target=status, daemon=True)
    th.start()
    c = Conn(path)
    while time.monotonic() - t0 < timeout:
        r = c.call({"cmd": "vdisk_show", "id": vid})
        out["last"] = r
        v = r.get("vdisk")
        if not v:
            break
        p = v.get("progress")
        if p:
            out["progress"].append([round(time.monotonic() - t0, 3), p["done"], p["total"],
                                    p["percent"]])
        if v["state"] != "cloning" and v.get("exported"):
            break
        time.sleep(0.1)
    done.set()
    th.join(5)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
