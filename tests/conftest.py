"""Integration-test harness: drives the runtime binary (ocirun, or runc/crun for comparison)
with real containers built from Debian's static busybox, as root.

Runtime under test: $OCIRUN_TEST_RUNTIME, else the repo's .venv/bin/ocirun, else `ocirun` on PATH.

Fixtures
  runtime_bin   path of the binary under test (session)
  state_root    fresh directory passed as `--root` to every call
  rt            the CLI: rt(*args, check=True, input=None, timeout=30, env=None, fds=None)
                -> CompletedProcess (text stdout/stderr, plus .stdout_path/.stderr_path);
                also rt.popen, rt.state, rt.wait_status, rt.out, rt.expect_error, rt.cgroup_dirs
  bundle        factory: bundle(args=None, patch=None, *, name=None, **overrides) -> Path
  unique_id     one fresh container id; new_id() makes more
  run_in        run_in(args, patch=None, *, check=True, input=None, timeout=30, **overrides):
                one foreground `run` of a fresh bundle -> CompletedProcess
  leak_guard    autouse: snapshot before each test; after it, no new host mount, cgroup directory,
                process, fifo, or container state directory of this test may remain. A passing
                test is checked before teardown (it must delete its containers itself); then
                every container the test used is force-deleted, and a failing test is checked
                after that.

Every container id, bundle name, state root and cgroupsPath carries this session's marker
(`ocitest-XXXXXX`): every bundle sets `linux.cgroupsPath` to its own name. The leak checks count
what carries the marker or names the test's directories, so that what other sessions do on the
machine at the same time is not blamed on the test; processes are ours when they descend from
this pytest (a subreaper, so container inits stay in its tree) or sit in a marked cgroup.

The pytest process is made a child subreaper: a container init outlives `create`, is reparented
to us (as to a containerd shim or conmon) and is reaped before every runtime call.
"""
from __future__ import annotations

import ctypes
import fcntl
import json
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import busybox_bundle  # noqa: E402

# Test modules import MARK and helpers from here under a name of their own: the bare name
# `conftest` is also tests/integration's conftest, and whichever loads first would win.
sys.modules["ocitest_conftest"] = sys.modules[__name__]

# tests/bench holds benchmark scripts, not tests.
collect_ignore = ["bench"]
collect_ignore_glob = ["bench/*"]

SESSION = secrets.token_hex(3)
MARK = f"ocitest-{SESSION}"
_counter = 0
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_DEPTH = 6
CANARY = ("OCIRUN_TEST_CANARY", "host-env-must-not-leak")
DEFAULT_TIMEOUT = 30


def _next(kind: str) -> str:
    global _counter
    _counter += 1
    return f"{MARK}-{kind}{_counter}"


# --- pytest hooks -----------------------------------------------------------------------

def pytest_configure(config):
    if os.geteuid() == 0:
        # PR_SET_CHILD_SUBREAPER: orphaned container inits come to us, not to pid 1.
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)


# Tests that use any of these drive real containers; the rest (unit tests) need neither root
# nor a runtime binary, and the leak guard leaves them alone.
INTEGRATION_FIXTURES = {"rt", "run_in", "bundle", "unique_id", "new_id", "state_root", "runtime_bin"}


def _is_integration(fixturenames) -> bool:
    return bool(INTEGRATION_FIXTURES & set(fixturenames))


def pytest_collection_modifyitems(config, items):
    if os.environ.get("OCIRUN_UNIT") == "1":  # scripts/test --unit: no container at all
        unit = [i for i in items if not _is_integration(getattr(i, "fixturenames", ()))
                and "/integration/" not in str(i.fspath) and "/guest/" not in str(i.fspath)
                and "/security/" not in str(i.fspath)]
        config.hook.pytest_deselected(items=[i for i in items if i not in unit])
        items[:] = unit
        return
    reason = None
    if os.geteuid() != 0:
        reason = "ocirun integration tests need root: they create namespaces, mounts and cgroups"
    elif not os.access(busybox_bundle.BUSYBOX, os.X_OK):
        reason = f"{busybox_bundle.BUSYBOX} missing: install busybox-static (scripts/setup does)"
    if reason:
        for item in items:
            if _is_integration(getattr(item, "fixturenames", ())):
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


# --- host inspection ----------------------------------------------------------------------

