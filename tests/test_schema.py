"""Tests for ocirun.schema, spec/*.schema.json and the generated ocirun/_schemas.py."""
import copy
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from ocirun import _schemas, schema
from ocirun.errors import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_schema(name):
    with open(os.path.join(REPO, "spec", f"{name}.schema.json"), encoding="utf-8") as f:
        return json.load(f)


def _validator(name):
    import jsonschema  # only the tests use it, as an independent referee

    s = _load_schema(name)
    jsonschema.Draft202012Validator.check_schema(s)
    return jsonschema.Draft202012Validator(s)


def _runc(tmp_path, *args):
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    where = tmp_path / "-".join(["runc", *args])  # runc spec refuses to overwrite a config.json
    where.mkdir()
    subprocess.run(["runc", *args], cwd=where, check=True, capture_output=True)
    with open(where / "config.json", encoding="utf-8") as f:
        return json.load(f)


# ---------------------------------------------------------------------------- valid configs

MINIMAL = {"ociVersion": "1.0.0", "root": {"path": "rootfs"}}

# Exercises every section the schema describes, with values chosen for these tests.
FULL = {
    "ociVersion": "1.3.0",
    "root": {"path": "/var/lib/bundles/web/rootfs", "readonly": True},
    "hostname": "web-1",
    "domainname": "cluster.test",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/srv/data", "type": "none", "source": "/data/web",
         "options": ["rbind", "rw", "idmap"],
         "uidMappings": [{"containerID": 0, "hostID": 200000, "size": 65536}],
         "gidMappings": [{"containerID": 0, "hostID": 200000, "size": 65536}]},
        {"destination": "relative/deprecated", "type": "tmpfs", "source": "tmpfs"},
    ],
    "process": {
        "terminal": True,
        "consoleSize": {"height": 40, "width": 120},
        "user": {"uid": 1000, "gid": 1000, "umask": 18, "additionalGids": [10, 20], "username": "app"},
        "args": ["/usr/bin/web", "--port", "8080"],
        "commandLine": "ignored on linux",
        "env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"],
        "cwd": "/srv",
        "capabilities": {
            "bounding": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
            "effective": ["CAP_NET_BIND_SERVICE"],
            "inheritable": [],
            "permitted": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
            "ambient": ["CAP_NET_BIND_SERVICE"],
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 1024},
                    {"type": "RLIMIT_CORE", "hard": 0, "soft": 0}],
        "noNewPrivileges": True,
        "apparmorProfile": "web-profile",
        "selinuxLabel": "system_u:system_r:container_t:s0:c1,c2",
        "oomScoreAdj": -500,
        "scheduler": {"policy": "SCHED_DEADLINE", "nice": -5, "priority": 0,
                      "flags": ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_DL_OVERRUN"],
                      "runtime": 10000000, "deadline": 20000000, "period": 40000000},
        "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 7},
        "execCPUAffinity": {"initial": "0", "final": "1-3,6"},
    },
    "hooks": {
        "prestart": [{"path": "/usr/libexec/hooks/net", "args": ["net", "up"], "env": ["A=1"]}],
        "createRuntime": [{"path": "/usr/libexec/hooks/cr"}],
        "createContainer": [{"path": "/usr/libexec/hooks/cc", "timeout": 30}],
        "startContainer": [{"path": "/sbin/ldconfig"}],
        "poststart": [{"path": "/usr/libexec/hooks/notify", "timeout": 1}],
        "poststop": [{"path": "/usr/libexec/hooks/cleanup", "args": ["cleanup", "-v"]}],
    },
    "annotations": {"com.example.team": "web", "org.opencontainers.image.os": "linux", "empty": ""},
    "linux": {
        "namespaces": [{"type": "pid"}, {"type": "network", "path": "/run/netns/web"}, {"type": "mount"},
                       {"type": "ipc"}, {"type": "uts"}, {"type": "user"}, {"type": "cgroup"},
                       {"type": "time"}],
        "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        "timeOffsets": {"monotonic": {"secs": -3600, "nanosecs": 0}, "boottime": {"secs": 86400}},
        "devices": [
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0},
            {"path": "/dev/vdb", "type": "b", "major": 252, "minor": 16},
            {"path": "/dev/pipe0", "type": "p"},
        ],
        "netDevices": {"eth1": {"name": "data0"}, "eth2": {}},
        "cgroupsPath": "/ocirun/web-1",
        "resources": {
            "devices": [{"allow": False, "access": "rwm"},
                        {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"},
                        {"allow": True, "type": "a"}],
            "memory": {"limit": 536870912, "reservation": 268435456, "swap": -1, "kernel": -1,
                       "kernelTCP": -1, "swappiness": 60, "disableOOMKiller": False, "useHierarchy": True,
                       "checkBeforeUpdate": True},
            "cpu": {"shares": 512, "quota": 50000, "burst": 10000, "period": 100000, "realtimeRuntime": 0,
                    "realtimePeriod": 1000000, "cpus": "0-3", "mems": "0", "idle": 0},
            "pids": {"limit": 0},
            "blockIO": {
                "weight": 500, "leafWeight": 300,
                "weightDevice": [{"major": 8, "minor": 0, "weight": 600},
                                 {"major": 8, "minor": 16, "leafWeight": 100}],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 524288}],
                "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 1000}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 500}],
            },
            "hugepageLimits": [{"pageSize": "2MB", "limit": 18446744073709551615},
                               {"pageSize": "1GB", "limit": 0}],
            "network": {"classID": 65537, "priorities": [{"name": "eth0", "priority": 3}]},
            "rdma": {"mlx5_1": {"hcaHandles": 2, "hcaObjects": 100}, "rxe0": {"hcaObjects": 10}},
            "unified": {"io.max": "8:0 rbps=1048576", "memory.high": "400M"},
        },
        "intelRdt": {"closID": "web", "l3CacheSchema": "L3:0=ff", "memBwSchema": "MB:0=50",
                     "schemata": ["L2:0=f"], "enableMonitoring": True},
        "memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0-1", "flags": ["MPOL_F_STATIC_NODES"]},
        "sysctl": {"net.ipv4.ip_forward": "1", "kernel.msgmax": "65536"},
        "seccomp": {
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"],
            "listenerPath": "/run/seccomp-agent.sock",
            "listenerMetadata": "team=web",
            "syscalls": [
                {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                          {"index": 1, "value": 255, "valueTwo": 8, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["mount"], "action": "SCMP_ACT_NOTIFY"},
                {"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            ],
        },
        "rootfsPropagation": "rprivate",
        "maskedPaths": ["/proc/kcore", "/sys/firmware"],
        "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"],
        "mountLabel": "system_u:object_r:container_file_t:s0:c1,c2",
        "personality": {"domain": "LINUX32", "flags": []},
    },
}

