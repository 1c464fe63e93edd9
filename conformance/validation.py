#!/usr/bin/env python3
"""Run the OCI runtime-tools validation suite's prebuilt test programs against a runtime.

    conformance/validation.py --suite DIR --runtime PATH [--only NAME,...] [--timeout S]

DIR holds the suite's binaries, built outside this repository (docs/conformance.md says
how): one `NAME.t` per test (found at any depth, so both a flat copy and the source
tree's `validation/NAME/NAME.t` layout work), the static `runtimetest` helper, and
the busybox rootfs tarball `rootfs-amd64.tar.gz` that runtime-tools ships in its source.
This script never builds them.  If the tarball is missing it makes one from Debian's
busybox-static with scripts/busybox_bundle.py's make_rootfs.

Each test program runs as the suite's Makefile runs it (`RUNTIME=... validation/X.t`),
in a fresh working directory holding `runtimetest` and `rootfs-<arch>.tar.gz` (the
suite opens both relative to its cwd), with TMPDIR pointing inside that directory so
its bundles land there.  RUNTIME is a small wrapper that passes `--root STATE` to the
runtime, so that every container the suite makes is in a private state directory; after
each test whatever is left there is `delete --force`d, the cgroups the suite names
(`/cgrouptest`, `testdir/cgrouptest/container`) and those named after leftover
containers are emptied and removed, and mounts left under the working directory are
detached.  Use --default-root to run the runtime with its own default state directory
instead (then only containers that appeared during a test are cleaned up).

Output: per test program `ok`/`not ok`, its assertion counts and every failed
assertion's name (with the nested runtimetest assertions that failed inside the
container, and the runtime's error when one was reported), then the assertion totals,
and last the line `N passed, M failed` counting test programs.  Exits 1 if any failed.
Stdlib only; run as root.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import proc_group  # noqa: E402  (conformance/ is the script's directory)

REPO = Path(__file__).resolve().parent.parent
GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "i386": "386",
          "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}.get(platform.machine(), platform.machine())
ROOTFS_NAME = f"rootfs-{GOARCH}.tar.gz"
# cgroupsPath values the suite's tests use (runtime-tools cgroups.AbsCgroupPath / RelCgroupPath).
SUITE_CGROUPS = ("cgrouptest", "testdir/cgrouptest/container")
CGROUP_ROOT = Path("/sys/fs/cgroup")

TAP_LINE = re.compile(r"^(not ok|ok)\b\s*(\d+)?\s*(?:-\s*)?(.*?)\s*(?:#\s*(skip|todo)\b\s*(.*))?$", re.I)
PLAN_LINE = re.compile(r"^1\.\.(\d+)")
NESTED_NOT_OK = re.compile(r"not ok \d+\s*-?\s*([^\\\"\n]*)")


# ---------------------------------------------------------------------------- TAP


@dataclass
class Assertion:
    ok: bool
    number: int | None
    name: str
    directive: str = ""  # "skip" / "todo" / ""
    reason: str = ""
    yaml: list[str] = field(default_factory=list)   # the YAML block right after the line
    before: list[str] = field(default_factory=list)  # the YAML block right before it
    diag: list[str] = field(default_factory=list)    # "# ..." diagnostic lines after it


@dataclass
class TapResult:
    assertions: list[Assertion]
    plans: list[int]
    bailed: str | None
    orphans: list[list[str]]  # YAML blocks before the first test line (the suite reports errors so)

    @property
    def plan(self) -> int | None:
        """The plan, where several TAP streams were printed one after another, their sum when
        that matches (a program whose helper printed its own `TAP version 13` / `1..0`)."""
        if not self.plans:
            return None
        n = len(self.assertions)
        return n if n in self.plans or sum(self.plans) == n else self.plans[0]

    @property
    def failed(self) -> list[Assertion]:
        return [a for a in self.assertions if not a.ok and a.directive != "todo"]

    @property
    def skipped(self) -> list[Assertion]:
        return [a for a in self.assertions if a.directive == "skip"]


def parse_tap(text: str) -> TapResult:
    """Top-level TAP 13: test lines, plan, Bail out!, and YAML blocks (indented ---/...)."""
    assertions: list[Assertion] = []
    plans: list[int] = []
    orphans: list[list[str]] = []
    bailed = None
    block: list[str] | None = None  # lines of the YAML block being read
    last_block: list[str] = []
    last_block_free = False  # a block not yet attached to a following assertion
    for line in text.splitlines():
        if block is not None:
            if line.strip() == "...":
                block.append(line)
                if assertions and not last_block_free and not assertions[-1].yaml:
                    assertions[-1].yaml = block
                elif not assertions:
                    orphans.append(block)
                last_block, last_block_free = block, True
                block = None
            else:
                block.append(line)
            continue
        if line.startswith((" ", "\t")) and line.strip() == "---":
            block = [line]
            continue
        m = TAP_LINE.match(line)
        if m:
            ok = m.group(1).lower() == "ok"
            a = Assertion(ok=ok, number=int(m.group(2)) if m.group(2) else None, name=m.group(3) or "",
                          directive=(m.group(4) or "").lower(), reason=(m.group(5) or "").strip())
            if last_block_free:
                a.before = last_block
            last_block_free = False
            assertions.append(a)
            continue
        if line.startswith("#") and assertions and not PLAN_LINE.match(line):
            assertions[-1].diag.append(line.lstrip("#").strip())
            continue
        m = PLAN_LINE.match(line)
        if m:
            plans.append(int(m.group(1)))
            last_block_free = False
            continue
        if line.startswith("Bail out!"):
            bailed = line[len("Bail out!"):].strip() or "Bail out!"
    return TapResult(assertions, plans, bailed, orphans)


def _nested_failures(a: Assertion) -> list[str]:
    """runtimetest's own `not ok` lines, carried in the YAML `stdout` of a wrapping assertion."""
    out = []
    for blk in (a.before, a.yaml):
        if not any('"stdout"' in l or l.strip().startswith("stdout:") for l in blk):
            continue
        for m in NESTED_NOT_OK.finditer("\n".join(blk)):
            name = m.group(1).strip()
            if name and name not in out:
                out.append(name)
    return out


