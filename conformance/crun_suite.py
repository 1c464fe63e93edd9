#!/usr/bin/env python3
"""Run crun's Python integration tests (tests/test_*.py) against any OCI runtime.

crun's tests drive the runtime named by $OCI_RUNTIME and copy the static helper named by
$INIT into every rootfs; each test file prints TAP (`ok N - NAME`, `#SKIP`, `not ok`). This
runner runs every test file of a crun checkout's tests/ directory against --runtime, reads
the TAP per test, attributes the harness's log lines to the test that printed them, prints
a table and totals, and saves the results (JSON, the raw TAP, the logs). --compare puts
several saved JSON files side by side, per test.

crun's harness calls the runtime with crun's command line: `--cgroup-manager cgroupfs` as a
global flag and `create/run --config config.json`. Unless --no-adapt is given, the runtime is
reached through a small generated adapter that drops those two (the bundle is the working
directory, so `--config config.json` is the default anyway) and turns `--cgroup-manager
systemd` into runc's `--systemd-cgroup`. Every other argument passes through unchanged.

Each test is classified by reading its source (and the helpers of its file it calls):
"n/a" when it relies on crun only (run.oci.* annotations, custom/wasm/krun handlers,
`--version` feature strings, crun-only flags, subcommands, help text or state files), else
"generic". test_mounts.py needs Python's libmount binding; when it is missing a small
stand-in is put on PYTHONPATH (--no-libmount-standin turns that off).

The harness removes its state directory before each test, even under running containers, so
after each test file the runner cleans up by itself: it kills (by PID, start time checked)
the inits the adapter recorded and the processes in cgroups named after recorded containers,
thawing frozen cgroups first, unmounts mounts under its scratch directory, and removes the
cgroups of those containers (names and linux.cgroupsPath) that did not exist before the run.
Run as root. Standard library only.

    crun_suite.py --tests CRUN/tests --runtime /usr/sbin/runc --save results-runc
    crun_suite.py --tests CRUN/tests --runtime /usr/bin/crun --no-adapt --only test_pid.py:pid -v
    crun_suite.py --compare results-crun.json results-runc.json results-ocirun.json
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import proc_group  # noqa: E402  (conformance/ is the script's directory)

# --------------------------------------------------------------------------- classification

# (regex over a test's source, reason). The first that matches makes the test "n/a".
NA_MARKERS = [
    (r"run\.oci\.handler|--handler|custom_handler|krun|wasm", "crun custom handler (run.oci.handler / wasm / krun)"),
    (r"run\.oci\.", "crun-only run.oci.* annotation"),
    (r"get_crun_feature_string|['\"]--version['\"]", "gated on or checks crun's --version output"),
    (r"cgroup_manager\s*=\s*['\"]disabled['\"]", "crun's --cgroup-manager=disabled"),
    (r"relative_config_path\s*=\s*['\"](?!config\.json['\"])", "crun's create --config with another path"),
    (r"['\"]mounts['\"]\s*,\s*['\"](add|remove|--help)['\"]", "crun-only `mounts` subcommand"),
    (r"['\"]--regex['\"]", "crun-only --regex flag"),
    (r"--log=syslog:|['\"]--log=invalid:", "crun-only --log=syslog:/journald: drivers"),
    (r"Usage: crun ", "checks crun's own --help text"),
    (r"get_tests_root_status\(\)", "reads crun's state files (ROOT/ID/status)"),
]

# Tests whose source the markers miss but which test crun only. name -> reason.
NA_EXTRA: dict[str, str] = {}


def _module_functions(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def _all_tests(tree: ast.Module) -> list[tuple[str, str]]:
    """[(test name, function name)] from the module's `all_tests = {...}`, in order."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "all_tests" for t in node.targets):
            if isinstance(node.value, ast.Dict):
                out = []
                for k, v in zip(node.value.keys, node.value.values):
                    if isinstance(k, ast.Constant) and isinstance(k.value, str):
                        fn = v.id if isinstance(v, ast.Name) else ast.unparse(v)
                        out.append((k.value, fn))
                return out
    return []


