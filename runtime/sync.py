"""The parent's side of the sync protocol with the trampoline (drawn in csrc/sync.h).

A message is one SOCK_SEQPACKET packet: a little-endian u32 type and i32 value, then for
ERROR a one-line text. The numbers mirror enum oci_sync; tests/test_sync.py checks they agree.
"""
import os

USERNS_READY = 1
USERNS_DONE = 2
INIT_PID = 3
CGROUP_DONE = 4
HOOKS = 5
HOOKS_DONE = 6
READY = 7
ERROR = 8
EOF = 0  # what recv returns when every child has closed its end: they died


def recv(sock: int) -> tuple[int, int, str]:
    data = os.read(sock, 2048)
    if len(data) < 8:
        return EOF, 0, ""
    kind = int.from_bytes(data[0:4], "little")
    value = int.from_bytes(data[4:8], "little", signed=True)
    return kind, value, data[8:].decode(errors="replace")


def send(sock: int, kind: int, value: int = 0) -> None:
    os.write(sock, kind.to_bytes(4, "little") + value.to_bytes(4, "little", signed=True))
