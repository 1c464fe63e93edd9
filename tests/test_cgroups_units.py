"""Unit tests of the cgroup library: linux.resources as file writes on v1, v2 and hybrid layouts
(fake cgroup directories holding the file names the kernel would show), the device rules for v1 and
as the v2 eBPF program (run here in a small interpreter), stats, the freezer, update's flags.

No kernel cgroup is touched: the writes are recorded by replacing resources.write_file.
"""
import errno
import os

import pytest

from ocirun import cgroup_commands, cgroups
from ocirun.cgroups import devices as dev
from ocirun.cgroups import freezer, resources, usage
from ocirun.errors import ConfigError, OciError

UNLIMITED_V1 = "9223372036854771712"
COMMON_V1 = {"cgroup.procs": "", "tasks": "", "notify_on_release": "0", "cgroup.clone_children": "0"}

V1 = {
    "cpu": {"cpu.shares": "1024", "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "-1", "cpu.cfs_burst_us": "0",
            "cpu.rt_period_us": "1000000", "cpu.rt_runtime_us": "0", "cpu.idle": "0",
            "cpu.stat": "nr_periods 5\nnr_throttled 2\nthrottled_time 3000\n"},
    "cpuacct": {"cpuacct.usage": "5000", "cpuacct.usage_percpu": "2000 3000 ",
                "cpuacct.usage_percpu_sys": "500 1000 ", "cpuacct.usage_percpu_user": "1500 2000 ",
                "cpuacct.usage_user": "3500", "cpuacct.usage_sys": "1500", "cpuacct.stat": "user 1\nsystem 2\n"},
    "cpuset": {"cpuset.cpus": "0-1", "cpuset.mems": "0", "cpuset.effective_cpus": "0-1"},
    "memory": {"memory.limit_in_bytes": UNLIMITED_V1, "memory.soft_limit_in_bytes": UNLIMITED_V1,
               "memory.memsw.limit_in_bytes": UNLIMITED_V1, "memory.kmem.limit_in_bytes": UNLIMITED_V1,
               "memory.kmem.tcp.limit_in_bytes": UNLIMITED_V1, "memory.swappiness": "60",
               "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", "memory.use_hierarchy": "1",
               "memory.usage_in_bytes": "4096", "memory.max_usage_in_bytes": "8192", "memory.failcnt": "1",
               "memory.memsw.usage_in_bytes": "5000", "memory.memsw.max_usage_in_bytes": "9000",
               "memory.memsw.failcnt": "0", "memory.stat": "cache 100\nrss 200\ntotal_cache 300\n"},
    "devices": {"devices.allow": "", "devices.deny": "", "devices.list": "a *:* rwm\n"},
    "freezer": {"freezer.state": "THAWED", "freezer.self_freezing": "0"},
    "blkio": {"blkio.weight": "500", "blkio.leaf_weight": "500", "blkio.weight_device": "",
              "blkio.leaf_weight_device": "", "blkio.throttle.read_bps_device": "",
              "blkio.throttle.write_bps_device": "", "blkio.throttle.read_iops_device": "",
              "blkio.throttle.write_iops_device": "",
              "blkio.throttle.io_service_bytes_recursive": "8:0 Read 100\n8:0 Write 50\n8:0 Total 150\nTotal 150\n",
              "blkio.throttle.io_serviced_recursive": "8:0 Read 1\n8:0 Write 2\n8:0 Total 3\nTotal 3\n"},
    "pids": {"pids.max": "max", "pids.current": "3"},
    "hugetlb": {"hugetlb.2MB.limit_in_bytes": UNLIMITED_V1, "hugetlb.2MB.rsvd.limit_in_bytes": UNLIMITED_V1,
                "hugetlb.2MB.usage_in_bytes": "0", "hugetlb.2MB.max_usage_in_bytes": "0", "hugetlb.2MB.failcnt": "0",
                "hugetlb.1GB.limit_in_bytes": UNLIMITED_V1, "hugetlb.1GB.usage_in_bytes": "0"},
    "net_cls": {"net_cls.classid": "0"},
    "net_prio": {"net_prio.ifpriomap": "lo 0\n", "net_prio.prioidx": "1"},
    "rdma": {"rdma.max": "", "rdma.current": ""},
    "systemd": {},
}

V2_FILES = {
    "cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma", "cgroup.procs": "", "cgroup.freeze": "0",
    "cgroup.events": "populated 1\nfrozen 0\n", "cgroup.max.descendants": "max", "cgroup.type": "domain",
    "memory.max": "max", "memory.high": "max", "memory.low": "0", "memory.swap.max": "max", "memory.current": "1000",
    "memory.swap.current": "10", "memory.peak": "2000",
    "memory.events": "low 0\nhigh 0\nmax 4\noom 1\noom_kill 2\n", "memory.stat": "anon 10\nfile 20\n",
    "cpu.weight": "100", "cpu.max": "max 100000", "cpu.max.burst": "0", "cpu.idle": "0",
    "cpu.stat": "usage_usec 10\nuser_usec 6\nsystem_usec 4\nnr_periods 1\nnr_throttled 1\nthrottled_usec 7\n",
    "cpuset.cpus": "", "cpuset.mems": "", "pids.max": "max", "pids.current": "2", "io.weight": "default 100",
    "io.max": "", "io.stat": "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n",
    "hugetlb.2MB.max": "max", "hugetlb.2MB.rsvd.max": "max", "hugetlb.2MB.current": "0",
    "hugetlb.2MB.events": "max 0\n", "rdma.max": "",
}

# What this project's machines have: v1 controllers without hugetlb/net_cls/net_prio/rdma, BFQ-only
# blkio, and a cgroup2 mount with no controllers enabled for us.
HYBRID_V1 = {k: dict(v) for k, v in V1.items() if k not in ("hugetlb", "net_cls", "net_prio", "rdma")}
HYBRID_V1["blkio"] = {"blkio.bfq.weight": "100", "blkio.bfq.weight_device": "",
                      **{k: v for k, v in V1["blkio"].items() if k.startswith("blkio.throttle")}}
HYBRID_UNIFIED = {"cgroup.controllers": "", "cgroup.procs": "", "cgroup.freeze": "0",
                  "cgroup.events": "populated 0\nfrozen 0\n", "cgroup.max.descendants": "max",
                  "cgroup.max.depth": "max", "cpu.stat": "usage_usec 0\n"}


def _make(base, mounts: dict) -> list[str]:
    dirs = []
    for mount, files in mounts.items():
        d = base / mount / "ctr"
        d.mkdir(parents=True)
        version1 = "cgroup.controllers" not in files
        for name, content in ({**COMMON_V1, **files} if version1 else files).items():
            (d / name).write_text(content + ("\n" if content and not content.endswith("\n") else ""))
        dirs.append(str(d))
    return dirs


