"""Tests that need a production-like host: they run in the guest `scripts/testhost test` boots
(pure cgroup v2; systemd as PID 1 with AppArmor on, or no systemd at all), where
OCIRUN_TESTHOST says which (systemd | plain). Anywhere else they are skipped.

In the guest the job starts in a service's cgroup, which holds processes of its own, so cgroup
v2 lets it pass no controller to a child. A person runs ocirun from a login session's .scope
instead; so does this pytest: it moves itself into a scope of its own first (a transient
unit through ocirun's own D-Bus client with systemd, a directory of the root without), and a
relative cgroupsPath then lands beside that scope, as it does for runc.

guest_support.py has what the modules share (HOST, systemd_only, show, units); the autouse
unit_guard checks that no systemd unit carrying the session's marker is left after a test.
"""
import os

import pytest
from guest_support import HOST, ROOT, RUNNER, units
from ocitest_conftest import settled

HERE = os.path.dirname(os.path.abspath(__file__))


def pytest_collection_modifyitems(config, items):
    if HOST:
        return
    skip = pytest.mark.skip(reason="runs in the guest host only: scripts/testhost test")
    for item in items:
        if str(item.fspath).startswith(HERE + os.sep):
            item.add_marker(skip)


def _own_scope() -> None:
    with open("/proc/self/cgroup") as f:
        own = f.read().strip().split("::", 1)[1]
    if own.endswith(".scope"):
        return
    if HOST == "systemd":
        from ocirun.cgroups.systemd import Bus

        with Bus() as bus:
            bus.wait_job(bus.call("StartTransientUnit", "ssa(sv)a(sa(sv))",
                                  (RUNNER, "fail", [("PIDs", ("au", [os.getpid()]))], []), "start"), RUNNER)
    else:
        os.mkdir(f"{ROOT}/{RUNNER}")
        with open(f"{ROOT}/{RUNNER}/cgroup.procs", "w") as f:
            f.write(str(os.getpid()))


def pytest_configure(config):
    if HOST:
        _own_scope()


@pytest.fixture(autouse=True)
def unit_guard():
    yield
    if HOST == "systemd":
        assert not settled(units), f"systemd units left: {units()}"
