"""cgroups with real containers on this machine: limits the kernel enforces, update, pause/resume,
ps, events, device rules (v1 here; the v2 eBPF filter on a scratch cgroup of the cgroup2 mount).

update/pause/resume/ps/events go through the CLI once it has those commands, and through
ocirun.cgroup_commands in this process (same state root) until then. Resources are written with
cgroups.apply before `start`, as create does (`_apply_config`): that stays correct once create
applies them itself (writing the same values twice changes nothing).
"""
import json
import os
import threading
import time

import pytest

from ocitest_conftest import MARK, find_cgroup_dirs
from ocirun import cgroup_commands, cgroups, state
from ocirun.errors import OciError

SLEEP = ["sleep", "1000"]
# Most tests read the v1 files of this project's hybrid machines; the v2 device filter tests don't.
V1 = pytest.mark.skipif(not os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
                        or not os.path.exists("/sys/fs/cgroup/devices/devices.list"),
                        reason="needs cgroup v1 memory (with swap accounting) and devices hierarchies")
BUSY = ["sh", "-c", "while :; do :; done"]


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


class Cg:
    """The cgroup commands, through the CLI when it has them, else in this process."""

    _support: dict = {}

    def __init__(self, rt, state_root, tmp_path):
        self.rt, self.root, self.tmp = rt, str(state_root), tmp_path

    def cli(self, command: str) -> bool:
        key = (self.rt.binary, command)
        if key not in self._support:
            r = self.rt(command, "ocirun-probe-no-such-container", check=False)
            self._support[key] = "unknown command" not in r.stderr
        return self._support[key]

    def dirs(self, cid: str) -> list[str]:
        return state.load(self.root, cid).private["cgroup_dirs"]

    def dir(self, cid: str, hierarchy: str) -> str:
        return next(d for d in self.dirs(cid) if d.startswith(f"/sys/fs/cgroup/{hierarchy}/"))

    def apply_config(self, cid: str, bundle) -> None:
        """What create does with the config's linux.resources."""
        cfg = json.loads((bundle / "config.json").read_text())
        linux = cfg.get("linux") or {}
        cgroups.apply(self.dirs(cid), linux.get("resources") or {},
                      devices=cgroups.device_allows(linux.get("devices") or []))

    def update(self, cid: str, resources: dict) -> None:
        if self.cli("update"):
            f = self.tmp / f"resources-{time.monotonic_ns()}.json"
            f.write_text(json.dumps(resources))
            self.rt("update", "--resources", f, cid)
        else:
            cgroup_commands.update(self.root, cid, resources)

    def update_error(self, cid: str, resources: dict, mentions=()) -> str:
        if self.cli("update"):
            f = self.tmp / f"resources-{time.monotonic_ns()}.json"
            f.write_text(json.dumps(resources))
            return self.rt.expect_error("update", "--resources", f, cid, mentions=mentions)
        with pytest.raises(OciError) as e:
            cgroup_commands.update(self.root, cid, resources)
        line = str(e.value)
        for m in mentions:
            assert m.lower() in line.lower(), f"{line!r} does not mention {m!r}"
        return line

    def pause(self, cid: str) -> None:
        if self.cli("pause"):
            self.rt("pause", cid)
        else:
            cgroup_commands.pause(self.root, cid)

    def resume(self, cid: str) -> None:
        if self.cli("resume"):
            self.rt("resume", cid)
        else:
            cgroup_commands.resume(self.root, cid)

    def error(self, command: str, cid: str, mentions=()) -> str:
        if self.cli(command):
            return self.rt.expect_error(command, cid, mentions=mentions)
        with pytest.raises(OciError) as e:
            getattr(cgroup_commands, command)(self.root, cid)
        line = str(e.value)
        for m in mentions:
            assert m.lower() in line.lower(), f"{line!r} does not mention {m!r}"
        return line

    def ps(self, cid: str) -> list[int]:
        if self.cli("ps"):
            return json.loads(self.rt("ps", "--format", "json", cid).stdout)
        return cgroup_commands.ps(self.root, cid)

    def stats(self, cid: str) -> dict:
        if self.cli("events"):
            return json.loads(self.rt("events", "--stats", cid).stdout)
        return cgroup_commands.events_stats(self.root, cid)


