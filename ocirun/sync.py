"""The parent's side of the sync protocol with the trampoline (drawn in csrc/sync.h).

A message is one SOCK_SEQPACKET packet: a little-endian u32 type and i32 value, then for
ERROR a one-line text. The numbers mirror enum oci_sync; tests/test_units.py checks they agree.
"""
import posix

from .errors import OciError

USERNS_READY = 1
USERNS_DONE = 2
INIT_PID = 3
CGROUP_DONE = 4
HOOKS = 5
HOOKS_DONE = 6
READY = 7
ERROR = 8
PTY = 9
SECCOMP_FD = 10
SECCOMP_DONE = 11
COMMIT = 12
EOF = 0  # what recv returns when every child has closed its end: they died


def recv(sock: int, with_fds: bool = False) -> tuple[int, int, str]:
    """One message. With with_fds, a passed fd (PTY, SECCOMP_FD) comes back as the value."""
    try:
        if with_fds:
            data, fd = _recv_fd(sock)
        else:
            data, fd = posix.read(sock, 2048), None
    except ConnectionResetError:  # the children were killed (a racing delete -f)
        return EOF, 0, ""
    if len(data) < 8:
        return EOF, 0, ""
    kind = int.from_bytes(data[0:4], "little")
    value = int.from_bytes(data[4:8], "little", signed=True)
    return kind, fd if fd is not None else value, data[8:].decode(errors="replace")


def _recv_fd(sock: int) -> tuple[bytes, int | None]:
    import socket

    s = socket.socket(fileno=sock)
    try:
        data, ancillary, _, _ = s.recvmsg(2048, socket.CMSG_SPACE(4))
    finally:
        s.detach()
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            return data, int.from_bytes(payload[:4], "little")
    return data, None


def send(sock: int, kind: int, value: int = 0) -> None:
    try:
        posix.write(sock, kind.to_bytes(4, "little") + value.to_bytes(4, "little", signed=True))
    except (BrokenPipeError, ConnectionResetError):
        raise OciError("the container process exited during setup") from None
