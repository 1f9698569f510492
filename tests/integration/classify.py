#!/usr/bin/env python3
"""Classify every test of an `iscsi-test-cu -v` run as pass, fail or skip.

iscsi-test-cu counts a skipped test as passed, so its own summary cannot tell a target that
implements a command from one that answers "not supported". This reads the per-test output
instead: a test's block runs from its "Test:" line to the next "Test:", "Suite:" or "Run
Summary" line; FAILED anywhere in the block makes it a failure, else [SKIPPED] a skip, else
"passed" a pass, and anything else (a crash, a hang cut by a timeout) a failure.

Then it judges the run: a failure fails the run unless its name matches a pattern in the
expected-failures file; a skip fails the run unless it matches the allowed-skips file or the
expected-failures file. An
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


# Tests that expect their commands to fail (see judge()).
CUNIT_VERDICT_ONLY = {
    # Sends Data-Out PDUs with wrong DataSNs and asserts that each WRITE(10) fails.
    "iSCSIdatasn.iSCSIDataSnInvalid",
}

VERDICT_RE = re.compile(r"^(passed|FAILED)(.*)$")
SUMMARY_TESTS_RE = re.compile(r"^\s+tests\s+(\d+)\s+(\d+)\s")


def judge(name, lines):
    """Verdict of one test block. CUnit prints its own verdict ("passed" or "FAILED") at the
    start of a line once the test returns; what follows it on that line and after it comes from
    the suite's setup or cleanup (libiscsi's cleanup, for instance, prints a [SKIPPED] line
    about PERSISTENT RESERVE IN), so it does not change the test's verdict. A [FAILED] there is
    reported as its own failure, "<suite>.(cleanup after <test>)"."""
    out = []
    for i, line in enumerate(lines):
        m = VERDICT_RE.match(line)
        if m:
            body, verdict = lines[:i], m.group(1)
            after = [m.group(2)] + lines[i + 1:]
            break
    else:
        body, verdict, after = lines, None, []
    text = "\n".join(body)
    # libiscsi's helpers log "[FAILED]" whenever a command does not return what they were
    # told to expect. Some tests send commands that must fail and assert exactly that; for
    # them the log line is the expected outcome and CUnit's own verdict decides.
    if name in CUNIT_VERDICT_ONLY and verdict is not None:
        text = ""
    if verdict == "FAILED" or "[FAILED]" in text:
        detail = next((l.strip() for l in body if "[FAILED]" in l), "")
        if not detail:
            detail = next((l.strip() for l in after if re.match(r"\s+1\. ", l)), "FAILED")
        out.append((name, "fail", detail))
    elif "[SKIPPED]" in text:
        out.append((name, "skip", next(l.strip() for l in body if "[SKIPPED]" in l)))
    elif verdict == "passed":
        out.append((name, "pass", ""))
    else:
        out.append((name, "fail", "no verdict (crash or timeout?)"))
    # Assertion lists ("    1. file.c:12 - ...") after FAILED belong to the test itself.
    stray = [l.strip() for l in after if "[FAILED]" in l and not re.match(r"\s+\d+\. ", l)]
    if stray:
        suite, test = name.split(".", 1)
        # A unit attention the test itself caused (a LUN reset, SAM-5 6.3.3, reaches the
        # requester's own nexus too) is reported to the cleanup's first command: that is the
        # target doing its job, noted but not a failure. Anything else is a failure.
        verdict = "note" if all("UNIT_ATTENTION" in l for l in stray) else "fail"
        out.append((f"{suite}.(cleanup after {test})", verdict, stray[0]))
    return out


def parse(text):
    """Return ([(name, verdict, detail)], problems): problems are run-level failures (suite
    set-up failures, tests CUnit did not run, a missing summary)."""
    results, problems = [], []
    suite = None
    cur = None  # [name, lines]
    saw_summary = False

    def close():
        if cur is not None:
            results.extend(judge(cur[0], cur[1]))

    for line in text.splitlines():
        if "initialization failed" in line or "cleanup failed" in line:
            problems.append(line.strip())
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
        m = SUMMARY_TESTS_RE.match(line)
        if m and saw_summary and int(m.group(2)) < int(m.group(1)):
            problems.append(f"CUnit ran {m.group(2)} of {m.group(1)} tests")
        if cur is not None:
            cur[1].append(line)
    close()
    if not saw_summary:
        problems.append("the run ended without its summary (crash or timeout)")
    return results, problems


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
        results, problems = parse(f.read())
    xfail = load_patterns(args.expected_failures)
    allowed = load_patterns(args.allowed_skips)

    counts = {"pass": 0, "fail": 0, "skip": 0}
    bad, xfailed, xpassed, skips_ok, skips_bad, notes = [], [], [], [], [], []
    for name, verdict, detail in results:
        if verdict == "note":
            notes.append((name, detail))
            continue
        counts[verdict] += 1
        expected = matches(name, xfail)
        if verdict == "fail":
            (xfailed if expected else bad).append((name, detail))
        elif verdict == "skip":
            # An expected failure that skips (the command is rejected as unsupported) is as
            # expected as one that fails.
            ok_skip = matches(name, allowed) or expected
            (skips_ok if ok_skip else skips_bad).append((name, detail))
        elif expected:
            xpassed.append(name)

    print(f"== {args.label}: {sum(counts.values())} tests: {counts['pass']} passed, "
          f"{counts['fail']} failed ({len(xfailed)} expected), {counts['skip']} skipped "
          f"({len(skips_ok)} allowed)")
    for name, detail in bad:
        print(f"   FAIL        {name}: {detail}")
    for name, detail in skips_bad:
        print(f"   SKIP (not allowed) {name}: {detail}")
    for name, _ in xfailed:
        print(f"   xfail       {name}")
    for name, detail in notes:
        print(f"   note        {name}: {detail}")
    for name in xpassed:
        print(f"   XPASS       {name} passes now: remove it from the expected failures")
    if not args.quiet:
        for name, detail in skips_ok:
            print(f"   skip        {name}: {detail}")
    ok = True
    if not results:
        print("   FAIL        no test ran (login failed?)")
        ok = False
    for p in problems:
        print(f"   FAIL        {p}")
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
