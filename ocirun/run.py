"""`run`: create, start, and in the foreground wait for the init and delete the container.

The init is ocirun's own child (the trampoline clones it with CLONE_PARENT), so waitpid gives
its exit status; signals sent to ocirun are passed on to it meanwhile. With a terminal and no
--console-socket, ocirun proxies the pty itself.
"""
from . import lifecycle
from .create import Options, create
from .forward import exit_code, wait_in_foreground


def run(root: str, container_id: str, opts: Options, detach: bool, keep: bool = False) -> int:
    """keep (runc's --keep): a foreground run leaves the stopped container for `state` and a
    later `delete`."""
    masters: list[int] = []
    if not opts.console_socket and not detach:
        opts.on_pty = masters.append
    c = create(root, container_id, opts)
    try:
        lifecycle.start_created(c)
    except BaseException:
        lifecycle.delete_loaded(c, force=True)
        raise
    if detach:
        return 0
    status = wait_in_foreground(c.pid, masters)
    if not keep:
        lifecycle.delete_loaded(c, force=True)
    return exit_code(status)
