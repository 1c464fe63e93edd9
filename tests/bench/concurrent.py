#!/usr/bin/env python3
"""200 containers started at once: wall time until all run, then all deleted, and no leak.

    sudo python3 tests/bench/concurrent.py [--containers 200] [--workers 200] [--rounds 3]
                                           [--runtimes ocirun,runc,crun] [--ocirun PATH] [--json FILE]

Per round and runtime (runtimes alternate, starting one further along each round):
  start   --containers `run -d --pid-file F ID` commands are launched together from a pool of
          --workers threads (subprocess.run each); the clock stops once every command has
          returned and every pid in the pid files runs the user process (/proc/PID/exe is
          busybox: `sleep 600`): "until all running".
  delete  then `delete --force ID` for all of them, from the same pool; timed until all returned.

Every command must succeed. After each round nothing may be left: no process in the run's
cgroups or below this script (a child subreaper, so detached inits and anything a runtime
leaves behind come to it), no cgroup directory under the run's parent /ocirun-bench-TAG in any
hierarchy, no container state directory under the runtime's --root, no mount naming the
bundles or the root. The script prints the median wall times with ratios and exits non-zero on
any failure or leak.

Each container has its own bundle (scripts/busybox_bundle.py, hard-linked busybox rootfs, made
once before the timed part and reused by every runtime and round) with linux.cgroupsPath
/ocirun-bench-TAG/cc-N. Reuses tests/bench/lifecycle.py's runtime handling and clean-up and
tests/bench/memory.py's process accounting. A runtime that is not installed or cannot run a
container here is skipped with its error. Runs as root; stdlib only.
"""
import argparse
import ctypes
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

# This file's name shadows the standard library's `concurrent` package while its directory is
# sys.path[0]: take the directory out for that import, then put it first for lifecycle/memory.
HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != HERE]
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

sys.path.insert(0, HERE)
import lifecycle as lc  # noqa: E402
import memory as mem  # noqa: E402

DEVNULL = subprocess.DEVNULL


def make_bundles(base, n):
    proto = lc.make_bundle(base / "b0", ["/bin/sleep", "600"])
    config = json.loads((proto / "config.json").read_text())
    bundles = []
    for i in range(n):
        b = proto if i == 0 else lc.make_bundle(base / f"b{i}", ["/bin/sleep", "600"])
        config["linux"]["cgroupsPath"] = f"/{lc.CGROUP_PARENT}/cc-{i}"
        (b / "config.json").write_text(json.dumps(config))
        bundles.append(b)
    return bundles


def call(argv):
    """Run one command; its stderr goes to a file, not a pipe: a detached container inherits the
    runtime's stdio, and a pipe would not reach EOF until the container exits."""
    with tempfile.TemporaryFile() as err:
        rc = subprocess.run(argv, stdin=DEVNULL, stdout=DEVNULL, stderr=err).returncode
        err.seek(0)
        return rc, " ".join(err.read().decode(errors="replace").split())


def cgroup_children():
    """Directories below the run's cgroup parents, in every hierarchy."""
    out = []
    for parent in lc.cgroup_leftovers():
        for d, subs, _ in os.walk(parent):
            out += [os.path.join(d, s) for s in subs]
    return out


