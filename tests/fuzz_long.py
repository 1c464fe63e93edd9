#!/usr/bin/env python3
"""The fuzz lanes of tests/test_fuzz.py, for longer than CI runs them (pytest does not collect
this file). As root, from the repository:

    .venv/bin/python tests/fuzz_long.py --examples 5000 --seed 7
    .venv/bin/python tests/fuzz_long.py --lane cli --examples 20000 --seed 1 --collect

--lane        config, cli, inprocess or all (default all)
--examples N  examples per lane (default 2000)
--seed S      hypothesis seed (default: random, printed so that a run can be repeated)
--collect     don't stop at the first failure: record one example per distinct failure and list
              them all at the end (no shrinking)
--runtime B   the binary under test (default: $OCIRUN_TEST_RUNTIME, else .venv/bin/ocirun)
--refusals N  also list the N most common error lines (to see where the examples stop)

Exits 0 if every example held the property, 1 otherwise. The state root and bundles are made
afresh, carry the test session's marker, and are removed at the end.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
import conftest  # noqa: E402  (registers itself as ocitest_conftest, which test_fuzz imports)
import test_fuzz  # noqa: E402


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lane", choices=("config", "cli", "inprocess", "all"), default="all")
    ap.add_argument("--examples", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--collect", action="store_true")
    ap.add_argument("--runtime", default=None)
    ap.add_argument("--refusals", type=int, default=0, metavar="N", help="list the N most common error lines")
    a = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("fuzz_long: run me as root (containers, mounts, cgroups)", file=sys.stderr)
        return 2
    seed = a.seed if a.seed is not None else random.randrange(2**32)
    binary = a.runtime or os.environ.get("OCIRUN_TEST_RUNTIME") or str(conftest.REPO / ".venv/bin/ocirun")
    if not os.access(binary, os.X_OK):
        print(f"fuzz_long: {binary}: not an executable (run scripts/setup)", file=sys.stderr)
        return 2
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # a subreaper, as under pytest

    base = "/run" if os.access("/run", os.W_OK) else None
    state_root = Path(tempfile.mkdtemp(prefix=f"{conftest.MARK}-root-", dir=base))
    bundles = Path(tempfile.mkdtemp(prefix=f"{conftest.MARK}-bundles-", dir="/tmp"))
    os.chmod(bundles, 0o755)
    lane = test_fuzz.Lane(binary, state_root, bundles, collect=a.collect)
    lanes = ("config", "cli", "inprocess") if a.lane == "all" else (a.lane,)
    print(f"fuzz_long: seed {seed}, {a.examples} examples per lane, lanes {', '.join(lanes)}, runtime {binary}",
          flush=True)
    failed = False
    t0 = time.monotonic()
    try:
        for name in lanes:
            t = time.monotonic()
            try:
                if name == "config":
                    test_fuzz.config_lane(lane, a.examples, seed)
                elif name == "cli":
                    test_fuzz.cli_lane(lane, a.examples, seed)
                else:
                    test_fuzz.inprocess_lane(a.examples, seed)
            except Exception:
                failed = True
                traceback.print_exc()
            print(f"fuzz_long: {name} lane done in {time.monotonic() - t:.0f}s", flush=True)
    finally:
        lane.close()
        conftest._rmtree_unless_mounted(bundles)
        conftest._rmtree_unless_mounted(state_root)
    print(f"fuzz_long: seed {seed}: {lane.stats} in {time.monotonic() - t0:.0f}s")
    if a.refusals:
        print("fuzz_long: the most common refusals:")
        for line, n in sorted(lane.refusals.items(), key=lambda kv: -kv[1])[:a.refusals]:
            print(f"  {n:6d}  {line}")
    if lane.failures:
        failed = True
        print(f"fuzz_long: {len(lane.failures)} distinct failures:")
        for sig, example in lane.failures.items():
            print(f"\n=== {sig}\n{example}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