class Events:
    """`events --interval` running in the background; .events() is what it printed so far."""

    def __init__(self, cg: Cg, cid: str, interval: float = 0.1):
        self.cg, self.cid = cg, cid
        if cg.cli("events"):
            self.proc = cg.rt.popen("events", "--interval", f"{int(interval * 1000)}ms", cid)
            self.path = self.proc.stdout_path
        else:
            self.proc = None
            self.path = cg.tmp / f"events-{cid}.jsonl"
            self._stop = threading.Event()
            self._out = open(self.path, "w")
            self.thread = threading.Thread(target=cgroup_commands.events_stream,
                                           args=(cg.root, cid, interval, self._out, self._stop.is_set),
                                           daemon=True)
            self.thread.start()

    def events(self) -> list[dict]:
        text = self.path.read_text() if self.path.exists() else ""
        return [json.loads(ln) for ln in text.splitlines() if ln.strip()]

    def wait_for(self, kind: str, timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.events() if e["type"] == kind]
            if found:
                return found[0]
            assert time.monotonic() < deadline, f"no {kind!r} event in {timeout}s: {self.events()[-3:]}"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
            self.proc.wait(timeout=10)
        else:
            self._stop.set()
            self.thread.join(timeout=10)
            self._out.close()


@pytest.fixture
def cg(rt, state_root, tmp_path) -> Cg:
    return Cg(rt, state_root, tmp_path)


def _start(rt, cg, bundle_path, cid) -> None:
    rt("create", "--bundle", bundle_path, cid)
    cg.apply_config(cid, bundle_path)
    rt("start", cid)
    rt.wait_status(cid, "running")


def _wait_output(rt, cid, text, timeout=10) -> None:
    deadline = time.monotonic() + timeout
    while text not in rt.out(cid):
        assert time.monotonic() < deadline, f"{cid}: never printed {text!r}; printed {rt.out(cid)[-300:]!r}"
        time.sleep(0.02)


def _cpu_ns(cg, cid) -> int:
    return cg.stats(cid)["data"]["cpu"]["usage"]["total"]


# --- memory ------------------------------------------------------------------------------------------

@V1
def test_memory_limit_is_hit_and_the_oom_kill_shows_in_events(rt, cg, bundle, unique_id):
    script = "sleep 0.5; dd if=/dev/zero of=/dev/null bs=96M count=1; echo dd-exit=$?; sleep 1000"
    b = bundle(["sh", "-c", script], linux={"resources": {"memory": {"limit": 32 << 20, "swap": 32 << 20}}})
    rt("create", "--bundle", b, unique_id)
    cg.apply_config(unique_id, b)
    mem = cg.dir(unique_id, "memory")
    assert int(_read(mem + "/memory.limit_in_bytes")) == 32 << 20
    events = Events(cg, unique_id)
    try:
        rt("start", unique_id)
        oom = events.wait_for("oom")
        assert oom["id"] == unique_id
        _wait_output(rt, unique_id, "dd-exit=137")   # dd was SIGKILLed by the OOM killer; sh lives on
        assert events.wait_for("stats")["data"]["memory"]["usage"]["limit"] == 32 << 20
    finally:
        events.stop()
    assert cgroups.oom_events(cg.dirs(unique_id)) >= 1
    rt("delete", "--force", unique_id)


