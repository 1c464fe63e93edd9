#!/usr/bin/env python3
"""Container lifecycle latency: ocirun against runc and crun, interleaved in one run.

    sudo python3 tests/bench/lifecycle.py [--iterations 30] [--runtimes ocirun,runc,crun]
                                          [--ocirun PATH] [--json FILE]

Measures, per runtime (each one command's wall time, perf_counter_ns around subprocess.run):
  run        `run ID` of a bundle whose process is /bin/true, in the foreground (the runtime
             deletes the container itself)
  lifecycle  create --pid-file, start, wait until /proc/PID is gone (or a zombie), delete
  state      `state ID` of a created container
  kill       `kill ID KILL` of a created container
  delete     `delete ID` of that container once stopped
  exec       `exec ID /bin/true` into a running container (its init `sleep 60`), in the
             foreground: what podman, containerd's probes and kubelet's ExecSync pay per call
and once per iteration `python -I -S -c pass` with ocirun's interpreter (its `#!` line):
the CPython start-up floor under any ocirun command.

Each iteration goes over the runtimes round-robin, starting one further along each time, so
machine noise hits all alike; one warm-up iteration is discarded. The bundle is
scripts/busybox_bundle.py's (runc spec's default config) with args ["/bin/true"] and a unique
linux.cgroupsPath /ocirun-bench-TAG/ID per container. Each runtime gets a private --root temp
dir. At the end (Ctrl-C included) leftover containers are deleted with --force, temp dirs are
removed, the ocirun-bench-TAG cgroup parents are removed, and the script fails if any
cgroup directory of this run is left. Runs as root; stdlib only.

--ocirun defaults to REPO/.venv/bin/ocirun, else `ocirun` on PATH. A runtime that is not
installed, or whose first `run` fails, is skipped with its error (crun 1.8 refuses hybrid
cgroup hosts whose cgroup2 mount has controllers: "cgroups in hybrid mode not supported").
"""
import argparse
import glob
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

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
from busybox_bundle import make_bundle  # noqa: E402

sys.path.insert(0, str(REPO / "tests"))
from launched import command_of  # noqa: E402

KNOWN = {"runc": "/usr/sbin/runc", "crun": "/usr/bin/crun"}
MEASURES = ["run", "lifecycle", "state", "kill", "delete", "exec"]
FLOOR = "python -I -S -c pass"
TAG = f"{os.getpid():x}"
CGROUP_PARENT = f"ocirun-bench-{TAG}"
DEVNULL = subprocess.DEVNULL


class Runtime:
    def __init__(self, name, path):
        self.name, self.path = name, path
        self.root = tempfile.mkdtemp(prefix=f"ocirun-bench-{name}-")
        self.live = set()  # ids that may exist under root
        self.samples = {m: [] for m in MEASURES}

    def cmd(self, *args):
        return [self.path, "--root", self.root, *args]

    def timed(self, *args):
        """Run one command; return its wall time in ns. Raise if it fails."""
        argv = self.cmd(*args)
        t0 = time.perf_counter_ns()
        rc = subprocess.run(argv, stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL).returncode
        dt = time.perf_counter_ns() - t0
        if rc != 0:
            raise RuntimeError(f"{' '.join(argv)}: exit status {rc}")
        return dt

    def cleanup(self):
        ids = self.live | set(os.listdir(self.root))
        for cid in sorted(ids):
            subprocess.run(self.cmd("delete", "--force", cid), stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL)
        shutil.rmtree(self.root, ignore_errors=True)