def _yaml_field(blk: list[str], key: str) -> str | None:
    """A string field from a YAML/JSON diagnostic block (the suite writes JSON-ish YAML)."""
    text = "\n".join(l.strip() for l in blk[1:-1])
    try:
        data = json.loads(text)
        if isinstance(data, dict) and isinstance(data.get(key), str):
            return data[key]
    except ValueError:
        pass
    m = re.search(rf'^\s*"?{re.escape(key)}"?\s*:\s*(.+?),?$', text, re.M)
    if m:
        v = m.group(1).strip()
        try:
            return json.loads(v) if v.startswith('"') else v
        except ValueError:
            return v
    return None


# ---------------------------------------------------------------------------- environment


def find_tests(suite: Path) -> dict[str, Path]:
    tests: dict[str, Path] = {}
    for p in sorted(suite.rglob("*.t")):
        if p.is_file() and os.access(p, os.X_OK):
            tests.setdefault(p.name[:-2], p)
    return tests


def busybox_rootfs_tarball(dest: Path) -> Path:
    """A rootfs tarball like the suite's own, from Debian's busybox-static (scripts/busybox_bundle.py)."""
    sys.path.insert(0, str(REPO / "scripts"))
    from busybox_bundle import make_rootfs  # noqa: E402

    with tempfile.TemporaryDirectory(prefix="ocirun-rtv-rootfs-") as tmp:
        root = make_rootfs(Path(tmp) / "rootfs")
        with tarfile.open(dest, "w:gz") as tar:
            for entry in sorted(root.iterdir()):
                tar.add(entry, arcname=entry.name)
    return dest