# Unknown properties at every level must be ignored (config.md "Extensibility").
EXTENDED = copy.deepcopy(FULL)
EXTENDED["io.example.future"] = {"anything": [1, 2]}
EXTENDED["process"]["futureField"] = True
EXTENDED["linux"]["futureSection"] = {}
EXTENDED["linux"]["resources"]["memory"]["futureKnob"] = "x"
EXTENDED["linux"]["intelRdt"]["enableCMT"] = True  # removed in 1.3, still must be ignored
EXTENDED["windows"] = {"layerFolders": []}
EXTENDED["vm"] = {"hypervisor": {"path": "/usr/bin/qemu"}}

VALID = {
    "minimal": MINIMAL,
    "full": FULL,
    "extended": EXTENDED,
    "process-only-required": {"ociVersion": "1.2.0", "root": {"path": "rootfs"},
                              "process": {"cwd": "/", "args": ["sh"]}},
    "empty-sections": {"ociVersion": "1.1.0", "root": {"path": "rootfs"}, "mounts": [], "hooks": {},
                       "annotations": {}, "linux": {"resources": {}, "namespaces": [], "seccomp":
                                                    {"defaultAction": "SCMP_ACT_ALLOW"}}},
}


def _names(path):
    """Split a JSON path as ocirun.schema writes it into keys and indexes."""
    out, i = [], 0
    while i < len(path):
        if path[i] == ".":
            i += 1
        elif path[i] == "[":
            end = path.index("]", i)
            inner = path[i + 1:end]
            out.append(json.loads(inner) if inner.startswith('"') else int(inner))
            i = end + 1
        else:
            end = min([j for j in (path.find(".", i), path.find("[", i)) if j != -1] or [len(path)])
            out.append(path[i:end])
            i = end
    return out


