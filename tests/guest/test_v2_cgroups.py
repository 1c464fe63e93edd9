"""cgroup v2 for real (the guest: pure v2, controllers enabled by the parents, with and without
systemd), with the cgroupfs driver: every linux.resources setting written and read back from
inside the container, the eBPF device filter, freezer, update, ps, events, cgroupns, and
nothing left after delete or a failed create."""
import json
import os

import pytest
from guest_support import HOST, ROOT
from ocitest_conftest import MARK


def _abs(name: str) -> str:
    return f"/{MARK}/{name}"


def _inside(run_in, files, resources, path, **overrides) -> dict:
    """Run a container with these resources at cgroupsPath `path` and read `files` of its own
    cgroup from inside (the container's /sys/fs/cgroup is its cgroup)."""
    script = "; ".join(f"echo {f}=$(cat /sys/fs/cgroup/{f} | tr '\\n' ' ')" for f in files)
    r = run_in(["sh", "-c", script], linux={"resources": resources, "cgroupsPath": path}, **overrides)
    return {k: v.strip() for k, v in (line.split("=", 1) for line in r.stdout.splitlines())}


def _block_device() -> str:
    for name in sorted(os.listdir("/sys/block")):
        if not name.startswith(("loop", "ram")):
            with open(f"/sys/block/{name}/dev") as f:
                return f.read().strip()
    pytest.skip("no block device in this guest")


def _huge_size() -> str:
    """The smallest huge page size, as hugetlb's file names spell it (2MB, 1GB)."""
    sizes = [int(s.removeprefix("hugepages-").removesuffix("kB")) for s in os.listdir("/sys/kernel/mm/hugepages")]
    if not sizes:
        pytest.skip("no huge page sizes")
    kb = min(sizes)
    for unit, size in (("GB", 1 << 20), ("MB", 1 << 10)):
        if kb % size == 0:
            return f"{kb // size}{unit}"
    return f"{kb}KB"


def test_every_resource_is_written(run_in, new_id):
    dev = _block_device()
    major, minor = map(int, dev.split(":"))
    huge = _huge_size()
    resources = {
        "memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 96 << 20},
        "cpu": {"shares": 512, "quota": 20000, "period": 100000, "burst": 1000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 42},
        "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}],
                    "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 300}]},
        "hugepageLimits": [{"pageSize": huge, "limit": 4 << 20}],
        "unified": {"memory.oom.group": "1", "memory.high": str(48 << 20)},
    }
    files = ["memory.max", "memory.low", "memory.swap.max", "memory.oom.group", "memory.high", "cpu.weight",
             "cpu.max", "cpu.max.burst", "cpuset.cpus", "cpuset.mems", "pids.max", "io.max",
             f"hugetlb.{huge}.max"]
    got = _inside(run_in, files + ["io.weight"], resources, _abs(new_id()))
    assert got["memory.max"] == str(64 << 20)
    assert got["memory.low"] == str(32 << 20)
    assert got["memory.swap.max"] == str(32 << 20)  # v2 limits swap alone: swap - limit
    assert got["memory.oom.group"] == "1" and got["memory.high"] == str(48 << 20)
    assert got["cpu.weight"] == "20"  # shares 512, runc's conversion
    assert got["cpu.max"] == "20000 100000" and got["cpu.max.burst"] == "1000"
    assert got["cpuset.cpus"] == "0" and got["cpuset.mems"] == "0"
    assert got["pids.max"] == "42"
    assert f"{dev} rbps=1048576 wbps=max riops=max wiops=300" in got["io.max"]
    assert got[f"hugetlb.{huge}.max"] == str(4 << 20)
    assert "default 4950" in got["io.weight"]  # blkio 500, runc's conversion


def test_cpu_idle_and_unlimited(run_in, new_id):
    got = _inside(run_in, ["cpu.idle", "memory.max", "pids.max"],
                  {"cpu": {"idle": 1}, "memory": {"limit": -1}, "pids": {"limit": -1}}, _abs(new_id()))
    assert got == {"cpu.idle": "1", "memory.max": "max", "pids.max": "max"}


def test_relative_path_lands_beside_our_scope(rt, bundle, unique_id):
    """A relative cgroupsPath is below the parent of ocirun's .scope (conftest put pytest in
    one), with the controllers enabled on the way down."""
    b = bundle(["cat", "/proc/self/cgroup", "/sys/fs/cgroup/memory.max"],
               linux={"resources": {"memory": {"limit": 32 << 20}}})
    with open("/proc/self/cgroup") as f:
        own = f.read().strip().split("::", 1)[1]
    out = rt("run", "--bundle", b, unique_id).stdout.split()
    name = b.name
    parent = os.path.dirname(own)
    assert out[1] == str(32 << 20)
    # without a cgroup namespace the container sees its path from the host's root
    assert out[0] == f"0::{parent.rstrip('/')}/{name}"


def test_device_filter_allows_and_denies(run_in, new_id):
    """The eBPF program: /dev/null (allowed) works; a node the rules deny can't be opened."""
    r = run_in(["sh", "-c", "echo ok > /dev/null && echo null-ok; head -c1 /dev/full >/dev/null 2>&1 "
                            "&& echo full-read || echo full-denied"],
               linux={"cgroupsPath": _abs(new_id()),
                      "resources": {"devices": [{"allow": True, "access": "rwm"},
                                                {"allow": False, "type": "c", "major": 1, "minor": 7,
                                                 "access": "rw"}]}})
    assert r.stdout.split() == ["null-ok", "full-denied"]