def write_wrapper(path: Path, runtime: str, root: Path | None) -> None:
    args = [runtime] + (["--root", str(root)] if root else [])
    path.write_text("#!/bin/sh\nexec " + " ".join(shlex.quote(a) for a in args) + ' "$@"\n')
    path.chmod(0o755)


class Runtime:
    """The runtime under test, as the cleanup calls it."""

    def __init__(self, path: str, root: Path | None):
        self.path, self.root = path, root

    def _cmd(self, *args: str) -> list[str]:
        return [self.path] + (["--root", str(self.root)] if self.root else []) + list(args)

    def containers(self) -> dict[str, int]:
        """id -> pid of the containers in this state directory."""
        try:
            r = subprocess.run(self._cmd("list", "--format", "json"), capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return {}
        if r.returncode != 0:
            return {}
        try:
            data = json.loads(r.stdout or "null") or []
        except ValueError:
            return {}
        return {c.get("id"): int(c.get("pid") or 0) for c in data if isinstance(c, dict) and c.get("id")}

    def force_delete(self, cid: str) -> bool:
        try:
            r = subprocess.run(self._cmd("delete", "--force", cid), capture_output=True, text=True, timeout=30)
            return r.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False


def _hierarchies() -> list[tuple[Path, str]]:
    """(mount point, this process's cgroup in it) for every v1 controller and the v2 tree."""
    own: dict[str, str] = {}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, ctrls, path = line.split(":", 2)
            for c in (ctrls.split(",") if ctrls else [""]):
                own[c.replace("name=", "")] = path
    except (OSError, ValueError):
        pass
    out = []
    if not CGROUP_ROOT.is_dir():
        return out
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return [(CGROUP_ROOT, own.get("", "/"))]
    for h in sorted(CGROUP_ROOT.iterdir()):
        if h.is_dir() and not h.is_symlink() and (h / "cgroup.procs").exists():
            key = "" if h.name == "unified" else h.name
            mine = next((own[k] for k in (key, *key.split(",")) if k in own), "/")
            out.append((h, mine))
    return out


def _cgroup_dirs(rel: str) -> list[Path]:
    """rel in every hierarchy: from its root (absolute cgroupsPath) and from this process's
    own cgroup there (a relative cgroupsPath is taken from the runtime's cgroup)."""
    out = []
    for mount, mine in _hierarchies():
        for base in {mount, mount / mine.strip("/")}:
            p = base / rel.strip("/")
            if p.is_dir() and p not in out:
                out.append(p)
    return out


def _remove_cgroup(path: Path) -> bool:
    """Kill what is left in the cgroup subtree, then rmdir it bottom-up."""
    for _ in range(20):
        pids = set()
        for procs in path.rglob("cgroup.procs"):
            try:
                pids.update(int(x) for x in procs.read_text().split())
            except (OSError, ValueError):
                pass
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        frozen = [f for f in path.rglob("freezer.state")] + [f for f in path.rglob("cgroup.freeze")]
        for f in frozen:  # a frozen cgroup cannot die
            try:
                f.write_text("THAWED" if f.name == "freezer.state" else "0")
            except OSError:
                pass
        dirs = sorted((d for d in path.rglob("*") if d.is_dir()), key=lambda d: len(d.parts), reverse=True)
        for d in dirs + [path]:
            try:
                d.rmdir()
            except OSError:
                pass
        if not path.exists():
            return True
        time.sleep(0.1)
    return False


def _mounts_under(base: Path) -> list[str]:
    out = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return out
    prefix = str(base).rstrip("/") + "/"
    for line in lines:
        mp = line.split()[4].encode().decode("unicode_escape")
        if mp == str(base) or mp.startswith(prefix):
            out.append(mp)
    return out


def _detach_mounts(base: Path) -> list[str]:
    left = _mounts_under(base)
    for mp in sorted(left, key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)
    return left


@dataclass
class Cleanup:
    containers: list[str] = field(default_factory=list)
    cgroups: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.containers or self.cgroups or self.mounts or self.problems)


