"""Import budget of the hot-path commands: no heavy module on a path that doesn't need it.

Every ocirun command pays CPython's start-up and then its imports; for `state`, `kill`,
`delete` and `ps` the target is CPython's floor plus 2 ms (issue 7), so one stray `import re`
(≈ 5 ms with enum) or `import subprocess` (≈ 10-25 ms here, it pulls in locale, re, enum,
threading, selectors) is the whole budget several times over.

Each test runs one hot-path command the way the installed script runs (its interpreter from
the `#!` line with `-I -S`, the script itself, which puts the installed package on sys.path)
with `-X importtime`, against a real container made by tests/conftest.py's fixtures, with the
plain default config (`ocirun spec`: no hooks, no seccomp, no console socket), and reads the
imported modules from stderr. It fails when

  * a module in FORBIDDEN (or a submodule of one) is imported, naming the import chain from
    -X importtime's tree (a chain starting at depth 0 was imported from inside a function: the
    runtime modules whose source imports it are named too), or
  * a module outside the runtime package, and not already imported by the bare interpreter
    (`python -I -S -c pass`), costs more than BUDGET_US cumulative, or a runtime module more
    than BUDGET_US by itself, taking the smallest figure over REPEATS runs (import times on a
    busy two-core machine jitter by milliseconds; the minimum is the cost).

docs/benchmarks.md lists what each command imports today. Commands whose options legitimately
need more (create/run with hooks run them with subprocess; a console socket needs socket) are
tested with the default config only. Needs root and the installed ocirun (scripts/setup); it is
skipped when the runtime under test is not a Python script (OCIRUN_TEST_RUNTIME=runc).
"""
from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from launched import command_of

FORBIDDEN = ("jsonschema", "pyroute2", "re", "json", "enum", "typing", "argparse", "subprocess", "socket",
             "dataclasses", "inspect", "ctypes", "logging", "importlib.metadata", "pkg_resources",
             "fastjsonschema", "os", "jeepney", "ocirun.cgroups.systemd")
# Runtime modules the default config (no hooks, no terminal) has no use for, per command:
# each is imported only by the option that needs it.
NOT_NEEDED = {
    "create": ("ocirun.hooks", "ocirun.console", "ocirun.exec", "ocirun.cgroups.freezer"),
    "run": ("ocirun.hooks", "ocirun.console", "ocirun.exec", "ocirun.cgroups.freezer"),
}
BUDGET_US = 2000
REPEATS = 3
COMMANDS = ("state", "kill", "delete", "start", "create", "ps", "ps-json", "run")
LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)\s*$")


# --- running a command under -X importtime --------------------------------------------------

@pytest.fixture(scope="module")
def command_line(runtime_bin) -> tuple[str, str]:
    found = command_of(runtime_bin)
    if found is None:
        pytest.skip(f"{runtime_bin} is not ocirun's launcher or a Python script: no import budget to check")
    return found


@pytest.fixture(scope="module")
def python(command_line) -> str:
    return command_line[0]


class Imports:
    """The -X importtime tree of one command: name -> (self us, cumulative us, depth), the
    order of the lines, and each module's parent (None for depth 0)."""

    def __init__(self, text: str):
        self.modules: dict[str, tuple[int, int, int]] = {}
        self.parent: dict[str, str | None] = {}
        stack: list[tuple[str, int]] = []  # lines are printed children first (post-order)
        for line in text.splitlines():
            m = LINE.match(line)
            if not m:
                continue
            name, depth = m[4], len(m[3]) // 2
            self.modules[name] = (int(m[1]), int(m[2]), depth)
            while stack and stack[-1][1] > depth:
                child, _ = stack.pop()
                self.parent[child] = name
            stack.append((name, depth))
        for name, _ in stack:
            self.parent[name] = None

    def chain(self, name: str) -> list[str]:
        out = [name]
        while self.parent.get(out[-1]):
            out.append(self.parent[out[-1]])
        return out[::-1]


def _importtime(python: str, argv: list[str], tmp: Path, tag: str) -> tuple[int, Imports, str]:
    """Run argv under `python -I -S -X importtime`; stdio goes to files (a container started by
    the command inherits them, and would keep a pipe open)."""
    err_p, out_p = tmp / f"{tag}.importtime", tmp / f"{tag}.out"
    with open(err_p, "w+") as err, open(out_p, "w") as out:
        rc = subprocess.run([python, "-I", "-S", "-X", "importtime", *argv], stdin=subprocess.DEVNULL,
                            stdout=out, stderr=err, timeout=60).returncode
        err.seek(0)
        text = err.read()
    return rc, Imports(text), text


