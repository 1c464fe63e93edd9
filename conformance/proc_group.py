"""Wait for a child that leads its own session, killing its whole group if it overstays."""
from __future__ import annotations

import os
import signal
import subprocess


def kill_group(pgid: int) -> None:
    """SIGKILL a process group: the hooks, helpers and containers its leader started."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass


def finish(proc: subprocess.Popen, timeout: float, input_bytes: bytes | None = None) -> tuple[bytes | None, bool]:
    """Feed input_bytes and wait up to timeout; past it, kill the group. -> (stdout, timed_out)"""
    try:
        return proc.communicate(input_bytes, timeout=timeout)[0], False
    except subprocess.TimeoutExpired:
        kill_group(proc.pid)
        return proc.communicate()[0], True