def scan_file(path: Path) -> list[dict]:
    """The tests of one file, each with its classification."""
    src = path.read_text()
    tree = ast.parse(src)
    funcs = _module_functions(tree)

    def closure(name: str) -> str:
        seen, todo, parts = set(), [name], []
        while todo:
            n = todo.pop()
            if n in seen or n not in funcs:
                continue
            seen.add(n)
            parts.append(ast.get_source_segment(src, funcs[n]) or "")
            for sub in ast.walk(funcs[n]):
                if isinstance(sub, ast.Name) and sub.id in funcs:
                    todo.append(sub.id)
        return "\n".join(parts)

    tests = []
    for tname, fname in _all_tests(tree):
        body = closure(fname)
        reason = NA_EXTRA.get(f"{path.name}:{tname}")
        if reason is None:
            for rx, why in NA_MARKERS:
                if re.search(rx, body):
                    reason = why
                    break
        tests.append({"file": path.name, "test": tname, "class": "n/a" if reason else "generic",
                      "na_reason": reason or ""})
    return tests


# --------------------------------------------------------------------------- adapter

ADAPTER = r"""#!{python} -IS
# generated by crun_suite.py: crun's command line -> runc's. For create and run --detach it
# also records the container's id and init pid (from `state`), so leftovers can be removed.
import os, sys, signal, json, subprocess
REAL = {real!r}
LEDGER = {ledger!r}
ADAPT = {adapt!r}
VALUED = {{"--root", "--log", "--log-format", "--criu", "--rootless", "--cgroup-manager"}}
args = sys.argv[1:]
out, i, sub, root = [], 0, None, None
while i < len(args):
    a = args[i]
    if sub is None and not a.startswith("-"):
        sub = a
        out.append(a)
        i += 1
        break
    name, eq, val = a.partition("=")
    if name in VALUED and not eq and i + 1 < len(args):
        val, i = args[i + 1], i + 1
    if name == "--root":
        root = val
    if ADAPT and name == "--cgroup-manager":
        if val == "systemd":
            out.append("--systemd-cgroup")
        elif val != "cgroupfs":
            out += ["--cgroup-manager", val]
    elif name in VALUED and not eq:
        out += [a, val]
    else:
        out.append(a)
    i += 1
rest = args[i:]
if ADAPT and sub in ("create", "run"):
    r, j = [], 0
    while j < len(rest):
        a = rest[j]
        if a == "--config" and j + 1 < len(rest) and rest[j + 1] == "config.json":
            j += 2
            continue
        if a == "--config=config.json":
            j += 1
            continue
        r.append(a)
        j += 1
    rest = r
cid = rest[-1] if sub in ("create", "run") and rest and not rest[-1].startswith("-") else None
track = cid is not None and (sub == "create" or "--detach" in rest or "-d" in rest)
if cid is not None:
    try:
        bundle, conf, j = ".", "config.json", 0
        while j < len(rest) - 1:
            if rest[j] in ("--bundle", "-b"):
                bundle = rest[j + 1]
            elif rest[j] in ("--config", "-f"):
                conf = rest[j + 1]
            j += 1
        for a in rest:
            if a.startswith("--bundle="):
                bundle = a.split("=", 1)[1]
            elif a.startswith("--config="):
                conf = a.split("=", 1)[1]
        try:
            with open(os.path.join(bundle, conf)) as f:
                cgpath = (json.load(f).get("linux") or {{}}).get("cgroupsPath") or ""
        except Exception:
            cgpath = ""
        with open(LEDGER, "a") as f:
            f.write("id %s\n" % cid)
            if cgpath and ":" not in cgpath and " " not in cgpath:
                f.write("cg %s\n" % cgpath)
    except OSError:
        pass
if not track:
    os.execv(REAL, [REAL] + out + rest)
child = os.fork()
if child == 0:
    os.execv(REAL, [REAL] + out + rest)
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGQUIT):
    signal.signal(s, lambda n, f: os.kill(child, n))
while True:
    try:
        _, status = os.waitpid(child, 0)
        break
    except InterruptedError:
        continue
try:
    st = subprocess.run([REAL] + (["--root", root] if root else []) + ["state", cid], capture_output=True,
                        stdin=subprocess.DEVNULL, timeout=30)
    pid = json.loads(st.stdout).get("pid") or 0
    if pid > 0:
        start = open("/proc/%d/stat" % pid).read().rpartition(")")[2].split()[19]
        with open(LEDGER, "a") as f:
            f.write("pid %d %s\n" % (pid, start))
except Exception:
    pass
if os.WIFSIGNALED(status):
    signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
    os.kill(os.getpid(), os.WTERMSIG(status))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def write_adapter(path: Path, real: str, ledger: Path, adapt: bool) -> None:
    path.write_text(ADAPTER.format(python=sys.executable, real=real, ledger=str(ledger), adapt=adapt))
    path.chmod(0o755)


# test_mounts.py needs Python's libmount binding (util-linux's pylibmount), which Debian does not
# package; without it the file prints `1..0`. This stand-in has what the tests use:
# Table(mountinfo_file).find_target(path) -> the top-most mount there, or None, with
# .target, .source, .fstype, .vfs_options (per-mount options) and .fs_options (superblock ones).
LIBMOUNT_STANDIN = r"""# stand-in for util-linux's libmount binding, written by crun_suite.py
import os
def _unescape(s):
    return s.encode().decode("unicode_escape")