def cleanup(rt: Runtime, before: set[str], cgroups_before: set[str], workdir: Path) -> Cleanup:
    c = Cleanup()
    left = {cid: pid for cid, pid in rt.containers().items() if cid not in before}
    for cid in left:
        c.containers.append(cid)
        if not rt.force_delete(cid):
            c.problems.append(f"delete --force {cid} failed")
    still = set(rt.containers()) & set(left)
    for cid in still:
        c.problems.append(f"container {cid} still listed")
    # cgroups: the suite's fixed paths, and any named after a container we just removed
    names = list(SUITE_CGROUPS) + sorted(left)
    for rel in names:
        for d in _cgroup_dirs(rel):
            if str(d) in cgroups_before:
                continue
            c.cgroups.append(str(d))
            if not _remove_cgroup(d):
                c.problems.append(f"cgroup {d} could not be removed")
    for rel in {n.split("/")[0] for n in SUITE_CGROUPS}:  # the suite's intermediate ones (testdir)
        for d in _cgroup_dirs(rel):
            if str(d) not in cgroups_before and _remove_cgroup(d):
                c.cgroups.append(str(d))
    c.mounts = _detach_mounts(workdir)
    if _mounts_under(workdir):
        c.problems.append(f"mounts still under {workdir}")
    return c


def suite_cgroups_present() -> set[str]:
    present = set()
    for rel in SUITE_CGROUPS:
        for d in _cgroup_dirs(rel):
            present.add(str(d))
        top = rel.split("/")[0]
        for d in _cgroup_dirs(top):
            present.add(str(d))
    return present


# ---------------------------------------------------------------------------- running


@dataclass
class TestOutcome:
    name: str
    passed: bool
    status: str  # "ok", "skip", "not ok"
    tap: TapResult
    rc: int | None
    timed_out: bool
    seconds: float
    reasons: list[str]
    stderr: str
    cleanup: Cleanup


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def run_test(name: str, binary: Path, wrapper: Path, rt: Runtime, runtimetest: Path, rootfs: Path,
             base: Path, timeout: float, keep: bool, save_dir: Path | None) -> TestOutcome:
    work = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=base))
    tmp = work / "tmp"
    tmp.mkdir()
    for d in (work, tmp):  # a user-namespaced container's root must be able to reach its bundle
        os.chmod(d, 0o755)
    _link_or_copy(runtimetest, work / "runtimetest")  # the suite copies it with lstat semantics: no symlink
    _link_or_copy(rootfs, work / ROOTFS_NAME)
    env = dict(os.environ)
    env.update({"RUNTIME": str(wrapper), "TMPDIR": str(tmp)})
    before = set(rt.containers())
    cg_before = suite_cgroups_present()
    start = time.monotonic()
    out_f = open(work / "stdout", "w+b")
    err_f = open(work / "stderr", "w+b")
    proc = subprocess.Popen([str(binary)], cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=out_f,
                            stderr=err_f, start_new_session=True)
    timed_out = proc_group.finish(proc, timeout)[1]
    rc = None if timed_out else proc.returncode
    proc_group.kill_group(proc.pid)  # hooks or helpers the test started and left behind in its session
    seconds = time.monotonic() - start
    out_f.seek(0)
    err_f.seek(0)
    stdout = out_f.read().decode("utf-8", "replace")
    stderr = err_f.read().decode("utf-8", "replace")
    out_f.close()
    err_f.close()
    cl = cleanup(rt, before, cg_before, work)
    if save_dir:
        save_dir.mkdir(parents=True, exist_ok=True)
        (save_dir / f"{name}.tap").write_text(stdout)
        (save_dir / f"{name}.stderr").write_text(stderr)
    if not keep and not _mounts_under(work):
        shutil.rmtree(work, ignore_errors=True)

    tap = parse_tap(stdout)
    reasons = []
    if timed_out:
        reasons.append(f"timed out after {timeout:g}s")
    elif rc != 0:
        reasons.append(f"exit status {rc}" if rc >= 0 else f"killed by signal {-rc}")
    if tap.bailed:
        reasons.append(f"bailed out: {tap.bailed}")
    errors = [e for e in (_yaml_field(b, "error") for b in tap.orphans) if e]
    if not tap.assertions and errors:
        # lifecycle tests (hooks, prestart, ...) print `1..0` and, on failure, only a YAML error
        reasons.append("no TAP test lines, and an error reported")
    elif not tap.assertions and tap.plan not in (0, None):
        reasons.append(f"plan 1..{tap.plan} but no TAP test lines")
    elif tap.plan is None and tap.assertions and not timed_out:
        reasons.append("no TAP plan")
    elif tap.plan is not None and tap.plan != len(tap.assertions):
        reasons.append(f"plan 1..{tap.plan} but {len(tap.assertions)} test lines")
    # No test line and no plan with exit status 0 passes: the *_fail tests print nothing when the
    # runtime rightly refuses their config (and exit 1 through util.Fatal when it accepts it).
    if tap.failed:
        reasons.append(f"{len(tap.failed)} assertion(s) failed")
    passed = not reasons
    if passed and tap.assertions and len(tap.skipped) == len(tap.assertions):
        status = "skip"
    else:
        status = "ok" if passed else "not ok"
    return TestOutcome(name, passed, status, tap, rc, timed_out, seconds, reasons, stderr, cl)


