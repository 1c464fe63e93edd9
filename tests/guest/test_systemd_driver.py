"""The systemd cgroup driver on a booted systemd host: `--systemd-cgroup` with slice:prefix:name
makes a transient scope through D-Bus, the resources are on it as unit properties and in its
files, update/pause/resume/delete work through it, and nothing of it is left after delete, a
refused input, or an ocirun killed halfway through create."""
import os
import signal
import time

import pytest
from guest_support import ROOT, show, systemd_only, units
from ocitest_conftest import MARK, pid_alive, settled

pytestmark = systemd_only
INF = "infinity"


def _sd(rt):
    def call(*args, **kw):
        return rt("--systemd-cgroup", *args, **kw)
    return call


def test_scope_with_resources(rt, bundle, unique_id):
    unit = f"{MARK}-{unique_id}.scope"
    b = bundle(["sh", "-c", "cat /proc/self/cgroup /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max "
                            "/sys/fs/cgroup/cpu.max /sys/fs/cgroup/cpuset.cpus; sleep 1000"],
               linux={"cgroupsPath": f"system.slice:{MARK}:{unique_id}",
                      "resources": {"memory": {"limit": 64 << 20}, "pids": {"limit": 33},
                                    "cpu": {"quota": 50000, "period": 100000, "cpus": "0"}}},
               annotations={"org.systemd.property.TimeoutStopUSec": "uint64 5000000"})
    sd = _sd(rt)
    sd("run", "--detach", "--bundle", b, unique_id)
    try:
        props = show(unit, "ActiveState", "ControlGroup", "MemoryMax", "TasksMax", "CPUQuotaPerSecUSec",
                     "AllowedCPUs", "Delegate", "TimeoutStopUSec", "Slice")
        assert props["ActiveState"] == "active" and props["Slice"] == "system.slice"
        assert props["ControlGroup"] == f"/system.slice/{unit}"
        assert props["MemoryMax"] == str(64 << 20) and props["TasksMax"] == "33"
        assert props["CPUQuotaPerSecUSec"] == "500ms" and props["AllowedCPUs"] == "0"
        assert props["Delegate"] == "yes" and props["TimeoutStopUSec"] == "5s"
        pid = rt.state(unique_id)["pid"]
        assert open(f"/proc/{pid}/cgroup").read().strip() == f"0::/system.slice/{unit}"
        # From inside, the container's own files.
        inside = sd("exec", unique_id, "cat", "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/pids.max",
                    "/sys/fs/cgroup/cpu.max").stdout.split()
        assert inside == [str(64 << 20), "33", "50000", "100000"]

        # update through the driver: the file and the unit property both change
        sd("update", "--memory", str(96 << 20), "--pids-limit", "44", unique_id)
        assert show(unit, "MemoryMax", "TasksMax") == {"MemoryMax": str(96 << 20), "TasksMax": "44"}
        assert open(f"{ROOT}/system.slice/{unit}/memory.max").read().strip() == str(96 << 20)
        # a daemon-reload re-applies the unit's properties: the update must survive it
        os.system("systemctl daemon-reload")
        assert open(f"{ROOT}/system.slice/{unit}/memory.max").read().strip() == str(96 << 20)

        sd("pause", unique_id)
        assert rt.state(unique_id)["status"] == "paused"
        sd("resume", unique_id)
        assert rt.state(unique_id)["status"] == "running"
        sd("exec", unique_id, "true")
    finally:
        sd("delete", "--force", unique_id)
    assert unit not in units() and not os.path.exists(f"{ROOT}/system.slice/{unit}")


NESTED = MARK.replace("-", "")  # a dash in a slice name is a level: a-b.slice is in a.slice


@pytest.mark.parametrize("slice_,where", [("", "/system.slice"), ("-.slice", ""),
                                          (f"{NESTED}-a.slice", f"/{NESTED}.slice/{NESTED}-a.slice")])
def test_slices(rt, bundle, unique_id, slice_, where):
    b = bundle(["cat", "/proc/self/cgroup"], linux={"cgroupsPath": f"{slice_}:{MARK}:{unique_id}"})
    try:
        out = _sd(rt)("run", "--bundle", b, unique_id).stdout.strip()
        assert out == f"0::{where}/{MARK}-{unique_id}.scope"
        assert not units()  # the scope is gone; the slices systemd made on the way stay, as with runc
    finally:
        if slice_.startswith(NESTED):
            os.system(f"systemctl stop {slice_} {NESTED}.slice")