def _mutate(base, path, value=None, delete=False):
    doc = copy.deepcopy(base)
    *parents, last = _names(path)
    node = doc
    for p in parents:
        node = node[p]
    if delete:
        del node[last]
    else:
        node[last] = value
    return doc


DEL = object()

# (expected where, path to change, new value or DEL). Most change the very field reported.
INVALID = [
    ("ociVersion", "ociVersion", "2.0.0"),
    ("ociVersion", "ociVersion", 1),
    ("ociVersion", "ociVersion", DEL),
    ("root", "root", DEL),
    ("root.path", "root.path", DEL),
    ("root.path", "root.path", ""),
    ("root.readonly", "root.readonly", "yes"),
    ("mounts", "mounts", {"destination": "/x"}),
    ("mounts[2].destination", "mounts[2].destination", DEL),
    ("mounts[1].options[0]", "mounts[1].options[0]", 5),
    ("mounts[2].gidMappings", "mounts[2].gidMappings", DEL),
    ("mounts[2].uidMappings[0].size", "mounts[2].uidMappings[0].size", -1),
    ("process", "process", ["sh"]),
    ("process.args", "process.args", []),
    ("process.args", "process.args", DEL),
    ("process.args[1]", "process.args[1]", None),
    ("process.cwd", "process.cwd", DEL),
    ("process.cwd", "process.cwd", "srv"),
    ("process.env", "process.env", "PATH=/bin"),
    ("process.terminal", "process.terminal", "true"),
    ("process.consoleSize.width", "process.consoleSize.width", DEL),
    ("process.user.uid", "process.user.uid", -1),
    ("process.user.uid", "process.user.uid", True),
    ("process.user.gid", "process.user.gid", DEL),
    ("process.user.additionalGids[1]", "process.user.additionalGids[1]", "20"),
    ("process.rlimits[0].type", "process.rlimits[0].type", "RLIMIT_BOGUS"),
    ("process.rlimits[1].soft", "process.rlimits[1].soft", DEL),
    ("process.rlimits[0].hard", "process.rlimits[0].hard", 2 ** 64),
    ("process.capabilities.ambient", "process.capabilities.ambient", "CAP_KILL"),
    ("process.scheduler.policy", "process.scheduler.policy", "SCHED_FAST"),
    ("process.scheduler.flags[0]", "process.scheduler.flags[0]", "SCHED_FLAG_TURBO"),
    ("process.scheduler.nice", "process.scheduler.nice", 2 ** 31),
    ("process.ioPriority.priority", "process.ioPriority.priority", 8),
    ("process.ioPriority.class", "process.ioPriority.class", DEL),
    ("process.oomScoreAdj", "process.oomScoreAdj", "100"),
    ("process.noNewPrivileges", "process.noNewPrivileges", 1),
    ("process.execCPUAffinity.initial", "process.execCPUAffinity.initial", 7),
    ("process.apparmorProfile", "process.apparmorProfile", None),
    ("hooks.prestart[0].path", "hooks.prestart[0].path", "usr/bin/hook"),
    ("hooks.createRuntime[0].path", "hooks.createRuntime[0].path", DEL),
    ("hooks.poststart[0].timeout", "hooks.poststart[0].timeout", 0),
    ("hooks.poststop", "hooks.poststop", {"path": "/x"}),
    ("annotations", 'annotations[""]', "x"),
    ('annotations["com.example.team"]', 'annotations["com.example.team"]', 1),
    ("hostname", "hostname", 5),
    ("linux", "linux", "linux"),
    ("linux.namespaces[1].type", "linux.namespaces[1].type", "foo"),
    ("linux.namespaces[2].type", "linux.namespaces[2].type", DEL),
    ("linux.namespaces[1].path", "linux.namespaces[1].path", "run/netns/web"),
    ("linux.uidMappings[0].hostID", "linux.uidMappings[0].hostID", DEL),
    ("linux.gidMappings[0].size", "linux.gidMappings[0].size", 2 ** 32),
    ("linux.timeOffsets.monotonic.secs", "linux.timeOffsets.monotonic.secs", "1"),
    ("linux.timeOffsets.boottime.nanosecs", "linux.timeOffsets.boottime.nanosecs", -1),
    ("linux.devices[0].type", "linux.devices[0].type", "x"),
    ("linux.devices[0].major", "linux.devices[0].major", DEL),
    ("linux.devices[1].minor", "linux.devices[1].minor", DEL),
    ("linux.devices[1].path", "linux.devices[1].path", "dev/vdb"),
    ("linux.devices[0].fileMode", "linux.devices[0].fileMode", -1),
    ("linux.netDevices.eth1.name", "linux.netDevices.eth1.name", 1),
    ("linux.cgroupsPath", "linux.cgroupsPath", 1),
    ("linux.resources.devices[0].access", "linux.resources.devices[0].access", "rwx"),
    ("linux.resources.devices[1].allow", "linux.resources.devices[1].allow", DEL),
    ("linux.resources.devices[2].type", "linux.resources.devices[2].type", "p"),
    ("linux.resources.memory.swappiness", "linux.resources.memory.swappiness", 101),
    ("linux.resources.memory.limit", "linux.resources.memory.limit", "1G"),
    ("linux.resources.memory.disableOOMKiller", "linux.resources.memory.disableOOMKiller", "false"),
    ("linux.resources.cpu.shares", "linux.resources.cpu.shares", -1),
    ("linux.resources.cpu.cpus", "linux.resources.cpu.cpus", 3),
    ("linux.resources.pids.limit", "linux.resources.pids.limit", 1.5),
    ("linux.resources.blockIO.weight", "linux.resources.blockIO.weight", 70000),
    ("linux.resources.blockIO.weightDevice[1]", "linux.resources.blockIO.weightDevice[1].leafWeight", DEL),
    ("linux.resources.blockIO.throttleReadBpsDevice[0].rate",
     "linux.resources.blockIO.throttleReadBpsDevice[0].rate", DEL),
    ("linux.resources.blockIO.throttleWriteIOPSDevice[0].major",
     "linux.resources.blockIO.throttleWriteIOPSDevice[0].major", "8"),
    ("linux.resources.hugepageLimits[0].pageSize", "linux.resources.hugepageLimits[0].pageSize", "2M"),
    ("linux.resources.hugepageLimits[1].limit", "linux.resources.hugepageLimits[1].limit", DEL),
    ("linux.resources.network.priorities[0].priority", "linux.resources.network.priorities[0].priority",
     "high"),
    ("linux.resources.rdma.rxe0", "linux.resources.rdma.rxe0", {}),
    ('linux.resources.unified["io.max"]', 'linux.resources.unified["io.max"]', 5),
    ('linux.sysctl["net.ipv4.ip_forward"]', 'linux.sysctl["net.ipv4.ip_forward"]', 1),
    ("linux.intelRdt.memBwSchema", "linux.intelRdt.memBwSchema", "L3:0=ff"),
    ("linux.intelRdt.enableMonitoring", "linux.intelRdt.enableMonitoring", "yes"),
    ("linux.memoryPolicy.mode", "linux.memoryPolicy.mode", "MPOL_RANDOM"),
    ("linux.memoryPolicy.flags[0]", "linux.memoryPolicy.flags[0]", "MPOL_F_FAST"),
    ("linux.seccomp.defaultAction", "linux.seccomp.defaultAction", DEL),
    ("linux.seccomp.defaultAction", "linux.seccomp.defaultAction", "SCMP_ACT_DENY"),
    ("linux.seccomp.defaultErrnoRet", "linux.seccomp.defaultErrnoRet", -1),
    ("linux.seccomp.architectures[0]", "linux.seccomp.architectures[0]", "SCMP_ARCH_Z80"),
    ("linux.seccomp.flags[1]", "linux.seccomp.flags[1]", "SECCOMP_FILTER_FLAG_FAST"),
    ("linux.seccomp.listenerPath", "linux.seccomp.listenerPath", DEL),
    ("linux.seccomp.syscalls[0].names", "linux.seccomp.syscalls[0].names", []),
    ("linux.seccomp.syscalls[2].action", "linux.seccomp.syscalls[2].action", DEL),
    ("linux.seccomp.syscalls[3].errnoRet", "linux.seccomp.syscalls[3].errnoRet", "ENOSYS"),
    ("linux.seccomp.syscalls[1].args[1].op", "linux.seccomp.syscalls[1].args[1].op", "SCMP_CMP_XX"),
    ("linux.seccomp.syscalls[1].args[0].value", "linux.seccomp.syscalls[1].args[0].value", DEL),
    ("linux.seccomp.syscalls[1].args[1].valueTwo", "linux.seccomp.syscalls[1].args[1].valueTwo", -8),
    ("linux.rootfsPropagation", "linux.rootfsPropagation", "bogus"),
    ("linux.maskedPaths[0]", "linux.maskedPaths[0]", "proc/kcore"),
    ("linux.readonlyPaths[1]", "linux.readonlyPaths[1]", None),
    ("linux.mountLabel", "linux.mountLabel", 5),
    ("linux.personality.domain", "linux.personality.domain", "LINUX64"),
    ("linux.personality.flags", "linux.personality.flags", "x"),
    ("windows", "windows", "x"),
]


