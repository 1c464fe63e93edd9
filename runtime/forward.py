"""Passing the signals ocirun gets on to the container process it waits for in the foreground."""
import os

FORWARDED = (1, 2, 3, 10, 12, 15, 28)  # HUP INT QUIT USR1 USR2 TERM WINCH


class Forwarding:
    """While active, FORWARDED signals (less those in `keep`) go to pid, our unreaped child."""

    def __init__(self, pid: int, keep: tuple = ()):
        self.pid, self.signals = pid, [s for s in FORWARDED if s not in keep]

    def _forward(self, signum, frame):
        try:
            os.kill(self.pid, signum)
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
