"""The parent's half of a trampoline run, shared by `create` and `exec`.

`Spawn` starts oci_spawn() with a built plan and answers the children over the sync socket
(the exchange is drawn in csrc/sync.h): it writes the id maps, writes oom_score_adj and joins
the cgroup once it knows the pid (unless the plan has the process place itself:
cgroups.open_for_self_join), takes the pty master, and runs the create hooks. If anything
fails, `kill()` leaves no process of the run behind.
"""
import posix

from . import sync
from .errors import OciError
from .posixio import write_file


class Spawn:
    def __init__(self, plan, place_in_cgroup, id_maps=None, oom_score_adj=None, on_pty=None, on_hooks=None,
                 on_seccomp_fd=None):
        self.plan, self.place_in_cgroup, self.id_maps = plan, place_in_cgroup, id_maps
        self.oom_score_adj, self.on_pty, self.on_hooks = oom_score_adj, on_pty, on_hooks
        self.on_seccomp_fd = on_seccomp_fd
        self.stage1 = self.pid = None
        self.sock = -1

    def run(self) -> int:
        """Returns the pid of the process, ready (waiting on the exec fifo, or exec'd). A created
        init then waits for commit(): the socket stays open until then."""
        from ._trampoline import ffi, lib

        r = lib.oci_exe_layout()  # what the children need to seal their executable (sealexe.h)
        if r < 0:
            raise OciError(f"read the runtime's memory layout: {posix.strerror(-r)}", "/proc/self/stat")
        sock_out = ffi.new("int *")
        r = lib.oci_spawn(self.plan.c, sock_out)
        if r < 0:
            raise OciError(f"clone: {posix.strerror(-r)}")
        self.stage1 = r
        self.sock = sock_out[0]
        try:
            self._converse(self.sock)
        finally:
            if self.plan.c.exec_fifo_fd < 0:
                self._close()
        return self.pid

    def commit(self) -> None:
        """The container is recorded: the created init may outlive us now. Until this, our death
        (the socket's EOF) ends it."""
        try:
            sync.send(self.sock, sync.COMMIT)
        finally:
            self._close()

    def _close(self) -> None:
        if self.sock >= 0:
            posix.close(self.sock)
            self.sock = -1

    def _converse(self, sock: int) -> None:
        with_fds = bool(self.plan.c.terminal or self.plan.c.seccomp_notify)
        while True:
            kind, value, text = sync.recv(sock, with_fds)
            if kind == sync.USERNS_READY:
                self._write_id_maps(self.stage1)
                self._answer(sock, sync.USERNS_DONE)
            elif kind == sync.INIT_PID:
                self.pid = value
                self._reap_stage1()
                if self.oom_score_adj is not None:
                    write_file(f"/proc/{value}/oom_score_adj", str(self.oom_score_adj), "process.oomScoreAdj")
                if self.place_in_cgroup:
                    self.place_in_cgroup(value)
                self._answer(sock, sync.CGROUP_DONE, value)
            elif kind == sync.PTY:
                self.on_pty(value)
            elif kind == sync.SECCOMP_FD:
                try:
                    self.on_seccomp_fd(self.pid, value)
                finally:
                    posix.close(value)
                self._answer(sock, sync.SECCOMP_DONE)
            elif kind == sync.HOOKS:
                self.on_hooks(self.pid)
                self._answer(sock, sync.HOOKS_DONE)
            elif kind == sync.READY:
                return
            elif kind == sync.ERROR:
                raise OciError(text)
            else:
                raise self._died()

    def _answer(self, sock: int, kind: int, value: int = 0) -> None:
        """Send a reply; a child that has died meanwhile may have said why first (an ERROR still
        queued behind the message just handled): that is the error, not the broken pipe."""
        try:
            sync.send(sock, kind, value)
        except OciError:
            got, _, text = sync.recv(sock)
            if got == sync.ERROR:
                raise OciError(text) from None
            raise self._died() from None

    def _died(self) -> OciError:
        return OciError("the container process exited during setup" + self._how_it_ended())

    def _how_it_ended(self) -> str:
        """How the child that closed the socket without a word ended (a crash says which signal)."""
        import time

        for _ in range(50):  # it has closed its end: it is exiting
            for name in ("pid", "stage1"):
                pid = getattr(self, name)
                try:
                    done, status = posix.waitpid(pid, posix.WNOHANG) if pid else (0, 0)
                except ChildProcessError:
                    done = 0
                if done:
                    setattr(self, name, None)
                    if posix.WIFSIGNALED(status):
                        return f" (killed by signal {posix.WTERMSIG(status)})"
                    return f" (exit status {posix.WEXITSTATUS(status)})"
            time.sleep(0.002)
        return ""

    def _reap_stage1(self) -> None:
        if self.stage1:
            posix.waitpid(self.stage1, 0)
            self.stage1 = None

    def _write_id_maps(self, pid: int) -> None:
        write_id_maps(pid, self.id_maps, ("linux.uidMappings", "linux.gidMappings"))

    def kill(self) -> None:
        """Undo a half-done run: no process of it may survive."""
        self._close()
        for pid in (self.pid, self.stage1):
            if pid:
                try:
                    posix.kill(pid, 9)
                    posix.waitpid(pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass


def write_id_maps(pid: int, id_maps, wheres) -> None:
    """uid_map and gid_map of pid's user namespace, each mapping `containerID hostID size`."""
    from .rootless import write_id_map

    for name, maps, where in zip(("uid_map", "gid_map"), id_maps, wheres):
        write_id_map(pid, name, maps, where)
