#!/usr/bin/env python3
"""Short commands against CPython's floor: state, kill, delete, ps, interleaved in one run.

    sudo python3 tests/bench/commands.py [--iterations 40] [--runtimes ocirun,runc,crun]
                                         [--ocirun PATH] [--json FILE]

Each of these commands is one CPython start-up plus a little work, so the target for ocirun is
the floor, not runc: each within 2 ms of `python -I -S -c pass` run with ocirun's interpreter
(its `#!` line) in the same run. Per iteration and runtime, one container is created (not timed)
and then, timed one command each (perf_counter_ns around subprocess.run):

  state      `state ID` of the created container
  ps         `ps --format json ID` of the created container (what containerd's shim calls: the
             pid list, without running ps(1))
  ps-table   `ps ID` of the created container: the runtime runs `ps -ef` and filters it (shown for
             information; most of it is ps(1) itself, so it has no floor target)
  kill       `kill ID KILL`
  delete     `delete ID` once the init is gone (a stopped container)

Before each runtime's turn the floor is sampled once more, so there are as many floor samples
as container sequences, taken in the same stretch of time. Runtimes go round-robin, starting
one further along each iteration; one warm-up iteration is discarded.

The result prints each command's median (p10-p90) per runtime, and for each runtime the
difference between its median and the floor's median in ms, marked against the 2 ms target.
--json FILE writes the raw samples (ns) in the shape tests/bench/lifecycle.py writes, which
tests/bench/chart.py reads.

The bundle, cgroup placement, private --root per runtime, clean-up and leak check are
tests/bench/lifecycle.py's (imported, not copied). A runtime that is not installed or cannot
run a container here is skipped with its error (crun 1.8 refuses hybrid cgroup hosts). Runs as
root; stdlib only.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lifecycle as lc  # noqa: E402

MEASURES = ["state", "ps", "ps-table", "kill", "delete"]
FLOOR_TARGETS = {"state", "ps", "kill", "delete"}  # ms above the floor: target <= 2
TARGET_MS = 2.0


def sequence(bench, rt):
    """create (untimed), then one timed sample of every measure on that container."""
    cid = bench.new_container(rt, "cmd")
    _, pid = bench.create(rt, cid)
    s = rt.samples
    s["state"].append(rt.timed("state", cid))
    s["ps"].append(rt.timed("ps", "--format", "json", cid))
    s["ps-table"].append(rt.timed("ps", cid))
    s["kill"].append(rt.timed("kill", cid, "KILL"))
    lc.wait_exit(pid)
    s["delete"].append(rt.timed("delete", cid))
    rt.live.discard(cid)


def floor_sample(python):
    t0 = time.perf_counter_ns()
    subprocess.run([python, "-I", "-S", "-c", "pass"], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter_ns() - t0


def report(runtimes, floor):
    ms = 1e6
    fmed = statistics.median(floor)
    names = [rt.name for rt in runtimes]
    head = f"{'command':<12}" + "".join(f"{n + ' med (p10-p90) ms':>29}" for n in names)
    head += "".join(f"{n + ' - floor':>18}" for n in names)
    if "ocirun" in names and len(names) > 1:
        head += "".join(f"{'ocirun - ' + n:>16}" for n in names if n != "ocirun")
    print(head)
    print("-" * len(head))
    by = {rt.name: rt for rt in runtimes}
    verdicts = []
    for m in MEASURES:
        row = f"{m:<12}"
        for rt in runtimes:
            xs = rt.samples[m]
            cell = f"{statistics.median(xs) / ms:7.2f} ({lc.pct(xs, .1) / ms:6.2f}-{lc.pct(xs, .9) / ms:6.2f})"
            row += f"{cell:>29}"
        for rt in runtimes:
            d = (statistics.median(rt.samples[m]) - fmed) / ms
            mark = ""
            if m in FLOOR_TARGETS and rt.name == "ocirun":
                ok = d <= TARGET_MS
                mark = " ok" if ok else " !!"
                verdicts.append((m, d, ok))
            row += f"{f'{d:+7.2f}{mark}':>18}"
        if "ocirun" in by and len(names) > 1:
            o = statistics.median(by["ocirun"].samples[m])
            for n in names:
                if n != "ocirun":
                    row += f"{(o - statistics.median(by[n].samples[m])) / ms:>+16.2f}"
        print(row)
    cell = f"{fmed / ms:7.2f} ({lc.pct(floor, .1) / ms:6.2f}-{lc.pct(floor, .9) / ms:6.2f})"
    print(f"{'floor':<12}{cell:>29}   ({lc.FLOOR}, ocirun's interpreter; {len(floor)} samples)")
    if verdicts:
        print(f"\nocirun target: each of {', '.join(sorted(FLOOR_TARGETS))} within {TARGET_MS:g} ms of the floor: "
              + ", ".join(f"{m} {d:+.2f} ms {'ok' if ok else 'MISSED'}" for m, d, ok in verdicts))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=40)
    ap.add_argument("--runtimes", default="ocirun,runc,crun")
    ap.add_argument("--ocirun", default=None, help="default: REPO/.venv/bin/ocirun, else ocirun on PATH")
    ap.add_argument("--json", metavar="FILE", help="also write the raw samples (ns) here")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    ocirun, paths, names = lc.choose_runtimes(a.runtimes, a.ocirun)
    python = lc.interpreter(ocirun) if ocirun and os.access(ocirun, os.X_OK) else sys.executable

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    tmp = tempfile.mkdtemp(prefix="ocirun-bench-bundle-")
    runtimes, runnable, floor, failed = [], [], [], False
    try:
        bench = lc.Bench(lc.make_bundle(Path(tmp) / "bundle", ["/bin/true"]))
        runtimes = [lc.Runtime(n, paths[n]) for n in names]
        runnable = [rt for rt in runtimes if bench.works(rt)]
        if not runnable:
            raise RuntimeError("no runtime could run a container")
        for i in range(a.iterations + 1):  # iteration 0 warms up and is discarded
            if i == 0:
                for rt in runnable:
                    rt.samples = {m: [] for m in MEASURES}
            k = i % len(runnable)
            for rt in runnable[k:] + runnable[:k]:
                floor.append(floor_sample(python))
                sequence(bench, rt)
            if i == 0:
                floor.clear()
                for rt in runnable:
                    rt.samples = {m: [] for m in MEASURES}
    except KeyboardInterrupt:
        failed = True
        print("interrupted; cleaning up", file=sys.stderr)
    except Exception as e:
        failed = True
        print(f"error: {e}", file=sys.stderr)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for rt in runtimes:
            rt.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
        leaked = lc.remove_cgroups()
    if not failed:
        print(f"{a.iterations} iterations, interleaved; runtimes: "
              + ", ".join(f"{rt.name}={rt.path}" for rt in runnable) + f"; floor interpreter: {python}\n")
        report(runnable, floor)
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"iterations": a.iterations, "unit": "ns", "floor_interpreter": python, "floor": floor,
                           "runtimes": {rt.name: {"path": rt.path, **rt.samples} for rt in runnable}}, f, indent=1)
    if leaked:
        print("error: cgroup directories left behind:\n  " + "\n  ".join(leaked), file=sys.stderr)
    return 1 if failed or leaked else 0


if __name__ == "__main__":
    sys.exit(main())
