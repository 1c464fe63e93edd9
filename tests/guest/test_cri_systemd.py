"""Kubernetes' path on a systemd node: containerd 1.6's CRI plugin, driven over gRPC the way
kubelet with `cgroupDriver: systemd` drives it, with the handlers runc and ocirun
(io.containerd.runc.v2, `SystemdCgroup = true`) and containerd's AppArmor on, so that every
container gets the runtime/default profile `cri-containerd.apparmor.d`. Every check runs with
both handlers; a check runc fails would be a strict xfail for runc, with the reason; ocirun is
held to all of them.

Needs the testhost's systemd boot (OCIRUN_TESTHOST=systemd: systemd as PID 1, pure cgroup v2,
AppArmor on); skipped elsewhere:

    scripts/testhost run -- env OCIRUN_TESTHOST=systemd .venv/bin/python -m pytest -q \\
        -p no:cacheprovider tests/guest/test_cri_systemd.py

The machinery is tests/integration/test_cri.py's (cri_support.py: the gRPC client and its
stubs, the local images, containerd in a network namespace of its own with the CNI bridge);
the configuration is `OCIRUN_CRI_SYSTEMD=1 scripts/setup-integration --config-only DIR`, DIR a
private directory under /var/tmp (the checkout is read-only in the guest). Pods get kubelet's
systemd parent `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice`
(the uid's dashes as underscores, as kubelet escapes them), so containerd gives the runtime the
cgroupsPath `kubepods-besteffort-pod<uid>.slice:cri-containerd:<id>` and the runtime asks
systemd for the scope `cri-containerd-<id>.scope` in that slice.

After each test its pods are stopped and removed through CRI, the pod slices stopped (kubelet's
job: it made them), and nothing may be left: no unit, cgroup directory, mount, process, shim
socket, runtime state or bundle of the test's pods, and no pod still listed. At the end the
module removes what it caused on the node: the kubepods slices, containerd's AppArmor profile,
the /run/netns mount, its directories under /run/containerd.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from callers_support import (RUNTIMES, apparmor_enabled, cgroup_dirs, loaded_profiles, mounts, private_dir,
                             proc_cgroup, remove_profile, run_cmd, units, wait_for)
from guest_support import show as unit_props
from ocitest_conftest import MARK, settled

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import cri_support  # noqa: E402
from cri_support import HANDLERS, CriDaemon, load_api, missing_tools, new_uid  # noqa: E402
from integ_support import live_processes, reap_zombies  # noqa: E402

pytestmark = pytest.mark.skipif(
    os.environ.get("OCIRUN_TESTHOST") != "systemd",
    reason="needs the testhost's systemd boot (OCIRUN_TESTHOST=systemd): SystemdCgroup = true makes "
           "the runtimes ask systemd as PID 1 for the containers' scopes")

REPO = Path(__file__).resolve().parents[2]
PROFILE = "cri-containerd.apparmor.d"  # containerd's runtime/default AppArmor profile
MiB = 1024 * 1024
# An init that says it is ready, exits 0 on SIGTERM and otherwise waits in one long sleep (no
# process comes and goes while a test looks; sh as pid 1 ignores an untrapped SIGTERM).
WAIT = "trap 'exit 0' TERM; echo ready; sleep 100000 & wait $!"
TIMEOUT = 120  # one CRI call, under TCG
# Inside: the directory of the process's own cgroup ($cg), with a cgroup namespace or without.
OWN = "cg=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)"


def _escape(uid: str) -> str:
    """kubelet's systemd cgroup names: a dash in a component is an underscore."""
    return uid.replace("-", "_")


def _systemctl(*args) -> subprocess.CompletedProcess:
    return run_cmd(["systemctl", *args], timeout=60)


def _active(unit: str) -> bool:
    return unit_props(unit, "ActiveState")["ActiveState"] == "active"


# --- the module's containerd ----------------------------------------------------------------