def one_round(rt, bundles, pool, rnd, pidfiles):
    """Start all, wait until all run, delete all; return (start_s, returned_s, delete_s, problems)."""
    n = len(bundles)
    ids = [f"{rt.name}-cc{rnd}-{i}-{lc.TAG}" for i in range(n)]
    pfs = [str(pidfiles / f"{cid}.pid") for cid in ids]
    rt.live.update(ids)
    problems = []
    t0 = time.perf_counter()
    results = list(pool.map(call, [rt.cmd("run", "-d", "--bundle", str(b), "--pid-file", pf, cid)
                                   for b, pf, cid in zip(bundles, pfs, ids)]))
    t_returned = time.perf_counter() - t0
    failures = [(cid, rc, err) for cid, (rc, err) in zip(ids, results) if rc != 0]
    pids = []
    for pf in pfs:
        try:
            with open(pf) as f:
                pids.append(int(f.read()))
        except (OSError, ValueError):
            pass
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(os.path.basename(mem.exe(p)) == "busybox" for p in pids):
        time.sleep(0.001)
    start_s = time.perf_counter() - t0
    not_running = [p for p in pids if os.path.basename(mem.exe(p)) != "busybox"]
    if failures:
        problems.append(f"{rt.name} round {rnd}: {len(failures)} of {n} `run -d` failed, e.g. "
                        + "; ".join(f"{c}: exit {rc}: {e[:200]}" for c, rc, e in failures[:3]))
    if not_running or len(pids) != n - len(failures):
        problems.append(f"{rt.name} round {rnd}: {len(not_running)} inits not running the user process, "
                        f"{n - len(failures) - len(pids)} pid files missing")

    t1 = time.perf_counter()
    results = list(pool.map(call, [rt.cmd("delete", "--force", cid) for cid in ids]))
    delete_s = time.perf_counter() - t1
    failures = [(cid, rc, err) for cid, (rc, err) in zip(ids, results) if rc != 0]
    if failures:
        problems.append(f"{rt.name} round {rnd}: {len(failures)} of {n} `delete --force` failed, e.g. "
                        + "; ".join(f"{c}: exit {rc}: {e[:200]}" for c, rc, e in failures[:3]))
    rt.live.difference_update(ids)
    for pf in pfs:
        if os.path.exists(pf):
            os.unlink(pf)

    # Leaks: give killed processes and cgroup removal a moment to settle.
    deadline = time.monotonic() + 5
    while True:
        procs, cgs = mem.left_running(), cgroup_children()
        states = os.listdir(rt.root)
        mounts = mem.mounts_mentioning(rt.root, bundles[0].parent)
        if not (procs or cgs or states or mounts) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if procs:
        problems.append(f"{rt.name} round {rnd}: {len(procs)} processes left: "
                        + "; ".join(f"{p} {mem.cmdline(p)}" for p in procs[:3]))
    if cgs:
        problems.append(f"{rt.name} round {rnd}: {len(cgs)} cgroup directories left, e.g. {cgs[:3]}")
    if states:
        problems.append(f"{rt.name} round {rnd}: {len(states)} state entries left in {rt.root}, e.g. {states[:3]}")
    if mounts:
        problems.append(f"{rt.name} round {rnd}: {len(mounts)} mounts left, e.g. {mounts[:2]}")
    return start_s, t_returned, delete_s, problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--containers", type=int, default=200)
    ap.add_argument("--workers", type=int, default=200, help="threads launching commands (default 200)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runtimes", default="ocirun,runc,crun")
    ap.add_argument("--ocirun", default=None, help="default: REPO/.venv/bin/ocirun, else ocirun on PATH")
    ap.add_argument("--json", metavar="FILE", help="also write the figures (s) here")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    ocirun, paths, names = lc.choose_runtimes(a.runtimes, a.ocirun)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(mem.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit("prctl(PR_SET_CHILD_SUBREAPER) failed")

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    tmp = Path(tempfile.mkdtemp(prefix="ocirun-bench-bundle-"))
    runtimes, runnable, failed, problems = [], [], False, []
    figures = {}
    try:
        probe = lc.Bench(lc.make_bundle(tmp / "probe", ["/bin/true"]))
        runtimes = [lc.Runtime(n, paths[n]) for n in names]
        runnable = [rt for rt in runtimes if probe.works(rt)]
        if not runnable:
            raise RuntimeError("no runtime could run a container")
        t = time.monotonic()
        bundles = make_bundles(tmp / "bundles", a.containers)
        pidfiles = tmp / "pids"
        pidfiles.mkdir()
        print(f"{a.containers} bundles made in {time.monotonic() - t:.1f} s (not timed)", file=sys.stderr)
        figures = {rt.name: {"start_s": [], "returned_s": [], "delete_s": []} for rt in runnable}
        with ThreadPoolExecutor(max_workers=a.workers) as pool:
            for rnd in range(a.rounds):
                k = rnd % len(runnable)
                for rt in runnable[k:] + runnable[:k]:
                    s, r, d, p = one_round(rt, bundles, pool, rnd, pidfiles)
                    f = figures[rt.name]
                    f["start_s"].append(s)
                    f["returned_s"].append(r)
                    f["delete_s"].append(d)
                    problems += p
                    print(f"round {rnd} {rt.name:<7} all running after {s:6.2f} s (commands returned "
                          f"{r:6.2f} s), all deleted in {d:6.2f} s{'  FAILED' if p else ''}", file=sys.stderr)
                    if p:
                        raise RuntimeError("; ".join(p))
    except KeyboardInterrupt:
        failed = True
        print("interrupted; cleaning up", file=sys.stderr)
    except Exception as e:
        failed = True
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for rt in runtimes:
            rt.cleanup()
        mem.reap()
        shutil.rmtree(tmp, ignore_errors=True)
        leaked = lc.remove_cgroups()
    done = {n: f for n, f in figures.items() if f["start_s"]}
    if done:
        print(f"\n{a.containers} containers, `run -d` from {a.workers} threads at once, {a.rounds} rounds; "
              f"median (min-max) seconds")
        head = f"{'runtime':<8}{'until all running':>24}{'all deleted':>24}"
        print(head)
        print("-" * len(head))
        for n, f in done.items():
            cells = [f"{statistics.median(f[k]):6.2f} ({min(f[k]):5.2f}-{max(f[k]):5.2f})" for k in ("start_s", "delete_s")]
            print(f"{n:<8}" + "".join(f"{c:>24}" for c in cells))
        if "ocirun" in done and "runc" in done and not failed:
            o = statistics.median(done["ocirun"]["start_s"])
            r = statistics.median(done["runc"]["start_s"])
            print(f"\nocirun/runc until all running: {o / r:.2f}x (target <= 1.0: {'ok' if o <= r else 'MISSED'}); "
                  f"failures: {'none' if not problems else len(problems)}; leaks: none found")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"containers": a.containers, "workers": a.workers, "rounds": a.rounds, "unit": "s",
                       "runtimes": figures, "problems": problems}, fh, indent=1)
    if leaked:
        print("error: cgroup directories left behind:\n  " + "\n  ".join(leaked), file=sys.stderr)
    return 1 if failed or leaked or problems else 0


if __name__ == "__main__":
    sys.exit(main())
