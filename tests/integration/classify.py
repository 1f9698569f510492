#!/usr/bin/env python3
"""Classify every test of an `iscsi-test-cu -v` run as pass, fail or skip.

iscsi-test-cu counts a skipped test as passed, so its own summary cannot tell a target that
implements a command from one that answers "not supported". This reads the per-test output
instead: a test's block runs from its "Test:" line to the next "Test:", "Suite:" or "Run
Summary" line; FAILED anywhere in the block makes it a failure, else [SKIPPED] a skip, else
"passed" a pass, and anything else (a crash, a hang cut by a timeout) a failure.

Then it judges the run: a failure fails the run unless its name matches a pattern in the
expected-failures file; a skip fails the run unless it matches the allowed-skips file. An
expected failure that passed is reported so the list can shrink, but does not fail the run.

usage: classify.py LOG --label NAME [--expected-failures F] [--allowed-skips F] [--json OUT]
Exit status: 0 when the run is acceptable, 1 when it is not, 2 on a usage error.
"""

import argparse
import fnmatch
import json
import re
import sys

SUITE_RE = re.compile(r"^Suite: (\S.*?)\s*$")
TEST_RE = re.compile(r"^  Test: (\S+) \.\.\.(.*)$")
END_RE = re.compile(r"^Run Summary:")


def load_patterns(path):
    """One test-name pattern (fnmatch, on Suite.Test) per line; '#' starts a comment."""
    if not path:
        return []
    pats = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                pats.append(line)
    return pats


def matches(name, pats):
    return any(fnmatch.fnmatchcase(name, p) for p in pats)


def parse(text):
    """Return ([(name, verdict, detail)], saw_summary)."""
    results = []
    suite = None
    cur = None  # [name, lines]
    saw_summary = False

    def close():
        if cur is None:
            return
        body = "\n".join(cur[1])
        if "FAILED" in body:
            detail = next((l.strip() for l in cur[1] if "[FAILED]" in l), "FAILED")
            results.append((cur[0], "fail", detail))
        elif "[SKIPPED]" in body:
            detail = next(l.strip() for l in cur[1] if "[SKIPPED]" in l)
            results.append((cur[0], "skip", detail))
        elif "passed" in body:
            results.append((cur[0], "pass", ""))
        else:
            results.append((cur[0], "fail", "no verdict (crash or timeout?)"))

    for line in text.splitlines():
        m = SUITE_RE.match(line)
        if m:
            close()
            cur = None
            suite = m.group(1)
            continue
        m = TEST_RE.match(line)
        if m:
            close()
            cur = [f"{suite}.{m.group(1)}", [m.group(2)]]
            continue
        if END_RE.match(line):
            close()
            cur = None
            saw_summary = True
            continue
        if cur is not None:
            cur[1].append(line)
    close()
    return results, saw_summary


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log")
    ap.add_argument("--label", default="run")
    ap.add_argument("--expected-failures")
    ap.add_argument("--allowed-skips")
    ap.add_argument("--json")
    ap.add_argument("--quiet", action="store_true", help="do not list every skip")
    args = ap.parse_args()

    with open(args.log, encoding="utf-8", errors="replace") as f:
        results, saw_summary = parse(f.read())
    xfail = load_patterns(args.expected_failures)
    allowed = load_patterns(args.allowed_skips)

    counts = {"pass": 0, "fail": 0, "skip": 0}
    bad, xfailed, xpassed, skips_ok, skips_bad = [], [], [], [], []
    for name, verdict, detail in results:
        counts[verdict] += 1
        expected = matches(name, xfail)
        if verdict == "fail":
            (xfailed if expected else bad).append((name, detail))
        elif verdict == "skip":
            (skips_ok if matches(name, allowed) else skips_bad).append((name, detail))
        elif expected:
            xpassed.append(name)

    print(f"== {args.label}: {len(results)} tests: {counts['pass']} passed, "
          f"{counts['fail']} failed ({len(xfailed)} expected), {counts['skip']} skipped "
          f"({len(skips_ok)} allowed)")
    for name, detail in bad:
        print(f"   FAIL        {name}: {detail}")
    for name, detail in skips_bad:
        print(f"   SKIP (not allowed) {name}: {detail}")
    for name, _ in xfailed:
        print(f"   xfail       {name}")
    for name in xpassed:
        print(f"   XPASS       {name} passes now: remove it from the expected failures")
    if not args.quiet:
        for name, detail in skips_ok:
            print(f"   skip        {name}: {detail}")
    ok = True
    if not results:
        print(f"   FAIL        no test ran (login failed?)")
        ok = False
    if not saw_summary:
        print(f"   FAIL        the run ended without its summary (crash or timeout)")
        ok = False
    if bad or skips_bad:
        ok = False
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"label": args.label, "counts": counts,
                       "results": [{"name": n, "verdict": v, "detail": d}
                                   for n, v, d in results]}, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