@pytest.fixture(scope="module")
def cri_daemon():
    missing = missing_tools()
    if missing:
        pytest.skip(f"{', '.join(missing)} missing: run scripts/setup-integration on the host")
    assert apparmor_enabled(), "OCIRUN_TESTHOST=systemd promises AppArmor on; it is off"
    d = private_dir()
    run_cmd([str(REPO / "scripts/setup-integration"), "--config-only", str(d)],
            env={**os.environ, "OCIRUN_CRI_SYSTEMD": "1"}, check=True, timeout=60)
    toml = (d / "cri/containerd.toml").read_text()
    assert toml.count("SystemdCgroup = true") == 2 and "disable_apparmor = false" in toml, toml
    slices0 = {s: _active(s) for s in ("kubepods-besteffort.slice", "kubepods.slice")}
    profile0 = PROFILE in loaded_profiles()
    netns0 = "/run/netns" in mounts()
    run0 = {p for p, _, _ in os.walk("/run/containerd")}
    daemon = CriDaemon(d, f"{MARK}-cri", load_api(d / "cri-stubs"))
    try:
        with daemon.serving(d, lambda dm, pod_id: _force_remove_pod(dm, pod_id, None), timeout=120):
            yield daemon
    finally:
        reap_zombies()
        for s, was in slices0.items():  # kubepods-besteffort.slice first: it is inside kubepods.slice
            if not was:
                _systemctl("stop", s)
        if not profile0 and PROFILE in loaded_profiles():
            remove_profile(PROFILE)
        if not netns0 and "/run/netns" in mounts() and not os.listdir("/run/netns"):
            run_cmd(["umount", "/run/netns"])
        for p, _, _ in os.walk("/run/containerd", topdown=False):
            if p not in run0:
                try:
                    os.rmdir(p)  # only when empty
                except OSError:
                    pass
        for m in sorted((m for m in mounts() if m.startswith(f"{d}/")), key=len, reverse=True):
            run_cmd(["umount", "-l", m])
        subprocess.run(["rm", "-rf", str(d)])


def _force_remove_pod(daemon: CriDaemon, pod_id: str, pod: "Pod | None") -> str | None:
    """StopPodSandbox and RemovePodSandbox; when CRI can't, stop the pod's slice (systemd kills
    what is in it), delete the runtimes' state with their own binaries and ask CRI again. Only to
    keep the guest clean for the next test; returns why CRI alone could not, None when it could."""
    import grpc
    c = daemon.client
    try:
        c.stop_pod(pod_id, timeout=TIMEOUT)
        c.remove_pod(pod_id, timeout=TIMEOUT)
        return None
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.NOT_FOUND:
            return None
        why = f"{e.code()}: {e.details()}"
    try:
        cids = [x.id for x in c.containers(pod_id)]
        handler = c.pod_status(pod_id).status.runtime_handler or "runc"
    except grpc.RpcError:
        return why
    if pod is not None:
        _systemctl("stop", pod.slice)
    binary = {"runc": cri_support.RUNC, "ocirun": daemon.ocirun}[handler]
    for cid in cids + [pod_id]:
        run_cmd([binary, "--root", str(daemon.runc_root(handler)), "--systemd-cgroup", "delete", "--force", cid],
                timeout=60)
    try:
        c.stop_pod(pod_id, timeout=TIMEOUT)
        c.remove_pod(pod_id, timeout=TIMEOUT)
    except grpc.RpcError:
        pass
    return why


# --- a test's pods --------------------------------------------------------------------------

class Pod:
    def __init__(self, pod_id, uid, config, log_dir):
        self.id, self.uid, self.config, self.log_dir = pod_id, uid, config, log_dir
        self.slice = f"kubepods-besteffort-pod{_escape(uid)}.slice"
        # What kubelet sends as cgroup_parent: the slice expanded to its path.
        self.parent = f"/kubepods.slice/kubepods-besteffort.slice/{self.slice}"