def exited(pid):
    """True once /proc/PID is gone or a zombie (nobody may reap the orphaned init)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return True
    return data[data.rindex(b")") + 2:][:1] in (b"Z", b"X")


def wait_running(pid, timeout=10.0):
    """Until the init has run its execve (its cmdline is the container's `sleep`)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().startswith(b"sleep\0"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"pid {pid} did not start within {timeout}s")
        time.sleep(0.0001)


def wait_exit(pid, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not exited(pid):
        if time.monotonic() > deadline:
            raise RuntimeError(f"pid {pid} did not exit within {timeout}s")
        time.sleep(0.0001)


class Bench:
    def __init__(self, bundle):
        self.bundle = bundle
        self.config = json.loads((bundle / "config.json").read_text())
        self.seq = 0

    def new_container(self, rt, measure):
        """Pick a unique id and point config.json's cgroupsPath at it (not timed); the exec
        measure's container sleeps, the others run /bin/true."""
        self.seq += 1
        cid = f"{rt.name}-{measure}-{self.seq}-{TAG}"
        self.config["linux"]["cgroupsPath"] = f"/{CGROUP_PARENT}/{cid}"
        self.config["process"]["args"] = ["sleep", "60"] if measure == "exec" else ["/bin/true"]
        (self.bundle / "config.json").write_text(json.dumps(self.config))
        rt.live.add(cid)
        return cid

    def works(self, rt):
        """Try one `run`; on failure say why (stderr) and return False."""
        cid = self.new_container(rt, "probe")
        r = subprocess.run(rt.cmd("run", "--bundle", str(self.bundle), cid), stdin=DEVNULL,
                           stdout=DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode == 0:
            rt.live.discard(cid)
            return True
        print(f"skipping {rt.name}: it cannot run a container here: {r.stderr.strip()}", file=sys.stderr)
        return False

    def create(self, rt, cid):
        pid_file = str(self.bundle.parent / f"{cid}.pid")
        dt = rt.timed("create", "--bundle", str(self.bundle), "--pid-file", pid_file, cid)
        with open(pid_file) as f:
            pid = int(f.read())
        os.unlink(pid_file)
        return dt, pid

    def one(self, rt, measure):
        """Take one sample of `measure` (state/kill/delete are taken together)."""
        cid = self.new_container(rt, measure)
        s = rt.samples
        if measure == "run":
            s["run"].append(rt.timed("run", "--bundle", str(self.bundle), cid))
        elif measure == "exec":
            _, pid = self.create(rt, cid)
            rt.timed("start", cid)
            wait_running(pid)
            s["exec"].append(rt.timed("exec", cid, "/bin/true"))
            rt.timed("kill", cid, "KILL")
            wait_exit(pid)
            rt.timed("delete", cid)
        elif measure == "lifecycle":
            t0 = time.perf_counter_ns()
            _, pid = self.create(rt, cid)
            rt.timed("start", cid)
            wait_exit(pid)
            rt.timed("delete", cid)
            s["lifecycle"].append(time.perf_counter_ns() - t0)
        else:
            _, pid = self.create(rt, cid)
            s["state"].append(rt.timed("state", cid))
            s["kill"].append(rt.timed("kill", cid, "KILL"))
            wait_exit(pid)
            s["delete"].append(rt.timed("delete", cid))
        rt.live.discard(cid)


def interpreter(ocirun):
    """The interpreter ocirun runs (tests/launched.py), or sys.executable for another command."""
    found = command_of(ocirun)
    return found[0] if found else sys.executable


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


def report(runtimes, floor):
    ms = 1e6
    names = [rt.name for rt in runtimes]
    head = f"{'measure':<20}" + "".join(f"{n + ' med (p10-p90) ms':>29}" for n in names)
    ratios = [f"ocirun/{n}" for n in names if n != "ocirun" and "ocirun" in names]
    head += "".join(f"{r:>13}" for r in ratios + (["ocirun/floor"] if "ocirun" in names else []))
    print(head)
    print("-" * len(head))
    fmed = statistics.median(floor)
    by = {rt.name: rt for rt in runtimes}
    for m in MEASURES:
        row = f"{m:<20}"
        for rt in runtimes:
            xs = rt.samples[m]
            cell = f"{statistics.median(xs) / ms:7.2f} ({pct(xs, .1) / ms:6.2f}-{pct(xs, .9) / ms:6.2f})"
            row += f"{cell:>29}"
        if "ocirun" in by:
            o = statistics.median(by["ocirun"].samples[m])
            for r in ratios:
                row += f"{o / statistics.median(by[r.split('/')[1]].samples[m]):>13.2f}"
            row += f"{o / fmed:>13.2f}"
        print(row)
    cell = f"{fmed / ms:7.2f} ({pct(floor, .1) / ms:6.2f}-{pct(floor, .9) / ms:6.2f})"
    print(f"{FLOOR:<20}{cell:>29}   (CPython start-up floor, ocirun's interpreter)")


def cgroup_leftovers():
    return sorted(glob.glob(f"/sys/fs/cgroup/{CGROUP_PARENT}*") + glob.glob(f"/sys/fs/cgroup/*/{CGROUP_PARENT}*"))


def remove_cgroups():
    """rmdir the parents the runtimes made for us; return what is left (a leak), then remove it."""
    for d in cgroup_leftovers():
        try:
            os.rmdir(d)
        except OSError:
            pass
    left = cgroup_leftovers()
    for d in left:  # clean the leak up too, deepest first, so the machine is left clean
        for sub, _, _ in sorted(os.walk(d), key=lambda w: -len(w[0])):
            try:
                os.rmdir(sub)
            except OSError:
                pass
    return left


def choose_runtimes(wanted: str, ocirun: str | None) -> tuple[str | None, dict, list]:
    """(ocirun's path, name -> path, the names to run) from --runtimes and --ocirun; exits
    when none is installed. Shared by every script of tests/bench."""
    venv = REPO / ".venv/bin/ocirun"
    ocirun = ocirun or (str(venv) if venv.exists() else shutil.which("ocirun"))
    paths = {**KNOWN, "ocirun": ocirun}
    names = [n.strip() for n in wanted.split(",") if n.strip()]
    for n in names:
        if n not in paths:
            sys.exit(f"unknown runtime {n!r}: choose from ocirun, runc, crun")
        if not paths[n] or not os.access(paths[n], os.X_OK):
            print(f"skipping {n}: not installed ({paths[n]})", file=sys.stderr)
    names = [n for n in names if paths[n] and os.access(paths[n], os.X_OK)]
    if not names:
        sys.exit("no runtime to benchmark")
    return ocirun, paths, names


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--runtimes", default="ocirun,runc,crun")
    ap.add_argument("--ocirun", default=None, help="default: REPO/.venv/bin/ocirun, else ocirun on PATH")
    ap.add_argument("--json", metavar="FILE", help="also write the raw samples (ns) here")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    ocirun, paths, names = choose_runtimes(a.runtimes, a.ocirun)
    python = interpreter(ocirun) if ocirun and os.access(ocirun, os.X_OK) else sys.executable

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up on kill(1) too
    tmp = tempfile.mkdtemp(prefix="ocirun-bench-bundle-")
    runtimes, runnable, floor, failed = [], [], [], False
    try:
        bench = Bench(make_bundle(Path(tmp) / "bundle", ["/bin/true"]))
        runtimes = [Runtime(n, paths[n]) for n in names]
        runnable = [rt for rt in runtimes if bench.works(rt)]
        if not runnable:
            raise RuntimeError("no runtime could run a container")
        for i in range(a.iterations + 1):  # iteration 0 warms up and is discarded
            k = i % len(runnable)
            order = runnable[k:] + runnable[:k]
            for m in ("run", "lifecycle", "state", "exec"):
                for rt in order:
                    bench.one(rt, m)
            t0 = time.perf_counter_ns()
            subprocess.run([python, "-I", "-S", "-c", "pass"], stdout=DEVNULL, stderr=DEVNULL, check=True)
            floor.append(time.perf_counter_ns() - t0)
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
        leaked = remove_cgroups()
    if not failed:
        runtimes = runnable
        print(f"{a.iterations} iterations, interleaved; runtimes: "
              + ", ".join(f"{rt.name}={rt.path}" for rt in runtimes) + f"; floor interpreter: {python}\n")
        report(runtimes, floor)
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"iterations": a.iterations, "unit": "ns", "floor_interpreter": python, "floor": floor,
                           "runtimes": {rt.name: {"path": rt.path, **rt.samples} for rt in runtimes}}, f, indent=1)
    if leaked:
        print("error: cgroup directories left behind:\n  " + "\n  ".join(leaked), file=sys.stderr)
    return 1 if failed or leaked else 0


if __name__ == "__main__":
    sys.exit(main())