class Fs:
    def __init__(self, line):
        pre, _, post = line.partition(" - ")
        f, g = pre.split(), post.split()
        self.id, self.parent = int(f[0]), int(f[1])
        self.root, self.target, self.vfs_options = _unescape(f[3]), _unescape(f[4]), f[5]
        self.propagation = " ".join(f[6:])
        self.fstype = g[0] if g else None
        self.source = _unescape(g[1]) if len(g) > 1 else None
        self.fs_options = g[2] if len(g) > 2 else None
        self.options = ",".join(x for x in (self.vfs_options, self.fs_options) if x)
class Table:
    def __init__(self, path=None):
        self.fs = []
        if path:
            with open(path) as f:
                self.fs = [Fs(l) for l in f.read().splitlines() if " - " in l]
    def find_target(self, path, direction=None):
        path = os.path.normpath(path)
        for m in reversed(self.fs):
            if os.path.normpath(m.target) == path:
                return m
        return None
"""


def libmount_path(scratch: Path, python: str) -> str | None:
    """A directory to put on PYTHONPATH with the libmount stand-in, if the real one is missing."""
    if subprocess.run([python, "-c", "import libmount"], capture_output=True).returncode == 0:
        return None
    d = scratch / "pylib"
    d.mkdir(exist_ok=True)
    (d / "libmount.py").write_text(LIBMOUNT_STANDIN)
    return str(d)


# --------------------------------------------------------------------------- cleanup

CGROOT = Path("/sys/fs/cgroup")
# cgroups that crun's tests themselves create on the host
HOST_CGROUPS = [CGROOT / "freezer/frozen"]


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return None


def _thaw_and_collect(cg: Path, pids: set[int]) -> None:
    try:
        pids.update(int(x) for x in (cg / "cgroup.procs").read_text().split())
    except (OSError, ValueError):
        pass
    for name, val in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
        f = cg / name
        if f.exists():
            try:
                f.write_text(val)
            except OSError:
                pass


def _pid_cgroups(pid: int) -> list[Path]:
    out = []
    try:
        for ln in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            _, ctrls, path = ln.split(":", 2)
            for c in (ctrls.split(",") if ctrls else ["unified"]):
                c = c.replace("name=", "")
                out.append(CGROOT / c / path.lstrip("/"))
    except (OSError, ValueError):
        pass
    return out


def _unmount_under(work: Path) -> None:
    prefix = str(work) + "/"
    for _ in range(3):
        try:
            lines = Path("/proc/self/mountinfo").read_text().splitlines()
        except OSError:
            return
        mps = [ln.split()[4].encode().decode("unicode_escape") for ln in lines]
        mps = [m for m in mps if m.startswith(prefix)]
        if not mps:
            return
        for mp in sorted(mps, key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL)


def hierarchies() -> list[Path]:
    """The mount points of the cgroup hierarchies under /sys/fs/cgroup."""
    out = []
    try:
        for ln in Path("/proc/self/mountinfo").read_text().splitlines():
            f = ln.split(" - ")
            if len(f) == 2 and f[1].split()[0] in ("cgroup", "cgroup2"):
                mp = Path(f[0].split()[4])
                if str(mp).startswith(str(CGROOT)):
                    out.append(mp)
    except OSError:
        pass
    return out


def cgroup_snapshot() -> set[Path]:
    """Every cgroup directory down to depth 3, before the run: these are never removed."""
    seen = set()
    for h in hierarchies():
        for top, dirs, _ in os.walk(h):
            depth = len(Path(top).relative_to(h).parts)
            if depth >= 3:
                dirs[:] = []
            seen.add(Path(top))
    return seen


def cleanup(work: Path, ledger: Path, host_cgroups_before: set[Path]) -> list[str]:
    """Kill what the tests left running, then remove their cgroups and mounts. Returns notes."""
    notes = []
    try:
        entries = [l.split() for l in ledger.read_text().splitlines()]
        ledger.write_text("")
    except OSError:
        entries = []
    ids = {e[1] for e in entries if e[0] == "id" and len(e[1]) >= 6}
    pids: set[int] = set()
    for e in entries:
        if e[0] == "pid" and _start_time(int(e[1])) == e[2]:
            pids.add(int(e[1]))
    cgs = []
    if ids:
        for top, dirs, _ in os.walk(CGROOT):
            for d in dirs:
                if any(i in d for i in ids):
                    cgs.append(Path(top) / d)
    for e in entries:  # the containers' linux.cgroupsPath, and its parents created by the run
        if e[0] == "cg":
            rel = e[1].strip("/")
            for h in hierarchies():
                c = h / rel
                while c != h:
                    if c.is_dir() and c not in host_cgroups_before:
                        cgs.append(c)
                    c = c.parent
    new_host = [c for c in HOST_CGROUPS if c.exists() and c not in host_cgroups_before]
    for cg in cgs + new_host:
        for top, _, _ in os.walk(cg):
            _thaw_and_collect(Path(top), pids)
    for pid in list(pids):  # a leftover in a frozen cgroup elsewhere cannot die until thawed
        for cg in _pid_cgroups(pid):
            f = cg / "freezer.state"
            try:
                if f.exists() and f.read_text().strip() != "THAWED":
                    f.write_text("THAWED")
            except OSError:
                pass
    pids.discard(os.getpid())
    for pid in sorted(pids):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    if pids:
        notes.append(f"killed {len(pids)} leftover process(es)")
        deadline = time.time() + 5
        while time.time() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
            time.sleep(0.05)
    _unmount_under(work)
    removed = 0
    for cg in sorted(cgs + new_host, key=lambda p: len(str(p)), reverse=True):
        for top, _, _ in os.walk(cg, topdown=False):
            try:
                os.rmdir(top)
                removed += 1
            except OSError:
                pass
    if removed:
        notes.append(f"removed {removed} cgroup(s)")
    return notes


# --------------------------------------------------------------------------- running

TAP = re.compile(r"^(not ok|ok) (\d+) - (.*?)(\s+#.*)?$")
BOILER = re.compile(r"Test environment:|Working directory:|Test root:|TMPDIR:|Traceback:|Config file saved|"
                    r"temporary directory will|Container ID:|^# *$|failed with return code|Exception type:|"
                    r"took [0-9.]+s \(>")


def parse_output(text: str) -> tuple[dict, dict]:
    """TAP results and the log lines of each test, from a test file's merged output."""
    results, logs, pending = {}, {}, []
    last = None
    for line in text.splitlines():
        m = TAP.match(line)
        if m:
            status, name, rest = m.group(1), m.group(3), m.group(4) or ""
            if status == "ok" and re.search(r"#\s*SKIP", rest, re.I):
                skip = re.search(r"#\s*SKIP\s*(.*?)(?:\s*#\s*[0-9.]+s)?$", rest, re.I)
                results[name] = ("skip", (skip.group(1) if skip else "").strip())
            else:
                results[name] = ("ok" if status == "ok" else "fail", "")
            logs.setdefault(name, []).extend(pending)
            pending, last = [], name
            continue
        m = re.search(r"Test '([^']+)' failed", line)
        if m:
            logs.setdefault(m.group(1), []).append(line)
        elif last and re.search(r"Test environment:", line) and not pending:
            logs.setdefault(last, []).append(line)
        elif re.match(r"^1\.\.\d+$", line):
            continue
        else:
            pending.append(line)
    if pending:
        logs.setdefault("__trailing__", []).extend(pending)
    return results, logs