@V1
def test_memory_update_raises_and_lowers_with_swap(rt, cg, bundle, unique_id):
    b = bundle(SLEEP, linux={"resources": {"memory": {"limit": 64 << 20, "swap": 64 << 20}}})
    _start(rt, cg, b, unique_id)
    mem = cg.dir(unique_id, "memory")
    cg.update(unique_id, {"memory": {"limit": 256 << 20, "swap": 512 << 20}})   # above the old memsw
    assert (int(_read(mem + "/memory.limit_in_bytes")), int(_read(mem + "/memory.memsw.limit_in_bytes"))) == (
        256 << 20, 512 << 20)
    cg.update(unique_id, {"memory": {"limit": 48 << 20, "swap": 48 << 20}})     # below the old limit
    assert (int(_read(mem + "/memory.limit_in_bytes")), int(_read(mem + "/memory.memsw.limit_in_bytes"))) == (
        48 << 20, 48 << 20)
    cg.update(unique_id, {"memory": {"limit": -1}})
    assert int(_read(mem + "/memory.limit_in_bytes")) > 1 << 60
    rt("delete", "--force", unique_id)


# --- pids --------------------------------------------------------------------------------------------

@V1
def test_pids_limit_bounds_a_fork_bomb(rt, cg, bundle, unique_id):
    limit = 16
    bomb = "echo bombing; b() { b | b & }; b; sleep 1000"
    b = bundle(["sh", "-c", f"trap '' PIPE; ({bomb}) 2>/dev/null; sleep 1000"],
               linux={"resources": {"pids": {"limit": limit}}})
    _start(rt, cg, b, unique_id)
    pids_dir = cg.dir(unique_id, "pids")
    assert _read(pids_dir + "/pids.max") == str(limit)
    deadline = time.monotonic() + 10
    while int(dict(ln.split() for ln in _read(pids_dir + "/pids.events").splitlines())["max"]) == 0:
        assert time.monotonic() < deadline, "the fork bomb never hit pids.max"
        time.sleep(0.02)
    for _ in range(20):
        assert int(_read(pids_dir + "/pids.current")) <= limit
        time.sleep(0.01)
    assert cg.stats(unique_id)["data"]["pids"]["limit"] == limit
    rt("delete", "--force", unique_id, timeout=60)
    assert not find_cgroup_dirs(b.name)


# --- cpu -----------------------------------------------------------------------------------------

