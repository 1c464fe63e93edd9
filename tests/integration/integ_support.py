"""Helpers for tests/integration: running podman and ctr with the session's private setup,
and looking at what is left on the host. The fixtures are in conftest.py."""
from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import secrets
import select
import signal
import struct
import subprocess
import termios
import tempfile
import time
from pathlib import Path

RUNTIME = os.environ.get("OCIRUN_INTEGRATION_RUNTIME", "/usr/local/bin/ocirun")
RUNC = "/usr/sbin/runc"
SESSION = secrets.token_hex(3)
MARK = f"ocitest-{SESSION}"
IMAGE = "localhost/ocitest-busybox:latest"
TEST_TIMEOUT = 180  # seconds, per test (SIGALRM)
PODMAN_TOOLS = ("podman", "conmon")
CTR_TOOLS = ("containerd", "ctr", "containerd-shim-runc-v2")
HERE = Path(__file__).resolve().parent


# --- small helpers -------------------------------------------------------------------------

def run_cmd(argv, *, env=None, timeout=60, input=None, check=False, what=None) -> subprocess.CompletedProcess:
    """Run argv with stdout/stderr in files (a daemon that inherits them never holds us up)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        try:
            stdin = {"stdin": subprocess.DEVNULL} if input is None else {"input": input}
            p = subprocess.run(argv, **stdin, stdout=out, stderr=err, text=True, timeout=timeout,
                               env=env, start_new_session=True)
        except subprocess.TimeoutExpired:
            out.seek(0), err.seek(0)
            raise AssertionError(f"timed out after {timeout}s: {' '.join(map(str, argv))}\n"
                                 f"stdout: {out.read()}\nstderr: {err.read()}") from None
        out.seek(0), err.seek(0)
        r = subprocess.CompletedProcess(argv, p.returncode, out.read(), err.read())
    if check and r.returncode != 0:
        raise AssertionError(f"{what or ' '.join(map(str, argv))} exited {r.returncode}\n"
                             f"stdout: {r.stdout}\nstderr: {r.stderr}")
    return r


def wait_for(pred, timeout=10.0, interval=0.1, what="condition"):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def reap_zombies(keep=()) -> None:
    """pytest may be a child subreaper (tests/conftest.py): conmon and the containerd shims,
    which daemonize, are reparented to it. Reap those that exited, but not our own Popens."""
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in keep:
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        if rest[0] == "Z" and int(rest[1]) == me:
            try:
                os.waitpid(int(name), os.WNOHANG)
            except ChildProcessError:
                pass


def mounts() -> list[str]:
    """Mount points now (field 5 of mountinfo)."""
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


def cgroup_dirs(names) -> list[str]:
    """Cgroup directories (any hierarchy, depth <= 4) whose name contains one of `names`."""
    names = [n for n in names if n]
    found = []
    if not names:
        return found

    def walk(d, depth):
        try:
            with os.scandir(d) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        if any(n in e.name for n in names):
                            found.append(e.path)
                        if depth < 4:
                            walk(e.path, depth + 1)
        except OSError:
            pass

    walk("/sys/fs/cgroup", 1)
    return found


def live_processes():
    """(pid, command line, /proc/PID/cgroup) of every process that is not a zombie."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cg = Path(f"/proc/{pid}/cgroup").read_text()
            st = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if st[st.rfind(")") + 2] != "Z":
            yield pid, cmd.strip(), cg


def processes_naming(names) -> list[str]:
    names = [n for n in names if n]
    if not names:
        return []
    return [f"{pid}: {cmd}" for pid, cmd, _ in live_processes() if any(n in cmd for n in names)]


class Host:
    """What this machine offers, for skip reasons."""

    def __init__(self):
        self.cgroup2_only = Path("/sys/fs/cgroup/cgroup.controllers").exists()
        self.v1 = {c for c in ("memory", "pids", "cpu", "freezer") if Path(f"/sys/fs/cgroup/{c}").is_dir()}
        self.catatonit = next((p for p in ("/usr/libexec/podman/catatonit", "/usr/bin/catatonit",
                                           "/usr/bin/tini", "/usr/bin/tini-static") if os.access(p, os.X_OK)), None)