def test_default_path_and_ps(rt, bundle, unique_id):
    b = bundle(["sleep", "1000"], linux={"cgroupsPath": ""})
    sd = _sd(rt)
    sd("run", "--detach", "--bundle", b, unique_id)
    try:
        assert show(f"ocirun-{unique_id}.scope", "ActiveState")["ActiveState"] == "active"
        assert str(rt.state(unique_id)["pid"]) in sd("ps", "--format", "json", unique_id).stdout
    finally:
        sd("delete", "--force", unique_id)
    assert show(f"ocirun-{unique_id}.scope", "LoadState")["LoadState"] == "not-found"


@pytest.mark.parametrize("path,annotations,says", [
    ("bad--name.slice:p:n", {}, "not a slice name"),
    ("/a/b", {}, "slice:prefix:name"),
    (None, {"org.systemd.property.NoSuchThing": "uint64 1"}, "systemd said"),
    (None, {"org.systemd.property.MemoryMax": "'lots'"}, "systemd said"),
])
def test_refused_leaves_nothing(rt, bundle, unique_id, path, annotations, says):
    b = bundle(["true"], linux={"cgroupsPath": path or f"system.slice:{MARK}:{unique_id}"},
               annotations=annotations)
    line = rt.expect_error("--systemd-cgroup", "run", "--bundle", b, unique_id, mentions=[says])
    assert "linux.cgroupsPath" in line or "annotations" in line
    assert not units()


def test_form_without_flag_is_refused(rt, bundle, unique_id):
    b = bundle(["true"], linux={"cgroupsPath": f"system.slice:{MARK}:{unique_id}"})
    rt.expect_error("run", "--bundle", b, unique_id, mentions=["--systemd-cgroup"])


def test_killed_create_leaves_nothing(rt, bundle, unique_id, tmp_path):
    """ocirun killed while a createRuntime hook runs (the scope exists by then): the init ends
    on its own (the socket's EOF), systemd drops the emptied scope, delete -f clears the state."""
    unit = f"{MARK}-{unique_id}.scope"
    mark = tmp_path / "hook-ran"
    b = bundle(["true"], linux={"cgroupsPath": f"system.slice:{MARK}:{unique_id}"},
               hooks={"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", f"echo $$ > {mark}; exec sleep 30"]}]})
    p = rt.popen("--systemd-cgroup", "create", "--bundle", b, unique_id)
    assert not settled(lambda: not mark.exists() or not mark.read_text().strip(), timeout=30)
    assert show(unit, "ActiveState")["ActiveState"] == "active"
    init_pids = [int(x) for x in open(f"{ROOT}/system.slice/{unit}/cgroup.procs").read().split()]
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not settled(lambda: [x for x in init_pids if pid_alive(x)], timeout=10)
    assert not settled(units, timeout=10)
    rt("--systemd-cgroup", "delete", "--force", unique_id)
    assert not (rt.state_root / unique_id).exists()
    assert not os.path.exists(f"{ROOT}/system.slice/{unit}")
    # The hook ocirun ran outlives it (ours, a subreaper's orphan): ended by the pid it wrote.
    os.kill(int(mark.read_text()), signal.SIGKILL)


@pytest.mark.parametrize("delay", [0.05, 0.2, 0.4, 0.6, 0.9, 1.3])
def test_killed_at_any_moment_leaves_nothing(rt, bundle, unique_id, delay):
    """SIGKILL at a moment spread over a whole create under emulation, then delete -f, as a
    caller does after its timeout: no unit, cgroup, process or state is left."""
    unit = f"{MARK}-{unique_id}.scope"
    b = bundle(["sleep", "60"], linux={"cgroupsPath": f"system.slice:{MARK}:{unique_id}",
                                       "resources": {"memory": {"limit": 64 << 20}}})
    p = rt.popen("--systemd-cgroup", "create", "--bundle", b, unique_id)
    time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    p.wait()
    rt("--systemd-cgroup", "delete", "--force", unique_id, check=False)
    assert not settled(units, timeout=10), f"left: {units()}"
    assert not os.path.exists(f"{ROOT}/system.slice/{unit}")
    assert not (rt.state_root / unique_id).exists()