@V1
def test_cpu_quota_shares_and_cpuset_in_the_files(rt, cg, bundle, unique_id):
    cpu_res = {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"}
    b = bundle(["sh", "-c", "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.shares; "
                            "echo listed; sleep 1000"],
               linux={"resources": {"cpu": cpu_res}})
    _start(rt, cg, b, unique_id)
    d = cg.dir(unique_id, "cpu")
    assert (_read(d + "/cpu.cfs_quota_us"), _read(d + "/cpu.cfs_period_us"), _read(d + "/cpu.shares")) == (
        "50000", "100000", "512")
    assert _read(cg.dir(unique_id, "cpuset") + "/cpuset.cpus") == "0"
    _wait_output(rt, unique_id, "listed")
    assert rt.out(unique_id).split()[:2] == ["50000", "512"]          # what the container sees
    cg.update(unique_id, {"cpu": {"quota": 20000, "period": 50000, "shares": 1024}})
    assert (_read(d + "/cpu.cfs_quota_us"), _read(d + "/cpu.cfs_period_us"), _read(d + "/cpu.shares")) == (
        "20000", "50000", "1024")
    cg.update(unique_id, {"cpu": {"quota": -1, "realtimeRuntime": 1000, "realtimePeriod": 500000}})
    assert _read(d + "/cpu.cfs_quota_us") == "-1"
    assert (_read(d + "/cpu.rt_runtime_us"), _read(d + "/cpu.rt_period_us")) == ("1000", "500000")
    rt("delete", "--force", unique_id)


@V1
def test_cpu_quota_throttles_a_busy_loop(rt, cg, bundle, unique_id):
    b = bundle(BUSY, linux={"resources": {"cpu": {"quota": 10000, "period": 100000}}})
    _start(rt, cg, b, unique_id)
    t0, c0 = time.monotonic(), _cpu_ns(cg, unique_id)
    time.sleep(1.0)
    used = (_cpu_ns(cg, unique_id) - c0) / 1e9 / (time.monotonic() - t0)
    assert used < 0.3, f"a 10% quota let the loop use {used:.0%} of a cpu"
    assert cg.stats(unique_id)["data"]["cpu"]["throttling"]["throttledPeriods"] > 0
    rt("delete", "--force", unique_id)


@V1
def test_a_value_the_kernel_rejects_names_field_file_and_value(rt, cg, bundle, unique_id):
    _start(rt, cg, bundle(SLEEP), unique_id)
    cg.update_error(unique_id, {"cpu": {"quota": 10}},
                    mentions=("linux.resources.cpu.quota", "write 10 to cpu.cfs_quota_us", "invalid argument"))
    cg.update_error(unique_id, {"memory": {"useHierarchy": False}},
                    mentions=("linux.resources.memory.useHierarchy", "memory.use_hierarchy"))
    rt("delete", "--force", unique_id)


@V1
def test_settings_this_host_cannot_do_name_the_field(rt, cg, bundle, unique_id):
    _start(rt, cg, bundle(SLEEP), unique_id)
    # What this project's hybrid machines lack: hugetlb (only on the cgroup2 mount, not enabled for
    # us), net_cls, and any controller enabled on the cgroup2 side.
    unified = cg.dir(unique_id, "unified")
    if not os.path.exists("/sys/fs/cgroup/hugetlb") and not os.path.exists(unified + "/hugetlb.2MB.max"):
        cg.update_error(unique_id, {"hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 21}]},
                        mentions=("linux.resources.hugepageLimits", "hugetlb"))
    if not os.path.exists("/sys/fs/cgroup/net_cls"):
        cg.update_error(unique_id, {"network": {"classID": 7}},
                        mentions=("linux.resources.network.classID", "net_cls"))
    if not os.path.exists(unified + "/memory.max"):
        cg.update_error(unique_id, {"unified": {"memory.max": "1G"}},
                        mentions=("linux.resources.unified.memory.max", "not enabled"))
    rt("delete", "--force", unique_id)


@V1
def test_unified_keys_go_to_the_cgroup2_mount(rt, cg, bundle, unique_id):
    b = bundle(SLEEP, linux={"resources": {"unified": {"cgroup.max.descendants": "3"}}})
    _start(rt, cg, b, unique_id)
    assert _read(cg.dir(unique_id, "unified") + "/cgroup.max.descendants") == "3"
    cg.update(unique_id, {"unified": {"cgroup.max.descendants": "max"}})
    assert _read(cg.dir(unique_id, "unified") + "/cgroup.max.descendants") == "max"
    rt("delete", "--force", unique_id)


# --- devices (v1 on this host) --------------------------------------------------------------------

PROBE_NULL = ["sh", "-c", "while :; do if (: > /dev/null) 2>/dev/null; then echo ok; else echo denied; fi; "
                          "sleep 0.05; done"]


def _last_verdict(rt, cid) -> str:
    lines = rt.out(cid).split()
    return lines[-1] if lines else ""


def _wait_verdict(rt, cid, want, timeout=10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        got = _last_verdict(rt, cid)
        if got == want:
            # and stays so
            time.sleep(0.2)
            assert _last_verdict(rt, cid) == want
            return
        assert time.monotonic() < deadline, f"opening /dev/null inside: {got!r}, wanted {want!r}"
        time.sleep(0.05)


@V1
def test_device_rule_denies_dev_null_until_update_allows_it(rt, cg, bundle, unique_id):
    deny_null = [{"allow": False, "access": "rwm"},
                 {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]
    b = bundle(PROBE_NULL, linux={"resources": {"devices": deny_null}})
    _start(rt, cg, b, unique_id)
    listed = _read(cg.dir(unique_id, "devices") + "/devices.list").splitlines()
    assert "c 1:3 rwm" not in listed and "c 1:5 rwm" in listed
    _wait_verdict(rt, unique_id, "denied")
    cg.update(unique_id, {"devices": [{"allow": False, "access": "rwm"},
                                      {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]})
    assert "c 1:3 rwm" in _read(cg.dir(unique_id, "devices") + "/devices.list").splitlines()
    _wait_verdict(rt, unique_id, "ok")
    cg.update(unique_id, {"devices": deny_null})
    _wait_verdict(rt, unique_id, "denied")
    rt("delete", "--force", unique_id)


@V1
def test_default_device_rules(rt, cg, bundle, unique_id):
    b = bundle(SLEEP)
    _start(rt, cg, b, unique_id)
    listed = set(_read(cg.dir(unique_id, "devices") + "/devices.list").splitlines())
    assert {"c 1:3 rwm", "c 1:5 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:2 rwm", "c 136:* rwm", "c *:* m"} <= listed
    assert "a *:* rwm" not in listed
    rt("delete", "--force", unique_id)


@V1
def test_bad_device_rule_is_refused(rt, cg, bundle, unique_id):
    _start(rt, cg, bundle(SLEEP), unique_id)
    cg.update_error(unique_id, {"devices": [{"allow": True, "type": "x", "access": "r"}]},
                    mentions=("linux.resources.devices[0].type",))
    cg.update_error(unique_id, {"devices": [{"allow": True, "type": "c", "access": "rwz"}]},
                    mentions=("linux.resources.devices[0].access",))
    rt("delete", "--force", unique_id)


# --- devices: the v2 eBPF filter on a scratch cgroup of the cgroup2 mount --------------------------

@pytest.fixture(scope="module")
def bpf_lib(tmp_path_factory):
    """(ffi, lib) with csrc/bpf.c: ocirun._trampoline when it was built with it, else built here."""
    if os.geteuid() != 0:
        pytest.skip("loading and attaching a BPF program needs root")
    try:
        from ocirun._trampoline import ffi, lib
        if hasattr(lib, "oci_bpf_prog_load"):
            return ffi, lib
    except ImportError:
        pass
    try:
        from cffi import FFI
    except ImportError:
        pytest.skip("cffi missing: can't build csrc/bpf.c")
    import importlib.util
    import sys

    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "csrc")
    out = tmp_path_factory.mktemp("bpf")
    ffi = FFI()
    with open(os.path.join(src, "bpf.h")) as f:
        ffi.cdef(f.read())
    ffi.set_source("_ocirun_bpf_test", '#include "bpf.h"', sources=[os.path.join(src, "bpf.c")],
                   include_dirs=[src], extra_compile_args=["-O2", "-Wall", "-Wextra", "-Werror"])
    try:
        so = ffi.compile(tmpdir=str(out), verbose=False)
    except Exception as e:  # no compiler, no headers
        pytest.skip(f"can't build csrc/bpf.c here: {e}")
    spec = importlib.util.spec_from_file_location("_ocirun_bpf_test", so)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sys.modules.pop("_ocirun_bpf_test", None)
    return mod.ffi, mod.lib


@pytest.fixture
def scratch_v2(tmp_path):
    root = "/sys/fs/cgroup/unified"
    if not os.path.exists(root + "/cgroup.procs"):
        root = "/sys/fs/cgroup"
        if not os.path.exists(root + "/cgroup.controllers"):
            pytest.skip("no cgroup2 mount")
    d = f"{root}/{MARK}-bpf{os.getpid()}"
    os.mkdir(d)
    yield d
    cgroups.remove([d])


def _open_in(cgroup_dir: str, path: str) -> str:
    """Open path for writing from a process placed in the cgroup: 'ok' or the error."""
    import subprocess

    script = f'echo $$ > {cgroup_dir}/cgroup.procs && if (: > {path}); then echo ok; else echo denied; fi'
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=10).stdout.strip()


def test_v2_device_program_is_enforced_and_replaced(bpf_lib, scratch_v2, monkeypatch):
    from ocirun.cgroups import bpf, devices as dev, resources

    monkeypatch.setattr(bpf, "override", bpf_lib)
    v2 = resources.describe(scratch_v2)
    deny_null = [{"allow": False, "access": "rwm"}, {"allow": False, "type": "c", "major": 1, "minor": 3}]
    resources.Bpf("linux.resources.devices", v2, dev.effective_rules(dev.parse_rules(deny_null))).run()
    assert _open_in(scratch_v2, "/dev/null") == "denied"
    assert _open_in(scratch_v2, "/dev/zero") == "ok"
    fd = os.open(scratch_v2, os.O_RDONLY | os.O_DIRECTORY)
    try:
        first, _ = bpf.attached(fd)
        for _ in range(3):  # update after update: still one program
            resources.Bpf("linux.resources.devices", v2,
                          dev.effective_rules(dev.parse_rules([{"allow": False, "access": "rwm"}]))).run()
        now, flags = bpf.attached(fd)
        assert len(first) == 1 and len(now) == 1 and now != first and flags & bpf.F_ALLOW_MULTI
    finally:
        os.close(fd)
    assert _open_in(scratch_v2, "/dev/null") == "ok"


def test_v2_device_program_passes_the_verifier_for_many_rules(bpf_lib, monkeypatch):
    from ocirun.cgroups import bpf, devices as dev

    monkeypatch.setattr(bpf, "override", bpf_lib)
    many = [{"allow": False, "access": "rwm"}] + [
        {"allow": i % 3 != 0, "type": "cb"[i % 2], "major": i, "minor": -1 if i % 5 == 0 else i, "access": "rwm"[: 1 + i % 3]}
        for i in range(200)]
    for rules in (many, [], [{"allow": True, "access": "rwm"}]):
        fd = bpf.load(dev.encode(dev.program(dev.effective_rules(dev.parse_rules(rules)))))
        os.close(fd)


# --- pause / resume ------------------------------------------------------------------------------------

@V1
def test_pause_stops_a_busy_loop(rt, cg, bundle, unique_id):
    _start(rt, cg, bundle(BUSY), unique_id)
    c0 = _cpu_ns(cg, unique_id)
    time.sleep(0.2)
    assert _cpu_ns(cg, unique_id) > c0
    cg.pause(unique_id)
    assert rt.state(unique_id)["status"] == "paused"
    frozen_at = _cpu_ns(cg, unique_id)
    time.sleep(0.5)
    assert _cpu_ns(cg, unique_id) == frozen_at
    cg.error("pause", unique_id, mentions=(unique_id, "paused"))
    cg.resume(unique_id)
    assert rt.state(unique_id)["status"] == "running"
    time.sleep(0.2)
    assert _cpu_ns(cg, unique_id) > frozen_at
    cg.error("resume", unique_id, mentions=(unique_id, "running"))
    rt("delete", "--force", unique_id)


@V1
def test_delete_force_of_a_paused_container(rt, cg, bundle, unique_id):
    b = bundle(BUSY)
    _start(rt, cg, b, unique_id)
    cg.pause(unique_id)
    rt("delete", "--force", unique_id)
    assert not rt.exists(unique_id)
    assert not find_cgroup_dirs(b.name)


# --- ps ------------------------------------------------------------------------------------------------

def _descendants(pid: int) -> set[int]:
    kids: dict = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            kids.setdefault(ppid, []).append(int(name))
    out, todo = set(), [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.add(k)
            todo.append(k)
    return out


@V1
def test_ps_lists_exactly_the_container_pids(rt, cg, bundle, unique_id):
    b = bundle(["sh", "-c", "sleep 1000 & sleep 1001 & (sleep 1002 &) ; echo ready; wait"])
    _start(rt, cg, b, unique_id)
    _wait_output(rt, unique_id, "ready")
    init = rt.state(unique_id)["pid"]
    expected = {init} | _descendants(init)
    deadline = time.monotonic() + 5
    while len(expected) < 4 and time.monotonic() < deadline:  # init and three sleeps
        time.sleep(0.02)
        expected = {init} | _descendants(init)
    pids = cg.ps(unique_id)
    assert sorted(pids) == sorted(expected) and len(pids) == len(set(pids))
    assert os.getpid() not in pids
    rt("delete", "--force", unique_id)


# --- events --stats -------------------------------------------------------------------------------

@V1
def test_events_stats_figures_move(rt, cg, bundle, unique_id):
    script = "echo ready; i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; dd if=/dev/zero of=/dev/null bs=8M count=1; sleep 1000"
    b = bundle(["sh", "-c", script], linux={"resources": {"pids": {"limit": 50}}})
    _start(rt, cg, b, unique_id)
    first = cg.stats(unique_id)
    assert first["type"] == "stats" and first["id"] == unique_id
    data = first["data"]
    assert {"cpu", "memory", "pids", "blkio"} <= set(data)
    assert data["pids"] == {"current": data["pids"]["current"], "limit": 50} and data["pids"]["current"] >= 1
    assert len(data["cpu"]["usage"]["percpu"]) >= 1
    assert data["memory"]["usage"]["usage"] > 0 and data["memory"]["raw"]
    deadline = time.monotonic() + 15
    while True:
        later = cg.stats(unique_id)["data"]
        if (later["cpu"]["usage"]["total"] > data["cpu"]["usage"]["total"]
                and later["memory"]["usage"]["max"] > 8 << 20):
            break
        assert time.monotonic() < deadline, f"figures did not move: {data['cpu']} -> {later['cpu']}"
        time.sleep(0.1)
    rt("delete", "--force", unique_id)


@V1
def test_events_stream_prints_stats_and_ends_when_the_container_stops(rt, cg, bundle, unique_id):
    _start(rt, cg, bundle(SLEEP), unique_id)
    events = Events(cg, unique_id, interval=0.1)
    try:
        time.sleep(0.5)
        got = events.events()
        assert len(got) >= 2 and all(e["type"] == "stats" and e["id"] == unique_id for e in got)
        rt("kill", unique_id, "KILL")
        deadline = time.monotonic() + 10
        while (events.proc.poll() is None) if events.proc else events.thread.is_alive():
            assert time.monotonic() < deadline, "events did not end after the container stopped"
            time.sleep(0.05)
    finally:
        events.stop()
    rt("delete", unique_id)


# --- stopped containers ------------------------------------------------------------------------------

@V1
def test_update_and_pause_of_a_stopped_container(rt, cg, bundle, unique_id):
    rt("run", "--bundle", bundle(["true"]), "--detach", unique_id)
    rt.wait_status(unique_id, "stopped")
    cg.update_error(unique_id, {"pids": {"limit": 5}}, mentions=(unique_id, "stopped"))
    cg.error("pause", unique_id, mentions=(unique_id, "stopped"))
    rt("delete", unique_id)


# --- create with resources ----------------------------------------------------------------------------

@V1
def test_create_applies_resources_and_a_failed_create_leaves_no_cgroup(rt, cg, bundle, new_id):
    cid = new_id()
    rt("create", "--bundle", bundle(SLEEP, linux={"resources": {"pids": {"limit": 11}}}), cid)
    assert _read(cg.dir(cid, "pids") + "/pids.max") == "11"
    rt("delete", "--force", cid)
    bad = bundle(SLEEP, linux={"resources": {"cpu": {"quota": 10}}})
    rt.expect_error("create", "--bundle", bad, new_id(),
                    mentions=("linux.resources.cpu.quota", "cpu.cfs_quota_us", "invalid argument"))
    assert not find_cgroup_dirs(bad.name)
    bad = bundle(SLEEP, linux={"resources": {"devices": [{"allow": True, "type": "q"}]}})
    rt.expect_error("create", "--bundle", bad, new_id(), mentions=("devices[0].type",))
    assert not find_cgroup_dirs(bad.name)


# --- and nothing left ----------------------------------------------------------------------------------

def test_zz_no_cgroup_directory_of_this_session_is_left():
    left = [d for d in find_cgroup_dirs_all() if MARK in d]
    assert not left, f"cgroup directories left behind: {left}"


def find_cgroup_dirs_all() -> list[str]:
    out = []
    for top, dirnames, _ in os.walk("/sys/fs/cgroup"):
        if top.count("/") > 10:
            dirnames[:] = []
        out += [os.path.join(top, d) for d in dirnames]
    return out