def _invalid_doc(path, value):
    return _mutate(FULL, path, delete=True) if value is DEL else _mutate(FULL, path, value)


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_configs(name):
    schema.check_config(VALID[name])


def test_runc_spec_default(tmp_path):
    schema.check_config(_runc(tmp_path, "spec"))


def test_runc_spec_rootless(tmp_path):
    schema.check_config(_runc(tmp_path, "spec", "--rootless"))


def test_invalid_corpus_is_large_and_distinct():
    assert len(INVALID) >= 40
    assert len({(p, repr(v)) for _, p, v in INVALID}) == len(INVALID)


@pytest.mark.parametrize("where,path,value", INVALID, ids=[f"{p}={v!r}"[:60] for _, p, v in INVALID])
def test_invalid_configs(where, path, value):
    with pytest.raises(ConfigError) as exc:
        schema.check_config(_invalid_doc(path, value))
    assert exc.value.where == where
    # Lower-case prose; a quoted offending value may lead.
    assert exc.value.message[0].islower() or exc.value.message[0] == '"'


def test_not_an_object():
    with pytest.raises(ConfigError) as exc:
        schema.check_config([])
    assert exc.value.where is None
    assert exc.value.message == "must be an object"
    assert str(exc.value) == "config.json: must be an object"


@pytest.mark.parametrize("path,value,message", [
    ("linux.namespaces[1].type", "foo", '"foo" is not one of pid, network, mount, ipc, uts, user, cgroup, time'),
    ("process.args", DEL, "is required"),
    ("process.args", [], "must not be empty"),
    ("process.cwd", 5, "must be a string"),
    ("process.cwd", "srv", '"srv" is not an absolute path'),
    ("ociVersion", "2.0.0", '"2.0.0" is not a supported version: need 1.0.0 or a later 1.x version'),
    ("hooks.poststart[0].timeout", 0, "must be at least 1"),
    ("process.user.uid", -1, "must be between 0 and 4294967295"),
    ("process.user.uid", True, "must be an integer"),
    ("linux.resources.blockIO.weightDevice[1].leafWeight", DEL, "must set at least one of weight, leafWeight"),
    ("linux.seccomp.listenerPath", DEL, "is required when listenerMetadata is set"),
    ("mounts[2].gidMappings", DEL, "is required when uidMappings is set"),
    ("linux.devices[0].major", DEL, "is required"),
    ('annotations[""]', "x", 'property name "": must not be empty'),
    ("process.capabilities.bounding[0]", 7, "must be a string"),
])
def test_messages(path, value, message):
    with pytest.raises(ConfigError) as exc:
        schema.check_config(_invalid_doc(path, value))
    assert exc.value.message == message


