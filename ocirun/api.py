"""The library: ocirun's commands as Python calls, in the caller's own process (docs/api.md).

The CLI's command functions do the work here too (create.create, lifecycle.*, exec, the cgroup
commands); this module holds them together as objects and returns typed values. What it means
to run them in a long-lived process:

- The container's init, and each exec'd process, is the calling process's child (the
  trampoline clones it with CLONE_PARENT, as for the CLI): `Container.wait()` and
  `Process.wait()` reap it, and `Container.delete()` reaps an init that has exited. Nothing else
  calls wait(), so a SIGCHLD handler or a child watcher of the caller's own keeps working, and
  must leave these pids alone.
- No signal handler is installed or changed: the CLI's forwarding of signals to a foreground
  container is the CLI's.
- Each call opens and closes what it needs (state files, locks, fifos, sockets): nothing stays
  open between calls. Calls may come from any thread, and one process's calls take turns
  (`_one_at_a_time`, waiting excepted): a container's init is a clone of this process and
  keeps a copy of every fd open at that moment until its execve, so a container lock held by
  another thread's call would stay held by a created init until it starts, and two such
  creates would wait on each other for good.
"""
from __future__ import annotations

import functools
import posix
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from . import state as _state
from .errors import OciError


_turn = threading.RLock()


def _one_at_a_time(method):
    @functools.wraps(method)
    def call(*args, **kwargs):
        with _turn:
            return method(*args, **kwargs)
    return call


class State:
    """The state of runtime.md: `ociVersion`, `id`, `status`, `pid` (0 unless it runs),
    `bundle`, and runc's `created` and `annotations`."""

    __slots__ = ("oci_version", "id", "status", "pid", "bundle", "created", "annotations")

    def __init__(self, oci_version: str, id: str, status: str, pid: int, bundle: str, created: str = "",
                 annotations: dict[str, str] | None = None):
        self.oci_version, self.id, self.status, self.pid = oci_version, id, status, pid
        self.bundle, self.created, self.annotations = bundle, created, dict(annotations or {})

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> State:
        return cls(d["ociVersion"], d["id"], d["status"], d.get("pid", 0), d.get("bundle", ""),
                   d.get("created", ""), d.get("annotations"))

    def __repr__(self) -> str:
        return f"State(id={self.id!r}, status={self.status!r}, pid={self.pid})"