@pytest.fixture
def v1(tmp_path):
    return _make(tmp_path / "v1", V1)


@pytest.fixture
def v2(tmp_path):
    return _make(tmp_path / "v2", {"unified": V2_FILES})


@pytest.fixture
def hybrid(tmp_path):
    return _make(tmp_path / "hybrid", {**HYBRID_V1, "unified": HYBRID_UNIFIED})


class Writes(list):
    """Every write (mount, file, value) in order; `fail[(file, value)]` or `fail[file]` = errno
    makes that write fail as the kernel would."""

    def __init__(self):
        super().__init__()
        self.fail = {}
        self.fail_once = {}
        self.refused = []

    def of(self, name):
        return [v for _, n, v in self if n == name]

    def names(self):
        return [n for _, n, _ in self]


@pytest.fixture
def writes(monkeypatch):
    w = Writes()

    def fake(path, value):
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        name = os.path.basename(path)
        err = w.fail.get((name, value), w.fail.get(name)) or w.fail_once.pop((name, value), None)
        if err:
            w.refused.append((name, value))
            raise OSError(err, os.strerror(err), path)
        w.append((os.path.basename(os.path.dirname(os.path.dirname(path))), name, value))
        with open(path, "w") as f:
            f.write(value + "\n")

    def fake_bpf(op):
        w.append(("bpf", os.path.basename(os.path.dirname(op.dir.path)), len(op.rules)))

    monkeypatch.setattr(resources, "write_file", fake)
    monkeypatch.setattr(resources.Bpf, "run", fake_bpf)
    return w


def apply(dirs, res, **kw):
    cgroups.apply(dirs, res, **kw)


def no_devices(res):
    """Resources plus an explicit allow-all, so a create-time apply writes no device rules to look past."""
    return {**res, "devices": [{"allow": True, "access": "rwm"}]}


# --- layout ------------------------------------------------------------------------------------

def test_describe_tells_v1_from_v2_and_reads_the_controllers(v1, v2, hybrid):
    d = resources.describe(v1[0])
    assert (d.version, d.controllers) == (1, {"cpu"})
    assert resources.describe(v1[3]).controllers == {"memory"}
    assert resources.describe(v1[-1]).controllers == set()  # name=systemd
    d = resources.describe(v2[0])
    assert d.version == 2
    assert d.controllers == {"cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "devices", "freezer"}
    u = resources.describe(hybrid[-1])
    assert (u.version, u.controllers) == (2, {"devices", "freezer"})


def test_hybrid_settings_go_to_the_v1_controllers(hybrid, writes):
    apply(hybrid, no_devices({"memory": {"limit": 1 << 20}, "pids": {"limit": 10}, "cpu": {"shares": 512}}))
    mounts = {(m, n) for m, n, _ in writes}
    assert ("memory", "memory.limit_in_bytes") in mounts
    assert ("pids", "pids.max") in mounts
    assert ("cpu", "cpu.shares") in mounts
    assert not any(m == "unified" for m, _ in mounts)


# --- memory ------------------------------------------------------------------------------------

def test_v1_memory_fields(v1, writes):
    apply(v1, no_devices({"memory": {"limit": 100 << 20, "reservation": 50 << 20, "swap": 200 << 20,
                                     "kernel": 10 << 20, "kernelTCP": 5 << 20, "swappiness": 10,
                                     "disableOOMKiller": True, "useHierarchy": True}}))
    mem = [(n, v) for m, n, v in writes if m == "memory"]
    assert mem == [
        ("memory.limit_in_bytes", str(100 << 20)),          # limit first: memsw is still unlimited
        ("memory.memsw.limit_in_bytes", str(200 << 20)),
        ("memory.soft_limit_in_bytes", str(50 << 20)),
        ("memory.kmem.limit_in_bytes", str(10 << 20)),
        ("memory.kmem.tcp.limit_in_bytes", str(5 << 20)),
        ("memory.swappiness", "10"),
        ("memory.oom_control", "1"),
    ]  # use_hierarchy is already 1: not written


def test_v1_memory_order_when_raising_and_lowering(v1, writes):
    apply(v1, no_devices({"memory": {"limit": 100 << 20, "swap": 200 << 20}}))
    writes.clear()
    apply(v1, {"memory": {"limit": 300 << 20, "swap": 400 << 20}}, update=True)
    assert writes.names() == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]
    writes.clear()
    apply(v1, {"memory": {"limit": 50 << 20, "swap": 60 << 20}}, update=True)
    assert writes.names() == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]


def test_v1_unlimited_memory_lifts_memsw_first(v1, writes):
    apply(v1, no_devices({"memory": {"limit": 100 << 20, "swap": 200 << 20}}))
    writes.clear()
    apply(v1, {"memory": {"limit": -1}}, update=True)
    assert [(n, v) for _, n, v in writes] == [("memory.memsw.limit_in_bytes", "-1"), ("memory.limit_in_bytes", "-1")]


def test_v1_zero_means_unset_and_update_writes_only_what_is_given(v1, writes):
    apply(v1, {"memory": {"limit": 0, "reservation": 0}, "pids": {"limit": 7}}, update=True)
    assert writes.names() == ["pids.max"]


def test_v1_oom_killer_reenabled_on_update(v1, writes):
    apply(v1, {"memory": {"disableOOMKiller": False}}, update=True)
    assert writes.of("memory.oom_control") == ["0"]


def test_swap_below_limit_is_refused(v1, writes):
    with pytest.raises(ConfigError) as e:
        apply(v1, {"memory": {"limit": 200 << 20, "swap": 100 << 20}})
    assert e.value.where == "linux.resources.memory.swap"
    assert not writes


def test_v1_without_swap_accounting(tmp_path, writes):
    files = {k: v for k, v in V1["memory"].items() if "memsw" not in k}
    dirs = _make(tmp_path, {"memory": files})
    with pytest.raises(ConfigError) as e:
        apply(dirs, {"memory": {"limit": 1 << 20, "swap": 2 << 20}}, update=True)
    assert e.value.where == "linux.resources.memory.swap" and "swap accounting" in e.value.message
    apply(dirs, {"memory": {"limit": -1}}, update=True)   # no memsw to lift: fine
    assert writes.names() == ["memory.limit_in_bytes"]


