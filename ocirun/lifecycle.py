"""start, kill, delete: the light commands. None of them loads the config or the trampoline."""
import posix

from . import cgroups, kernel, state
from .errors import OciError, WrongState
from .posixio import isdir, join

_POLL = 0.002


def start(root: str, container_id: str) -> state.Container:
    c = state.load(root, container_id, lock=True)
    try:
        status = c.status()
        if status != "created":
            raise WrongState(f"cannot start a container that is {status}", container_id, status)
        return start_created(c)
    finally:
        c.unlock()


def start_created(c: state.Container) -> state.Container:
    """start, for a container known to be created (`run` has just made it)."""
    _release(c)
    stored = c.private.get("hooks", {})
    if stored.get("poststart"):
        from . import hooks

        # The state of the step the hooks belong to, as runc and crun pass it: the process
        # has just been started, even if (`true`) it has already exited by now.
        doc = c.oci_state()
        doc.update(status="running", pid=c.pid)
        hooks.warn_on_failure("poststart", stored["poststart"], doc)
    return c


def _release(c: state.Container) -> None:
    """Open the exec fifo: the init, blocked opening its other end, writes a byte and execs."""
    import select
    import time

    try:
        fd = posix.open(c.fifo, posix.O_RDONLY | posix.O_NONBLOCK | posix.O_CLOEXEC)
    except OSError as e:
        raise OciError(f"open the exec fifo: {e.strerror} (the container can't be started: delete it)",
                       c.fifo) from None
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            data = posix.read(fd, 512) if poller.poll(100) else b""
            if data == b"0":
                break
            if data:  # the init could not go on: a startContainer hook failed
                raise OciError(data.decode(errors="replace"), c.id)
            if not c.alive():
                raise OciError("container init exited before start", c.id)
            time.sleep(_POLL)
    finally:
        posix.close(fd)
    try:
        posix.unlink(c.fifo)
    except OSError:
        pass  # a leftover fifo misleads nobody: the init's executable says it has started


def kill(root: str, container_id: str, sig: int, all_procs: bool = False) -> None:
    c = state.load(root, container_id)
    status = c.status()
    # containerd's shim sends `kill --all ID 9` after every exit to reap what is left in the
    # cgroup, and takes an error as a failed exit (runc 1.1 succeeds): only --all may hit a
    # stopped container.
    if status == "creating" or (status == "stopped" and not all_procs):
        raise OciError(f"container is {status}: not running", container_id)
    if all_procs:
        cgroups.kill_all(c.private["cgroup_dirs"], sig)
        return
    signal_pid(c, sig)


def signal_pid(c: state.Container, sig: int) -> None:
    """Signal the init through a pidfd, checked against the recorded start time: never a reused pid."""
    if not c.pid:
        return
    try:
        pidfd = posix.pidfd_open(c.pid)
    except ProcessLookupError:
        return
    try:
        if not c.alive():
            return
        import _signal

        _signal.pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:
        pass
    finally:
        posix.close(pidfd)


def delete(root: str, container_id: str, force: bool = False) -> None:
    state.check_id(container_id)
    damaged = None
    try:
        c = state.load(root, container_id, lock=True)
    except state.DamagedState as e:
        if not force:
            raise
        # what init.json recorded is cleaned up all the same; the error still names the file
        damaged, c = e, e.container
        c.lock()
    except OciError:
        if force and not isdir(join(root, container_id)):
            return  # as runc: callers clean up after a failed create with delete --force
        raise
    try:
        delete_loaded(c, force)
    finally:
        c.unlock()
    if damaged:
        raise damaged


def delete_loaded(c: state.Container, force: bool = False) -> None:
    container_id = c.id
    status = c.status()
    dirs = c.private.get("cgroup_dirs") or []
    # Without state.json (a create that died, or damaged state) the init may still be on its
    # way out: whatever the record names is killed. A created container is deleted without
    # --force, as runc and crun do: containerd removes never-started tasks that way.
    if status != "stopped" or c.data is None:
        if not force and c.data is not None and status != "created":
            raise WrongState(f"cannot delete a container that is {status} (use --force)", container_id, status)
        cgroups.thaw_all(dirs)
        signal_pid(c, kernel.SIGNALS["KILL"])
        cgroups.kill_all(dirs, kernel.SIGNALS["KILL"])
        _wait_gone(c)
    stuck = cgroups.manager_of(c.private).destroy()
    if stuck:  # state stays, so that delete can be tried again
        raise OciError(f"cgroup {stuck[0]} still has processes that did not die", container_id)
    if c.private.get("net_devices"):
        from . import log, netdevices

        for warning in netdevices.move_out(c.private, c.dir):
            log.warning(warning)
    doc = c.oci_state()
    state.remove(c)
    stored = c.private.get("hooks", {})
    if stored.get("poststop"):
        from . import hooks

        hooks.warn_on_failure("poststop", stored["poststop"], doc)


def _wait_gone(c: state.Container, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while c.alive():
        if time.monotonic() > deadline:
            raise OciError("container init did not die after SIGKILL", c.id)
        time.sleep(_POLL)