def _ours(text: str, *paths) -> bool:
    """Whether a mount line, cgroup or fifo path belongs to this session: it carries our marker or
    names one of `paths` (the test's tmp dir and state root). What concurrent sessions on the
    machine create is not ours and is left out of the leak checks."""
    return MARK in text or any(str(p) in text for p in paths)


def _mounts() -> dict[tuple, str]:
    out = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            p = line.split()
            out[(p[0], p[4])] = line.rstrip("\n")
    return out


def _cgroup_dirs() -> set[str]:
    found: set[str] = set()

    def walk(d: str, depth: int) -> None:
        try:
            with os.scandir(d) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        found.add(e.path)
                        if depth < CGROUP_DEPTH:
                            walk(e.path, depth + 1)
        except OSError:
            pass

    walk(str(CGROUP_ROOT), 1)
    return found


def find_cgroup_dirs(name: str) -> list[str]:
    """Every cgroup directory (all hierarchies, depth <= 6) whose last component is `name`."""
    return sorted(d for d in _cgroup_dirs() if os.path.basename(d) == name)


def settled(check, timeout: float = 3.0, step: float = 0.05):
    """check() until it returns something falsy (nothing left), at most `timeout` seconds; its
    last result."""
    deadline = time.monotonic() + timeout
    while True:
        left = check()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(step)


def pid_alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie (Z) or dead (X)."""
    st = _read(f"/proc/{pid}/stat")
    return bool(st) and st[st.rindex(")") + 2] not in "ZX"


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _procs() -> dict[int, dict]:
    """pid -> {state, ppid, start (boot ticks, against pid reuse)} for every process now."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        s = _read(f"/proc/{name}/stat")
        if not s:
            continue
        rest = s[s.rfind(")") + 2:].split()
        out[int(name)] = {"state": rest[0], "ppid": int(rest[1]), "start": rest[19]}
    return out


def _nspid_depth(pid: int) -> int:
    for line in _read(f"/proc/{pid}/status").splitlines():
        if line.startswith("NSpid:"):
            return len(line.split()) - 1
    return 1


def _describe(pid: int) -> str:
    cmd = _read(f"/proc/{pid}/cmdline").replace("\0", " ").strip() or "?"
    nspid = next((ln.split(None, 1)[1] for ln in _read(f"/proc/{pid}/status").splitlines()
                  if ln.startswith("NSpid:")), "?")
    return f"pid {pid} (NSpid {nspid}): {cmd}"


def _descendants(procs: dict[int, dict], root: int) -> set[int]:
    kids: dict[int, list[int]] = {}
    for pid, p in procs.items():
        kids.setdefault(p["ppid"], []).append(pid)
    out, todo = set(), [root]
    while todo:
        for k in kids.get(todo.pop(), []):
            if k not in out:
                out.add(k)
                todo.append(k)
    return out


def _fifo_roots(ctx) -> list[tuple[str, int]]:
    return [(str(ctx.state_root), 8), (str(ctx.tmp_path), 8), (str(ctx.bundles), 3),
            ("/run", 3), ("/tmp", 1), ("/dev/shm", 2)]


def _fifos(roots: list[tuple[str, int]]) -> set[str]:
    found: set[str] = set()

    def walk(d: str, depth: int) -> None:
        try:
            with os.scandir(d) as it:
                for e in it:
                    try:
                        if e.is_dir(follow_symlinks=False):
                            if depth > 1 and not e.name == "proc":
                                walk(e.path, depth - 1)
                        elif stat.S_ISFIFO(e.stat(follow_symlinks=False).st_mode):
                            found.add(e.path)
                    except OSError:
                        pass
        except OSError:
            pass

    for root, depth in roots:
        walk(root, depth)
    return found


# --- the runtime CLI ------------------------------------------------------------------