class Node:
    """One test's view, kubelet's side: pods and containers through CRI, the pods' slices, and
    what they leave on the node."""

    def __init__(self, daemon: CriDaemon, handler: str):
        self.d, self.c, self.pb, self.handler = daemon, daemon.client, daemon.api.pb, handler
        self.runtime = RUNTIMES[handler]
        self.pods: list[Pod] = []
        self.ids: set[str] = set()
        self._n = 0

    def pod(self) -> Pod:
        self._n += 1
        uid = new_uid()
        log_dir = self.d.dir / "logs" / uid
        log_dir.mkdir(parents=True)
        cfg = self.c.pod_config(f"{MARK}-p{self._n}", log_dir=log_dir, uid=uid,
                                cgroup_parent=f"/kubepods.slice/kubepods-besteffort.slice/"
                                              f"kubepods-besteffort-pod{_escape(uid)}.slice")
        pod = Pod(self.c.run_pod(cfg, self.handler, timeout=TIMEOUT), uid, cfg, log_dir)
        self.pods.append(pod)
        self.ids.add(pod.id)
        return pod

    def container(self, pod: Pod, args, *, name=None, start=True, **kw) -> str:
        self._n += 1
        cfg = self.c.container_config(name or f"c{self._n}", args, **kw)
        cid = self.c.create(pod.id, cfg, pod.config, timeout=TIMEOUT)
        self.ids.add(cid)
        if start:
            self.c.start(cid, timeout=TIMEOUT)
        return cid

    def ready(self, pod: Pod, name: str, script: str) -> tuple[str, Path]:
        """A running container whose log says `ready` (its trap is set): (id, log path)."""
        cid = self.container(pod, ["sh", "-c", script], name=name)
        log = pod.log_dir / f"{name}/0.log"
        wait_for(lambda: "ready" in self.log(log), timeout=60, what=f"{name}: ready in its log")
        return cid, log

    @staticmethod
    def log(path: Path) -> str:
        """The text of a CRI log (`TIMESTAMP STREAM TAG TEXT` lines), one line per line."""
        try:
            return "".join(line.split(" ", 3)[3] + "\n" for line in path.read_text().splitlines())
        except OSError:
            return ""

    def state(self, cid):
        return self.c.status(cid).status

    def wait_exited(self, cid, timeout=60):
        return wait_for(lambda: (s := self.state(cid)).state == self.pb.CONTAINER_EXITED and s,
                        timeout=timeout, interval=0.3, what=f"container {cid[:12]} reported exited")

    def sh(self, cid, script) -> str:
        r = self.c.exec_sync(cid, ["sh", "-c", script], rpc_timeout=TIMEOUT)
        assert r.exit_code == 0, f"{script!r} exited {r.exit_code}: {r.stderr.decode()}"
        return r.stdout.decode()

    @staticmethod
    def scope(ident: str) -> str:
        return f"cri-containerd-{ident}.scope"

    def scope_cgroup(self, pod: Pod, ident: str) -> str:
        return f"{pod.parent}/{self.scope(ident)}"

    def runtime_state(self, ident: str) -> Path:
        return self.d.runc_root(self.handler) / ident

    def config_json(self, ident: str) -> dict:
        return json.loads((self.d.bundle(ident) / "config.json").read_text())

    def gone(self, pod: Pod, ident: str) -> list[str]:
        """What is left of one container (or sandbox) that must be gone: its unit, its cgroup,
        its runtime state and bundle."""
        found = [f"unit: {u}" for u in units(self.scope(ident))]
        found += [f"cgroup: {c}" for c in cgroup_dirs([ident])]
        found += [f"runtime state: {p}" for p in (self.runtime_state(ident),) if p.exists()]
        found += [f"bundle: {p}" for p in (self.d.bundle(ident),) if p.exists()]
        return found

    def stop_slices(self) -> None:
        """kubelet's part once a pod is gone: it stops the pod's slice (it made it)."""
        for p in self.pods:
            if units(p.slice):
                _systemctl("stop", p.slice)

    def leaks(self, mounts0) -> list[str]:
        import grpc
        reap_zombies(keep=(self.d.proc.pid,))
        ids, slices = set(self.ids), [p.slice for p in self.pods]
        uids = [_escape(p.uid) for p in self.pods] + [p.uid for p in self.pods]
        try:
            found = [f"pod still listed: {p.id}" for p in self.c.pods() if p.id in ids]
        except grpc.RpcError as e:
            found = [f"ListPodSandbox failed: {e.code()}"]
        found += [f"unit: {u}" for u in sorted(units(*ids, *slices))]
        found += [f"cgroup: {c}" for c in cgroup_dirs([*ids, *slices])]
        for m in sorted(set(mounts()) - mounts0):
            if m.startswith(f"{self.d.dir}/") or "/run/netns/cni-" in m or any(i in m for i in ids):
                found.append(f"mount: {m}")
        for pid, cmd, cg in live_processes():
            if any(u in cg for u in uids) or any(i in cmd or i in cg for i in ids):
                found.append(f"process {pid}: {cmd}")
        for i in sorted(ids):
            sock = cri_support.shim_socket(self.d.socket, i)
            found += [f"shim socket: {sock}"] if os.path.exists(sock) else []
            for h in HANDLERS:
                found += [f"runtime state: {p}" for p in (self.d.runc_root(h) / i,) if p.exists()]
            found += [f"bundle: {self.d.bundle(i)}"] if self.d.bundle(i).exists() else []
        return found


