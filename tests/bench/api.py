#!/usr/bin/env python3
"""The library against subprocess loops: N containers, each create + start + wait + delete.

    sudo .venv/bin/python tests/bench/api.py [--containers 200] [--rounds 3] [--runtimes ocirun,runc,crun]

  api     ocirun.Runtime in this process: rt.create, c.start, c.wait (the init is our child),
          c.delete
  ocirun  the same four steps through the ocirun command, one subprocess each (create with
          --pid-file; wait = poll until /proc/PID is gone or a zombie)
  runc    the same, through runc; crun too where it runs (crun 1.8 refuses this hybrid host)

Each round runs every variant once, in rotated order, over the same bundle (busybox, /bin/true,
a cgroupsPath unique per container); the table gives each variant's median over the rounds of
the whole loop's wall time and the ratio to runc. Run with the repo's venv interpreter (it
imports ocirun from the checkout). Root; leaves nothing behind (a private --root per variant).
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
sys.path[:0] = [str(REPO), str(REPO / "scripts"), str(Path(__file__).resolve().parent)]
import lifecycle as lc  # noqa: E402  (the benches' shared helpers)
from busybox_bundle import make_bundle  # noqa: E402

import ocirun  # noqa: E402

TAG = f"ocirun-apibench-{os.getpid():x}"


def bundle_for(base: Path, cid: str) -> str:
    cfg = json.loads((base / "config.json").read_text())
    cfg["linux"]["cgroupsPath"] = f"/{TAG}/{cid}"
    cfg["root"]["path"] = str(base / "rootfs")  # shared, absolute (runc refuses a symlink)
    d = base.parent / cid
    d.mkdir()
    (d / "config.json").write_text(json.dumps(cfg))
    return str(d)


def loop_api(root: str, bundles: list[tuple[str, str]]) -> None:
    rt = ocirun.Runtime(root=root)
    for cid, b in bundles:
        c = rt.create(cid, b)
        c.start()
        c.wait()
        c.delete()


def loop_cli(binary: str, root: str, bundles: list[tuple[str, str]]) -> None:
    base = [binary, "--root", root]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "stdin": subprocess.DEVNULL}
    for cid, b in bundles:
        pid_file = os.path.join(root, f"{cid}.pid")
        subprocess.run([*base, "create", "--bundle", b, "--pid-file", pid_file, cid], check=True, **quiet)
        pid = int(open(pid_file).read())
        subprocess.run([*base, "start", cid], check=True, **quiet)
        while not lc.exited(pid):
            time.sleep(0.0002)
        subprocess.run([*base, "delete", cid], check=True, **quiet)


def works(binary: str, base: Path, work: Path) -> bool:
    root = tempfile.mkdtemp(dir=work)
    try:
        loop_cli(binary, root, [("probe", bundle_for(base, f"probe-{Path(binary).name}"))])
        return True
    except subprocess.CalledProcessError:
        return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--containers", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runtimes", default="ocirun,runc,crun")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ocirun-apibench-"))
    try:
        base = make_bundle(work / "base", ["/bin/true"])
        variants = {"api": None}
        _, paths, names = lc.choose_runtimes(a.runtimes, None)
        for name in names:
            if works(paths[name], base, work):
                variants[name] = paths[name]
            else:
                print(f"# {name}: its first container failed: left out")
        times: dict[str, list[float]] = {v: [] for v in variants}
        for r in range(a.rounds):
            order = list(variants)[r % len(variants):] + list(variants)[:r % len(variants)]
            for v in order:
                root = tempfile.mkdtemp(dir=work)
                bundles = [(f"{v}-{r}-{i}", bundle_for(base, f"{v}-{r}-{i}")) for i in range(a.containers)]
                t0 = time.perf_counter()
                if variants[v] is None:
                    loop_api(root, bundles)
                else:
                    loop_cli(variants[v], root, bundles)
                times[v].append(time.perf_counter() - t0)
        ref = statistics.median(times["runc"]) if "runc" in times else None
        print(f"{a.containers} containers, create+start+wait+delete, {a.rounds} rounds; seconds per loop")
        print(f"{'variant':<8}{'median':>9}{'per container ms':>18}{'vs runc':>9}   rounds")
        for v, ts in times.items():
            m = statistics.median(ts)
            ratio = f"{m / ref:.2f}x" if ref else "-"
            print(f"{v:<8}{m:9.2f}{m / a.containers * 1000:18.1f}{ratio:>9}   " + " ".join(f"{t:.2f}" for t in ts))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for mp in Path("/sys/fs/cgroup").glob("*"):
            for d in sorted(mp.glob(f"{TAG}/*"), reverse=True) + [mp / TAG]:
                try:
                    d.rmdir()
                except OSError:
                    pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