def test_error_string_names_the_field():
    with pytest.raises(ConfigError) as exc:
        schema.check_config(_invalid_doc("mounts[2].destination", DEL))
    assert str(exc.value) == "config.json: mounts[2].destination: is required"


def test_fifo_device_needs_no_numbers():
    schema.check_config(_mutate(FULL, "linux.devices", [{"path": "/dev/fifo", "type": "p"}]))


def test_integer_valued_float_is_refused():
    # Intentionally stricter than JSON Schema (which accepts 1.0 as an integer), like runc.
    doc = _mutate(FULL, "process.user.uid", 1.0)
    with pytest.raises(ConfigError) as exc:
        schema.check_config(doc)
    assert exc.value.where == "process.user.uid"
    assert _validator("config").is_valid(doc)


# ---------------------------------------------------------------------------- cross-check

def test_jsonschema_agrees_on_valid(tmp_path):
    v = _validator("config")
    docs = dict(VALID)
    if shutil.which("runc"):
        docs["runc-spec"] = _runc(tmp_path, "spec")
        docs["runc-spec-rootless"] = _runc(tmp_path, "spec", "--rootless")
    for name, doc in docs.items():
        errors = [e.message for e in v.iter_errors(doc)]
        assert not errors, (name, errors)


def test_jsonschema_agrees_on_invalid():
    v = _validator("config")
    for where, path, value in INVALID:
        assert not v.is_valid(_invalid_doc(path, value)), (path, value)