def test_v1_kernel_memory_ignored_where_the_kernel_dropped_it(tmp_path, writes):
    files = {k: v for k, v in V1["memory"].items() if "kmem" not in k}
    dirs = _make(tmp_path, {"memory": files})
    apply(dirs, {"memory": {"kernel": 1 << 20, "kernelTCP": 1 << 20}}, update=True)
    assert writes == []


def test_v2_memory_fields(v2, writes):
    apply(v2, no_devices({"memory": {"limit": 100 << 20, "reservation": 50 << 20, "swap": 300 << 20,
                                     "swappiness": 10, "disableOOMKiller": True, "kernel": 1 << 20}}))
    assert [(n, v) for _, n, v in writes if n.startswith("memory.")] == [
        ("memory.swap.max", str(200 << 20)),   # v2 limits swap alone: memory+swap minus memory
        ("memory.max", str(100 << 20)),
        ("memory.low", str(50 << 20)),
    ]


def test_v2_unlimited(v2, writes):
    apply(v2, {"memory": {"limit": -1}}, update=True)
    assert [(n, v) for _, n, v in writes] == [("memory.swap.max", "max"), ("memory.max", "max")]
    writes.clear()
    apply(v2, {"memory": {"limit": 1 << 30, "swap": -1}}, update=True)
    assert [(n, v) for _, n, v in writes] == [("memory.swap.max", "max"), ("memory.max", str(1 << 30))]


def test_v2_swap_needs_a_limit(v2, writes):
    with pytest.raises(ConfigError) as e:
        apply(v2, {"memory": {"swap": 1 << 30}}, update=True)
    assert e.value.where == "linux.resources.memory.swap"


def test_v2_check_before_update(v2, writes):
    # memory.current is 1000 bytes in the fake
    with pytest.raises(ConfigError) as e:
        apply(v2, {"memory": {"limit": 500, "checkBeforeUpdate": True}}, update=True)
    assert e.value.where == "linux.resources.memory.limit" and "current usage 1000" in e.value.message
    assert not writes
    apply(v2, {"memory": {"limit": 500}}, update=True)   # without the check the kernel reclaims or kills
    assert writes.of("memory.max") == ["500"]
    apply(v2, {"memory": {"limit": 4096, "checkBeforeUpdate": True}}, update=True)
    assert writes.of("memory.max") == ["500", "4096"]


def test_check_before_update_is_for_updates_only(v2, writes):
    apply(v2, no_devices({"memory": {"limit": 500, "checkBeforeUpdate": True}}))
    assert writes.of("memory.max") == ["500"]


def test_memory_controller_missing(tmp_path, writes):
    dirs = _make(tmp_path, {"cpu": V1["cpu"]})
    with pytest.raises(ConfigError) as e:
        apply(dirs, {"memory": {"reservation": 1 << 20}}, update=True)
    assert e.value.where == "linux.resources.memory.reservation"
    assert "memory cgroup controller" in e.value.message


# --- kernel refusals -----------------------------------------------------------------------------

def test_kernel_refusal_names_field_file_and_value(v1, writes):
    writes.fail[("memory.limit_in_bytes", "100")] = errno.EINVAL
    with pytest.raises(ConfigError) as e:
        apply(v1, {"memory": {"limit": 100}}, update=True)
    assert str(e.value) == ("config.json: linux.resources.memory.limit: "
                            "write 100 to memory.limit_in_bytes: Invalid argument")


def test_shares_read_back_differs(v1, monkeypatch, writes):
    real = resources.read_file
    monkeypatch.setattr(resources, "read_file",
                        lambda p: "262144\n" if p.endswith("cpu.shares") else real(p))
    with pytest.raises(ConfigError) as e:
        apply(v1, {"cpu": {"shares": 300000}}, update=True)
    assert e.value.where == "linux.resources.cpu.shares" and "262144" in e.value.message


# --- cpu -----------------------------------------------------------------------------------------

def test_v1_cpu_fields(v1, writes):
    apply(v1, no_devices({"cpu": {"shares": 512, "quota": 50000, "period": 100000, "burst": 1000,
                                  "realtimeRuntime": 10000, "realtimePeriod": 1000000, "idle": 1,
                                  "cpus": "0", "mems": "0"}}))
    assert [(m, n, v) for m, n, v in writes if m in ("cpu", "cpuset")] == [
        ("cpuset", "cpuset.cpus", "0"), ("cpuset", "cpuset.mems", "0"),
        ("cpu", "cpu.shares", "512"),
        ("cpu", "cpu.cfs_period_us", "100000"), ("cpu", "cpu.cfs_quota_us", "50000"),
        ("cpu", "cpu.cfs_burst_us", "1000"),
        ("cpu", "cpu.rt_period_us", "1000000"), ("cpu", "cpu.rt_runtime_us", "10000"),
        ("cpu", "cpu.idle", "1"),
    ]


def test_v1_period_refused_first_then_tried_after_quota(v1, writes):
    # The kernel refuses a period that doesn't fit the old quota; after the quota it goes through.
    writes.fail_once[("cpu.cfs_period_us", "1000")] = errno.EINVAL
    apply(v1, {"cpu": {"quota": 500, "period": 1000}}, update=True)
    assert writes.refused == [("cpu.cfs_period_us", "1000")]
    assert [(n, v) for _, n, v in writes] == [("cpu.cfs_quota_us", "500"), ("cpu.cfs_period_us", "1000")]


def test_v1_pair_refused_both_ways_reports_the_first(v1, writes):
    writes.fail["cpu.cfs_period_us"] = errno.EINVAL
    with pytest.raises(ConfigError) as e:
        apply(v1, {"cpu": {"quota": 500, "period": 1000}}, update=True)
    assert e.value.where == "linux.resources.cpu.period"
    assert "write 1000 to cpu.cfs_period_us: Invalid argument" in e.value.message


def test_v1_unlimited_quota(v1, writes):
    apply(v1, {"cpu": {"quota": -1}}, update=True)
    assert writes.of("cpu.cfs_quota_us") == ["-1"]


@pytest.mark.parametrize("shares, weight", [(2, 1), (1024, 39), (512, 20), (262144, 10000), (1, 1), (10 ** 7, 10000)])
def test_shares_to_weight(shares, weight):
    assert resources.shares_to_weight(shares) == weight


def test_v2_cpu_fields(v2, writes):
    apply(v2, no_devices({"cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 1000, "idle": 1,
                                  "cpus": "0-1", "mems": "0"}}))
    assert [(n, v) for _, n, v in writes if n.startswith("cpu")] == [
        ("cpuset.cpus", "0-1"), ("cpuset.mems", "0"),
        ("cpu.weight", "39"), ("cpu.max", "50000 100000"), ("cpu.max.burst", "1000"), ("cpu.idle", "1"),
    ]


