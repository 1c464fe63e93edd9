"""`run`: create, start, and in the foreground wait for the init and delete the container.

The init is ocirun's own child (the trampoline clones it with CLONE_PARENT), so waitpid gives
its exit status; signals sent to ocirun are passed on to it meanwhile.
"""
import os

from . import lifecycle
from .create import Options, create

FORWARDED = (1, 2, 3, 10, 12, 15, 28)  # HUP INT QUIT USR1 USR2 TERM WINCH


def run(root: str, container_id: str, opts: Options, detach: bool) -> int:
    c = create(root, container_id, opts)
    try:
        lifecycle.start(root, container_id)
    except BaseException:
        lifecycle.delete(root, container_id, force=True)
        raise
    if detach:
        return 0
    import _signal

    def forward(signum, frame):
        lifecycle.signal_pid(c, signum)

    for sig in FORWARDED:
        _signal.signal(sig, forward)
    while True:
        try:
            _, status = os.waitpid(c.pid, 0)
            break
        except InterruptedError:
            continue
    for sig in FORWARDED:
        _signal.signal(sig, _signal.SIG_DFL)
    lifecycle.delete(root, container_id, force=True)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)
