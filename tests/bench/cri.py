#!/usr/bin/env python3
"""Kubernetes pod start and probe latency through containerd 1.6's CRI: ocirun against runc as
runtime handlers, interleaved in one run.

    sudo .venv/bin/python tests/bench/cri.py [--iterations 20] [--execs 10]
                                             [--ocirun PATH] [--runc PATH] [--json FILE]

Sets up what tests/integration/test_cri.py uses (cri_support.py): a private containerd with the
CRI plugin (scripts/setup-integration --config-only into a temp dir), in a network namespace of
its own, handlers `runc` and `ocirun` (io.containerd.runc.v2 with BinaryName --runc and
--ocirun), cgroupfs, the CNI bridge, the local pause (catatonit) and busybox images. Then, per
iteration and per handler (the handlers round-robin, starting one further along each time; one
warm-up iteration is discarded), each one gRPC call's wall time (perf_counter_ns):
  pod        RunPodSandbox (the pause container, with its CNI network)
  create     CreateContainer of a busybox `sleep` in it
  start      StartContainer
  pod+start  the three together: what kubelet waits for before a pod's first container runs
  exec       ExecSync `true`, --execs times in that container (a probe)
after which the pod is stopped and removed (not measured) and its cgroups removed. Prints
medians and p90 per handler and the ratio ocirun/runc of the medians. At the end (Ctrl-C
included) every pod is removed, containerd stopped, the netns and the temp dir removed.
Runs as root; needs grpcio and grpcio-tools (scripts/setup-integration installs them into .venv).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests/integration"))
import cri_support  # noqa: E402
from cri_support import (CriDaemon, hierarchies, kubepods_present, load_api, make_images, missing_tools, new_uid,
                         remove_new_kubepods)  # noqa: E402

MEASURES = ["pod", "create", "start", "pod+start", "exec"]
def ms(ns):
    return ns / 1e6


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


class Bench:
    def __init__(self, d: CriDaemon, execs: int):
        self.d, self.c, self.execs = d, d.client, execs
        self.samples = {h: {m: [] for m in MEASURES} for h in cri_support.HANDLERS}
        self.parents = []
        self.n = 0

    def one(self, handler, keep=True):
        self.n += 1
        uid = new_uid()
        parent = f"/kubepods/besteffort/pod{uid}"
        self.parents.append(parent)
        log_dir = self.d.dir / "logs" / uid
        log_dir.mkdir(parents=True)
        pc = self.c.pod_config(f"bench-{self.n}", log_dir=log_dir, cgroup_parent=parent, uid=uid)
        cc = self.c.container_config("app", ["sleep", "2147483647"])
        t0 = time.perf_counter_ns()
        pod = self.c.run_pod(pc, handler)
        t1 = time.perf_counter_ns()
        try:
            cid = self.c.create(pod, cc, pc)
            t2 = time.perf_counter_ns()
            self.c.start(cid)
            t3 = time.perf_counter_ns()
            execs = []
            for _ in range(self.execs):
                e0 = time.perf_counter_ns()
                r = self.c.exec_sync(cid, ["true"], timeout=10)
                execs.append(time.perf_counter_ns() - e0)
                if r.exit_code != 0:
                    raise RuntimeError(f"{handler}: ExecSync true exited {r.exit_code}: {r.stderr!r}")
        finally:
            self.c.stop_pod(pod, timeout=60)
            self.c.remove_pod(pod, timeout=60)
            shutil.rmtree(log_dir, ignore_errors=True)
            self.rm_cgroups()
        if keep:
            s = self.samples[handler]
            s["pod"].append(t1 - t0)
            s["create"].append(t2 - t1)
            s["start"].append(t3 - t2)
            s["pod+start"].append(t3 - t0)
            s["exec"].extend(execs)

    def rm_cgroups(self):
        for parent in list(self.parents):
            ok = True
            for h in hierarchies():
                try:
                    os.rmdir(h / parent.lstrip("/"))
                except FileNotFoundError:
                    pass
                except OSError:
                    ok = False
            if ok:
                self.parents.remove(parent)


def report(b: Bench, iterations: int) -> dict:
    out = {}
    print(f"\n{iterations} iterations, {b.execs} ExecSync per pod; milliseconds")
    print(f"{'measure':<10} {'handler':<7} {'median':>9} {'p90':>9} {'n':>5}  ocirun/runc")
    for m in MEASURES:
        med = {}
        for h in cri_support.HANDLERS:
            xs = b.samples[h][m]
            if not xs:
                continue
            med[h] = statistics.median(xs)
            out.setdefault(m, {})[h] = {"median_ms": ms(med[h]), "p90_ms": ms(pct(xs, 0.9)), "n": len(xs)}
        for h in cri_support.HANDLERS:
            if h in med:
                ratio = f"{med['ocirun'] / med['runc']:.2f}x" if h == "ocirun" and "runc" in med else ""
                print(f"{m:<10} {h:<7} {ms(med[h]):9.2f} {out[m][h]['p90_ms']:9.2f} {out[m][h]['n']:5d}  {ratio}")
        if len(med) == 2:
            out[m]["ratio"] = med["ocirun"] / med["runc"]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--execs", type=int, default=10)
    ap.add_argument("--ocirun", default=cri_support.OCIRUN)
    ap.add_argument("--runc", default=cri_support.RUNC)
    ap.add_argument("--json")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("cri.py: run as root")
    missing = missing_tools()
    if missing:
        sys.exit(f"cri.py: missing {', '.join(missing)}: run scripts/setup-integration")

    tmp = Path(tempfile.mkdtemp(prefix="ocirun-bench-cri-", dir="/var/tmp"))
    netns = f"ocirun-bench-cri-{os.getpid():x}"
    kubepods0 = kubepods_present()
    d = None
    try:
        subprocess.run([str(REPO / "scripts/setup-integration"), "--config-only", str(tmp)], check=True)
        cfg = tmp / "cri/containerd.toml"
        text = cfg.read_text().replace(f'BinaryName = "{cri_support.OCIRUN}"', f'BinaryName = "{args.ocirun}"')
        cfg.write_text(text.replace(f'BinaryName = "{cri_support.RUNC}"', f'BinaryName = "{args.runc}"'))
        d = CriDaemon(tmp, netns, load_api(tmp / "stubs"))
        d.make_netns()
        d.start()
        d.import_images(make_images(tmp))
        b = Bench(d, args.execs)
        handlers = list(cri_support.HANDLERS)
        print(f"containerd {d.client.rt.Version(d.api.pb.VersionRequest()).runtime_version}; "
              f"runc = {args.runc}, ocirun = {args.ocirun}", flush=True)
        for i in range(args.iterations + 1):
            order = handlers[i % 2:] + handlers[:i % 2]
            for h in order:
                b.one(h, keep=i > 0)
            print(".", end="", flush=True)
        res = report(b, args.iterations)
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
    finally:
        if d is not None:
            try:
                if d.client and d.proc and d.proc.poll() is None:
                    for p in d.client.pods():
                        d.client.stop_pod(p.id, timeout=30)
                        d.client.remove_pod(p.id, timeout=30)
            finally:
                d.shut_down()
            b_parents = getattr(locals().get("b"), "rm_cgroups", None)
            if b_parents:
                b_parents()
        remove_new_kubepods(kubepods0)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
