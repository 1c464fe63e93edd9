"""Waiting in the foreground for a container process, passing on the signals ocirun gets."""
import posix

FORWARDED = (1, 2, 3, 10, 12, 15, 28)  # HUP INT QUIT USR1 USR2 TERM WINCH


class Forwarding:
    """While active, FORWARDED signals (less those in `keep`) go to pid, our unreaped child."""

    def __init__(self, pid: int, keep: tuple = ()):
        self.pid, self.signals = pid, [s for s in FORWARDED if s not in keep]

    def _forward(self, signum, frame):
        try:
            posix.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def __enter__(self):
        import _signal

        for sig in self.signals:
            _signal.signal(sig, self._forward)
        return self

    def __exit__(self, *exc):
        import _signal

        for sig in self.signals:
            _signal.signal(sig, _signal.SIG_DFL)


def wait_forwarding(pid: int) -> int:
    """Wait for our child pid, passing on the signals we get; returns its wait status."""
    with Forwarding(pid):
        return posix.waitpid(pid, 0)[1]


def wait_in_foreground(pid: int, masters: list[int]) -> int:
    """Wait for our child pid (`run` and `exec` in the foreground): through the proxy of its pty
    when we hold the master (a terminal without --console-socket), else passing signals on; its
    wait status."""
    if masters:
        from .console import Proxy

        with Proxy(masters[0]) as proxy:
            return proxy.pump(pid)
    return wait_forwarding(pid)


def exit_code(status: int) -> int:
    """A wait status as a shell's exit code: 128 + the signal that killed it."""
    return 128 + posix.WTERMSIG(status) if posix.WIFSIGNALED(status) else posix.WEXITSTATUS(status)