@pytest.fixture(scope="module")
def baseline(python) -> set[str]:
    """What the bare interpreter imports by itself: CPython's floor, not ocirun's budget."""
    r = subprocess.run([python, "-I", "-S", "-X", "importtime", "-c", "pass"], capture_output=True,
                       text=True, check=True)
    return set(Imports(r.stderr).modules)


def _runtime_sources(runtime_bin: str) -> Path | None:
    """The installed runtime package, found as the script finds it (PREFIX/lib/pythonX.Y/...)."""
    prefix = Path(os.path.realpath(runtime_bin)).parent.parent
    for d in sorted(prefix.glob("lib/python*/*-packages/ocirun")):
        return d
    return None


def _who_imports(pkg: Path | None, module: str) -> list[str]:
    if pkg is None:
        return []
    top = re.escape(module)
    pat = re.compile(rf"^\s*(import {top}\b|from {top} import|from {top}\.\S+ import)", re.M)
    hits = []
    for f in sorted(pkg.rglob("*.py")):
        text = f.read_text(errors="replace")
        for m in pat.finditer(text):
            lineno = text.count("\n", 0, m.start()) + 1
            hits.append(f"{f.relative_to(pkg.parent)}:{lineno}: {m[0].strip()}")
    return hits


def _forbidden(name: str) -> str | None:
    for f in FORBIDDEN:
        if name == f or name.startswith(f + "."):
            return f
    return None


# --- the commands ------------------------------------------------------------------------

def _wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return
        except OSError:
            return
        time.sleep(0.01)
    raise AssertionError(f"pid {pid} still running after {timeout}s")


def _measure(command: str, *, rt, bundle, new_id, command_line, tmp_path) -> list[Imports]:
    """Run `command` REPEATS times under -X importtime (each against a fresh container where it
    needs one; the other steps run plainly through the rt fixture); return the trees."""
    trees = []
    root = ["--root", str(rt.state_root)]
    python, script = command_line
    base = [script, *root]
    sleeper = bundle(["/bin/sleep", "60"])
    for i in range(REPEATS):
        tag = f"{command}-{i}"
        cid = new_id()
        if command == "run":
            b = bundle(["/bin/true"])
            argv = [*base, "run", "--bundle", str(b), cid]
        elif command == "create":
            argv = [*base, "create", "--bundle", str(sleeper), "--pid-file", str(tmp_path / f"{cid}.pid"), cid]
        else:
            rt("create", "--bundle", sleeper, "--pid-file", tmp_path / f"{cid}.pid", cid)
            argv = {"state": [*base, "state", cid], "ps": [*base, "ps", cid],
                    "ps-json": [*base, "ps", "--format", "json", cid], "start": [*base, "start", cid],
                    "kill": [*base, "kill", cid, "KILL"], "delete": [*base, "delete", cid]}[command]
        if command == "delete":
            pid = int((tmp_path / f"{cid}.pid").read_text())
            rt("kill", cid, "KILL")
            _wait_gone(pid)
        rc, tree, text = _importtime(python, argv, tmp_path, tag)
        assert rc == 0, f"{' '.join(argv)} exited {rc}:\n" + "\n".join(
            ln for ln in text.splitlines() if not ln.startswith("import time:"))
        trees.append(tree)
        # leave nothing behind (the leak guard checks)
        if command not in ("run", "delete"):
            pid = int((tmp_path / f"{cid}.pid").read_text())
            if command != "kill":
                rt("kill", cid, "KILL")
            _wait_gone(pid)
            rt("delete", cid)
    return trees