# ---------------------------------------------------------------------------- ociVersion

GOOD_VERSIONS = ["1.0.0", "1.0.1", "1.0.2", "1.0.2-dev", "1.0.0+dev", "1.1.0", "1.1.0-rc.1", "1.1.0-rc.2",
                 "1.2.0", "1.2.1", "1.3.0", "1.3.0+dev", "1.3.0-rc.1+build.5", "1.10.0", "1.0.10", "1.4.0"]
BAD_VERSIONS = ["2.0.0", "0.5", "0.5.0", "0.2.0", "1.0", "1", "1.0.0-rc5", "1.0.0-rc2-dev", "v1.0.0",
                "1.0.0.0", "01.0.0", "1.01.0", "1.0.01", "", "1.0.0-", "1.0.0+", "1.0.0-a..b", " 1.0.0",
                "1.0.0 ", "1.0.0-ü", "10.0.0", "1.x.0", "1.0.0\n"]


@pytest.mark.parametrize("version", GOOD_VERSIONS)
def test_oci_version_accepted(version):
    doc = dict(MINIMAL, ociVersion=version)
    schema.check_config(doc)
    assert _validator("config").is_valid(doc)


@pytest.mark.parametrize("version", BAD_VERSIONS)
def test_oci_version_rejected(version):
    doc = dict(MINIMAL, ociVersion=version)
    with pytest.raises(ConfigError) as exc:
        schema.check_config(doc)
    assert exc.value.where == "ociVersion"
    # Python's re lets $ match before a final newline; ECMA-262 (JSON Schema) does not.
    if not version.endswith("\n"):
        assert not _validator("config").is_valid(doc)


def _patterns(node, seen):
    if isinstance(node, dict) and id(node) not in seen:
        seen.add(id(node))
        if "pattern" in node:
            yield node["pattern"]
        for v in node.values():
            yield from _patterns(v, seen)
    elif isinstance(node, tuple):
        for v in node:
            yield from _patterns(v, seen)


def test_every_schema_pattern_has_a_fast_equivalent():
    seen = set()
    used = {p for root in (_schemas.CONFIG, _schemas.STATE, _schemas.FEATURES) for p in _patterns(root, seen)}
    assert used and used <= set(schema.PATTERNS)