class Podman:
    def __init__(self, d: Path, runtime: str):
        self.dir = d
        self.runtime = runtime
        self.env = dict(os.environ, CONTAINERS_CONF=str(d / "containers.conf"),
                        CONTAINERS_STORAGE_CONF=str(d / "storage.conf"))
        self.env.pop("XDG_RUNTIME_DIR", None)
        self.events = d / "events/events.log"
        self.image = IMAGE
        self._n = 0

    def argv(self, *args, runtime=None) -> list[str]:
        return ["podman", "--root", str(self.dir / "storage"), "--runroot", str(self.dir / "run"),
                "--runtime", runtime or self.runtime, "--cgroup-manager", "cgroupfs",
                "--events-backend", "file", *map(str, args)]

    def __call__(self, *args, timeout=60, check=True, input=None, runtime=None) -> subprocess.CompletedProcess:
        r = run_cmd(self.argv(*args, runtime=runtime), env=self.env, timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise AssertionError(f"podman {' '.join(map(str, args))} exited {r.returncode}\n"
                                 f"stdout: {r.stdout}\nstderr: {r.stderr}")
        return r

    def runc(self, *args, **kw) -> subprocess.CompletedProcess:
        """The same podman command with runc, to show what this host does with the stock runtime."""
        kw.setdefault("check", False)
        return self(*args, runtime=RUNC, **kw)

    def name(self, what="c") -> str:
        self._n += 1
        return f"{MARK}-{what}{self._n}"

    def inspect(self, name, fmt) -> str:
        return self("inspect", "--format", fmt, name).stdout.strip()

    def event_ids(self, since: int) -> set[str]:
        """Container ids in the events log after byte offset `since`."""
        try:
            with open(self.events, "rb") as f:
                f.seek(since)
                data = f.read().decode(errors="replace")
        except OSError:
            return set()
        ids = set()
        for line in data.splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("Type") == "container" and ev.get("ID"):
                ids.add(ev["ID"])
        return ids

    def events_size(self) -> int:
        try:
            return self.events.stat().st_size
        except OSError:
            return 0


class Ctr:
    def __init__(self, d: Path, runtime: str):
        self.dir = d
        self.runtime = runtime
        self.socket = d / "containerd/containerd.sock"
        self.namespace = MARK
        self.image = IMAGE
        self.runtime_flags = ["--runc-binary", runtime]
        self.env = dict(os.environ)
        self.issued: list[str] = []
        self._n = 0

    def argv(self, *args) -> list[str]:
        return ["ctr", "--address", str(self.socket), "--namespace", self.namespace, *map(str, args)]

    def __call__(self, *args, timeout=60, check=True, input=None) -> subprocess.CompletedProcess:
        r = run_cmd(self.argv(*args), env=self.env, timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise AssertionError(f"ctr {' '.join(map(str, args))} exited {r.returncode}\n"
                                 f"stdout: {r.stdout}\nstderr: {r.stderr}")
        return r

    def name(self, what="c") -> str:
        self._n += 1
        n = f"{MARK}-{what}{self._n}"
        self.issued.append(n)
        return n

    def tasks(self) -> dict[str, dict]:
        """`ctr task ls`: id -> {pid, status}."""
        out = {}
        for line in self("task", "ls").stdout.splitlines()[1:]:
            p = line.split()
            if len(p) >= 3:
                out[p[0]] = {"pid": int(p[1]), "status": p[2]}
        return out

    def containers(self) -> list[str]:
        return [ln.split()[0] for ln in self("containers", "ls", "--quiet").stdout.splitlines() if ln.strip()]

    def remove_all(self) -> None:
        for t in self.tasks():
            self("task", "kill", "--signal", "SIGKILL", "--all", t, check=False, timeout=30)
        for t in self.tasks():
            self("task", "delete", "--force", t, check=False, timeout=30)
        for c in self.containers():
            self("containers", "delete", c, check=False, timeout=30)


class Pty:
    """A command on a real terminal (pty.fork): the child's stdin/stdout/stderr are the slave."""

    def __init__(self, argv, env, rows=33, cols=101):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # child: size the terminal, then become the command
            try:
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
                os.execvpe(argv[0], argv, env)
            finally:
                os._exit(127)
        self.buf = b""
        self.status = None

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def _read(self, timeout) -> bool:
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return True
        try:
            data = os.read(self.fd, 4096)
        except OSError:  # EIO: the slave side is closed
            return False
        if not data:
            return False
        self.buf += data
        return True

    def expect(self, pattern: str, timeout=20.0) -> re.Match:
        end = time.monotonic() + timeout
        rx = re.compile(pattern.encode())
        while True:
            m = rx.search(self.buf)
            if m:
                self.buf = self.buf[m.end():]
                return m
            left = end - time.monotonic()
            if left <= 0 or not self._read(min(left, 0.5)):
                if (m := rx.search(self.buf)):
                    self.buf = self.buf[m.end():]
                    return m
                if left <= 0 or not self._alive_output():
                    raise AssertionError(f"no {pattern!r} on the terminal; got {self.buf[-2000:]!r}")

    def _alive_output(self) -> bool:
        return self._read(0.1) if self.status is None else False

    def wait(self, timeout=30.0) -> int:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self._read(0.2)
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(st)
                return self.status
        self.kill()
        raise AssertionError(f"command on the terminal still running after {timeout}s; output {self.buf[-2000:]!r}")

    def kill(self) -> None:
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except OSError:
                pass
            self.status = -9
        try:
            os.close(self.fd)
        except OSError:
            pass