def _handlers(**known):
    """Parametrize over the handlers; known[handler] says why it fails a check (a strict xfail)."""
    assert "ocirun" not in known, "ocirun's checks are never expected to fail"
    return pytest.mark.parametrize("handler", [
        pytest.param(h, id=h, marks=[pytest.mark.xfail(reason=f"{h}: {known[h]}", strict=True)] if h in known else [])
        for h in HANDLERS])


@pytest.fixture
def node(request, cri_daemon, handler):
    mounts0 = set(mounts())
    n = Node(cri_daemon, handler)
    yield n
    forced = {p.id: why for p in n.pods if (why := _force_remove_pod(cri_daemon, p.id, p))}
    n.stop_slices()
    for p in n.pods:
        subprocess.run(["rm", "-rf", str(p.log_dir)])
    found = settled(lambda: n.leaks(mounts0), timeout=30, step=0.5)
    rep = getattr(request.node, "rep_call", None)
    assert not found, f"left behind by the test's pods ({handler}):\n  " + "\n  ".join(found)
    if rep is not None and rep.passed:
        assert not forced, (f"StopPodSandbox/RemovePodSandbox failed ({handler}); removed by force:\n"
                            + "\n".join(f"{i}: {w}" for i, w in forced.items()))


# --- scenarios ------------------------------------------------------------------------------

@_handlers()
def test_pod_in_systemd_scopes_with_apparmor(node, handler):
    """RunPodSandbox + CreateContainer + StartContainer on a systemd node: the cgroupsPath the
    runtime gets, the scopes it asked systemd for (sandbox and container, in the pod's slice), the
    init in its scope, the runtime/default AppArmor profile on the init and an exec'd process;
    stop and removal leave no unit, cgroup, runtime state or bundle."""
    pb = node.pb
    pod = node.pod()
    st = node.c.pod_status(pod.id).status
    assert (st.state, st.runtime_handler) == (pb.SANDBOX_READY, handler)
    assert st.network.ip.startswith("10.250.77."), st.network.ip
    cid, log = node.ready(pod, "app", f"cat /proc/self/attr/current /proc/self/attr/apparmor/current; {WAIT}")
    assert node.state(cid).state == pb.CONTAINER_RUNNING
    assert node.runtime_state(cid).is_dir() and node.runtime_state(pod.id).is_dir()

    # What containerd handed the runtime, and what the runtime made of it.
    for ident in (pod.id, cid):
        assert node.config_json(ident)["linux"]["cgroupsPath"] == f"{pod.slice}:cri-containerd:{ident}"
        p = unit_props(node.scope(ident), "ActiveState", "ControlGroup", "Slice", "Description", "Delegate")
        assert p == {"ActiveState": "active", "ControlGroup": node.scope_cgroup(pod, ident), "Slice": pod.slice,
                     "Description": p["Description"], "Delegate": "yes"}, p
        assert p["Description"].startswith(node.runtime.describes), p
    assert unit_props(pod.slice, "ActiveState", "ControlGroup") == {
        "ActiveState": "active", "ControlGroup": pod.parent}
    pid = node.c.pid(cid)
    assert proc_cgroup(pid) == node.scope_cgroup(pod, cid)
    assert str(pid) in Path(f"/sys/fs/cgroup{node.scope_cgroup(pod, cid)}/cgroup.procs").read_text().split()
    assert proc_cgroup(node.c.pod_pid(pod.id)) == node.scope_cgroup(pod, pod.id)

    # containerd's runtime/default profile: loaded by containerd, on the init from its first
    # instruction (its own output), seen from the node, and on an ExecSync'd process.
    want = f"{PROFILE} (enforce)"
    assert node.config_json(cid)["process"]["apparmorProfile"] == PROFILE
    assert loaded_profiles().get(PROFILE) == "enforce"
    assert node.log(log).splitlines()[:3] == [want, want, "ready"], node.log(log)
    assert Path(f"/proc/{pid}/attr/current").read_text().strip() == want
    assert node.sh(cid, "cat /proc/self/attr/current").strip() == want

    t0 = time.monotonic()
    node.c.stop(cid, grace=60, timeout=TIMEOUT)  # the trap exits 0 on SIGTERM: at once
    assert time.monotonic() - t0 < 20
    st = node.state(cid)
    assert (st.state, st.exit_code) == (pb.CONTAINER_EXITED, 0)
    node.c.remove(cid, timeout=TIMEOUT)
    assert settled(lambda: node.gone(pod, cid), timeout=20, step=0.3) == []
    node.c.stop_pod(pod.id, timeout=TIMEOUT)
    assert node.c.pod_status(pod.id).status.state == pb.SANDBOX_NOTREADY
    node.c.remove_pod(pod.id, timeout=TIMEOUT)
    assert settled(lambda: node.gone(pod, pod.id), timeout=20, step=0.3) == []
    # The slice is kubelet's to stop; nothing of the runtimes' is left in it.
    slice_dir = Path(f"/sys/fs/cgroup{pod.parent}")
    assert not slice_dir.exists() or not [x.name for x in slice_dir.iterdir() if x.is_dir()]
    node.stop_slices()
    assert not settled(lambda: units(pod.slice) or cgroup_dirs([pod.slice]), timeout=20, step=0.3)