def _short(s: str, n: int = 300) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 3] + "..."


def report(o: TestOutcome, verbose: bool) -> None:
    t = o.tap
    counts = f"{len(t.assertions) - len(t.failed)}/{len(t.assertions)} ok"
    if t.skipped:
        counts += f", {len(t.skipped)} skipped"
    line = f"{o.status:6} {o.name:40} {counts:22} {o.seconds:6.1f}s"
    if o.status == "skip":
        line += f"  ({_short(t.skipped[0].name or t.skipped[0].reason, 80)})"
    elif o.passed and not t.assertions:
        line += "  (no test lines: " + ("plan 1..0)" if t.plan == 0 else "no TAP output, exit status 0)")
    print(line, flush=True)
    if not o.passed:
        for r in o.reasons:
            print(f"         - {r}")
        for blk in o.tap.orphans:
            for key in ("error", "stderr"):
                v = _yaml_field(blk, key)
                if v:
                    print(f"             {key}: {_short(str(v))}")
        for a in o.tap.failed:
            print(f"         not ok {a.number or '?'} - {a.name}")
            for nested in _nested_failures(a):
                print(f"             inside: not ok - {nested}")
            for key in ("error", "stderr", "expected", "actual"):
                v = _yaml_field(a.yaml, key) if a.yaml else None
                if v:
                    print(f"             {key}: {_short(str(v))}")
            for d in a.diag[:3]:
                print(f"             # {_short(d)}")
        err = [l for l in o.stderr.splitlines() if l.strip()]
        if err and (verbose or not o.tap.failed):
            print("         stderr: " + " | ".join(_short(l, 200) for l in err[-6:]))
    if o.cleanup:
        parts = []
        if o.cleanup.containers:
            parts.append(f"{len(o.cleanup.containers)} container(s) force-deleted")
        if o.cleanup.cgroups:
            parts.append(f"{len(o.cleanup.cgroups)} cgroup(s) removed")
        if o.cleanup.mounts:
            parts.append(f"{len(o.cleanup.mounts)} mount(s) detached")
        parts += o.cleanup.problems
        print("         cleanup: " + "; ".join(parts))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", required=True, type=Path, help="directory of prebuilt runtime-tools validation binaries")
    ap.add_argument("--runtime", required=True, help="runtime binary to test (runc CLI)")
    ap.add_argument("--only", default="", help="comma-separated test names (e.g. default,hooks_stdin)")
    ap.add_argument("--skip", default="", help="comma-separated test names not to run")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per test program (default 120)")
    ap.add_argument("--rootfs", type=Path, help=f"rootfs tarball (default: SUITE/{ROOTFS_NAME}, else one built from busybox-static)")
    ap.add_argument("--root", type=Path, help="runtime state directory to use (default: a fresh private one)")
    ap.add_argument("--default-root", action="store_true", help="let the runtime use its own default state directory")
    ap.add_argument("--save-tap", type=Path, help="write each test's raw TAP and stderr into this directory")
    ap.add_argument("--keep", action="store_true", help="keep each test's working directory")
    ap.add_argument("--workdir", type=Path, help="where the per-test working directories go (default: a temp dir)")
    ap.add_argument("-v", "--verbose", action="store_true", help="also print the test's stderr for failures")
    args = ap.parse_args(argv)

    if os.geteuid() != 0:
        print("validation.py: the suite creates containers: run as root", file=sys.stderr)
        return 2
    suite = args.suite.resolve()
    runtime = shutil.which(args.runtime) or args.runtime
    if not os.access(runtime, os.X_OK):
        print(f"validation.py: runtime {args.runtime!r} is not an executable", file=sys.stderr)
        return 2
    runtime = os.path.abspath(runtime)
    tests = find_tests(suite)
    if not tests:
        print(f"validation.py: no *.t test programs under {suite}", file=sys.stderr)
        return 2
    runtimetest = next((p for p in (suite / "runtimetest", suite / "cmd/runtimetest/runtimetest") if p.is_file()), None)
    if runtimetest is None:
        print(f"validation.py: {suite}/runtimetest missing (build it: make runtimetest)", file=sys.stderr)
        return 2
    if args.only:
        wanted = [n.strip().removesuffix(".t") for n in args.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in tests]
        if unknown:
            print(f"validation.py: no such test(s): {', '.join(unknown)}", file=sys.stderr)
            return 2
        tests = {n: tests[n] for n in wanted}
    for n in (n.strip().removesuffix(".t") for n in args.skip.split(",") if n.strip()):
        tests.pop(n, None)

    base = Path(tempfile.mkdtemp(prefix="ocirun-rtv-", dir=args.workdir))
    state_root: Path | None = None
    os.chmod(base, 0o755)
    try:
        rootfs = args.rootfs or (suite / ROOTFS_NAME)
        if not rootfs.is_file():
            rootfs = busybox_rootfs_tarball(base / ROOTFS_NAME)
            print(f"# {suite / ROOTFS_NAME} missing: using a busybox-static rootfs ({rootfs})")
        if args.default_root:
            state_root = None
        else:
            state_root = (args.root or base / "state").absolute()
            state_root.mkdir(parents=True, exist_ok=True)
            os.chmod(state_root, 0o700)
        wrapper = base / "runtime"
        write_wrapper(wrapper, runtime, state_root)
        rt = Runtime(runtime, state_root)
        print(f"# runtime {runtime}" + (f" --root {state_root}" if state_root else " (default root)"))
        print(f"# suite {suite}: {len(tests)} test program(s), rootfs {rootfs}")

        outcomes = []
        for name, binary in tests.items():
            o = run_test(name, binary, wrapper, rt, runtimetest, rootfs, base, args.timeout, args.keep,
                         args.save_tap)
            outcomes.append(o)
            report(o, args.verbose)

        passed = [o for o in outcomes if o.passed]
        failed = [o for o in outcomes if not o.passed]
        n_assert = sum(len(o.tap.assertions) for o in outcomes)
        n_afail = sum(len(o.tap.failed) for o in outcomes)
        n_skip = sum(len(o.tap.skipped) for o in outcomes)
        if failed:
            print("# failed: " + ", ".join(o.name for o in failed))
        print(f"# assertions: {n_assert - n_afail} ok, {n_afail} not ok, {n_skip} skipped, of {n_assert}")
        print(f"{len(passed)} passed, {len(failed)} failed")
        return 1 if failed else 0
    finally:
        if state_root is not None:  # a last sweep of the private state directory
            rt = Runtime(runtime, state_root)
            for cid in rt.containers():
                rt.force_delete(cid)
        if not args.keep and not _mounts_under(base):
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
