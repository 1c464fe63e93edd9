"""linux.seccomp.listenerPath: hand the seccomp notify fd to the seccomp agent.

When a rule uses SCMP_ACT_NOTIFY, the container's init gets a listener fd back from seccomp(2)
(SECCOMP_FILTER_FLAG_NEW_LISTENER) and passes it to ocirun over the sync socket (SCM_RIGHTS).
ocirun then, per config-linux.md ("The Container Process State"):
  - connects to listenerPath (AF_UNIX, SOCK_STREAM), one connection per container process;
  - sends the container process state as JSON, with the fd in SCM_RIGHTS on the first
    sendmsg(2) only, its name ("seccompFd") in `fds` at the same index;
  - closes the connection.
Any failure is an OciError naming linux.seccomp.listenerPath; the caller must then fail the
operation (and kill the init).
"""
import os
import socket
import sys

from .errors import OciError
from .jsonio import dumps
from .state import OCI_VERSION

WHERE = "linux.seccomp.listenerPath"
_SUN_PATH_MAX = 107  # sizeof(sun_path) - 1 for the terminating NUL


def process_state(metadata, state_doc: dict, pid: int | None = None) -> dict:
    """The container process state for one seccompFd: `pid` is the process the filter is on
    (an exec'd process, or the init when None), `state_doc` the container's state."""
    doc = {"ociVersion": OCI_VERSION, "fds": ["seccompFd"], "pid": state_doc.get("pid", 0) if pid is None else pid}
    if metadata:
        doc["metadata"] = metadata
    doc["state"] = state_doc
    return doc


def _connect(sock: socket.socket, path: str) -> None:
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        sock.connect(path)
        return
    # Longer than sun_path: connect through an O_PATH fd of the directory.
    parent, name = os.path.split(path)
    dfd = os.open(parent or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sock.connect(f"/proc/self/fd/{dfd}/{name}")
    finally:
        os.close(dfd)


def send_listener(listener_path: str, metadata, state_doc: dict, notify_fd: int, pid: int | None = None) -> None:
    """Send the container process state and `notify_fd` to the agent at `listener_path`.

    `state_doc` is the container's state (runtime.md "State": ociVersion, id, status, pid,
    bundle, annotations) as `state` reports it at that moment; its pid is the container
    process's pid as ocirun sees it. The caller keeps (and closes) its own `notify_fd`.
    """
    payload = dumps(process_state(metadata, state_doc, pid)).encode()
    rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, notify_fd.to_bytes(4, sys.byteorder, signed=True))]
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    except OSError as e:
        raise OciError(f"cannot create a socket for the seccomp agent: {e.strerror}", WHERE) from None
    try:
        _connect(sock, listener_path)
        sent = sock.sendmsg([payload], rights)
        if sent < len(payload):
            sock.sendall(payload[sent:])
    except OSError as e:
        raise OciError(f"cannot send the seccomp notify fd to {listener_path}: "
                       f"{e.strerror or e}", WHERE) from None
    finally:
        sock.close()