NOISE = re.compile(r"Command failed:|^Return code:|returned non-zero exit status|crun command failed:|"
                   r"^Container ID:|^Status : FAIL|^Process return code:|^Failed command:")
ERRWORD = re.compile(r"error|fail|denied|not permitted|invalid|unknown|unsupported|not supported|no such|"
                     r"ocirun:|runc|crun", re.I)


def digest(lines: list[str], limit: int = 300) -> str:
    """A short failure message from a test's log lines: the runtime's own error if it printed
    one, else what the test logged, else the exception."""
    raw = [l.strip() for l in lines if l.strip() and not l.startswith("#")]
    logged = [l.lstrip("# ").strip() for l in lines if l.startswith("#")]
    logged = [l for l in logged if l and not BOILER.search(l)]
    exc = [l for l in logged if l.startswith("Exception message:")]
    for key in ("Output:", "Process stderr:", "Process output:"):
        for l in logged:
            if l.startswith(key) and l[len(key):].strip() not in ("", "b''"):
                return _short(l[len(key):].strip(), limit)
    errs = [l for l in raw if ERRWORD.search(l)]
    if errs:
        return _short(" | ".join(dict.fromkeys(errs[-2:])), limit)
    msgs = [l for l in logged if not NOISE.search(l) and not l.startswith(
        ("File ", "Traceback", "^", "raise ", "return ", "Exception message:", "Working directory:"))
        and not re.match(r"^[\w.]+Error:", l)]
    if msgs:
        return _short(" | ".join(msgs[-2:]), limit)
    if exc:
        return _short(exc[-1], limit)
    if raw:
        return _short(" | ".join(raw[-2:]), limit)
    return ""