def test_pause_update_ps_events(rt, bundle, unique_id):
    path = _abs(unique_id)
    b = bundle(["sleep", "1000"], linux={"cgroupsPath": path, "resources": {"memory": {"limit": 64 << 20}}})
    rt("run", "--detach", "--bundle", b, unique_id)
    d = ROOT + path
    try:
        rt("pause", unique_id)
        assert rt.state(unique_id)["status"] == "paused"
        assert "frozen 1" in open(f"{d}/cgroup.events").read()
        rt("resume", unique_id)
        assert "frozen 0" in open(f"{d}/cgroup.events").read()
        rt("update", "--memory", str(128 << 20), "--pids-limit", "77", unique_id)
        out = rt("exec", unique_id, "cat", "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/pids.max").stdout.split()
        assert out == [str(128 << 20), "77"]
        pid = rt.state(unique_id)["pid"]
        assert str(pid) in rt("ps", "--format", "json", unique_id).stdout
        stats = json.loads(rt("events", "--stats", unique_id).stdout)
        assert stats["data"]["memory"]["usage"]["usage"] > 0
        assert stats["data"]["pids"]["current"] >= 1
    finally:
        rt("delete", "--force", unique_id)
    assert not os.path.exists(d)


def test_oom_kill_is_an_event(rt, bundle, unique_id):
    """memory.events' oom_kill reaches `events` as an oom event."""
    path = _abs(unique_id)
    b = bundle(["sleep", "1000"], linux={"cgroupsPath": path,
                                         "resources": {"memory": {"limit": 16 << 20, "swap": 16 << 20}}})
    rt("run", "--detach", "--bundle", b, unique_id)
    try:
        stream = rt.popen("events", "--interval", "60s", unique_id)
        # a shell variable of 64 MiB: the OOM killer ends the exec'd shell
        rt("exec", unique_id, "sh", "-c", "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived",
           check=False, timeout=60)
        events = dict(line.split() for line in open(f"{ROOT}{path}/memory.events"))
        assert int(events["oom_kill"]) >= 1
        from ocitest_conftest import settled

        settled(lambda: '"oom"' not in open(stream.stdout_path).read(), timeout=5)
        kinds = [json.loads(line)["type"] for line in open(stream.stdout_path)]
        assert "oom" in kinds
    finally:
        rt("delete", "--force", unique_id)
    stream.wait(timeout=10)


def test_cgroupns_shows_only_its_own_subtree(run_in, new_id):
    r = run_in(["sh", "-c", "cat /proc/self/cgroup; ls /sys/fs/cgroup"],
               linux={"cgroupsPath": _abs(new_id()), "resources": {"pids": {"limit": 10}},
                      "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")]})
    lines = r.stdout.split()
    assert lines[0] == "0::/"
    assert "pids.max" in lines and "system.slice" not in lines and "init.scope" not in lines
    assert not any(MARK in x for x in lines)


def test_failed_create_leaves_nothing(rt, bundle, unique_id):
    """A value the kernel refuses: one line naming the field; the cgroup (and its new parent)
    is gone (the leak guard checks processes, mounts and state as well)."""
    path = _abs(unique_id)
    b = bundle(["true"], linux={"cgroupsPath": path, "resources": {"cpu": {"cpus": "4095"}}})
    rt.expect_error("run", "--bundle", b, unique_id, mentions=["linux.resources.cpu.cpus"])
    assert not os.path.exists(ROOT + path)
    assert not os.path.exists(f"{ROOT}/{MARK}") or path.rsplit("/", 1)[1] not in os.listdir(f"{ROOT}/{MARK}")


@pytest.mark.skipif(HOST == "systemd", reason="a plain-boot check: the job's cgroup holds processes")
def test_populated_parent_is_a_clear_error(rt, bundle, unique_id, tmp_path):
    """A parent with processes of its own can't pass controllers on (v2's rule): the setting
    that needs one says so, and nothing is left."""
    parent = f"{ROOT}/{MARK}-busy-{unique_id}"
    os.mkdir(parent)
    import subprocess

    sleeper = subprocess.Popen(["sh", "-c", f"echo $$ > {parent}/cgroup.procs; exec sleep 1000"])
    try:
        b = bundle(["true"], linux={"cgroupsPath": f"/{os.path.basename(parent)}/c",
                                    "resources": {"memory": {"limit": 32 << 20}}})
        rt.expect_error("run", "--bundle", b, unique_id, mentions=["linux.resources.memory.limit",
                                                                    "has processes of its own"])
        assert os.listdir(parent) and not os.path.exists(f"{parent}/c")
    finally:
        sleeper.kill()
        sleeper.wait()
        os.rmdir(parent)


def test_rdma_reaches_the_kernel(rt, bundle, unique_id):
    """rdma.max takes limits of the host's RDMA devices only; the guest has none, so the
    kernel's refusal of a made-up one is the proof that the write is made: one line naming
    the field, nothing left."""
    with open(f"{ROOT}/cgroup.controllers") as f:
        if "rdma" not in f.read().split():
            pytest.skip("no rdma controller in this kernel")
    if os.path.isdir("/sys/class/infiniband") and os.listdir("/sys/class/infiniband"):
        pytest.skip("this guest has RDMA devices")
    path = _abs(unique_id)
    b = bundle(["true"], linux={"cgroupsPath": path,
                                "resources": {"rdma": {"mlx5_0": {"hcaHandles": 2, "hcaObjects": 3}}}})
    rt.expect_error("run", "--bundle", b, unique_id, mentions=["linux.resources.rdma.mlx5_0", "rdma.max"])
    assert not os.path.exists(ROOT + path)