def test_v2_cpu_max_quota_or_period_alone(v2, writes):
    apply(v2, {"cpu": {"quota": -1}}, update=True)
    assert writes.of("cpu.max") == ["max"]
    (open(v2[0] + "/cpu.max", "w")).write("20000 100000\n")
    apply(v2, {"cpu": {"period": 50000}}, update=True)
    assert writes.of("cpu.max") == ["max", "20000 50000"]   # the quota stays


def test_v2_realtime_refused(v2, writes):
    with pytest.raises(ConfigError) as e:
        apply(v2, {"cpu": {"realtimeRuntime": 1000}}, update=True)
    assert e.value.where == "linux.resources.cpu.realtimeRuntime"


def test_cpu_burst_missing_in_kernel(tmp_path, writes):
    dirs = _make(tmp_path, {"cpu": {k: v for k, v in V1["cpu"].items() if k != "cpu.cfs_burst_us"}})
    with pytest.raises(ConfigError) as e:
        apply(dirs, {"cpu": {"burst": 10}}, update=True)
    assert e.value.where == "linux.resources.cpu.burst" and "cpu.cfs_burst_us" in e.value.message


# --- pids ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("limit, text", [(100, "100"), (-1, "max"), (0, "0")])
def test_pids(v1, v2, writes, limit, text):
    apply(v1, {"pids": {"limit": limit}}, update=True)
    apply(v2, {"pids": {"limit": limit}}, update=True)
    assert writes.of("pids.max") == [text, text]


def test_pids_controller_missing(tmp_path, writes):
    dirs = _make(tmp_path, {"memory": V1["memory"]})
    with pytest.raises(ConfigError) as e:
        apply(dirs, {"pids": {"limit": 5}}, update=True)
    assert e.value.where == "linux.resources.pids.limit" and "pids" in e.value.message


# --- block I/O -------------------------------------------------------------------------------------