def _short(text: str, limit: int) -> str:
    text = re.sub(r"/[^\s'\"]*/crun-suite-[^/\s]+/[^/\s]+/(\.testsuite-run-\d+/)?", "$W/", text)
    return text[:limit]


def run_file(args, path: Path, names: list[str] | None, env: dict, work: Path, timeout: float):
    e = dict(env)
    if names is not None:
        e["RUN_TESTS"] = " ".join(names)
    t0 = time.time()
    p = subprocess.Popen([args.python, str(path)], cwd=work, env=e, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    out, timed_out = proc_group.finish(p, timeout)
    return out.decode(errors="replace"), p.returncode, timed_out, time.time() - t0


def select(tests: list[dict], only: list[str], skip: list[str]) -> list[dict]:
    def hit(t, pats):
        return any(p in (t["file"], t["file"][:-3], t["test"], f"{t['file']}:{t['test']}",
                         f"{t['file'][:-3]}:{t['test']}") for p in pats)
    if only:
        tests = [t for t in tests if hit(t, only)]
    if skip:
        tests = [t for t in tests if not hit(t, skip)]
    return tests


def run_suite(args) -> int:
    tests_dir = args.tests.resolve()
    files = sorted(tests_dir.glob("test_*.py"))
    if not files:
        sys.exit(f"no test_*.py in {tests_dir}")
    init = (args.init or tests_dir / "init").resolve()
    if not init.exists():
        sys.exit(f"no init helper at {init}: build it from tests/init.c (see crun_suite.md)")
    runtime = shutil.which(args.runtime) or args.runtime
    runtime = str(Path(runtime).resolve())
    only = [x for s in args.only for x in s.split(",") if x]
    skip = [x for s in args.skip for x in s.split(",") if x]

    catalogue = []
    for f in files:
        catalogue += scan_file(f)
    chosen = select(catalogue, only, skip)
    by_file: dict[str, list[dict]] = {}
    for t in chosen:
        by_file.setdefault(t["file"], []).append(t)

    scratch = Path(tempfile.mkdtemp(prefix="crun-suite-", dir=args.workdir))
    # mkdtemp makes it 0700; the harness's chown_rootfs_to tests need a container user other
    # than root to reach the rootfs below it, as it would below /tmp
    scratch.chmod(0o755)
    ledger = scratch / "created-ids"
    ledger.write_text("")
    host_before = {c for c in HOST_CGROUPS if c.exists()} | cgroup_snapshot()
    adapter = scratch / "runtime"
    write_adapter(adapter, runtime, ledger, not args.no_adapt)
    env = dict(os.environ, OCI_RUNTIME=str(adapter), INIT=str(init), LANG="C", PYTHONUNBUFFERED="1",
               PYTHONDONTWRITEBYTECODE="1", CGROUP_MANAGER=args.cgroup_manager)
    env.pop("RUN_TESTS", None)
    lm = None if args.no_libmount_standin else libmount_path(scratch, args.python)
    if lm:
        env["PYTHONPATH"] = lm + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")

    version = subprocess.run([runtime, "--version"], capture_output=True, text=True).stdout.strip()
    name = args.name or Path(runtime).name
    print(f"# runtime {runtime} ({version.splitlines()[0] if version else '?'}), adapter "
          f"{'off' if args.no_adapt else 'on'}, libmount {'stand-in' if lm else 'real'}, tests {tests_dir}", flush=True)

    raw_tap, raw_log = [], []
    results = []
    for fname, ftests in by_file.items():
        path = tests_dir / fname
        work = scratch / fname[:-3]
        work.mkdir()
        work.chmod(0o755)
        env["TMPDIR"] = str(work)
        whole = len(ftests) == sum(1 for t in catalogue if t["file"] == fname)
        names = None if whole else [t["test"] for t in ftests]
        out, rc, to, dur = run_file(args, path, names, env, work, args.file_timeout)
        notes = cleanup(work, ledger, host_before)
        res, logs = parse_output(out)
        raw_tap.append(f"### {fname} rc={rc}{' TIMEOUT' if to else ''} {dur:.1f}s\n{out}")
        missing = [t["test"] for t in ftests if t["test"] not in res]
        if missing and (to or rc not in (0, None)):
            # the file died or hung: run what it left out one by one
            for m in missing:
                if " " in m:  # RUN_TESTS splits on blanks: such a test cannot be run alone
                    continue
                out1, rc1, to1, d1 = run_file(args, path, [m], env, work, args.timeout)
                notes += cleanup(work, ledger, host_before)
                raw_tap.append(f"### {fname}:{m} rc={rc1}{' TIMEOUT' if to1 else ''} {d1:.1f}s\n{out1}")
                r1, l1 = parse_output(out1)
                if m in r1:
                    res[m] = r1[m]
                elif to1:
                    res[m] = ("timeout", f"no result within {args.timeout:.0f}s")
                logs.setdefault(m, []).extend(l1.get(m, []) + l1.get("__trailing__", []))
        for t in ftests:
            status, note = res.get(t["test"], ("missing", "no TAP line"))
            lines = logs.get(t["test"], [])
            msg = note if status != "fail" else digest(lines)
            results.append(dict(t, status=status, message=msg, log=lines))
        shutil.rmtree(work, ignore_errors=True)
        counts = {s: sum(1 for r in results if r["file"] == fname and r["status"] == s)
                  for s in ("ok", "fail", "skip", "timeout", "missing")}
        odd = counts["timeout"] + counts["missing"]
        print(f"# {fname:28} ok {counts['ok']:3}  fail {counts['fail']:3}  skip {counts['skip']:3}  "
              + (f"no result {odd:3}  " if odd else "")
              + f"{dur:6.1f}s{'  TIMEOUT' if to else ''}" + (f"  cleanup: {', '.join(notes)}" if notes else ""), flush=True)

    shutil.rmtree(scratch, ignore_errors=True)
    print_table(results, args.verbose)
    summary = totals(results)
    print_totals(summary)
    if args.save:
        base = Path(args.save)
        base.parent.mkdir(parents=True, exist_ok=True)
        doc = {"name": name, "runtime": runtime, "version": version, "adapted": not args.no_adapt,
               "libmount": "stand-in" if lm else "real",
               "tests": str(tests_dir), "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "totals": summary, "results": results}
        Path(f"{base}.json").write_text(json.dumps(doc, indent=1))
        Path(f"{base}.tap").write_text("\n".join(raw_tap))
        print(f"# saved {base}.json {base}.tap")
    return 1 if summary["generic"]["fail"] + summary["generic"]["timeout"] + summary["generic"]["missing"] else 0


def totals(results: list[dict]) -> dict:
    out = {}
    for cls in ("generic", "n/a", "all"):
        rs = [r for r in results if cls == "all" or r["class"] == cls]
        out[cls] = {s: sum(1 for r in rs if r["status"] == s) for s in ("ok", "fail", "skip", "timeout", "missing")}
        out[cls]["total"] = len(rs)
    return out


def print_totals(summary: dict) -> None:
    for cls in ("generic", "n/a", "all"):
        s = summary[cls]
        print(f"# {cls:8} {s['total']:4} tests: {s['ok']} passed, {s['fail']} failed, {s['skip']} skipped"
              + (f", {s['timeout']} timed out" if s["timeout"] else "")
              + (f", {s['missing']} without result" if s["missing"] else ""))


def print_table(results: list[dict], verbose: bool) -> None:
    w = max([len(f"{r['file'][:-3]}:{r['test']}") for r in results] + [10])
    for r in results:
        label = {"ok": "ok", "fail": "not ok", "skip": "skip", "timeout": "timeout", "missing": "missing"}[r["status"]]
        extra = r["message"] if r["status"] != "ok" else ""
        if r["class"] == "n/a":
            extra = f"[n/a: {r['na_reason']}] {extra}".strip()
        print(f"{label:8} {r['file'][:-3] + ':' + r['test']:{w}}  {extra}")
        if verbose and r["status"] == "fail":
            for l in r["log"]:
                print(f"           {l}")


# --------------------------------------------------------------------------- compare

def compare(paths: list[str], show_all: bool, tests_dir: Path | None = None) -> int:
    docs = [json.loads(Path(p).read_text()) for p in paths]
    if tests_dir:  # classify again with this runner's current rules
        cat = {}
        for f in sorted(tests_dir.glob("test_*.py")):
            for t in scan_file(f):
                cat[(t["file"], t["test"])] = t
        for d in docs:
            for r in d["results"]:
                t = cat.get((r["file"], r["test"]))
                if t:
                    r["class"], r["na_reason"] = t["class"], t["na_reason"]
    names = [d.get("name") or Path(p).stem for d, p in zip(docs, paths)]
    table: dict[tuple[str, str], dict] = {}
    order = []
    cls = {}
    for n, d in zip(names, docs):
        for r in d["results"]:
            k = (r["file"], r["test"])
            if k not in table:
                table[k] = {}
                order.append(k)
            table[k][n] = r
            cls[k] = r["class"]
    short = {"ok": "ok", "fail": "FAIL", "skip": "skip", "timeout": "TIMEOUT", "missing": "-"}
    w = max([len(f"{f[:-3]}:{t}") for f, t in order] + [10])
    cw = max(len(n) for n in names) + 2
    print(f"{'test':{w}}  {'class':7}" + "".join(f"{n:>{cw}}" for n in names))
    for k in order:
        row = [table[k].get(n, {}).get("status", "-") for n in names]
        if not show_all and len(set(row)) == 1:
            continue
        print(f"{k[0][:-3] + ':' + k[1]:{w}}  {cls[k]:7}" + "".join(f"{short.get(s, s):>{cw}}" for s in row))
    print()
    for n, d in zip(names, docs):
        g = totals(d["results"])["generic"]
        print(f"# {n:{cw}} generic: {g['ok']} passed, {g['fail']} failed, {g['skip']} skipped"
              + (f", {g['timeout']} timed out" if g["timeout"] else "") + f" (of {g['total']})")
    # what the last file fails that an earlier one passes
    if len(names) > 1:
        last = names[-1]
        print(f"\n# generic tests that {last} fails and another passes:")
        for k in order:
            if cls[k] != "generic":
                continue
            mine = table[k].get(last)
            others = [n for n in names[:-1] if table[k].get(n, {}).get("status") == "ok"]
            if mine and mine["status"] in ("fail", "timeout", "missing") and others:
                msg = digest(mine["log"]) if mine["status"] == "fail" else mine["message"]
                print(f"  {k[0][:-3]}:{k[1]}  (ok in {','.join(others)}): {msg}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tests", type=Path, help="crun's tests/ directory (holding test_*.py, tests_utils.py, init)")
    ap.add_argument("--runtime", help="the runtime under test, e.g. /usr/sbin/runc")
    ap.add_argument("--init", type=Path, help="the static init helper (default: TESTS/init)")
    ap.add_argument("--name", help="the name saved with the results (default: the runtime's file name)")
    ap.add_argument("--only", action="append", default=[], help="FILE, TEST or FILE:TEST, comma-separated")
    ap.add_argument("--skip", action="append", default=[], help="as --only, tests to leave out")
    ap.add_argument("--save", help="write PREFIX.json (per-test results) and PREFIX.tap (raw output)")
    ap.add_argument("--file-timeout", type=float, default=300.0, help="seconds for one test file (default 300)")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="seconds for one test, when a file that hung or died is rerun test by test (default 120)")
    ap.add_argument("--no-adapt", action="store_true", help="pass crun's command line to the runtime unchanged")
    ap.add_argument("--no-libmount-standin", action="store_true",
                    help="don't provide the libmount stand-in when Python's libmount is missing")
    ap.add_argument("--cgroup-manager", default="cgroupfs", help="CGROUP_MANAGER for the harness (default cgroupfs)")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the test files")
    ap.add_argument("--workdir", help="where the scratch directory goes (default: $TMPDIR)")
    ap.add_argument("--list", action="store_true", help="list the tests and their classification, run nothing")
    ap.add_argument("--compare", nargs="+", metavar="JSON",
                    help="compare saved results, per test (with --tests: classify them again)")
    ap.add_argument("--all", action="store_true", help="with --compare: also rows where all agree")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each failed test's log lines")
    args = ap.parse_args()
    if args.compare:
        return compare(args.compare, args.all, args.tests)
    if not args.tests:
        ap.error("--tests is required (or --compare)")
    if args.list:
        for f in sorted(args.tests.glob("test_*.py")):
            for t in scan_file(f):
                print(f"{t['class']:8} {t['file'][:-3]}:{t['test']}  {t['na_reason']}")
        return 0
    if not args.runtime:
        ap.error("--runtime is required")
    if os.geteuid() != 0:
        print("# warning: not root; crun's tests then run their rootless variants", file=sys.stderr)
    return run_suite(args)


if __name__ == "__main__":
    sys.exit(main())
