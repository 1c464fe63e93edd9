"""The systemd cgroup driver's parts that need no systemd: cgroupsPath parsing, where a slice
lives, unit properties from the cgroup writes and from annotations. The scope itself, on a
booted systemd host, is tests/guest/test_systemd_driver.py; here too, on this host without
systemd: --systemd-cgroup fails with one line naming it, and leaves nothing."""
import pytest

from ocirun.cgroups import Cgroupfs, Hierarchy, manager, systemd
from ocirun.cgroups.resources import Dir, Pair, W
from ocirun.errors import OciError

V2 = [Hierarchy("/sys/fs/cgroup", 2, frozenset(), "/user.slice/session-1.scope")]


def test_default_and_forms():
    assert systemd.parse_path("", "c1") == ("system.slice", "ocirun", "c1")
    assert systemd.parse_path("machine.slice:libpod:abc", "c1") == ("machine.slice", "libpod", "abc")
    assert systemd.parse_path(":cri-containerd:abc", "c1") == ("system.slice", "cri-containerd", "abc")
    assert systemd.parse_path("-.slice::abc", "c1") == ("-.slice", "", "abc")


def test_scope_dirs():
    m = manager("kubepods-burstable-pod1.slice:cri-containerd:abc", "c1", True, V2)
    assert m.unit == "cri-containerd-abc.scope"
    assert m.dirs == ["/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/"
                      "kubepods-burstable-pod1.slice/cri-containerd-abc.scope"]
    assert manager("-.slice::abc", "c1", True, V2).dirs == ["/sys/fs/cgroup/abc.scope"]
    record = manager("", "c1", True, V2).record()
    assert record == {"cgroup_dirs": ["/sys/fs/cgroup/system.slice/ocirun-c1.scope"], "cgroup_made": [],
                      "cgroup_unit": "ocirun-c1.scope"}


@pytest.mark.parametrize("path,says", [
    ("/abs/path", "slice:prefix:name"),
    ("a:b", "slice:prefix:name"),
    ("system.slice:p:", "name part"),
    ("system.slice:p:x.slice", "not the slice"),
    ("nota-slice:p:n", "not a slice name"),
    ("a--b.slice:p:n", "not a slice name"),
    ("-a.slice:p:n", "not a slice name"),
    ("system.slice:p/q:n", "characters systemd refuses"),
    ("system.slice:p:n m", "characters systemd refuses"),
])
def test_bad_paths_name_the_field(path, says):
    with pytest.raises(OciError) as e:
        manager(path, "c1", True, V2)
    assert e.value.where == "linux.cgroupsPath" and says in e.value.message


def test_systemd_form_without_the_flag():
    with pytest.raises(OciError) as e:
        manager("system.slice:p:n", "c1", False, V2)
    assert "--systemd-cgroup" in e.value.message
    assert isinstance(manager("/a/b", "c1", False, V2), Cgroupfs)


def test_relative_path_leaves_a_scope_on_v2():
    """ocirun's own .scope holds ocirun: v2 lets it pass no controller to a child, so the
    container goes beside it, as runc puts it."""
    assert manager("", "c1", False, V2).dirs == ["/sys/fs/cgroup/user.slice/c1"]
    service = [Hierarchy("/sys/fs/cgroup", 2, frozenset(), "/system.slice/x.service")]
    assert manager("a/b", "c1", False, service).dirs == ["/sys/fs/cgroup/system.slice/x.service/a/b"]


def _w(name, value, version=2):
    return W("linux.resources", Dir("/x", version, set(), set()), name, value)


def test_properties_follow_the_v2_writes():
    ops = [_w("memory.max", "1048576"), _w("memory.low", "max"), _w("memory.swap.max", "0"),
           _w("pids.max", "max"), _w("cpu.weight", "100"), _w("cpuset.cpus", "0-2,9"),
           _w("cpuset.mems", "0"), Pair(_w("cpu.max", "max"), _w("io.max", "8:0 rbps=1")),
           _w("memory.limit_in_bytes", "5", version=1)]
    props = dict(systemd.unit_properties(ops))
    inf = (1 << 64) - 1
    assert props == {"MemoryMax": ("t", 1048576), "MemoryLow": ("t", inf), "MemorySwapMax": ("t", 0),
                     "TasksMax": ("t", inf), "CPUWeight": ("t", 100),
                     "AllowedCPUs": ("ay", bytes([0b111, 0b10])), "AllowedMemoryNodes": ("ay", b"\x01"),
                     "CPUQuotaPerSecUSec": ("t", inf)}


@pytest.mark.parametrize("value,per_sec,period", [
    ("50000 100000", 500000, ("t", 100000)),
    ("12345 100000", 130000, ("t", 100000)),   # rounded up to 10 ms, as systemd keeps it
    ("20000", 200000, None),
])
def test_cpu_quota(value, per_sec, period):
    props = dict(systemd.unit_properties([_w("cpu.max", value)]))
    assert props["CPUQuotaPerSecUSec"] == ("t", per_sec)
    assert props.get("CPUQuotaPeriodUSec") == period


def test_annotations():
    got = systemd.annotation_properties({
        "org.systemd.property.CollectMode": "'inactive-or-failed'",
        "org.systemd.property.TimeoutStopUSec": "uint64 123456",
        "org.systemd.property.TimeoutStartSec": "2",
        "org.systemd.property.CPUWeight": "uint64 50",
        "org.systemd.property.IgnoreOnIsolate": "true",
        "org.systemd.property.Wants": "['a.service', 'b.service']",
        "other.annotation": "ignored",
    })
    assert got == [("CollectMode", ("s", "inactive-or-failed")), ("TimeoutStopUSec", ("t", 123456)),
                   ("TimeoutStartUSec", ("t", 2000000)), ("CPUWeight", ("t", 50)),
                   ("IgnoreOnIsolate", ("b", True)), ("Wants", ("as", ["a.service", "b.service"]))]


@pytest.mark.parametrize("key,value,says", [
    ("org.systemd.property.lower", "1", "not a systemd property name"),
    ("org.systemd.property.X", "uint64 ten", "not a GVariant value"),
    ("org.systemd.property.X", "[1, 2]", "arrays of strings"),
    ("org.systemd.property.TimeoutSec", "'x'", "takes seconds"),
])
def test_bad_annotations(key, value, says):
    with pytest.raises(OciError) as e:
        systemd.annotation_properties({key: value})
    assert e.value.where == f"annotations.{key}" and says in e.value.message


def test_no_system_bus_names_the_flag(rt, bundle, unique_id, tmp_path):
    """This host has no systemd: one line naming --systemd-cgroup, and nothing left."""
    import os

    if os.path.exists("/run/dbus/system_bus_socket"):
        pytest.skip("this host has a system bus")
    line = rt.expect_error("--systemd-cgroup", "run", "--bundle", bundle(["true"]), unique_id,
                           mentions=["--systemd-cgroup"])
    assert "linux.cgroupsPath" in line
    assert rt.cgroup_dirs(unique_id) == []
    assert not (rt.state_root / unique_id).exists()
