"""What tests/guest's modules share: which host this is, and systemd's view of units."""
import os
import subprocess

import pytest
from ocitest_conftest import MARK

HOST = os.environ.get("OCIRUN_TESTHOST")  # systemd | plain | None (not in the guest)
ROOT = "/sys/fs/cgroup"
systemd_only = pytest.mark.skipif(HOST != "systemd", reason="needs systemd as PID 1 (the systemd boot)")
RUNNER = f"{MARK}-runner.scope"


def show(unit: str, *props: str) -> dict:
    """`systemctl show` of those properties."""
    out = subprocess.run(["systemctl", "show", unit, *(f"--property={p}" for p in props)],
                         capture_output=True, text=True, check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def units() -> list[str]:
    """The systemd units carrying this session's marker, but the runner's own scope."""
    out = subprocess.run(["systemctl", "list-units", "--all", "--plain", "--no-legend"],
                         capture_output=True, text=True, check=True).stdout
    names = [line.split()[0] for line in out.splitlines() if line.split()]
    return [n for n in names if MARK in n and n != RUNNER]