class Runtime:
    """Calls the binary under test, always with `--root state_root`; stdio goes to files so that
    a container that inherits it never keeps a pipe (and so this call) open."""

    def __init__(self, binary: str, state_root: Path, tmp_path: Path):
        self.binary = binary
        self.state_root = state_root
        self.io = tmp_path / "io"
        self.io.mkdir(exist_ok=True)
        self.ids: list[str] = []  # every container id this test used, in order
        self.popens: list[subprocess.Popen] = []
        self.created: dict[str, subprocess.CompletedProcess] = {}
        self._n = 0

    # argument plumbing
    def _note_ids(self, args) -> None:
        for a in args:
            if isinstance(a, str) and a.startswith(MARK) and "/" not in a and a not in self.ids:
                self.ids.append(a)

    def _argv(self, args, fds):
        argv = [self.binary, "--root", str(self.state_root), *map(str, args)]
        if not fds:
            return argv, (), []
        # Put fds at exact numbers in the child: dup them high here, let bash move them down.
        high, redirs = [], []
        for target, src in sorted(fds.items()):
            fd = src if isinstance(src, int) else src.fileno()
            h = fcntl.fcntl(fd, fcntl.F_DUPFD, 100)
            high.append(h)
            redirs.append(f"{target}>&{h}")
        redirs += [f"{h}>&-" for h in high]
        return ["/bin/bash", "-c", f'exec "$@" {" ".join(redirs)}', "bash", *argv], tuple(high), high

    def _env(self, env):
        e = dict(os.environ)
        e[CANARY[0]] = CANARY[1]
        if env:
            e.update(env)
        return e

    def _files(self):
        self._n += 1
        return self.io / f"{self._n}.out", self.io / f"{self._n}.err"

    def __call__(self, *args, check: bool = True, input: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 env: dict | None = None, fds: dict | None = None) -> subprocess.CompletedProcess:
        self.reap()
        self._note_ids(args)
        argv, pass_fds, high = self._argv(args, fds)
        out_p, err_p = self._files()
        try:
            with open(out_p, "w+") as out, open(err_p, "w+") as err:
                try:
                    p = subprocess.run(argv, stdin=subprocess.DEVNULL if input is None else None,
                                       input=input, stdout=out, stderr=err, text=True, timeout=timeout,
                                       env=self._env(env), pass_fds=pass_fds)
                except subprocess.TimeoutExpired:
                    raise AssertionError(f"timed out after {timeout}s: {' '.join(map(str, args))}\n"
                                         f"stderr: {err_p.read_text()}") from None
        finally:
            for h in high:
                os.close(h)
        r = subprocess.CompletedProcess(args, p.returncode, out_p.read_text(), err_p.read_text())
        r.stdout_path, r.stderr_path = out_p, err_p
        if args and args[0] in ("create", "run") and p.returncode == 0:
            self.created[str(args[-1])] = r
        if check and p.returncode != 0:
            raise AssertionError(f"{Path(self.binary).name} {' '.join(map(str, args))} exited {p.returncode}\n"
                                 f"stderr: {r.stderr}stdout: {r.stdout}")
        return r

    def popen(self, *args, env: dict | None = None, fds: dict | None = None) -> subprocess.Popen:
        """Start a call in the background (e.g. a foreground `run`); .stdout_path/.stderr_path are
        its output files. The test waits for it; teardown kills and reaps it if not."""
        self.reap()
        self._note_ids(args)
        argv, pass_fds, high = self._argv(args, fds)
        out_p, err_p = self._files()
        with open(out_p, "w") as out, open(err_p, "w") as err:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                 env=self._env(env), pass_fds=pass_fds)
        for h in high:
            os.close(h)
        p.stdout_path, p.stderr_path = out_p, err_p
        self.popens.append(p)
        return p

    # container helpers
    def state(self, cid: str) -> dict:
        return json.loads(self("state", cid).stdout)

    def wait_status(self, cid: str, *statuses: str, timeout: float = 10) -> dict:
        """Poll `state` until its status is one of `statuses` (a container that does not exist
        yet, e.g. one a background `run` is still creating, counts as not there yet)."""
        deadline = time.monotonic() + timeout
        while True:
            r = self("state", cid, check=False)
            if r.returncode == 0:
                st = json.loads(r.stdout)
                if st["status"] in statuses:
                    return st
                seen = f"status {st['status']!r}"
            else:
                seen = f"state failed: {r.stderr.strip()}"
            if time.monotonic() > deadline:
                raise AssertionError(f"{cid}: waited {timeout}s for status {statuses}; last: {seen}")
            time.sleep(0.01)

    def out(self, cid: str) -> str:
        """What the container has written to stdout so far (it inherited the create/run call's)."""
        return self.created[cid].stdout_path.read_text()

    def expect_error(self, *args, mentions=(), **kw) -> str:
        """Run a call that must fail: non-zero exit and exactly one non-empty stderr line, which
        mentions each of `mentions` (a tuple in `mentions` means: at least one of these).
        Returns that line."""
        r = self(*args, check=False, **kw)
        assert r.returncode != 0, f"{' '.join(map(str, args))} succeeded; it must fail\nstdout: {r.stdout}"
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1, f"want exactly one error line on stderr, got {len(lines)}:\n{r.stderr}"
        line = lines[0]
        for m in mentions:
            alts = m if isinstance(m, tuple) else (m,)
            assert any(a.lower() in line.lower() for a in alts), f"error line does not mention {alts}: {line}"
        return line

    @staticmethod
    def cgroup_dirs(name: str) -> list[str]:
        return find_cgroup_dirs(name)

    def exists(self, cid: str) -> bool:
        return self("state", cid, check=False).returncode == 0

    # reaping, as a shim does
    def reap(self) -> None:
        me = os.getpid()
        live = {p.pid for p in self.popens if p.returncode is None}
        for pid, p in _procs().items():
            if p["ppid"] == me and p["state"] == "Z" and pid not in live:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass


# --- fixtures ------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def runtime_bin() -> str:
    env = os.environ.get("OCIRUN_TEST_RUNTIME")
    if env:
        path = shutil.which(env) or env
        if not os.access(path, os.X_OK):
            pytest.fail(f"OCIRUN_TEST_RUNTIME={env}: not an executable", pytrace=False)
        return path
    venv = REPO / ".venv/bin/ocirun"
    if os.access(venv, os.X_OK):
        return str(venv)
    found = shutil.which("ocirun")
    if found:
        return found
    pytest.fail("no runtime under test: set OCIRUN_TEST_RUNTIME, or run scripts/setup to install "
                ".venv/bin/ocirun", pytrace=False)


@pytest.fixture
def state_root() -> Path:
    # Short (socket paths are limited to 108 bytes) and marked, under /run like a real root.
    base = "/run" if os.access("/run", os.W_OK) else None
    d = Path(tempfile.mkdtemp(prefix=f"{MARK}-root-", dir=base))
    yield d
    _rmtree_unless_mounted(d)


class _Ctx:
    def __init__(self, rt: Runtime, state_root: Path, tmp_path: Path, bundles: Path):
        self.rt, self.state_root, self.tmp_path, self.bundles = rt, state_root, tmp_path, bundles


@pytest.fixture
def _ctx(runtime_bin, state_root, tmp_path) -> _Ctx:
    # Bundles live outside pytest's tmp dir, whose 0700 parents a container root mapped to
    # another host uid (a user namespace) cannot traverse.
    bundles = Path(tempfile.mkdtemp(prefix=f"{MARK}-bundles-", dir="/tmp"))
    os.chmod(bundles, 0o755)
    ctx = _Ctx(Runtime(runtime_bin, state_root, tmp_path), state_root, tmp_path, bundles)
    yield ctx
    _rmtree_unless_mounted(bundles)


def _rmtree_unless_mounted(path: Path) -> None:
    """Remove a test's directory, but never through a mount left on it (the leak guard has
    reported that): removing through a leaked bind mount would delete its source."""
    prefix = str(path) + "/"
    if any(line.split()[4].startswith(prefix) or line.split()[4] == str(path) for line in _mounts().values()):
        return
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def rt(_ctx) -> Runtime:
    return _ctx.rt


@pytest.fixture
def new_id(_ctx):
    def make() -> str:
        cid = _next("c")
        _ctx.rt.ids.append(cid)
        return cid
    return make


@pytest.fixture
def unique_id(new_id) -> str:
    return new_id()


DELETE = object()


def _merge(dst: dict, src: dict) -> None:
    for k, v in src.items():
        if v is DELETE:
            dst.pop(k, None)
        elif isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge(dst[k], v)
        else:
            dst[k] = json.loads(json.dumps(v))


