#!/usr/bin/env python3
"""Sums meson's testlog.json into the one closing line "N passed, N failed, N skipped".

TAP test programs count one per test case (ok / not ok / # SKIP); a program that crashed or
timed out before reporting a failure counts as one more failure; non-TAP programs count one.
Prints each failing case by name so the summary never hides what broke.
"""
import json
import re
import sys

passed = failed = skipped = 0
failures = []
with open(sys.argv[1], encoding="utf-8", errors="replace") as f:
    for line in f:
        if not line.strip():
            continue
        t = json.loads(line)
        name, result, out = t.get("name", "?"), t.get("result", ""), t.get("stdout") or ""
        tap = [l for l in out.splitlines() if re.match(r"^(not )?ok \d+", l)]
        if not tap:
            if result == "OK":
                passed += 1
            elif result == "SKIP":
                skipped += 1
            else:
                failed += 1
                failures.append(f"{name} ({result})")
            continue
        bad = 0
        for l in tap:
            if l.startswith("not ok"):
                failed += 1
                bad += 1
                failures.append(f"{name}: {l}")
            elif "# SKIP" in l or "# skip" in l:
                skipped += 1
            else:
                passed += 1
        if result not in ("OK", "SKIP", "EXPECTEDFAIL") and bad == 0:
            failed += 1
            failures.append(f"{name} ({result}: exited abnormally after {len(tap)} cases)")

for fl in failures:
    print(f"FAILED: {fl}")
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