@_handlers()
def test_exec_sync_and_exit_code(node, handler):
    """ExecSync: stdout, stderr, exit code and env of a process in the container, in the
    container's scope; a missing program's error. Then a container of the same pod exiting 3:
    ContainerStatus EXITED with 3 and reason Error; its scope goes with it."""
    import grpc
    pod = node.pod()
    cid = node.container(pod, ["sh", "-c", WAIT], envs={"GREETING": "hello"})
    r = node.c.exec_sync(cid, ["sh", "-c", 'echo "$GREETING from $(cat /proc/1/comm)"; echo to-stderr >&2; exit 7'],
                         rpc_timeout=TIMEOUT)
    assert (r.stdout, r.stderr, r.exit_code) == (b"hello from sh\n", b"to-stderr\n", 7)
    # In the container's scope (its root, in a cgroup namespace of the container's own).
    r = node.c.exec_sync(cid, ["cat", "/proc/self/cgroup"], rpc_timeout=TIMEOUT)
    assert r.stdout.decode() in ("0::/\n", f"0::{node.scope_cgroup(pod, cid)}\n"), r
    with pytest.raises(grpc.RpcError) as e:
        node.c.exec_sync(cid, ["/no/such/program"], rpc_timeout=TIMEOUT)
    assert "no such file" in e.value.details().lower() or "not found" in e.value.details().lower(), e.value.details()
    assert node.state(cid).state == node.pb.CONTAINER_RUNNING

    failing = node.container(pod, ["sh", "-c", "echo out-line; exit 3"], name="failing")
    st = node.wait_exited(failing)
    assert (st.exit_code, st.reason) == (3, "Error")
    assert "out-line\n" in node.log(pod.log_dir / "failing/0.log")
    assert settled(lambda: units(node.scope(failing)), timeout=20, step=0.3) == set()
    node.c.remove(failing, timeout=TIMEOUT)
    assert settled(lambda: node.gone(pod, failing), timeout=20, step=0.3) == []