class Process:
    """A process started by `Container.exec(..., detach=True)`: this process's child."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def wait(self) -> int:
        """Reap it; its exit code (128 + the signal that killed it)."""
        if self.returncode is None:
            return self._reaped(posix.waitpid(self.pid, 0)[1])
        return self.returncode

    def poll(self) -> int | None:
        """Reap it if it has ended (and is ours); its exit code, or None."""
        if self.returncode is None and self.pid:
            try:
                done, status = posix.waitpid(self.pid, posix.WNOHANG)
            except ChildProcessError:  # not ours (created by another process), or reaped
                return None
            if done:
                return self._reaped(status)
        return self.returncode

    def _reaped(self, status: int) -> int:
        from .forward import exit_code

        self.returncode = code = exit_code(status)
        return code


class Runtime:
    """The containers of one state root (`root`, the CLI's `--root`; the default is the CLI's:
    /run/ocirun, or $XDG_RUNTIME_DIR/ocirun for a user)."""

    def __init__(self, root: str | None = None, *, systemd_cgroup: bool = False, rootless: str = "auto"):
        from .rootless import enabled

        self.root = root or _state.default_root()
        self.systemd_cgroup = systemd_cgroup
        self.rootless = enabled(rootless)

    @_one_at_a_time
    def create(self, id: str, bundle: str, *, pid_file: str | None = None, console_socket: str | None = None,
               preserve_fds: int = 0, systemd_cgroup: bool | None = None, no_pivot: bool = False,
               no_new_keyring: bool = False) -> Container:
        """`ocirun create`: the container waits for `start()`."""
        from .create import Options, create

        opts = Options(bundle=bundle, pid_file=pid_file, console_socket=console_socket, no_pivot=no_pivot,
                       no_new_keyring=no_new_keyring, preserve_fds=preserve_fds,
                       systemd_cgroup=self.systemd_cgroup if systemd_cgroup is None else systemd_cgroup,
                       rootless=self.rootless)
        c = create(self.root, id, opts)
        return Container(self, id, c.pid)

    def run(self, id: str, bundle: str, **create_options: Any) -> Container:
        """create() then start(): the container runs; wait() for it, then delete() it."""
        with _turn:
            c = self.create(id, bundle, **create_options)
            try:
                c.start()
            except BaseException:
                c.delete(force=True)
                raise
        return c

    @_one_at_a_time
    def get(self, id: str) -> Container:
        """The container of that id (NotFound if there is none)."""
        c = _state.load(self.root, id)
        return Container(self, id, c.pid if c.data else 0)

    @_one_at_a_time
    def list(self) -> list[Container]:
        out = []
        for cid in _state.all_ids(self.root):
            try:
                out.append(self.get(cid))
            except OciError:
                continue  # deleted meanwhile, or damaged: `ocirun list` warns about those
        return out


class Container:
    """One container of a Runtime. Every method reads the state afresh: another process (the
    CLI, a second Runtime) may act on the same container."""

    def __init__(self, runtime: Runtime, id: str, pid: int = 0):
        self.runtime, self.id, self.pid = runtime, id, pid
        self._init = Process(pid)

    @property
    def returncode(self) -> int | None:
        return self._init.returncode

    def __repr__(self) -> str:
        return f"Container({self.id!r})"

    @property
    def _root(self) -> str:
        return self.runtime.root

    @_one_at_a_time
    def state(self) -> State:
        return State.from_doc(_state.load(self._root, self.id).oci_state())

    @_one_at_a_time
    def start(self) -> None:
        """`ocirun start`; returns once the init has run its execve (or ended), so that the
        container is `running` for the next call (the CLI returns as soon as it is released)."""
        import time

        from .lifecycle import start

        c = start(self._root, self.id)
        deadline = time.monotonic() + 5
        while not c.exec_done() and c.alive() and time.monotonic() < deadline:
            time.sleep(0.0005)

    @_one_at_a_time
    def kill(self, signal: int | str = 15, *, all: bool = False) -> None:
        """Send a signal (a number, or a name as `ocirun kill` takes it) to the init, or with
        `all` to every process of the container."""
        from . import kernel
        from .lifecycle import kill

        kill(self._root, self.id, signal if isinstance(signal, int) else kernel.parse_signal(signal), all)

    def wait(self) -> int:
        """Wait for the init to exit and reap it (it is our child); its exit code."""
        return self._init.wait()

    def delete(self, force: bool = False) -> None:
        """`ocirun delete [--force]`; an init that has exited is reaped."""
        from .lifecycle import delete

        with _turn:
            delete(self._root, self.id, force)
        self._init.poll()

    def exec(self, args: Sequence[str], *, env: Sequence[str] = (), cwd: str | None = None,
             user: str | None = None, detach: bool = False, preserve_fds: int = 0) -> int | Process:
        """`ocirun exec` of args (the process inherits this process's stdio, as the CLI's does):
        its exit code, or with `detach` the running Process, to wait() for."""
        from .exec import ExecOptions, spawn_process

        o = ExecOptions(args=list(args), env=list(env) or None, cwd=cwd, user=user, detach=detach,
                        preserve_fds=preserve_fds)
        with _turn:
            pid, _ = spawn_process(self._root, self.id, o)
        p = Process(pid)
        return p if detach else p.wait()

    @_one_at_a_time
    def pause(self) -> None:
        from .cgroup_commands import pause

        pause(self._root, self.id)

    @_one_at_a_time
    def resume(self) -> None:
        from .cgroup_commands import resume

        resume(self._root, self.id)

    @_one_at_a_time
    def update(self, resources: dict[str, Any]) -> None:
        """`ocirun update --resources`: linux.resources fields to change."""
        from .cgroup_commands import update

        update(self._root, self.id, resources)

    @_one_at_a_time
    def ps(self) -> list[int]:
        """The pids of the container's processes, as the host sees them."""
        from .cgroup_commands import ps

        return ps(self._root, self.id)

    @_one_at_a_time
    def stats(self) -> dict[str, Any]:
        """`ocirun events --stats`: the cgroup figures, as runc's JSON `data`."""
        from .cgroup_commands import events_stats

        return events_stats(self._root, self.id)["data"]

    def events(self, interval: float = 5.0) -> Iterator[dict[str, Any]]:
        """`ocirun events`: a stats event each interval (and oom events), until the container
        is gone."""
        from .cgroup_commands import events

        return events(self._root, self.id, interval)


def check(config: dict[str, Any], bundle: str | None = None) -> list[tuple[str, str]]:
    """Every problem of a config.json document as (JSON path, message) pairs, not only the
    first; with `bundle`, the checks that need its files too (ocirun/checker.py)."""
    from .checker import problems

    return problems(config, bundle)