BLKIO = {"weight": 300, "leafWeight": 200,
         "weightDevice": [{"major": 8, "minor": 0, "weight": 500, "leafWeight": 400}],
         "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}],
         "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2000}],
         "throttleReadIOPSDevice": [{"major": 8, "minor": 16, "rate": 30}],
         "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 0}]}


def test_v1_blkio(v1, writes):
    apply(v1, {"blockIO": BLKIO}, update=True)
    assert [(n, v) for _, n, v in writes] == [
        ("blkio.weight", "300"), ("blkio.leaf_weight", "200"),
        ("blkio.weight_device", "8:0 500"), ("blkio.leaf_weight_device", "8:0 400"),
        ("blkio.throttle.read_bps_device", "8:0 1000"), ("blkio.throttle.write_bps_device", "8:0 2000"),
        ("blkio.throttle.read_iops_device", "8:16 30"), ("blkio.throttle.write_iops_device", "8:16 0"),
    ]


def test_bfq_only_v1_blkio(hybrid, writes):
    apply(hybrid, {"blockIO": {"weight": 300, "weightDevice": [{"major": 8, "minor": 0, "weight": 500}]}},
          update=True)
    assert [(n, v) for _, n, v in writes] == [("blkio.bfq.weight", "300"), ("blkio.bfq.weight_device", "8:0 500")]
    with pytest.raises(ConfigError) as e:
        apply(hybrid, {"blockIO": {"leafWeight": 300}}, update=True)
    assert e.value.where == "linux.resources.blockIO.leafWeight"


def test_v2_io(v2, writes):
    apply(v2, {"blockIO": BLKIO}, update=True)
    assert [(n, v) for _, n, v in writes] == [
        ("io.weight", "default 2930"), ("io.weight", "8:0 4950"),
        ("io.max", "8:0 rbps=1000"), ("io.max", "8:0 wbps=2000"),
        ("io.max", "8:16 riops=30"), ("io.max", "8:16 wiops=max"),
    ]


def test_v2_io_bfq(tmp_path, writes):
    dirs = _make(tmp_path, {"unified": {**V2_FILES, "io.bfq.weight": "default 100"}})
    apply(dirs, {"blockIO": {"weight": 300, "weightDevice": [{"major": 8, "minor": 0, "weight": 500}]}},
          update=True)
    assert [(n, v) for _, n, v in writes] == [("io.bfq.weight", "300"), ("io.bfq.weight", "8:0 500")]


@pytest.mark.parametrize("w, io", [(10, 1), (1000, 10000), (500, 4950)])
def test_blkio_weight_conversion(w, io):
    assert resources.blkio_weight_to_io_weight(w) == io


def test_blkio_device_needs_numbers(v1, writes):
    with pytest.raises(ConfigError) as e:
        apply(v1, {"blockIO": {"throttleReadBpsDevice": [{"major": 8, "rate": 1}]}}, update=True)
    assert e.value.where == "linux.resources.blockIO.throttleReadBpsDevice[0].minor"


# --- hugetlb, network, rdma ----------------------------------------------------------------------

def test_hugetlb_v1_and_v2(v1, v2, writes):
    apply(v1, {"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}, {"pageSize": "1GB", "limit": 0}]},
          update=True)
    apply(v2, {"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}]}, update=True)
    assert [(n, v) for _, n, v in writes] == [
        ("hugetlb.2MB.limit_in_bytes", str(4 << 20)), ("hugetlb.2MB.rsvd.limit_in_bytes", str(4 << 20)),
        ("hugetlb.1GB.limit_in_bytes", "0"),
        ("hugetlb.2MB.max", str(4 << 20)), ("hugetlb.2MB.rsvd.max", str(4 << 20)),
    ]


def test_hugetlb_unknown_size_and_missing_controller(v1, hybrid, writes):
    with pytest.raises(ConfigError) as e:
        apply(v1, {"hugepageLimits": [{"pageSize": "64KB", "limit": 1}]}, update=True)
    assert e.value.where == "linux.resources.hugepageLimits[0].pageSize"
    with pytest.raises(ConfigError) as e:
        apply(hybrid, {"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}, update=True)
    assert e.value.where == "linux.resources.hugepageLimits" and "hugetlb" in e.value.message


def test_network_v1(v1, writes):
    apply(v1, {"network": {"classID": 0x100001, "priorities": [{"name": "eth0", "priority": 5},
                                                                {"name": "lo", "priority": 2}]}}, update=True)
    assert [(n, v) for _, n, v in writes] == [
        ("net_cls.classid", str(0x100001)), ("net_prio.ifpriomap", "eth0 5"), ("net_prio.ifpriomap", "lo 2")]


@pytest.mark.parametrize("layout", ["v2", "hybrid"])
def test_network_without_v1_net_controllers(request, writes, layout):
    dirs = request.getfixturevalue(layout)
    with pytest.raises(ConfigError) as e:
        apply(dirs, {"network": {"classID": 1}}, update=True)
    assert e.value.where == "linux.resources.network.classID" and "net_cls" in e.value.message


def test_rdma(v1, v2, writes):
    r = {"rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}, "mlx4_0": {"hcaObjects": 7}}}
    apply(v1, r, update=True)
    apply(v2, r, update=True)
    assert writes.of("rdma.max") == ["mlx5_1 hca_handle=3 hca_object=10000", "mlx4_0 hca_object=7"] * 2


# --- unified ------------------------------------------------------------------------------------

def test_unified_on_v2_and_hybrid(v2, hybrid, writes):
    apply(v2, {"unified": {"memory.high": "1G", "cgroup.max.descendants": "5"}}, update=True)
    apply(hybrid, {"unified": {"cgroup.max.descendants": "5"}}, update=True)
    assert list(writes) == [("unified", "memory.high", "1G"), ("unified", "cgroup.max.descendants", "5"),
                            ("unified", "cgroup.max.descendants", "5")]


def test_unified_refused_on_v1_only(v1, writes):
    with pytest.raises(ConfigError) as e:
        apply(v1, {"unified": {"memory.max": "1G"}}, update=True)
    assert e.value.where == "linux.resources.unified"
    assert "v1" in e.value.message


def test_unified_key_for_a_controller_not_enabled(hybrid, writes):
    with pytest.raises(ConfigError) as e:
        apply(hybrid, {"unified": {"memory.max": "1G"}}, update=True)
    assert e.value.where == "linux.resources.unified.memory.max"
    assert "memory controller is not enabled" in e.value.message


@pytest.mark.parametrize("key", ["../memory.max", "memory", ".."])
def test_unified_bad_key(v2, writes, key):
    with pytest.raises(ConfigError) as e:
        apply(v2, {"unified": {key: "1"}}, update=True)
    assert e.value.where == "linux.resources.unified"


def test_unified_written_last(v2, writes):
    apply(v2, {"unified": {"memory.max": "2G"}, "memory": {"limit": 1 << 30}}, update=True)
    assert writes.of("memory.max") == [str(1 << 30), "2G"]


# --- bad values ----------------------------------------------------------------------------------

@pytest.mark.parametrize("res, where", [
    ({"memory": {"limit": "1G"}}, "linux.resources.memory.limit"),
    ({"memory": {"swappiness": 101}}, "linux.resources.memory.swappiness"),
    ({"memory": []}, "linux.resources.memory"),
    ({"cpu": {"shares": True}}, "linux.resources.cpu.shares"),
    ({"cpu": {"cpus": 3}}, "linux.resources.cpu.cpus"),
    ({"pids": {"limit": 1.5}}, "linux.resources.pids.limit"),
])
def test_bad_values_name_the_field(v1, writes, res, where):
    with pytest.raises(ConfigError) as e:
        apply(v1, res, update=True)
    assert e.value.where == where


# --- devices: v1 -----------------------------------------------------------------------------------

def rules(*specs):
    out = []
    for s in specs:
        allow, rest = s.split(" ", 1)
        t, nums, access = rest.split()
        ma, mi = nums.split(":")
        out.append({"allow": allow == "allow", "type": t, "major": -1 if ma == "*" else int(ma),
                    "minor": -1 if mi == "*" else int(mi), "access": access})
    return out


DEFAULT_LINES = ["c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
                 "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm", "c 10:200 rwm"]


def test_v1_devices_from_a_fresh_cgroup(v1, writes):
    apply(v1, {"devices": [{"allow": False, "access": "rwm"}]})
    dv = [(n, v) for m, n, v in writes if m == "devices"]
    assert dv == [("devices.deny", "a *:* rwm")] + [("devices.allow", line) for line in DEFAULT_LINES]


def test_v1_devices_default_when_config_has_none(v1, writes):
    apply(v1, {})
    assert writes.of("devices.deny") == ["a *:* rwm"]
    assert writes.of("devices.allow") == DEFAULT_LINES


def test_v1_devices_config_devices_and_specific_denial(v1, writes):
    extra = cgroups.device_allows([{"type": "c", "major": 10, "minor": 229, "path": "/dev/fuse"},
                                   {"type": "p", "path": "/dev/fifo"},
                                   {"type": "u", "major": 4, "minor": 64, "path": "/dev/x"}])
    assert extra == [{"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
                     {"allow": True, "type": "c", "major": 4, "minor": 64, "access": "rwm"}]
    apply(v1, {"devices": rules("deny a *:* rwm", "deny c 1:3 rwm")}, devices=extra)
    # /dev/null (1:3) is not allowed in the end: the config's own rule wins over the defaults
    assert "c 1:3 rwm" not in writes.of("devices.allow")
    assert "c 10:229 rwm" in writes.of("devices.allow") and "c 4:64 rwm" in writes.of("devices.allow")


def test_v1_devices_update_writes_only_the_difference(v1, writes):
    apply(v1, {"devices": rules("deny a *:* rwm", "deny c 1:3 rwm")})
    # what the kernel would list now
    lines = [ln for ln in DEFAULT_LINES if ln != "c 1:3 rwm"]
    open(v1[4] + "/devices.list", "w").write("\n".join(lines) + "\n")
    writes.clear()
    apply(v1, {"devices": rules("deny a *:* rwm", "deny c 1:5 w")}, update=True)
    assert [(n, v) for _, n, v in writes] == [("devices.allow", "c 1:3 rwm"), ("devices.deny", "c 1:5 w")]


def test_v1_devices_allow_all(v1, writes):
    apply(v1, {"devices": rules("deny a *:* rwm", "allow a *:* rwm", "deny c 1:9 w")})
    assert [(n, v) for _, n, v in writes] == [("devices.allow", "a *:* rwm"), ("devices.deny", "c 1:9 w")]


def test_devices_untouched_by_an_update_without_them(v1, writes):
    apply(v1, {"pids": {"limit": 3}}, update=True)
    assert writes.names() == ["pids.max"]


@pytest.mark.parametrize("rule, where, words", [
    ({"allow": True, "type": "x", "access": "r"}, "linux.resources.devices[0].type", "x"),
    ({"allow": True, "type": "c", "access": "rwx"}, "linux.resources.devices[0].access", "rwx"),
    ({"allow": "yes"}, "linux.resources.devices[0].allow", "true or false"),
    ({"allow": True, "type": "c", "major": "1"}, "linux.resources.devices[0].major", "integer"),
    ({"allow": True, "type": "c", "major": -2}, "linux.resources.devices[0].major", "-2"),
])
def test_bad_device_rules(v1, writes, rule, where, words):
    with pytest.raises(ConfigError) as e:
        apply(v1, {"devices": [rule]})
    assert e.value.where == where and words in e.value.message
    assert not writes


def test_v1_default_device_the_parent_denies_is_skipped(v1, writes):
    parent = os.path.dirname(v1[4])
    open(parent + "/devices.list", "w").write("c 1:3 rwm\nc 1:5 rwm\n")   # a restricted parent
    writes.fail[("devices.allow", "c 10:200 rwm")] = errno.EPERM
    apply(v1, {"devices": rules("deny a *:* rwm")})
    assert "c 1:3 rwm" in writes.of("devices.allow") and "c 10:200 rwm" not in writes.of("devices.allow")
    # the config's own rule for it is not skipped
    with pytest.raises(ConfigError) as e:
        apply(v1, {"devices": rules("deny a *:* rwm", "allow c 10:200 rwm")})
    assert "write c 10:200 rwm to devices.allow: Operation not permitted" in e.value.message


def test_v1_default_device_refused_under_an_open_parent_is_an_error(v1, writes):
    open(os.path.dirname(v1[4]) + "/devices.list", "w").write("a *:* rwm\n")
    writes.fail[("devices.allow", "c 10:200 rwm")] = errno.EPERM
    with pytest.raises(ConfigError):
        apply(v1, {"devices": rules("deny a *:* rwm")})


def test_emulate_v1_matches_the_kernel_rules():
    parse = dev.parse_rules
    assert dev.emulate_v1(parse(rules("deny a *:* rwm", "allow c 1:3 r", "allow c 1:3 w"))) == (
        False, {("c", 1, 3): "rw"})
    assert dev.emulate_v1(parse(rules("allow c 1:3 rwm", "deny c 1:3 w"))) == (False, {("c", 1, 3): "rm"})
    assert dev.emulate_v1(parse(rules("allow a *:* rwm", "deny b 8:* rwm", "allow b 8:* r"))) == (
        True, {("b", 8, -1): "wm"})


def test_parse_devices_list():
    assert dev.parse_list("a *:* rwm\n") == (True, None)
    assert dev.parse_list("c 1:3 rwm\nc 136:* rw\nb *:* m\n") == (
        False, {("c", 1, 3): "rwm", ("c", 136, -1): "rw", ("b", -1, -1): "m"})
    assert dev.parse_list("") == (False, {})


# --- devices: v2 eBPF -------------------------------------------------------------------------------

def test_v2_devices_make_one_program_op(v2, writes):
    ops = resources.plan(v2, {"devices": rules("deny a *:* rwm", "allow c 1:3 rwm")})
    bpf_ops = [op for op in ops if isinstance(op, resources.Bpf)]
    assert len(bpf_ops) == 1 and bpf_ops[0].dir.path == v2[0]
    assert bpf_ops[0].rules[-1] == dev.Rule(True, "c", 1, 3, "rwm")


def run_program(insns, dev_type, access, major, minor):
    """A small interpreter for the instructions the assembler emits."""
    ctx = {0: (access << 16) | dev_type, 4: major, 8: minor}
    reg = [0] * 11
    reg[1] = "ctx"
    pc = 0
    mask = (1 << 64) - 1
    for _ in range(100000):
        code, dst, src, off, imm = insns[pc]
        pc += 1
        if code == dev.LDX_MEM_W:
            assert reg[src] == "ctx"
            reg[dst] = ctx[off]
        elif code == dev.MOV64_REG:
            reg[dst] = reg[src]
        elif code == dev.MOV64_IMM:
            reg[dst] = imm & mask
        elif code == dev.AND64_IMM:
            reg[dst] &= imm & mask
        elif code == dev.RSH64_IMM:
            reg[dst] >>= imm
        elif code == dev.JA:
            pc += off
        elif code == dev.JEQ_IMM:
            pc += off if reg[dst] == imm & mask else 0
        elif code == dev.JNE_IMM:
            pc += off if reg[dst] != imm & mask else 0
        elif code == dev.JSET_IMM:
            pc += off if reg[dst] & imm else 0
        elif code == dev.EXIT:
            return reg[0]
        else:
            raise AssertionError(f"unknown opcode {code:#x}")
    raise AssertionError("program did not end")


CHAR, BLOCK = 2, 1
M, R_, W_ = 1, 2, 4


def decide(spec_rules, dev_type, major, minor, access, extra=()):
    r = dev.effective_rules(dev.parse_rules(spec_rules), dev.parse_rules(list(extra)))
    return run_program(dev.program(r), dev_type, access, major, minor)


def test_program_default_config():
    cfg = rules("deny a *:* rwm")
    assert decide(cfg, CHAR, 1, 3, R_ | W_) == 1             # /dev/null
    assert decide(cfg, CHAR, 136, 4, R_ | W_) == 1           # a pty
    assert decide(cfg, CHAR, 4, 1, M) == 1                   # mknod any char device
    assert decide(cfg, CHAR, 4, 1, R_) == 0                  # but not open it
    assert decide(cfg, BLOCK, 8, 0, R_) == 0                 # /dev/sda
    assert decide(cfg, CHAR, 10, 229, R_, extra=cgroups.device_allows([{"type": "c", "major": 10, "minor": 229}])) == 1


def test_program_last_match_wins():
    cfg = rules("deny a *:* rwm", "deny c 1:3 rwm")
    assert decide(cfg, CHAR, 1, 3, R_) == 0
    assert decide(cfg, CHAR, 1, 5, R_) == 1
    cfg = rules("deny a *:* rwm", "allow c 1:3 rwm", "deny c 1:3 w")
    assert decide(cfg, CHAR, 1, 3, R_) == 1
    assert decide(cfg, CHAR, 1, 3, W_) == 0
    assert decide(cfg, CHAR, 1, 3, R_ | W_) == 0             # any bit denied denies the open
    cfg = rules("deny a *:* rwm", "deny c 1:3 w", "allow c 1:3 rwm")
    assert decide(cfg, CHAR, 1, 3, R_ | W_) == 1


def test_program_per_bit_and_wildcards():
    cfg = rules("deny a *:* rwm", "deny c 1:3 rwm", "allow c 1:3 r", "allow b 8:* rw")
    assert decide(cfg, CHAR, 1, 3, R_) == 1
    assert decide(cfg, CHAR, 1, 3, R_ | W_) == 0
    assert decide(cfg, BLOCK, 8, 17, R_ | W_) == 1
    assert decide(cfg, BLOCK, 8, 17, M) == 1                 # b *:* m from the defaults
    assert decide(cfg, BLOCK, 9, 0, R_) == 0
    assert decide(cfg, CHAR, 8, 17, R_) == 0                 # type matters


def test_program_allow_all_and_empty():
    assert decide(rules("allow a *:* rwm"), BLOCK, 259, 1, R_ | W_ | M) == 1
    assert decide(rules("allow a *:* rwm", "deny b 259:* w"), BLOCK, 259, 1, R_ | W_) == 0
    assert decide(rules("allow a *:* rwm", "deny b 259:* w"), BLOCK, 259, 1, R_) == 1
    assert decide([], CHAR, 1, 3, R_) == 1                   # no rules: defaults only
    assert decide([], CHAR, 4, 1, R_) == 0


def test_program_ends_in_exits_and_jumps_stay_inside():
    insns = dev.program(dev.effective_rules(dev.parse_rules(rules("deny a *:* rwm", "allow c 1:3 r"))))
    assert insns[-1][0] == dev.EXIT
    for pc, (code, _, _, off, _) in enumerate(insns):
        if code in (dev.JA, dev.JEQ_IMM, dev.JNE_IMM, dev.JSET_IMM):
            assert off >= 0 and pc + 1 + off < len(insns)
            assert off != 0 or code != dev.JA


def test_program_has_no_unreachable_instruction():
    """The verifier refuses unreachable instructions: walk every edge."""
    for cfg in (rules("deny a *:* rwm"), rules("allow a *:* rwm"), rules("allow a *:* rwm", "deny a *:* rwm"),
                rules("deny a *:* rwm", "allow c 1:3 r"), []):
        insns = dev.program(dev.effective_rules(dev.parse_rules(cfg)))
        seen, todo = set(), [0]
        while todo:
            pc = todo.pop()
            if pc in seen:
                continue
            seen.add(pc)
            code, _, _, off, _ = insns[pc]
            if code == dev.EXIT:
                continue
            if code == dev.JA:
                todo.append(pc + 1 + off)
            elif code in (dev.JEQ_IMM, dev.JNE_IMM, dev.JSET_IMM):
                todo += [pc + 1, pc + 1 + off]
            else:
                todo.append(pc + 1)
        assert seen == set(range(len(insns))), cfg


def test_encode_layout():
    code = dev.encode([dev.insn(dev.LDX_MEM_W, 4, 1, 4), dev.insn(dev.JNE_IMM, 2, 0, -3, 2),
                       dev.insn(dev.MOV64_IMM, 0, imm=-1)])
    assert len(code) == 24
    assert code[:8] == bytes([0x61, 0x14, 4, 0, 0, 0, 0, 0])        # dst 4 in the low nibble, src 1 high
    assert code[8:16] == bytes([0x55, 0x02, 0xfd, 0xff, 2, 0, 0, 0])
    assert code[16:] == bytes([0xb7, 0, 0, 0, 0xff, 0xff, 0xff, 0xff])


# --- freezer ---------------------------------------------------------------------------------------

def test_freeze_v1(v1):
    cgroups.freeze(v1)
    assert open(v1[5] + "/freezer.state").read() == "FROZEN"
    assert freezer.is_frozen(v1)
    cgroups.thaw(v1)
    assert open(v1[5] + "/freezer.state").read() == "THAWED"


def test_freeze_v2_waits_for_the_event(v2):
    open(v2[0] + "/cgroup.events", "w").write("populated 1\nfrozen 1\n")
    cgroups.freeze(v2)
    assert open(v2[0] + "/cgroup.freeze").read() == "1"


def test_freeze_v2_times_out_and_thaws(v2):
    with pytest.raises(OciError) as e:
        freezer.freeze(v2, timeout=0.05)
    assert "did not freeze" in e.value.message
    assert open(v2[0] + "/cgroup.freeze").read() == "0"


def test_freeze_without_freezer(tmp_path):
    dirs = _make(tmp_path, {"memory": V1["memory"]})
    with pytest.raises(OciError) as e:
        cgroups.freeze(dirs)
    assert "freezer" in e.value.message


def test_hybrid_freezes_with_v1(hybrid):
    cgroups.freeze(hybrid)
    assert open(hybrid[5] + "/freezer.state").read() == "FROZEN"
    assert open(hybrid[-1] + "/cgroup.freeze").read().strip() == "0"


# --- stats -----------------------------------------------------------------------------------------

def test_stats_v1(v1):
    s = cgroups.stats(v1)
    assert s["cpu"]["usage"] == {"total": 5000, "percpu": [2000, 3000], "percpu_kernel": [500, 1000],
                                 "percpu_user": [1500, 2000], "kernel": 1500, "user": 3500}
    assert s["cpu"]["throttling"] == {"periods": 5, "throttledPeriods": 2, "throttledTime": 3000}
    assert s["memory"]["usage"] == {"limit": usage.MAX_U64, "usage": 4096, "max": 8192, "failcnt": 1}
    assert s["memory"]["swap"]["usage"] == 5000
    assert s["memory"]["raw"] == {"cache": 100, "rss": 200, "total_cache": 300}
    assert s["memory"]["cache"] == 300
    assert s["pids"] == {"current": 3, "limit": 0}
    assert {"major": 8, "minor": 0, "op": "Read", "value": 100} in s["blkio"]["ioServiceBytesRecursive"]
    assert {"major": 8, "minor": 0, "op": "Total", "value": 3} in s["blkio"]["ioServicedRecursive"]
    assert s["hugetlb"]["2MB"] == {"usage": 0, "max": 0, "failcnt": 0}
    assert cgroups.oom_events(v1) == 3


def test_stats_v2(v2):
    s = cgroups.stats(v2)
    assert s["cpu"]["usage"]["total"] == 10000 and s["cpu"]["usage"]["user"] == 6000
    assert s["cpu"]["throttling"] == {"periods": 1, "throttledPeriods": 1, "throttledTime": 7000}
    assert s["memory"]["usage"] == {"limit": usage.MAX_U64, "usage": 1000, "max": 2000, "failcnt": 4}
    assert s["memory"]["swap"]["usage"] == 1010
    assert s["memory"]["cache"] == 20
    assert s["pids"] == {"current": 2, "limit": 0}
    assert {"major": 8, "minor": 0, "op": "Write", "value": 200} in s["blkio"]["ioServiceBytesRecursive"]
    assert {"major": 8, "minor": 0, "op": "Read", "value": 1} in s["blkio"]["ioServicedRecursive"]
    assert cgroups.oom_events(v2) == 2


def test_stats_hybrid_uses_v1(hybrid):
    s = cgroups.stats(hybrid)
    assert s["cpu"]["usage"]["total"] == 5000
    assert s["memory"]["usage"]["usage"] == 4096
    assert s["hugetlb"] == {}


def test_stats_of_limits(v1, v2, writes):
    open(v1[7] + "/pids.max", "w").write("12\n")
    assert cgroups.stats(v1)["pids"]["limit"] == 12
    open(v2[0] + "/memory.max", "w").write("1048576\n")
    open(v2[0] + "/memory.swap.max", "w").write("1048576\n")
    s = cgroups.stats(v2)["memory"]
    assert s["usage"]["limit"] == 1 << 20 and s["swap"]["limit"] == 2 << 20


# --- update's flags ---------------------------------------------------------------------------------

def test_resources_from_flags():
    r = cgroup_commands.resources_from_flags({
        "--memory": "512m", "memory-reservation": "1g", "memory_swap": "-1", "kernel-memory": "1024",
        "cpu-shares": "512", "cpu-quota": "-1", "cpu-period": "100000", "cpu-rt-runtime": "950",
        "cpu-rt-period": "1000000", "cpuset-cpus": "0-1", "cpuset-mems": "0", "pids-limit": "-1",
        "blkio-weight": "300", "cpu-idle": None})
    assert r == {
        "memory": {"limit": 512 << 20, "reservation": 1 << 30, "swap": -1, "kernel": 1024},
        "cpu": {"shares": 512, "quota": -1, "period": 100000, "realtimeRuntime": 950, "realtimePeriod": 1000000,
                "cpus": "0-1", "mems": "0"},
        "pids": {"limit": -1},
        "blockIO": {"weight": 300},
    }
    assert cgroup_commands.resources_from_flags({}) == {}
    assert cgroup_commands.resources_from_flags({"memory": "1.5GiB", "cpu-share": 2}) == {
        "memory": {"limit": 3 << 29}, "cpu": {"shares": 2}}


@pytest.mark.parametrize("size, value", [("1024", 1024), ("1k", 1024), ("10MB", 10 << 20), ("2G", 2 << 30),
                                         ("1t", 1 << 40), ("-1", -1), (4096, 4096), ("3 m", 3 << 20)])
def test_parse_size(size, value):
    assert cgroup_commands.parse_size(size, "--memory") == value


@pytest.mark.parametrize("flag, value", [("memory", "lots"), ("memory", "-5"), ("memory", "5x"), ("memory", "m"),
                                         ("cpu-quota", "1.5"), ("cpu-period", "-1"), ("blkio-weight", "5")])
def test_bad_flags(flag, value):
    with pytest.raises(OciError) as e:
        cgroup_commands.resources_from_flags({flag: value})
    assert e.value.where == f"--{flag}"


@pytest.mark.parametrize("text, seconds", [("5s", 5.0), ("100ms", 0.1), ("1m30s", 90.0), ("1.5s", 1.5),
                                           ("2", 2.0), (0.25, 0.25), ("250us", 0.00025)])
def test_parse_interval(text, seconds):
    assert cgroup_commands.parse_interval(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5x", "s", "-1s", "0s", "1s5"])
def test_parse_interval_refuses(text):
    with pytest.raises(OciError) as e:
        cgroup_commands.parse_interval(text)
    assert e.value.where == "--interval"


def test_read_resources(tmp_path, monkeypatch):
    import io

    f = tmp_path / "r.json"
    f.write_text('{"pids": {"limit": 3}}')
    assert cgroup_commands.read_resources(str(f)) == {"pids": {"limit": 3}}
    monkeypatch.setattr("sys.stdin", io.StringIO('{"memory": {"limit": 1}}'))
    assert cgroup_commands.read_resources("-") == {"memory": {"limit": 1}}
    f.write_text("[1]")
    with pytest.raises(OciError):
        cgroup_commands.read_resources(str(f))
    f.write_text("{nope")
    with pytest.raises(OciError) as e:
        cgroup_commands.read_resources(str(f))
    assert e.value.where == str(f)
    with pytest.raises(OciError):
        cgroup_commands.read_resources(str(tmp_path / "missing.json"))


# --- import weight ----------------------------------------------------------------------------------

def test_cgroups_package_stays_light():
    import subprocess
    import sys

    code = ("import sys; import ocirun.cgroups, ocirun.cgroup_commands; "
            "bad = [m for m in ('json', 'subprocess', 'dataclasses', 'ocirun.cgroups.resources', "
            "'ocirun.cgroups.usage', 'ocirun.cgroups.bpf') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.strip() == "[]", out.stderr


def test_v1_rules_give_the_same_target_with_the_config_first():
    """v1_rules reorders for devices.list (the config's entries first, in the listed order)
    without changing what the v1 controller ends with: checked over every short rule list."""
    import itertools

    pool = rules("deny a *:* rwm", "allow a *:* rwm", "allow c 1:3 rwm", "deny c 1:3 w", "allow c 1:3 w",
                 "deny c 136:* rwm", "allow c 10:229 rw", "deny b *:* m", "allow b 8:0 r")
    for n in range(4):
        for combo in itertools.product(pool, repeat=n):
            parsed = dev.parse_rules(list(combo))
            assert dev.emulate_v1(dev.v1_rules(parsed)) == dev.emulate_v1(dev.effective_rules(parsed)), combo
    parsed = dev.parse_rules(rules("deny a *:* rwm", "allow c 10:229 rwm", "allow b 8:20 rw"))
    _, exc = dev.emulate_v1(dev.v1_rules(parsed))
    assert list(exc)[:2] == [("c", 10, 229), ("b", 8, 20)]


def test_v1_writes_keep_the_order_in_a_new_cgroup():
    parsed = dev.parse_rules(rules("deny a *:* rwm", "allow c 10:229 rwm", "allow c 1:3 rwm"))
    target = dev.v1_rules(parsed)
    # inherited from a restricted parent in another order: start again from deny-all
    w = dev.v1_writes(target, "c 1:3 rwm\nc 10:229 rwm\n", keep_order=True)
    assert w[0] == ("devices.deny", "a *:* rwm") and w[1] == ("devices.allow", "c 10:229 rwm")
    # the same order already: only what is missing
    w = dev.v1_writes(target, "c 10:229 rwm\nc 1:3 rwm\n", keep_order=True)
    assert ("devices.deny", "a *:* rwm") not in w
    # an update never starts again (the container would lose its devices in between)
    w = dev.v1_writes(target, "c 1:3 rwm\nc 10:229 rwm\n")
    assert ("devices.deny", "a *:* rwm") not in w
