"""The remaining process and linux settings (ocirun/attrs.py, csrc/attrs.c): linux.sysctl,
linux.personality, process.scheduler, process.ioPriority, process.execCPUAffinity,
linux.memoryPolicy; and the refusals of check_lsm / check_intel_rdt.

Unit tests check convert()'s validation and the C struct it fills; the integration tests run
real containers and read the settings back from inside (/proc/self/..., busybox's ionice and
uname) and from the host (os.sched_*), and check that bad values fail with one line naming the
field and leave nothing behind.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ocirun import attrs  # noqa: E402
from ocirun.errors import ConfigError  # noqa: E402

NS = ("pid", "network", "ipc", "uts", "mount")


def linux_ns(*types, **paths):
    return [{"type": t} for t in types] + [{"type": t, "path": p} for t, p in paths.items()]


def doc_with(linux=None, process=None, namespaces=NS):
    linux = dict(linux or {})
    linux.setdefault("namespaces", linux_ns(*namespaces))
    return {"linux": linux, "process": dict(process or {})}


def refused(doc, where, *words, fn=None):
    """convert(doc) (or fn(doc)) raises a ConfigError at `where` whose message has `words`."""
    with pytest.raises(ConfigError) as e:
        (fn or attrs.convert)(doc)
    assert e.value.where == where, str(e.value)
    for w in words:
        assert w.lower() in e.value.message.lower(), str(e.value)
    return e.value


# ---- unit: convert() ----------------------------------------------------------------------------

def test_nothing_to_do_is_none():
    assert attrs.convert({"linux": {"namespaces": linux_ns(*NS)}, "process": {"args": ["sh"]}}) is None
    assert attrs.convert({}) is None
    assert attrs.convert(doc_with({"sysctl": {}})) is None


@pytest.mark.parametrize("key,needs", [
    ("kernel.shmmax", "ipc"), ("kernel.shmall", "ipc"), ("kernel.shmmni", "ipc"),
    ("kernel.shm_rmid_forced", "ipc"), ("kernel.msgmax", "ipc"), ("kernel.msgmnb", "ipc"),
    ("kernel.msgmni", "ipc"), ("kernel.sem", "ipc"), ("fs.mqueue.msg_max", "ipc"),
    ("net.ipv4.ip_forward", "network"), ("net.core.somaxconn", "network"),
    ("kernel.domainname", "uts"), ("user.max_user_namespaces", "user"),
])
def test_namespaced_sysctls_need_their_namespace(key, needs):
    a = attrs.convert(doc_with({"sysctl": {key: "1"}}, namespaces=(needs, "mount")))
    assert a.sysctls == [(key, key.replace(".", "/"), "1")]
    others = tuple(t for t in NS + ("user",) if t != needs)
    refused(doc_with({"sysctl": {key: "1"}}, namespaces=others), "linux.sysctl", key)


@pytest.mark.parametrize("key", ["kernel.panic", "vm.swappiness", "kernel.pid_max", "fs.file-max",
                                 "kernel.shmmaxx", "kernel.core_pattern", "dev.tty.ldisc_autoload"])
def test_non_namespaced_sysctl_is_refused(key):
    e = refused(doc_with({"sysctl": {key: "1"}}, namespaces=NS + ("user", "cgroup")),
                "linux.sysctl", key, "not in a separate kernel namespace")
    assert str(e).startswith("config.json: linux.sysctl: ")


def test_joined_namespaces_count_but_not_the_hosts_network_namespace():
    ok = doc_with({"sysctl": {"kernel.shmmax": "1"}}, namespaces=())
    ok["linux"]["namespaces"] = linux_ns("mount", ipc="/proc/self/ns/ipc")
    assert attrs.convert(ok).sysctls
    host_net = doc_with({"sysctl": {"net.ipv4.ip_forward": "1"}}, namespaces=())
    host_net["linux"]["namespaces"] = linux_ns("mount", network="/proc/self/ns/net")
    refused(host_net, "linux.sysctl", "net.ipv4.ip_forward", "host")


def test_hostname_sysctl_conflicts_with_the_hostname_field():
    refused(doc_with({"sysctl": {"kernel.hostname": "x"}}), "linux.sysctl", "kernel.hostname", "hostname")


def test_sysctl_names_with_slashes_follow_sysctl8():
    a = attrs.convert(doc_with({"sysctl": {"net/ipv4/conf/eth0.100/forwarding": "1",
                                           "net.ipv4.conf.eth1/200.rp_filter": "2"}}))
    assert a.sysctls == [("net/ipv4/conf/eth0.100/forwarding", "net/ipv4/conf/eth0.100/forwarding", "1"),
                         ("net.ipv4.conf.eth1/200.rp_filter", "net/ipv4/conf/eth1.200/rp_filter", "2")]
    assert attrs.dotted_name("net/ipv4/conf/eth0.100/forwarding") == "net.ipv4.conf.eth0/100.forwarding"


@pytest.mark.parametrize("key", ["net..ipv4", "net.ipv4.", "net/../../kernel/panic", "net.ipv4.conf/../x", ""])
def test_malformed_sysctl_names(key):
    refused(doc_with({"sysctl": {key: "1"}}), "linux.sysctl")


def test_sysctl_value_must_be_a_string_without_nul():
    refused(doc_with({"sysctl": {"kernel.shmmax": 5}}), "linux.sysctl", "string")
    refused(doc_with({"sysctl": {"kernel.shmmax": "5\0"}}), "linux.sysctl", "NUL")


def test_personality():
    assert attrs.convert(doc_with({"personality": {"domain": "LINUX"}})).personality == 0
    assert attrs.convert(doc_with({"personality": {"domain": "LINUX32"}})).personality == 0x0008
    a = attrs.convert(doc_with({"personality": {"domain": "LINUX32", "flags": ["ADDR_NO_RANDOMIZE"]}}))
    assert a.personality == 0x0008 | 0x0040000
    refused(doc_with({"personality": {"domain": "SVR4"}}), "linux.personality.domain", "SVR4", "unknown")
    refused(doc_with({"personality": {}}), "linux.personality.domain", "unknown")
    refused(doc_with({"personality": {"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE", "NOPE"]}}),
            "linux.personality.flags[1]", "NOPE")


def test_scheduler():
    s = attrs.convert(doc_with(process={"scheduler": {
        "policy": "SCHED_DEADLINE", "flags": ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_DL_OVERRUN"],
        "runtime": 10_000_000, "deadline": 30_000_000, "period": 30_000_000}})).scheduler
    assert s == {"policy": 6, "nice": 0, "priority": 0, "flags": 0x05, "runtime": 10_000_000,
                 "deadline": 30_000_000, "period": 30_000_000}
    s = attrs.convert(doc_with(process={"scheduler": {"policy": "SCHED_BATCH", "nice": 7}})).scheduler
    assert (s["policy"], s["nice"]) == (3, 7)
    rr = attrs.convert(doc_with(process={"scheduler": {"policy": "SCHED_RR", "priority": 9}}))
    assert rr.scheduler["priority"] == 9


@pytest.mark.parametrize("sched,where,word", [
    ({"policy": "SCHED_NOPE"}, "process.scheduler.policy", "unknown scheduler policy"),
    ({}, "process.scheduler.policy", "unknown"),
    ({"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_NOPE"]}, "process.scheduler.flags[0]", "SCHED_FLAG_NOPE"),
    ({"policy": "SCHED_OTHER", "nice": 20}, "process.scheduler.nice", "out of range"),
    ({"policy": "SCHED_BATCH", "nice": -21}, "process.scheduler.nice", "out of range"),
    ({"policy": "SCHED_OTHER", "priority": 5}, "process.scheduler.priority", "SCHED_FIFO"),
    ({"policy": "SCHED_FIFO", "runtime": 5}, "process.scheduler", "SCHED_DEADLINE"),
    ({"policy": "SCHED_OTHER", "nice": "5"}, "process.scheduler.nice", "integer"),
])
def test_bad_scheduler(sched, where, word):
    refused(doc_with(process={"scheduler": sched}), where, word)


def test_io_priority():
    idle = attrs.convert(doc_with(process={"ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 7}}))
    assert idle.ioprio == (3, 7)
    refused(doc_with(process={"ioPriority": {"class": "IOPRIO_CLASS_NONE", "priority": 0}}),
            "process.ioPriority.class", "unknown I/O priority class")
    refused(doc_with(process={"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 8}}),
            "process.ioPriority.priority", "out of range")
    refused(doc_with(process={"ioPriority": {"class": "IOPRIO_CLASS_BE"}}), "process.ioPriority.priority")


@pytest.mark.parametrize("text,cpus", [
    ("0-3,7", [0, 1, 2, 3, 7]), ("5", [5]), (" 1 , ,2,", [1, 2]), ("3-3", [3]), ("2,0-1,1", [0, 1, 2]),
    ("65536", [65536]),
])
def test_cpu_lists(text, cpus):
    assert attrs.parse_list(text, "x", attrs.MAX_CPU) == cpus


@pytest.mark.parametrize("text,word", [
    ("3-1", "backwards"), ("a", "not a number"), ("1-", "not a number"), ("-1", "not a number"),
    ("1.5", "not a number"), ("0x3", "not a number"), ("1-2-3", "not a number"), ("+1", "not a number"),
    ("65537", "above"), (",", "lists nothing"), ("\u0661", "not a number"),
])
def test_bad_cpu_lists(text, word):
    refused(doc_with(process={"execCPUAffinity": {"final": text}}), "process.execCPUAffinity.final", word)
    refused(doc_with(process={"execCPUAffinity": {"initial": text}}), "process.execCPUAffinity.initial", word)


def test_exec_cpu_affinity_is_for_exec_only():
    doc = doc_with(process={"execCPUAffinity": {"initial": "0", "final": "0-1"}})
    assert attrs.convert(doc) is None  # the spec: not applicable to the container's init
    a = attrs.convert_exec(doc["process"])
    assert (a.cpus_initial, a.cpus_final) == ([0], [0, 1])
    assert attrs.convert_exec({"execCPUAffinity": {"initial": "", "final": ""}}) is None
    refused({"execCPUAffinity": {"final": "x"}}, "process.execCPUAffinity.final", fn=attrs.convert_exec)


def test_exec_takes_the_containers_personality_and_memory_policy_not_its_sysctls():
    doc = doc_with({"sysctl": {"kernel.shmmax": "1"}, "personality": {"domain": "LINUX32"},
                    "memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0"}},
                   process={"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 1}})
    saved = attrs.for_state(doc)
    assert saved == {"personality": {"domain": "LINUX32"}, "memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0"}}
    assert json.loads(json.dumps(saved)) == saved
    a = attrs.convert_exec({"args": ["sh"], "scheduler": {"policy": "SCHED_IDLE"}}, saved)
    assert (a.sysctls, a.personality, a.mempolicy, a.ioprio) == ([], 8, (2, 0, [0]), None)
    assert a.scheduler["policy"] == 5
    assert attrs.for_state(doc_with()) is None
    assert attrs.convert_exec({"args": ["sh"]}, None) is None


@pytest.mark.parametrize("policy,expect", [
    ({"mode": "MPOL_BIND", "nodes": "0-1,3"}, (2, 0, [0, 1, 3])),
    ({"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}, (3, 1 << 15, [0])),
    ({"mode": "MPOL_PREFERRED"}, (1, 0, [])),
    ({"mode": "MPOL_PREFERRED", "nodes": "1"}, (1, 0, [1])),
    ({"mode": "MPOL_LOCAL"}, (4, 0, [])),
    ({"mode": "MPOL_DEFAULT", "nodes": ""}, (0, 0, [])),
    ({"mode": "MPOL_WEIGHTED_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_RELATIVE_NODES"]}, (6, 1 << 14, [0])),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_NUMA_BALANCING"]}, (2, 1 << 13, [0])),
])
def test_memory_policy(policy, expect):
    assert attrs.convert(doc_with({"memoryPolicy": policy})).mempolicy == expect


@pytest.mark.parametrize("policy,where,word", [
    ({"mode": "MPOL_NOPE"}, "linux.memoryPolicy.mode", "unknown memory policy mode"),
    ({"mode": "MPOL_BIND", "flags": ["MPOL_F_NOPE"], "nodes": "0"}, "linux.memoryPolicy.flags[0]", "MPOL_F_NOPE"),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]},
     "linux.memoryPolicy.flags", "exclude"),
    ({"mode": "MPOL_DEFAULT", "nodes": "0"}, "linux.memoryPolicy.nodes", "takes no nodes"),
    ({"mode": "MPOL_LOCAL", "nodes": "1"}, "linux.memoryPolicy.nodes", "takes no nodes"),
    ({"mode": "MPOL_BIND"}, "linux.memoryPolicy.nodes", "at least one node"),
    ({"mode": "MPOL_INTERLEAVE", "nodes": ""}, "linux.memoryPolicy.nodes", "at least one node"),
    ({"mode": "MPOL_BIND", "nodes": "0-x"}, "linux.memoryPolicy.nodes", "not a number"),
    ({"mode": "MPOL_BIND", "nodes": "4096"}, "linux.memoryPolicy.nodes", "above"),
])
def test_bad_memory_policy(policy, where, word):
    refused(doc_with({"memoryPolicy": policy}), where, word)


def test_wanted():
    assert not attrs.wanted({})
    assert not attrs.wanted(doc_with({"sysctl": {}}, {"args": ["sh"]}))
    for linux, process in [({"sysctl": {"kernel.shmmax": "1"}}, None), ({"personality": {"domain": "LINUX"}}, None),
                           ({"memoryPolicy": {"mode": "MPOL_LOCAL"}}, None), ({"intelRdt": {}}, None),
                           ({"mountLabel": "x"}, None), (None, {"scheduler": {"policy": "SCHED_OTHER"}}),
                           (None, {"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 0}}),
                           (None, {"execCPUAffinity": {"final": "0"}}), (None, {"apparmorProfile": "p"}),
                           (None, {"selinuxLabel": "l"})]:
        assert attrs.wanted(doc_with(linux, process)), (linux, process)


def test_module_imports_nothing_heavy():
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); before = set(sys.modules); import ocirun.attrs; "
            "print(sorted(set(sys.modules) - before))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    new = set(eval(out.stdout))
    assert new <= {"ocirun", "ocirun.attrs", "ocirun.errors"}, new


# ---- unit: LSMs and Intel RDT ----------------------------------------------------------------

def test_apparmor_off_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(attrs, "apparmor_enabled", lambda: False)
    e = refused({"process": {"apparmorProfile": "docker-default"}}, "process.apparmorProfile", fn=attrs.check_lsm)
    assert e.message == "AppArmor is not enabled on this host"


@pytest.mark.parametrize("doc,where", [
    ({"process": {"selinuxLabel": "system_u:system_r:container_t:s0"}}, "process.selinuxLabel"),
    ({"linux": {"mountLabel": "system_u:object_r:container_file_t:s0"}}, "linux.mountLabel"),
])
def test_selinux_off_is_a_warning_and_the_label_is_dropped(monkeypatch, capsys, doc, where):
    monkeypatch.setattr(attrs, "selinux_enabled", lambda: False)
    attrs.check_lsm(doc)
    assert f"{where}: SELinux is not enabled on this host" in capsys.readouterr().err
    assert attrs.selinux_label("system_u:system_r:container_t:s0") is None
    monkeypatch.setattr(attrs, "selinux_enabled", lambda: True)
    assert attrs.selinux_label("system_u:system_r:container_t:s0") == "system_u:system_r:container_t:s0"


def test_lsm_on_is_applied(monkeypatch):
    """With the LSM on, the profile and label reach struct oci_attrs (the C stage writes them
    to the process's attr files: tests/guest checks the profile from inside)."""
    monkeypatch.setattr(attrs, "apparmor_enabled", lambda: True)
    monkeypatch.setattr(attrs, "selinux_enabled", lambda: True)
    monkeypatch.setattr(attrs, "apparmor_profiles", lambda: {"docker-default"})
    doc = {"process": {"args": ["sh"], "apparmorProfile": "docker-default",
                       "selinuxLabel": "system_u:system_r:container_t:s0"},
           "linux": {"mountLabel": "system_u:object_r:container_file_t:s0"}}
    attrs.check_lsm(doc)
    a = attrs.convert(doc)
    assert (a.apparmor, a.selinux) == ("docker-default", "system_u:system_r:container_t:s0")
    e = attrs.convert_exec({"args": ["sh"], "apparmorProfile": "other"})
    assert e.apparmor == "other" and e.selinux is None


def test_apparmor_profile_not_loaded(monkeypatch):
    monkeypatch.setattr(attrs, "apparmor_enabled", lambda: True)
    monkeypatch.setattr(attrs, "apparmor_profiles", lambda: {"docker-default"})
    e = refused({"process": {"apparmorProfile": "nope"}}, "process.apparmorProfile", "not loaded",
                fn=attrs.check_lsm)
    assert "'nope'" in e.message


@pytest.mark.parametrize("on", [True, False])
def test_unconfined_and_empty_ask_nothing(monkeypatch, on):
    """AppArmor off: "" and "unconfined" pass and nothing is written; on: "unconfined" is
    written (the execve leaves any profile)."""
    monkeypatch.setattr(attrs, "apparmor_enabled", lambda: on)
    monkeypatch.setattr(attrs, "apparmor_profiles", lambda: set())
    for profile in ("", "unconfined"):
        doc = {"process": {"args": ["sh"], "apparmorProfile": profile}, "linux": {}}
        attrs.check_lsm(doc)
        a = attrs.convert(doc)
        assert (a.apparmor if a else None) == ("unconfined" if on and profile else None)


def test_mount_label_is_a_context_option():
    from ocirun.plan import with_mount_label

    label = "system_u:object_r:container_file_t:s0:c1,c2"
    assert with_mount_label("size=64k", "tmpfs", label) == f'size=64k,context="{label}"'
    assert with_mount_label("", "devpts", label) == f'context="{label}"'
    for fstype in ("proc", "sysfs", "mqueue", "cgroup", "cgroup2"):
        assert with_mount_label("x", fstype, label) == "x"
    assert with_mount_label("x", "tmpfs", "") == "x"


def test_intel_rdt(monkeypatch):
    attrs.check_intel_rdt({"linux": {}})
    monkeypatch.setattr(attrs, "_resctrl_mounted", lambda: False)
    refused({"linux": {"intelRdt": {}}}, "linux.intelRdt", "no resctrl", fn=attrs.check_intel_rdt)
    refused({"linux": {"intelRdt": {"closID": "../x"}}}, "linux.intelRdt.closID", fn=attrs.check_intel_rdt)
    monkeypatch.setattr(attrs, "_resctrl_mounted", lambda: True)
    refused({"linux": {"intelRdt": {"closID": "a"}}}, "linux.intelRdt", "does not manage", fn=attrs.check_intel_rdt)


# ---- unit: the C side ----------------------------------------------------------------------------

def test_header_is_cdef_able():
    cffi = pytest.importorskip("cffi")
    text = (REPO / "csrc/attrs.h").read_text()
    assert "#" not in text.replace("#include", "")  # no preprocessor lines at all
    ffi = cffi.FFI()
    ffi.cdef(text)
    assert ffi.sizeof("struct oci_attrs") > 0


def _built():
    try:
        from ocirun import _trampoline
    except ImportError:
        return None
    return _trampoline if hasattr(_trampoline.lib, "oci_apply_attrs") else None


def test_fill_builds_the_struct():
    t = _built()
    if t is None:
        pytest.skip("ocirun._trampoline with csrc/attrs.c is not built in this checkout")
    from ocirun.plan import Plan

    p = Plan(t.ffi)
    assert attrs.fill(p, None) == t.ffi.NULL
    a = attrs.convert(doc_with({"sysctl": {"kernel.shmmax": "77"}, "personality": {"domain": "LINUX32"},
                                "memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0,65"}},
                               {"scheduler": {"policy": "SCHED_BATCH", "nice": 3},
                                "ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 0}}))
    c = attrs.fill(p, a)[0]
    ffi = t.ffi
    assert c.nsysctl == 1 and ffi.string(c.sysctl_paths[0]) == b"kernel/shmmax"
    assert ffi.string(c.sysctl_values[0]) == b"77" and ffi.string(c.sysctl_keys[0]) == b"kernel.shmmax"
    assert (c.set_personality, c.personality) == (1, 8)
    assert (c.set_scheduler, c.sched_policy, c.sched_nice) == (1, 3, 3)
    assert (c.set_ioprio, c.ioprio_class, c.ioprio_level) == (1, 3, 0)
    assert (c.set_mempolicy, c.mpol_mode, c.nmpol_nodes) == (1, 2, 2)
    assert (c.mpol_nodes[0], c.mpol_nodes[1]) == (1, 2)
    assert c.cpus_initial == ffi.NULL and c.cpus_final == ffi.NULL


# ---- integration: real containers ---------------------------------------------------------------

def _runtime_has_attrs(runtime_bin: str) -> bool:
    """Whether the runtime under test was built with csrc/attrs.c (another runtime, e.g. runc, is
    taken to have these settings)."""
    try:
        first = open(runtime_bin, "rb").readline().decode(errors="replace")
    except OSError:
        return True
    if not first.startswith("#!") or "python" not in first:
        return True
    interp = first[2:].split()[0]
    r = subprocess.run([interp, "-c", "import ocirun._trampoline as t; print(hasattr(t.lib, 'oci_apply_attrs'))"],
                       cwd="/", capture_output=True, text=True)
    return r.stdout.strip() == "True"


@pytest.fixture(autouse=True)
def _wired(request):
    """Integration tests wait for the runtime under test to be built with csrc/attrs.c."""
    if {"rt", "run_in"} & set(request.fixturenames):
        if not _runtime_has_attrs(request.getfixturevalue("runtime_bin")):
            pytest.skip("the runtime under test is not built with csrc/attrs.c yet (\"attrs\" in csrc/build.py PARTS)")


def _proc_stat(text: str) -> list[str]:
    """/proc/PID/stat fields, 1-based like proc(5): field(n) == fields[n]."""
    rest = text[text.rindex(")") + 2:].split()
    return ["", "", ""] + rest


def _host(path: str) -> str:
    return Path(path).read_text().strip()


SYSCTLS = {
    "kernel.shmmax": "123456789",
    "kernel.msgmax": "12345",
    "kernel.sem": "250\t32000\t32\t200",
    "fs.mqueue.msg_max": "20",
    "net.ipv4.ip_forward": "1",
    "net/ipv4/conf/lo/forwarding": "1",
    "kernel.domainname": "attrs.example",
}
SYSCTL_FILES = {k: "/proc/sys/" + attrs.dotted_name(k).translate(str.maketrans("./", "/.")) for k in SYSCTLS}


@pytest.mark.parametrize("userns", [False, True], ids=["root", "userns"])
def test_sysctls_are_seen_inside_and_the_host_is_unchanged(run_in, userns):
    sysctls, files = dict(SYSCTLS), dict(SYSCTL_FILES)
    if userns:  # the uts sysctls belong to the initial user namespace's root, even in a new uts ns
        del sysctls["kernel.domainname"], files["kernel.domainname"]
    host = {k: _host(f) for k, f in files.items()}
    linux = {"sysctl": sysctls}
    if userns:
        linux.update(namespaces=[{"type": t} for t in NS + ("user",)],
                     uidMappings=[{"containerID": 0, "hostID": 100000, "size": 65536}],
                     gidMappings=[{"containerID": 0, "hostID": 100000, "size": 65536}])
    script = "; ".join(f"echo \"$(cat {f})\"" for f in files.values())
    out = run_in(["sh", "-c", script], linux=linux).stdout.splitlines()
    assert dict(zip(sysctls, out)) == sysctls
    assert {k: _host(f) for k, f in files.items()} == host


def test_sysctls_do_not_go_through_the_containers_proc(run_in):
    # The default config makes /proc/sys read-only in the container: the values still land,
    # written through a procfs of the runtime's own, and /proc/sys stays read-only.
    r = run_in(["sh", "-c", "cat /proc/sys/kernel/shmmni; echo 1 > /proc/sys/kernel/shmmni && echo writable"],
               linux={"sysctl": {"kernel.shmmni": "1000"}}, check=False)
    assert r.stdout.splitlines()[0] == "1000"
    assert "writable" not in r.stdout


def test_personality_linux32(run_in):
    out = run_in(["sh", "-c", "cat /proc/self/personality; uname -m"],
                 linux={"personality": {"domain": "LINUX32"}}).stdout.split()
    assert out[0] == "00000008"
    assert out[1] in ("i686", "armv8l", "armv7l")


def test_personality_flags(run_in):
    out = run_in(["cat", "/proc/self/personality"],
                 linux={"personality": {"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]}}).stdout.strip()
    assert int(out, 16) == 0x0040000


def test_default_personality_untouched(run_in):
    assert run_in(["cat", "/proc/self/personality"]).stdout.strip() == "00000000"


def test_scheduler_batch_with_nice(run_in):
    f = _proc_stat(run_in(["cat", "/proc/self/stat"],
                          process={"scheduler": {"policy": "SCHED_BATCH", "nice": 7}}).stdout)
    assert (f[41], f[19]) == ("3", "7")  # policy, nice


def test_scheduler_idle_seen_from_the_host(rt, bundle, unique_id):
    rt("run", "--detach", "--bundle", bundle(["sleep", "1000"], process={"scheduler": {"policy": "SCHED_IDLE"}}),
       unique_id)
    pid = rt.state(unique_id)["pid"]
    assert os.sched_getscheduler(pid) == os.SCHED_IDLE
    rt("delete", "--force", unique_id)


def _rt_budget() -> dict:
    """linux.resources giving the container's cgroup a realtime budget, where a v1 cpu
    controller with RT group scheduling needs one (a new cgroup gets 0 and RT is refused)."""
    if any(Path(f"/sys/fs/cgroup/{d}/cpu.rt_runtime_us").exists() for d in ("cpu", "cpu,cpuacct")):
        return {"resources": {"cpu": {"realtimeRuntime": 10000, "realtimePeriod": 1000000}}}
    return {}


@pytest.mark.parametrize("policy,number", [("SCHED_FIFO", os.SCHED_FIFO), ("SCHED_RR", os.SCHED_RR)])
def test_scheduler_realtime_priority(run_in, policy, number):
    linux = _rt_budget()
    r = run_in(["cat", "/proc/self/stat"], linux=linux, check=False,
               process={"scheduler": {"policy": policy, "priority": 10, "flags": ["SCHED_FLAG_RESET_ON_FORK"]}})
    if r.returncode and not linux and "Operation not permitted" in r.stderr:
        pytest.skip("RT group scheduling leaves the container's cgroup no realtime budget on this host")
    assert r.returncode == 0, r.stderr
    f = _proc_stat(r.stdout)
    assert (f[41], f[40]) == (str(number), "10")  # policy, rt_priority


def test_realtime_policy_without_a_budget_names_the_field(rt, bundle, unique_id):
    """With RT group scheduling the kernel's bare EPERM gets the field that gives a budget."""
    if not _rt_budget():
        pytest.skip("no RT group scheduling on this host: a real-time policy needs no budget")
    b = bundle(["true"], process={"scheduler": {"policy": "SCHED_FIFO", "priority": 10}})
    rt.expect_error("run", "--bundle", b, unique_id,
                    mentions=["process.scheduler", "linux.resources.cpu.realtimeRuntime", "not permitted"])


@pytest.mark.parametrize("cls,prio,shown", [
    ("IOPRIO_CLASS_BE", 3, "best-effort: prio 3"),
    ("IOPRIO_CLASS_IDLE", 0, "idle"),  # busybox shows no level for idle
    ("IOPRIO_CLASS_RT", 5, "realtime: prio 5"),
])
def test_io_priority(run_in, cls, prio, shown):
    out = run_in(["sh", "-c", "ionice -p $$"], process={"ioPriority": {"class": cls, "priority": prio}}).stdout
    assert out.strip() == shown


def test_io_priority_seen_from_the_host(rt, bundle, unique_id):
    b = bundle(["sleep", "1000"], process={"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 6}})
    rt("create", "--bundle", b, unique_id)  # set by the init already, before the fifo
    pid = rt.state(unique_id)["pid"]
    out = subprocess.run(["/bin/busybox", "ionice", "-p", str(pid)], capture_output=True, text=True).stdout
    assert out.strip() == "best-effort: prio 6"
    rt("delete", "--force", unique_id)


@pytest.mark.parametrize("policy,shown", [
    ({"mode": "MPOL_BIND", "nodes": "0"}, "bind:0"),
    ({"mode": "MPOL_INTERLEAVE", "nodes": "0"}, "interleave:0"),
    ({"mode": "MPOL_PREFERRED", "nodes": "0"}, "prefer:0"),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}, "bind=static:0"),
    ({"mode": "MPOL_LOCAL"}, "local"),
])
def test_memory_policy_seen_inside(run_in, policy, shown):
    if not Path("/proc/self/numa_maps").exists():
        pytest.skip("no NUMA support in this kernel")
    out = run_in(["head", "-n1", "/proc/self/numa_maps"], linux={"memoryPolicy": policy}).stdout
    assert out.split()[1] == shown


def _cpus_allowed(status: str) -> str:
    return next(ln.split(":", 1)[1].strip() for ln in status.splitlines() if ln.startswith("Cpus_allowed_list:"))


def _cpu_list(cpus) -> str:
    return ",".join(str(c) for c in sorted(cpus))


@pytest.fixture
def two_cpus():
    mine = sorted(os.sched_getaffinity(0))
    if len(mine) < 2:
        pytest.skip("needs two CPUs")
    return mine[:2]


def test_exec_cpu_affinity_not_applied_to_the_init(run_in, two_cpus):
    out = run_in(["cat", "/proc/self/status"],
                 process={"execCPUAffinity": {"initial": str(two_cpus[0]), "final": str(two_cpus[1])}}).stdout
    assert _cpus_allowed(out) not in (str(two_cpus[0]), str(two_cpus[1]))


@pytest.mark.parametrize("which", ["initial", "final", "both"])
def test_exec_cpu_affinity(rt, bundle, unique_id, tmp_path, two_cpus, which):
    first, second = two_cpus
    aff = {"initial": {"initial": str(second)}, "final": {"final": str(first)},
           "both": {"initial": str(first), "final": str(second)}}[which]
    expect = {"initial": second, "final": first, "both": second}[which]
    rt("run", "--detach", "--bundle", bundle(["sleep", "1000"]), unique_id)
    proc = {"args": ["cat", "/proc/self/status"], "cwd": "/", "user": {"uid": 0, "gid": 0},
            "env": ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"], "execCPUAffinity": aff}
    (tmp_path / "process.json").write_text(json.dumps(proc))
    out = rt("exec", "--process", tmp_path / "process.json", unique_id).stdout
    assert _cpus_allowed(out) == str(expect)
    rt("delete", "--force", unique_id)


def test_exec_gets_the_containers_personality(rt, bundle, unique_id):
    rt("run", "--detach", "--bundle", bundle(["sleep", "1000"], linux={"personality": {"domain": "LINUX32"}}),
       unique_id)
    assert rt("exec", unique_id, "cat", "/proc/self/personality").stdout.strip() == "00000008"
    rt("delete", "--force", unique_id)


# ---- integration: bad input -----------------------------------------------------------------------

def _fails(rt, bundle, unique_id, mentions, **overrides):
    host = {f: _host(f) for f in ("/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/shmmax")}
    line = rt.expect_error("run", "--bundle", bundle(["true"], **overrides), unique_id, mentions=mentions)
    assert not rt.exists(unique_id)
    assert {f: _host(f) for f in host} == host
    return line


def test_non_namespaced_sysctl_is_refused(rt, bundle, unique_id):
    _fails(rt, bundle, unique_id, ["linux.sysctl", "kernel.panic", "namespace"],
           linux={"sysctl": {"kernel.panic": "5"}})


def test_ipc_sysctl_without_an_ipc_namespace(rt, bundle, unique_id):
    _fails(rt, bundle, unique_id, ["linux.sysctl", "kernel.shmmax", "ipc"],
           linux={"sysctl": {"kernel.shmmax": "1"}, "namespaces": [{"type": t} for t in ("pid", "mount", "uts")]})


def test_net_sysctl_without_a_network_namespace(rt, bundle, unique_id):
    _fails(rt, bundle, unique_id, ["linux.sysctl", "net.ipv4.ip_forward", "network"],
           linux={"sysctl": {"net.ipv4.ip_forward": "1"},
                  "namespaces": [{"type": t} for t in ("pid", "mount", "ipc", "uts")]})


def test_unknown_personality_domain(rt, bundle, unique_id):
    _fails(rt, bundle, unique_id, ["linux.personality.domain"], linux={"personality": {"domain": "SVR4"}})


@pytest.mark.parametrize("sched", [
    {"policy": "SCHED_FIFO", "priority": 0},
    {"policy": "SCHED_ISO"},
    {"policy": "SCHED_DEADLINE", "runtime": 30_000_000, "deadline": 10_000_000, "period": 30_000_000},
], ids=["fifo-priority-0", "iso", "deadline-runtime-above-deadline"])
def test_scheduler_the_kernel_refuses(rt, bundle, unique_id, sched):
    _fails(rt, bundle, unique_id, ["process.scheduler: sched_setattr: Invalid argument"], process={"scheduler": sched})


def test_sysctl_the_kernel_lacks(rt, bundle, unique_id):
    _fails(rt, bundle, unique_id, ["linux.sysctl: net.ipv4.no_such_knob: open: No such file or directory"],
           linux={"sysctl": {"net.ipv4.no_such_knob": "1"}})


def test_sysctl_value_the_kernel_refuses(rt, bundle, unique_id):
    _fails(rt, bundle, unique_id, ["linux.sysctl: net.ipv4.ip_forward: write: Invalid argument"],
           linux={"sysctl": {"net.ipv4.ip_forward": "yes"}})


def test_sysctls_in_a_user_namespace_need_a_proc_mount(rt, bundle, unique_id):
    def no_proc(cfg):
        cfg["mounts"] = [m for m in cfg["mounts"] if m["destination"] != "/proc"]
        cfg["linux"].update(maskedPaths=[], readonlyPaths=[], sysctl={"kernel.shmmax": "1"},
                            namespaces=[{"type": t} for t in NS + ("user",)],
                            uidMappings=[{"containerID": 0, "hostID": 100000, "size": 65536}],
                            gidMappings=[{"containerID": 0, "hostID": 100000, "size": 65536}])
    line = rt.expect_error("run", "--bundle", bundle(["true"], no_proc), unique_id,
                           mentions=["linux.sysctl: no procfs to write through", "must mount /proc"])
    assert line.endswith(": fsmount: Operation not permitted")
    assert not rt.exists(unique_id)


def test_memory_policy_on_a_missing_node(rt, bundle, unique_id):
    if not Path("/proc/self/numa_maps").exists():
        pytest.skip("no NUMA support in this kernel")
    if Path("/sys/devices/system/node/node63").exists():
        pytest.skip("this host has a node 63")
    _fails(rt, bundle, unique_id, ["linux.memoryPolicy: set_mempolicy: Invalid argument"],
           linux={"memoryPolicy": {"mode": "MPOL_BIND", "nodes": "63"}})


def test_bad_cpu_list(rt, bundle, unique_id):
    _fails(rt, bundle, unique_id, ["process.execCPUAffinity.initial", "backwards"],
           process={"execCPUAffinity": {"initial": "3-1"}})


def test_exec_with_a_scheduler_the_kernel_refuses(rt, bundle, unique_id, tmp_path):
    rt("run", "--detach", "--bundle", bundle(["sleep", "1000"]), unique_id)
    proc = {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "scheduler": {"policy": "SCHED_ISO"}}
    (tmp_path / "process.json").write_text(json.dumps(proc))
    rt.expect_error("exec", "--process", tmp_path / "process.json", unique_id,
                    mentions=["process.scheduler: sched_setattr: Invalid argument"])
    rt("delete", "--force", unique_id)


@pytest.mark.skipif(attrs.apparmor_enabled(), reason="AppArmor is enabled on this host")
def test_apparmor_profile_without_apparmor(rt, bundle, unique_id):
    _fails(rt, bundle, unique_id, ["process.apparmorProfile", "AppArmor is not enabled on this host"],
           process={"apparmorProfile": "docker-default"})


@pytest.mark.skipif(attrs.selinux_enabled(), reason="SELinux is enabled on this host")
@pytest.mark.parametrize("field", ["process.selinuxLabel", "linux.mountLabel"])
def test_selinux_label_without_selinux(run_in, field):
    """As crun: a label where SELinux is off is a warning naming the field, and the container
    runs unlabelled (a tmpfs given context= would not mount at all here)."""
    section, name = field.split(".")
    scratch = {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}
    r = run_in(["sh", "-c", "cat /proc/self/attr/current; grep ' /scratch ' /proc/self/mounts"],
               lambda cfg: cfg["mounts"].append(scratch),
               **{section: {name: "system_u:system_r:container_t:s0"}})
    assert field in r.stderr and "SELinux is not enabled on this host" in r.stderr
    assert "container_t" not in r.stdout and "context=" not in r.stdout
    assert " /scratch tmpfs " in r.stdout


@pytest.mark.skipif(attrs._resctrl_mounted(), reason="resctrl is mounted on this host")
def test_intel_rdt_without_resctrl(rt, bundle, unique_id):
    _fails(rt, bundle, unique_id, ["linux.intelRdt", "resctrl"], linux={"intelRdt": {"closID": "ocitest"}})


# ---- the C side on its own: the procfs fallback ------------------------------------------------

FALLBACK_SCRIPT = r'''
import ctypes, struct, sys
from ocirun._trampoline import ffi, lib

libc = ctypes.CDLL(None, use_errno=True)
# A new mount and ipc namespace: nothing here reaches the host.
assert libc.unshare(0x00020000 | 0x08000000) == 0, ctypes.get_errno()
assert libc.mount(b"none", b"/", None, (1 << 18) | (1 << 14), None) == 0  # MS_PRIVATE | MS_REC
# fsopen(2) fails with ENOSYS, as on a kernel before 5.2 (a seccomp filter on syscall 430).
insns = [(0x20, 0, 0, 0), (0x15, 0, 1, 430), (0x06, 0, 0, 0x00050000 | 38), (0x06, 0, 0, 0x7FFF0000)]
code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in insns))
class Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
prog = Prog(len(insns), ctypes.addressof(code))
assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
assert libc.prctl(22, 2, ctypes.byref(prog), 0, 0) == 0, ctypes.get_errno()  # seccomp filter

keep = []
def strv(items):
    bufs = [ffi.new("char[]", s.encode()) for s in items]
    keep.extend(bufs)
    arr = ffi.new("char *[]", bufs)
    keep.append(arr)
    return arr
a = ffi.new("struct oci_attrs *")
a.sysctl_keys, a.sysctl_paths, a.sysctl_values = strv([sys.argv[1]]), strv([sys.argv[2]]), strv([sys.argv[3]])
a.nsysctl = 1
err = ffi.new("char[]", 1024)
r = lib.oci_apply_attrs(a, err, 1024)
print(r, ffi.string(err).decode(), open("/proc/sys/" + sys.argv[2]).read().strip(), sep="|")
'''


def _runtime_python(runtime_bin: str) -> str | None:
    first = open(runtime_bin, "rb").readline().decode(errors="replace")
    return first[2:].split()[0] if first.startswith("#!") and "python" in first else None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: unshare, seccomp")
def test_sysctls_fall_back_to_a_detached_copy_of_proc(runtime_bin):
    py = _runtime_python(runtime_bin)
    if py is None or not _runtime_has_attrs(runtime_bin):
        pytest.skip("the runtime under test is not ocirun built with csrc/attrs.c")
    host = _host("/proc/sys/kernel/shmmax")

    def go(*args):
        r = subprocess.run([py, "-c", FALLBACK_SCRIPT, *args], cwd="/", capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip().split("|")

    assert go("kernel.shmmax", "kernel/shmmax", "31337") == ["0", "", "31337"]
    rc, msg, _ = go("kernel.shmmax", "kernel/shmmax", "nope")
    assert (rc, msg) == ("-1", "linux.sysctl: kernel.shmmax: write: Invalid argument")
    assert _host("/proc/sys/kernel/shmmax") == host