@pytest.mark.parametrize("command", COMMANDS)
def test_import_budget(command, rt, bundle, new_id, runtime_bin, command_line, baseline, tmp_path):
    trees = _measure(command, rt=rt, bundle=bundle, new_id=new_id, command_line=command_line,
                     tmp_path=tmp_path)
    problems = []
    pkg = None
    # 1. Forbidden modules, with the chain that brought each one in (from the first run).
    seen: dict[str, Imports] = {}
    for tree in trees:
        for name in tree.modules:
            if name not in baseline and _forbidden(name):
                seen.setdefault(name, tree)
    heads = {}
    for name, tree in seen.items():
        chain = tree.chain(name)
        # report each forbidden module once, at the outermost forbidden point of its chain
        outer = next(m for m in chain if _forbidden(m))
        heads.setdefault(outer, chain[:chain.index(outer) + 1])
    for outer, chain in heads.items():
        pkg = pkg or _runtime_sources(runtime_bin)
        cum = min(t.modules[outer][1] for t in trees if outer in t.modules)
        under = [seen[n].chain(n) for n in sorted(seen, key=lambda n: len(seen[n].chain(n))) if n != outer and n in FORBIDDEN and outer in seen[n].chain(n)]
        what = f"{' -> '.join(chain)} ({cum / 1000:.1f} ms cumulative)"
        if under:
            what += "; it brings in " + ", ".join(' -> '.join(c[c.index(outer):]) for c in under)
        if len(chain) == 1 or not chain[0].startswith("ocirun"):
            who = _who_imports(pkg, chain[0])
            if who:
                what += ("\n      at the top of the import tree: imported by bin/ocirun itself or inside a function; "
                         "the installed sources that import it: " + "; ".join(who))
        problems.append(f"forbidden module {_forbidden(outer)!r}: {what}")
    # 2. Anything over the budget (smallest figure over the runs).
    names = set().union(*(t.modules for t in trees)) - baseline
    for name in sorted(names):
        runs = [t.modules[name] for t in trees if name in t.modules]
        if name == "ocirun" or name.startswith("ocirun."):
            cost, kind = min(r[0] for r in runs), "by itself"
        else:
            cost, kind = min(r[1] for r in runs), "cumulative"
        chain = next(t.chain(name) for t in trees if name in t.modules)
        if cost > BUDGET_US and not any(_forbidden(m) for m in chain):  # those are reported above
            problems.append(f"over the {BUDGET_US / 1000:g} ms budget: {' -> '.join(chain)} costs "
                            f"{cost / 1000:.1f} ms {kind} (min of {len(runs)} runs)")
    # 3. Runtime modules this command has no use for with the default config.
    for name in NOT_NEEDED.get(command, ()):
        for tree in trees:
            if name in tree.modules:
                problems.append(f"not needed with the default config: {' -> '.join(tree.chain(name))}")
                break
    imported = sorted(n for n in names)
    assert not problems, (f"`ocirun {command}` ({REPEATS} runs, default config) imports:\n  "
                          + "\n  ".join(problems) + "\nall modules it imports beyond the bare interpreter: "
                          + ", ".join(imported))


def test_entry_point_is_isolated(rt, bundle, unique_id, runtime_bin, command_line):
    """The installed command runs as `python -I -S` (isolated, no site scan): the start-up
    budget above assumes it. Seen on a live `run`: its process's own command line."""
    p = rt.popen("run", "--bundle", bundle(["sleep", "30"]), unique_id)
    try:
        deadline = time.monotonic() + 10
        while True:
            argv = Path(f"/proc/{p.pid}/cmdline").read_bytes().split(b"\0")
            if any(a.endswith((b"__main__.py", b"ocirun")) for a in argv[1:]) or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        words = [a.decode() for a in argv if a]
        flags = "".join(w[1:] for w in words[1:] if w.startswith("-") and not w.startswith("--"))
        assert words[0] == command_line[0] and "I" in flags and "S" in flags, words
    finally:
        rt.wait_status(unique_id, "running")
        rt("kill", unique_id, "KILL")
        p.wait(timeout=30)


def test_importtime_tree_parsing():
    """The chain reconstruction the failure messages rely on (-X importtime prints children
    before their parent, indented two spaces per level)."""
    text = """import time: self [us] | cumulative | imported package
import time:        50 |         50 |     _sre
import time:       300 |        300 |         enum
import time:       500 |        800 |       re._parser
import time:      4000 |       4850 |     re
import time:       100 |       4950 |   locale
import time:        20 |         20 |   select
import time:       900 |       5870 | subprocess
import time:       400 |        400 | ocirun.cli
"""
    t = Imports(text)
    assert t.chain("enum") == ["subprocess", "locale", "re", "re._parser", "enum"]
    assert t.chain("_sre") == ["subprocess", "locale", "_sre"]
    assert t.chain("select") == ["subprocess", "select"]
    assert t.chain("ocirun.cli") == ["ocirun.cli"]
    assert t.modules["re"] == (4000, 4850, 2)
    assert _forbidden("re._parser") == "re" and _forbidden("resource") is None