@pytest.fixture
def bundle(_ctx):
    """bundle(args=None, patch=None, *, name=None, **overrides) -> Path of a new bundle.

    The config starts as busybox_bundle.default_config(args) (runc's `spec`, terminal false) with
    `linux.cgroupsPath` set to the bundle's name. `overrides` are deep-merged into it (dicts merge,
    anything else replaces; the value `bundle.DELETE` removes a key); then `patch` is applied:
    a dict is deep-merged the same way, a callable gets the config and may change it in place or
    return a new one."""
    def make(args=None, patch=None, *, name=None, **overrides) -> Path:
        name = name or _next("b")
        cfg = busybox_bundle.default_config(args)
        cfg["linux"]["cgroupsPath"] = name
        path = busybox_bundle.make_bundle(_ctx.bundles / name, config=cfg)
        _merge(cfg, overrides)
        if callable(patch):
            cfg = patch(cfg) or cfg
        elif patch:
            _merge(cfg, patch)
        (path / "config.json").write_text(json.dumps(cfg, indent=2))
        return path
    make.DELETE = DELETE
    return make


@pytest.fixture
def run_in(rt, bundle, new_id):
    """run_in(args, patch=None, *, check=True, input=None, timeout=30, **overrides) -> CompletedProcess
    of a foreground `run` of a fresh bundle(args, patch, **overrides); its exit status is the
    container's."""
    def go(args, patch=None, *, check=True, input=None, timeout=DEFAULT_TIMEOUT, **overrides):
        b = bundle(args, patch, **overrides)
        return rt("run", "--bundle", b, new_id(), check=check, input=input, timeout=timeout)
    return go


@pytest.fixture(autouse=True)
def leak_guard(request):
    if not _is_integration(request.fixturenames):
        yield
        return
    _ctx = request.getfixturevalue("_ctx")
    rt = _ctx.rt
    me = os.getpid()
    mounts0 = _mounts()
    cgroups0 = _cgroup_dirs()
    procs0 = _procs()
    keys0 = {(pid, p["start"]) for pid, p in procs0.items()}
    fifos0 = _fifos(_fifo_roots(_ctx))
    mine = (_ctx.tmp_path, _ctx.state_root, _ctx.bundles)

    def leaks() -> list[str]:
        rt.reap()
        found = []
        for key, line in _mounts().items():
            if key not in mounts0 and _ours(line, *mine):
                found.append(f"host mount: {line}")
        for d in sorted(_cgroup_dirs() - cgroups0):
            if _ours(d, *mine):
                found.append(f"cgroup: {d}")
        procs = _procs()
        ours = _descendants(procs, me)
        for pid, p in procs.items():
            if (pid, p["start"]) in keys0:
                continue
            if pid in ours:
                found.append(f"process: {_describe(pid)}")
            elif _nspid_depth(pid) > 1 and MARK in _read(f"/proc/{pid}/cgroup"):
                found.append(f"container process: {_describe(pid)}")
        for f in sorted(_fifos(_fifo_roots(_ctx)) - fifos0):
            if _ours(f, *mine):
                found.append(f"fifo: {f}")
        names = set(rt.ids)
        for dirpath, dirnames, _ in os.walk(_ctx.state_root):
            if dirpath.count(os.sep) - str(_ctx.state_root).count(os.sep) >= 3:
                dirnames[:] = []
            for d in dirnames:
                if d in names:
                    found.append(f"container state: {os.path.join(dirpath, d)}")
        return found

    def settled_leaks() -> list[str]:
        return settled(leaks)  # a killed process or a cgroup being removed may take a moment

    def kill_popens() -> None:
        for p in rt.popens:
            if p.poll() is None:
                p.kill()
                p.wait()

    yield

    rep = getattr(request.node, "rep_call", None)
    passed = rep is not None and rep.passed
    problems: list[str] = []
    try:
        if passed:
            # Check before our own cleanup: a passing test must leave nothing behind, and a
            # failing call must not leave state that a later `delete --force` would hide.
            problems = settled_leaks()
    finally:
        kill_popens()
        left = [cid for cid in rt.ids if rt.exists(cid)]
        if passed:
            problems += [f"container {cid} still exists (the test must delete it)" for cid in left]
        for cid in left:
            rt("delete", "--force", cid, check=False, timeout=15)
        rt.reap()
    if not passed:
        problems = settled_leaks()  # at least the force-delete must leave nothing behind
    if problems:
        # Don't let one test's strays run on into the next: kill them (by pid) and reap them.
        procs = _procs()
        for pid in _descendants(procs, me):
            if (pid, procs[pid]["start"]) not in keys0 and procs[pid]["state"] != "Z":
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        time.sleep(0.05)
        rt.reap()
        pytest.fail("left behind:\n  " + "\n  ".join(problems), pytrace=False)