PATTERN_SAMPLES = GOOD_VERSIONS + BAD_VERSIONS + [
    "/", "/proc", "proc", "", "//x", "CAP_CHOWN", "CAP_", "CAP_chown", "cap_chown", "CAP_SYS-ADMIN", "CAP_X1_",
    "XCAP_CHOWN", "2MB", "64KB", "1GB", "2M", "MB", "2mB", "02MB", "1.5MB", "2 MB", "r", "rw", "rwm", "mwr", "x",
    "rwx", "MB:0=20", "MB:", "L3:0=ff", "mb:0=1", "1.0.0-x-y.z", "1.2.3-0", "1.2.3+001", "１.0.0", "1.٠.0",
]


@pytest.mark.parametrize("pattern", sorted(schema.PATTERNS))
def test_fast_patterns_match_re(pattern):
    import re

    fn, _ = schema.PATTERNS[pattern]
    for s in PATTERN_SAMPLES:
        if s.endswith("\n"):
            continue  # see test_oci_version_rejected
        assert bool(fn(s)) == bool(re.search(pattern, s)), (pattern, s)


# ---------------------------------------------------------------------------- state and features

STATES = [
    {"ociVersion": "1.3.0", "id": "web-1", "status": "running", "pid": 4422, "bundle": "/run/bundles/web",
     "annotations": {"com.example.team": "web"}},
    {"ociVersion": "1.0.2-dev", "id": "a", "status": "created", "pid": 1, "bundle": "/b"},
    {"ociVersion": "1.3.0", "id": "a", "status": "creating", "bundle": "/b"},
    {"ociVersion": "1.3.0", "id": "a", "status": "stopped", "pid": 0, "bundle": "/b"},
    {"ociVersion": "1.3.0", "id": "a", "status": "stopped", "bundle": "/b", "annotations": {}},
    {"ociVersion": "1.3.0", "id": "a", "status": "paused", "pid": 7, "bundle": "/b", "rootfs": "/b/rootfs",
     "created": "2024-01-01T00:00:00Z", "owner": ""},
]

BAD_STATES = [
    ("status", {"status": "exploded"}),
    ("pid", {"status": "running", "pid": DEL}),
    ("pid", {"status": "created", "pid": DEL}),
    ("pid", {"pid": -1}),
    ("id", {"id": DEL}),
    ("id", {"id": ""}),
    ("bundle", {"bundle": "run/bundles/web"}),
    ("ociVersion", {"ociVersion": "0.2.0"}),
    ("annotations.x", {"annotations": {"x": 1}}),
]


@pytest.mark.parametrize("doc", STATES, ids=[s["status"] for s in STATES])
def test_state_valid(doc):
    schema.check_state(doc)
    assert _validator("state").is_valid(doc)


@pytest.mark.parametrize("where,change", BAD_STATES, ids=[w for w, _ in BAD_STATES])
def test_state_invalid(where, change):
    doc = dict(STATES[0])
    for k, v in change.items():
        if v is DEL:
            del doc[k]
        else:
            doc[k] = v
    with pytest.raises(ConfigError) as exc:
        schema.check_state(doc)
    assert exc.value.where == where
    assert not _validator("state").is_valid(doc)


FEATURES_FULL = {
    "ociVersionMin": "1.0.0",
    "ociVersionMax": "1.3.0",
    "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
    "mountOptions": ["bind", "rbind", "ro", "rw", "nosuid", "nodev", "noexec", "idmap", "ridmap"],
    "linux": {
        "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
        "capabilities": ["CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN"],
        "cgroup": {"v1": False, "v2": True, "systemd": False, "systemdUser": False, "rdma": False},
        "seccomp": {"enabled": True, "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO"],
                    "operators": ["SCMP_CMP_EQ"], "archs": ["SCMP_ARCH_X86_64"],
                    "knownFlags": ["SECCOMP_FILTER_FLAG_LOG"], "supportedFlags": []},
        "apparmor": {"enabled": False},
        "selinux": {"enabled": False},
        "intelRdt": {"enabled": False, "schemata": False, "monitoring": False},
        "memoryPolicy": {"modes": ["MPOL_DEFAULT", "MPOL_BIND"], "flags": ["MPOL_F_STATIC_NODES"]},
        "mountExtensions": {"idmap": {"enabled": True}},
        "netDevices": {"enabled": False},
    },
    "annotations": {"org.ocirun.version": "0.1.0"},
    "potentiallyUnsafeConfigAnnotations": ["org.systemd.property."],
}