@_handlers()
def test_update_container_resources(node, handler):
    """UpdateContainerResources (memory, CFS quota and period, shares) in the scope's v2 cgroup
    files, as the scope's unit properties (so systemd keeps them), and from inside; twice."""
    pb = node.pb
    pod = node.pod()
    cid = node.container(pod, ["sh", "-c", WAIT])
    cg = Path(f"/sys/fs/cgroup{node.scope_cgroup(pod, cid)}")
    node.c.rt.UpdateContainerResources(pb.UpdateContainerResourcesRequest(
        container_id=cid, linux=pb.LinuxContainerResources(
            memory_limit_in_bytes=64 * MiB, cpu_period=100000, cpu_quota=25000, cpu_shares=256)), timeout=TIMEOUT)
    files = {f: (cg / f).read_text().strip() for f in ("memory.max", "cpu.max", "cpu.weight")}
    # cpu.weight: shares 256 as runc converts them, 1 + (256 - 2) * 9999 // 262142
    assert files == {"memory.max": str(64 * MiB), "cpu.max": "25000 100000", "cpu.weight": "10"}, files
    p = unit_props(node.scope(cid), "MemoryMax", "CPUQuotaPerSecUSec", "CPUWeight")
    assert p == {"MemoryMax": str(64 * MiB), "CPUQuotaPerSecUSec": "250ms", "CPUWeight": "10"}, p
    inside = node.sh(cid, f"{OWN}; cat $cg/memory.max $cg/cpu.max $cg/cpu.weight")
    assert inside.splitlines() == [str(64 * MiB), "25000 100000", "10"], inside
    # A second update wins.
    node.c.rt.UpdateContainerResources(pb.UpdateContainerResourcesRequest(
        container_id=cid, linux=pb.LinuxContainerResources(memory_limit_in_bytes=96 * MiB, cpu_period=100000,
                                                           cpu_quota=50000, cpu_shares=256)), timeout=TIMEOUT)
    inside = node.sh(cid, f"{OWN}; cat $cg/memory.max $cg/cpu.max")
    assert inside.splitlines() == [str(96 * MiB), "50000 100000"], inside
    assert (cg / "memory.max").read_text().strip() == str(96 * MiB)
    assert unit_props(node.scope(cid), "MemoryMax")["MemoryMax"] == str(96 * MiB)
    assert node.state(cid).state == pb.CONTAINER_RUNNING


@_handlers()
def test_stop_container_grace_period(node, handler):
    """StopContainer with a grace period: SIGTERM ignored -> SIGKILL after it (137, the trap's
    output in the log); its scope goes; stopping it again is a no-op. (A container that exits on
    SIGTERM stops at once with 0: test_pod_in_systemd_scopes_with_apparmor.)"""
    pb = node.pb
    pod = node.pod()
    stubborn, log = node.ready(pod, "stubborn", "trap 'echo got-term' TERM; echo ready; while :; do sleep 1; done")
    t0 = time.monotonic()
    node.c.stop(stubborn, grace=3, timeout=TIMEOUT)
    took = time.monotonic() - t0
    st = node.state(stubborn)
    assert (st.state, st.exit_code) == (pb.CONTAINER_EXITED, 137), (st.state, st.exit_code, st.reason)
    assert 2.8 < took < 30, took
    assert "got-term\n" in node.log(log)
    assert settled(lambda: units(node.scope(stubborn)), timeout=20, step=0.3) == set()
    node.c.stop(stubborn, grace=3, timeout=TIMEOUT)  # again: a no-op


@_handlers()
def test_remove_leaves_nothing(node, handler):
    """StopPodSandbox/RemovePodSandbox with two running containers and one never started: every
    scope, cgroup, mount (rootfs, shm, netns), process, shim socket, runtime state and bundle
    goes (the fixture's check, after kubelet's part: stopping the pod slice)."""
    pb = node.pb
    pod = node.pod()
    running = [node.container(pod, ["sh", "-c", WAIT], name=f"c{i}") for i in range(2)]
    created = node.container(pod, ["sh", "-c", "exit 0"], name="never-started", start=False)
    assert node.state(created).state == pb.CONTAINER_CREATED
    assert {u for u in units(pod.id, *running) if u.endswith(".scope")} == {
        node.scope(i) for i in (pod.id, *running)}
    netns = json.loads(node.c.pod_status(pod.id, verbose=True).info["info"])["runtimeSpec"]["linux"]["namespaces"]
    netns = next(n["path"] for n in netns if n["type"] == "network")
    assert netns in mounts() or netns.replace("/var/run/", "/run/") in mounts()
    node.c.stop_pod(pod.id, timeout=TIMEOUT)
    assert [node.state(i).state for i in running] == [pb.CONTAINER_EXITED] * 2
    node.c.remove_pod(pod.id, timeout=TIMEOUT)
    assert node.c.containers(pod.id) == []
    for ident in (pod.id, *running, created):
        assert settled(lambda: node.gone(pod, ident), timeout=20, step=0.3) == [], ident
    assert not Path(netns).exists()