FEATURES_NULLS = {
    "ociVersionMin": "1.0.0", "ociVersionMax": "1.3.0+dev", "hooks": None, "mountOptions": None,
    "annotations": None, "potentiallyUnsafeConfigAnnotations": None,
    "linux": {"namespaces": None, "capabilities": None, "cgroup": None, "seccomp": {"enabled": None},
              "apparmor": None, "selinux": None, "intelRdt": None, "memoryPolicy": None,
              "mountExtensions": {"idmap": None}, "netDevices": None},
}

BAD_FEATURES = [
    ("ociVersionMax", {"ociVersionMax": DEL}),
    ("ociVersionMin", {"ociVersionMin": None}),
    ("hooks", {"hooks": "prestart"}),
    ("mountOptions[0]", {"mountOptions": [1]}),
    ("linux.cgroup.v2", {"linux": {"cgroup": {"v2": "yes"}}}),
    ("linux.seccomp.actions[0]", {"linux": {"seccomp": {"actions": [None]}}}),
    ("linux.mountExtensions.idmap.enabled", {"linux": {"mountExtensions": {"idmap": {"enabled": 1}}}}),
    ("annotations.a", {"annotations": {"a": 1}}),
]


def test_features_valid(tmp_path):
    docs = [FEATURES_FULL, FEATURES_NULLS, {"ociVersionMin": "1.0.0", "ociVersionMax": "1.0.0"}]
    if shutil.which("runc"):
        out = subprocess.run(["runc", "features"], cwd=tmp_path, capture_output=True, text=True)
        if out.returncode == 0:
            docs.append(json.loads(out.stdout))
    for doc in docs:
        schema.check_features(doc)
        assert _validator("features").is_valid(doc)


@pytest.mark.parametrize("where,change", BAD_FEATURES, ids=[w for w, _ in BAD_FEATURES])
def test_features_invalid(where, change):
    doc = dict(FEATURES_FULL)
    for k, v in change.items():
        if v is DEL:
            del doc[k]
        else:
            doc[k] = v
    with pytest.raises(ConfigError) as exc:
        schema.check_features(doc)
    assert exc.value.where == where
    assert not _validator("features").is_valid(doc)


# ---------------------------------------------------------------------------- generated module, cost

def test_generated_module_is_fresh():
    spec = importlib.util.spec_from_file_location("gen_schema", os.path.join(REPO, "scripts", "gen_schema.py"))
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    with open(os.path.join(REPO, "ocirun", "_schemas.py"), encoding="utf-8") as f:
        assert f.read() == gen.render(), "ocirun/_schemas.py is stale: run python3 scripts/gen_schema.py"


_FORBIDDEN = ("json", "re", "enum", "typing", "dataclasses", "jsonschema")


def test_import_and_check_load_no_heavy_modules():
    code = (
        "import sys; sys.path.insert(0, %r)\n"
        "import ocirun.schema\n"
        "before = set(sys.modules)\n"
        "ocirun.schema.check_config(%r)\n"
        "try:\n"
        "    ocirun.schema.check_config({'ociVersion': '3.0.0'})\n"
        "except ocirun.schema.ConfigError:\n"
        "    pass\n"
        "print(' '.join(sorted(before)))\n"
        "print(' '.join(sorted(sys.modules)))\n"
    ) % (REPO, FULL)
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True)
    at_import, after_check = (set(line.split()) for line in out.stdout.splitlines())
    for mods in (at_import, after_check):
        assert not mods & set(_FORBIDDEN), mods & set(_FORBIDDEN)
        assert not any(m.startswith("jsonschema.") for m in mods)


def test_check_is_fast(tmp_path):
    doc = _runc(tmp_path, "spec") if shutil.which("runc") else FULL
    schema.check_config(doc)
    best = min(_timed(schema.check_config, doc, 50) for _ in range(20))
    assert best < 1e-3, f"check_config took {best * 1e6:.0f} us"


def _timed(fn, arg, n):
    t = time.perf_counter()
    for _ in range(n):
        fn(arg)
    return (time.perf_counter() - t) / n
