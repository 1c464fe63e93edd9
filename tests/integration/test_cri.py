"""Kubernetes' path to ocirun: containerd 1.6's CRI plugin, driven over gRPC the way kubelet
drives it, with ocirun as a RuntimeClass handler (`handler: ocirun`, io.containerd.runc.v2 with
BinaryName /usr/local/bin/ocirun) and runc as the reference handler. Every scenario runs with both.

The private containerd (scripts/setup-integration writes DIR/cri/containerd.toml) runs in a
network namespace of the test's own (`/run/netns/ocitest-XXXXXX-cri`; only the network is
private, mounts and cgroups are the host's): the CNI bridge `cri0` (10.250.77.0/24) lives there,
and "the host" of a hostNetwork pod is that namespace. Images are made here (cri_support.py: an
OCI layout of the busybox root file system, and a pause image of Debian's static catatonit) and
imported with `ctr -n k8s.io images import`; there is no registry. Pods get kubelet's cgroupfs
parent `/kubepods/besteffort/pod<uid>`, so a container's cgroupsPath is
`/kubepods/besteffort/pod<uid>/<id>`.

After each test every pod is stopped and removed, the pod cgroups are removed (kubelet's job),
and nothing of the test may remain: no mount under the CRI dirs or /run/netns, no cgroup or
process of its pods, no runtime state under the handler's runc root, no pod still listed.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from integ_support import MARK, live_processes, mounts, reap_zombies, wait_for
import cri_support
from cri_support import (CGROOT, HANDLERS, CriDaemon, hierarchies, kubepods_present, load_api,
                         missing_tools, new_uid, remove_new_kubepods)

grpc = pytest.importorskip("grpc", reason="grpcio not installed: run scripts/setup-integration")

LOOP = "trap 'exit 0' TERM; {pre} while :; do sleep 0.1; done"


# --- the session's containerd --------------------------------------------------------------

@pytest.fixture(scope="module")
def cri_daemon(integ_dir):
    if os.geteuid() != 0:
        pytest.skip("the CRI tests run containerd and containers: they need root")
    missing = missing_tools()
    if missing:
        pytest.skip(f"{', '.join(missing)} missing: run scripts/setup-integration")
    api = load_api(integ_dir / "cri-stubs")
    d = CriDaemon(integ_dir, f"{MARK}-cri", api)
    kubepods0 = kubepods_present()
    try:
        with d.serving(integ_dir, _force_remove_pod):
            yield d
    finally:
        reap_zombies()
        remove_new_kubepods(kubepods0)


def _force_remove_pod(d: CriDaemon, pod_id: str) -> str | None:
    """Stop and remove a pod through CRI. When that fails (a runtime that breaks the shim's exit
    handling makes StopPodSandbox hang), kill what runs in the pod's cgroups, delete the runtime's
    state with the handler's own binary (the shim's next `kill` then reads "does not exist" and
    containerd moves on), and remove the pod again. Only for cleaning up; returns why CRI alone
    could not, None when it could."""
    c = d.client
    try:
        c.stop_pod(pod_id, timeout=8)  # a second or less when the runtime behaves
        c.remove_pod(pod_id, timeout=8)
        return None
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.NOT_FOUND:
            return None  # the test removed it already
        why = f"{e.code()}: {e.details()}"
    try:
        st = c.pod_status(pod_id, verbose=True)
        handler = st.status.runtime_handler or "runc"
        parent = json.loads(st.info["info"])["config"]["linux"]["cgroup_parent"]
        cids = [x.id for x in c.containers(pod_id)]
    except (grpc.RpcError, KeyError, ValueError):
        return why
    for h in hierarchies():
        for procs in (h / parent.lstrip("/")).glob("*/cgroup.procs"):
            for pid in procs.read_text().split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    pass
    binary = {"runc": cri_support.RUNC, "ocirun": d.ocirun}[handler]
    for cid in cids + [pod_id]:
        subprocess.run([binary, "--root", str(d.runc_root(handler)), "delete", "--force", cid],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    try:
        c.stop_pod(pod_id, timeout=30)
        c.remove_pod(pod_id, timeout=30)
    except grpc.RpcError:
        pass
    return why


class Pod:
    def __init__(self, pod_id, uid, config, log_dir, handler):
        self.id, self.uid, self.config, self.log_dir, self.handler = pod_id, uid, config, log_dir, handler
        self.cgroup_parent = f"/kubepods/besteffort/pod{uid}"


class K:
    """One test's view: pods and containers through CRI, and what they leave on the host."""

    def __init__(self, daemon: CriDaemon, handler: str):
        self.d = daemon
        self.c = daemon.client
        self.pb = daemon.api.pb
        self.handler = handler
        self.pods: list[Pod] = []
        self.ids: set[str] = set()
        self._n = 0

    def pod(self, *, host_network=False, handler=None, pid=None) -> Pod:
        self._n += 1
        uid = new_uid()
        log_dir = self.d.dir / "logs" / uid
        log_dir.mkdir(parents=True)
        name = f"{MARK}-p{self._n}"
        cfg = self.c.pod_config(name, log_dir=log_dir, cgroup_parent=f"/kubepods/besteffort/pod{uid}", uid=uid,
                                host_network=host_network, pid=pid)
        pod_id = self.c.run_pod(cfg, handler or self.handler)
        p = Pod(pod_id, uid, cfg, log_dir, handler or self.handler)
        self.pods.append(p)
        self.ids.add(pod_id)
        return p

    def container(self, pod: Pod, args, *, name=None, start=True, **kw) -> str:
        self._n += 1
        name = name or f"c{self._n}"
        ns = pod.config.linux.security_context.namespace_options
        cfg = self.c.container_config(name, args, host_network=ns.network == self.pb.NODE, pid=ns.pid, **kw)
        cid = self.c.create(pod.id, cfg, pod.config)
        self.ids.add(cid)
        if start:
            self.c.start(cid)
        return cid

    def state(self, cid):
        return self.c.status(cid).status

    def wait_exited(self, cid, timeout=20):
        return wait_for(lambda: (s := self.state(cid)).state == self.pb.CONTAINER_EXITED and s,
                        timeout=timeout, what=f"container {cid[:12]} reported exited "
                                              f"(last state {self.pb.ContainerState.Name(self.state(cid).state)})")

    def exec(self, cid, *cmd, timeout=0):
        return self.c.exec_sync(cid, cmd, timeout=timeout)

    def sh(self, cid, script) -> str:
        r = self.exec(cid, "sh", "-c", script)
        assert r.exit_code == 0, f"{script!r} exited {r.exit_code}: {r.stderr.decode()}"
        return r.stdout.decode()

    def cgroup(self, pod: Pod, cid: str, controller: str) -> Path:
        return CGROOT / controller / pod.cgroup_parent.lstrip("/") / cid

    def runtime_state(self, handler: str, ident: str) -> Path:
        return self.d.runc_root(handler) / ident

    # what is left -----------------------------------------------------------------------

    def remove_pod_cgroups(self) -> None:
        for p in self.pods:
            for h in hierarchies():
                try:
                    os.rmdir(h / p.cgroup_parent.lstrip("/"))
                except FileNotFoundError:
                    pass
                except OSError:
                    pass  # not empty: reported by leaks()

    def leaks(self, mounts0) -> list[str]:
        ids = set(self.ids)
        uids = {p.uid for p in self.pods}
        found = []
        try:
            listed = {p.id for p in self.c.pods()} & ids
        except grpc.RpcError as e:
            listed = {f"(ListPodSandbox failed: {e.code()})"}
        found += [f"pod still listed: {x}" for x in listed]
        for m in set(mounts()) - mounts0:
            if m.startswith(str(self.d.dir)) or m.startswith("/run/netns/cni-") or m.startswith("/var/run/netns/cni-") \
                    or any(i in m for i in ids):
                found.append(f"mount: {m}")
        for h in hierarchies():
            for p in self.pods:
                d = h / p.cgroup_parent.lstrip("/")
                if d.exists():
                    found.append(f"cgroup: {d} ({', '.join(x.name for x in d.iterdir() if x.is_dir()) or 'empty'})")
        for pid, cmd, cg in live_processes():
            if any(u in cg for u in uids) or any(i in cmd for i in ids):
                found.append(f"process {pid}: {cmd}")
        for i in ids:
            if os.path.exists(cri_support.shim_socket(self.d.socket, i)):
                found.append(f"shim socket: {cri_support.shim_socket(self.d.socket, i)}")
        for handler in HANDLERS:
            for i in ids:
                if self.runtime_state(handler, i).exists():
                    found.append(f"runtime state: {self.runtime_state(handler, i)}")
                if self.d.bundle(i).exists():
                    found.append(f"bundle: {self.d.bundle(i)}")
        return found


@pytest.fixture(params=HANDLERS)
def handler(request):
    return request.param


@pytest.fixture
def k(cri_daemon, handler):
    mounts0 = set(mounts())
    kk = K(cri_daemon, handler)
    yield kk
    forced = {}
    for p in kk.pods:
        if (why := _force_remove_pod(cri_daemon, p.id)):
            forced[p.id] = why
    reap_zombies(keep=(cri_daemon.proc.pid,))
    kk.remove_pod_cgroups()
    for p in kk.pods:
        subprocess.run(["rm", "-rf", str(p.log_dir)])

    def left():
        reap_zombies(keep=(cri_daemon.proc.pid,))
        kk.remove_pod_cgroups()
        return kk.leaks(mounts0)

    end = time.monotonic() + 10
    while (found := left()) and time.monotonic() < end:
        time.sleep(0.2)
    assert not found, f"left behind by the test's pods ({handler}):\n" + "\n".join(found)
    # A pod that CRI could not stop and remove by itself is a failure too, even when it went.
    assert not forced, (f"StopPodSandbox/RemovePodSandbox failed ({handler}); removed by force:\n"
                        + "\n".join(f"{i}: {w}" for i, w in forced.items()))


def _ns(pid: int, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def _cri_log(path: Path) -> list[tuple[str, str, str]]:
    """CRI log lines: (stream, tag, text)."""
    out = []
    for line in path.read_text().splitlines():
        ts, stream, tag, text = line.split(" ", 3)
        assert re.match(r"\d{4}-\d\d-\d\dT", ts), line
        out.append((stream, tag, text))
    return out


# --- scenarios -----------------------------------------------------------------------------

def test_run_pod_create_start(k):
    pb = k.pb
    mounts0 = set(mounts())
    pod = k.pod()
    st = k.c.pod_status(pod.id).status
    assert st.state == pb.SANDBOX_READY
    assert st.runtime_handler == k.handler
    assert st.network.ip.startswith("10.250.77."), st.network.ip
    cid = k.container(pod, ["sh", "-c", LOOP.format(pre="echo started;")])
    assert k.state(cid).state == pb.CONTAINER_RUNNING

    # The handler's runtime ran it: its state is under that handler's runc root.
    assert k.runtime_state(k.handler, cid).is_dir()
    assert k.runtime_state(k.handler, pod.id).is_dir()
    other = next(h for h in HANDLERS if h != k.handler)
    assert not k.runtime_state(other, cid).exists()

    # cgroupsPath as kubelet's cgroupfs driver makes it, and where the runtime put the init.
    config = json.loads((k.d.bundle(cid) / "config.json").read_text())
    assert config["linux"]["cgroupsPath"] == f"/kubepods/besteffort/pod{pod.uid}/{cid}"
    pid = k.c.pid(cid)
    assert str(pid) in (k.cgroup(pod, cid, "memory") / "cgroup.procs").read_text().split()
    assert f":memory:/kubepods/besteffort/pod{pod.uid}/{cid}" in Path(f"/proc/{pid}/cgroup").read_text()

    # Inside: the pod's IP, hostname, resolv.conf; RuntimeDefault seccomp; masked and read-only paths.
    out = k.sh(cid, "hostname; ip -4 -o addr show eth0; cat /etc/resolv.conf; grep Seccomp: /proc/self/status; "
                    "wc -c < /proc/timer_list; awk '$2==\"/proc/sys\" {print $4}' /proc/mounts; id -u")
    assert out.splitlines()[0] == pod.config.hostname
    assert f"inet {st.network.ip}/24" in out
    assert "nameserver 10.250.77.1" in out and "search ocitest.svc" in out
    assert re.search(r"Seccomp:\s+2", out), out
    lines = out.splitlines()
    assert lines[-3].strip() == "0", out  # /proc/timer_list masked (the host's has thousands of bytes)
    assert lines[-2].split(",")[0] == "ro", out
    assert lines[-1] == "0"

    k.c.stop(cid, grace=5)
    assert k.state(cid).state == pb.CONTAINER_EXITED
    assert k.state(cid).exit_code == 0
    k.c.remove(cid)
    assert not k.runtime_state(k.handler, cid).exists()
    assert not k.d.bundle(cid).exists()
    k.c.stop_pod(pod.id)
    assert k.c.pod_status(pod.id).status.state == pb.SANDBOX_NOTREADY
    k.c.remove_pod(pod.id)
    with pytest.raises(grpc.RpcError):
        k.c.pod_status(pod.id)
    # Nothing of it is left: no runtime state, bundle, netns mount, shm mount, cgroup or process.
    reap_zombies(keep=(k.d.proc.pid,))
    k.remove_pod_cgroups()
    found = k.leaks(mounts0)
    assert not found, found


def test_exec_sync(k):
    pod = k.pod()
    cid = k.container(pod, ["sh", "-c", LOOP.format(pre="")], envs={"GREETING": "hello"})
    r = k.exec(cid, "sh", "-c", 'echo "$GREETING from $(cat /proc/1/comm)"; echo to-stderr >&2; exit 7')
    assert r.stdout == b"hello from sh\n"
    assert r.stderr == b"to-stderr\n"
    assert r.exit_code == 7
    # A program that isn't there: containerd reports the runtime's exec error.
    with pytest.raises(grpc.RpcError) as e:
        k.exec(cid, "/no/such/program")
    assert re.search(r"no such file|not found", e.value.details(), re.I), e.value.details()
    r = k.exec(cid, "cat", "/proc/self/status")
    assert r.exit_code == 0 and b"Seccomp:\t2" in r.stdout

    # A timeout: the command is killed and the call comes back (an error naming the timeout).
    t0 = time.monotonic()
    try:
        r = k.exec(cid, "sleep", "30", timeout=2)
        timed_out = r.exit_code != 0
    except grpc.RpcError as e:
        timed_out = e.code() == grpc.StatusCode.DEADLINE_EXCEEDED or "timeout" in (e.details() or "").lower()
    took = time.monotonic() - t0
    assert timed_out
    assert 1.5 < took < 15, took
    pid = k.c.pid(cid)
    wait_for(lambda: not any("sleep 30" in _cmdline(p) for p in _cgroup_procs(k.cgroup(pod, cid, "pids"))),
             what="the timed-out exec's process to be gone")
    assert pid in _cgroup_procs(k.cgroup(pod, cid, "pids"))
    assert k.state(cid).state == k.pb.CONTAINER_RUNNING


def _cgroup_procs(d: Path) -> list[int]:
    return [int(x) for x in (d / "cgroup.procs").read_text().split()]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_exit_code_and_logs(k):
    pb = k.pb
    pod = k.pod()
    cid = k.container(pod, ["sh", "-c", "echo out-line; echo err-line >&2; printf partial; exit 3"], name="logger")
    st = k.wait_exited(cid)
    assert st.exit_code == 3
    assert st.reason == "Error"
    assert st.finished_at > 0 and st.started_at > 0  # (containerd stamps started_at after Start: a quick exit may come first)
    log = pod.log_dir / "logger/0.log"
    assert st.log_path == str(log)
    lines = _cri_log(log)
    assert ("stdout", "F", "out-line") in lines
    assert ("stderr", "F", "err-line") in lines
    assert ("stdout", "P", "partial") in lines
    # A container that succeeds is Completed, with 0.
    cid = k.container(pod, ["true"], name="ok")
    st = k.wait_exited(cid)
    assert (st.exit_code, st.reason) == (0, "Completed")
    k.c.remove(cid)
    assert not k.runtime_state(k.handler, cid).exists()
    assert [(c.metadata.name, c.state) for c in k.c.containers(pod.id)] == [("logger", pb.CONTAINER_EXITED)]


def test_stats(k):
    pod = k.pod()
    cid = k.container(pod, ["sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; "
                                        "x=$(head -c 4000000 /dev/zero | tr '\\0' a); " + LOOP.format(pre="")])
    time.sleep(1.0)

    def stats():
        s = k.c.rt.ContainerStats(k.pb.ContainerStatsRequest(container_id=cid), timeout=30).stats
        return s if s.cpu.usage_core_nano_seconds.value > 0 and s.memory.working_set_bytes.value > 0 else None

    s = wait_for(stats, timeout=15, what="non-zero container stats")
    assert s.attributes.id == cid
    assert s.memory.usage_bytes.value >= s.memory.working_set_bytes.value > 0
    assert s.cpu.timestamp > 0
    try:
        ps = k.c.rt.PodSandboxStats(k.pb.PodSandboxStatsRequest(pod_sandbox_id=pod.id), timeout=30).stats
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.UNIMPLEMENTED:
            return
        raise
    assert ps.attributes.id == pod.id
    assert ps.linux.cpu.usage_core_nano_seconds.value > 0
    assert ps.linux.memory.working_set_bytes.value > 0
    assert cid in {c.attributes.id for c in ps.linux.containers}


def test_update_container_resources(k):
    pb = k.pb
    pod = k.pod()
    cid = k.container(pod, ["sh", "-c", LOOP.format(pre="")])
    mem = k.cgroup(pod, cid, "memory")
    cpu = k.cgroup(pod, cid, "cpu")
    k.c.rt.UpdateContainerResources(pb.UpdateContainerResourcesRequest(
        container_id=cid, linux=pb.LinuxContainerResources(
            memory_limit_in_bytes=64 << 20, cpu_period=100000, cpu_quota=25000, cpu_shares=256)), timeout=30)
    assert int((mem / "memory.limit_in_bytes").read_text()) == 64 << 20
    assert int((cpu / "cpu.cfs_quota_us").read_text()) == 25000
    assert int((cpu / "cpu.cfs_period_us").read_text()) == 100000
    assert int((cpu / "cpu.shares").read_text()) == 256
    # From inside: the container's own cgroup files (v1: its cgroup is what is mounted there).
    out = k.sh(cid, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us "
                    "/sys/fs/cgroup/cpu/cpu.shares").split()
    assert out == [str(64 << 20), "25000", "256"]
    # And again: a second update wins.
    k.c.rt.UpdateContainerResources(pb.UpdateContainerResourcesRequest(
        container_id=cid, linux=pb.LinuxContainerResources(memory_limit_in_bytes=96 << 20, cpu_shares=128)), timeout=30)
    assert k.sh(cid, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes").strip() == str(96 << 20)
    assert int((cpu / "cpu.shares").read_text()) == 128
    assert k.state(cid).state == pb.CONTAINER_RUNNING


def test_containers_share_pod_namespaces(k):
    pod = k.pod()
    a = k.container(pod, ["sh", "-c", LOOP.format(pre="")], name="a")
    b = k.container(pod, ["sh", "-c", LOOP.format(pre="")], name="b")
    pa, pb_, ps = k.c.pid(a), k.c.pid(b), k.c.pod_pid(pod.id)
    host = k.d.proc.pid  # containerd: the node
    for kind in ("net", "ipc", "uts"):
        assert _ns(pa, kind) == _ns(pb_, kind) == _ns(ps, kind), kind
        assert _ns(pa, kind) != _ns(host, kind), kind
    # pid: CONTAINER, as kubelet asks without shareProcessNamespace; mount: each its own.
    assert len({_ns(pa, "pid"), _ns(pb_, "pid"), _ns(ps, "pid")}) == 3
    assert _ns(pa, "mnt") != _ns(pb_, "mnt")
    # Seen from inside: the same address and hostname, and a message through the shared IPC.
    ip = k.c.pod_status(pod.id).status.network.ip
    for c in (a, b):
        out = k.sh(c, "hostname; ip -4 -o addr show eth0")
        assert out.splitlines()[0] == pod.config.hostname
        assert f"inet {ip}/" in out
    # The exec'd processes are in the same namespaces as their container's init.
    out = k.sh(a, "for n in net ipc uts; do readlink /proc/self/ns/$n; done").split()
    assert out == [_ns(pa, "net"), _ns(pa, "ipc"), _ns(pa, "uts")]


def test_host_network_pod(k):
    pod = k.pod(host_network=True)
    cid = k.container(pod, ["sh", "-c", LOOP.format(pre="")])
    pid = k.c.pid(cid)
    node_net = os.stat(k.d.netns_path)
    st = os.stat(f"/proc/{pid}/ns/net")
    assert (st.st_dev, st.st_ino) == (node_net.st_dev, node_net.st_ino)
    assert _ns(pid, "uts") == _ns(k.d.proc.pid, "uts")
    assert _ns(pid, "ipc") == _ns(k.c.pod_pid(pod.id), "ipc")
    out = k.sh(cid, "hostname; ip -o link show")
    assert out.splitlines()[0] == os.uname().nodename
    assert "cri0" in out or "lo" in out  # the node's links (cri0 once a pod network exists)


def test_pid_namespace_modes(k):
    pb = k.pb
    # shareProcessNamespace: the containers join the sandbox's pid namespace, the pause is pid 1.
    pod = k.pod(pid=pb.POD)
    a = k.container(pod, ["sh", "-c", LOOP.format(pre="")], name="a")
    b = k.container(pod, ["sleep", "2147483647"], name="b")
    pa, pb_, ps = k.c.pid(a), k.c.pid(b), k.c.pod_pid(pod.id)
    assert _ns(pa, "pid") == _ns(pb_, "pid") == _ns(ps, "pid") != _ns(os.getpid(), "pid")
    out = k.sh(a, "cat /proc/1/comm; ps -o comm")
    assert out.splitlines()[0] == "pause"
    assert "sleep" in out.split()
    # hostPID: the node's pid namespace; the container sees the host's processes.
    host = k.pod(pid=pb.NODE)
    c = k.container(host, ["sh", "-c", LOOP.format(pre="")])
    pc = k.c.pid(c)
    assert _ns(pc, "pid") == _ns(os.getpid(), "pid")
    assert k.sh(c, f"test -d /proc/{os.getpid()} && echo $$").strip() != "1"


def test_exec_probes_in_a_row(k):
    pod = k.pod()
    cid = k.container(pod, ["sleep", "2147483647"])  # an init that forks nothing
    pids = k.cgroup(pod, cid, "pids")
    shim = _shim_pid(pod.id)
    fds0 = len(os.listdir(f"/proc/{shim}/fd"))
    procs0 = sorted(_cgroup_procs(pids))
    state0 = sorted(os.listdir(k.runtime_state(k.handler, cid)))
    failures = []
    for i in range(50):
        r = k.exec(cid, "sh", "-c", "test -d /proc/1 && echo ok", timeout=10)
        if r.exit_code != 0 or r.stdout != b"ok\n":
            failures.append((i, r.exit_code, r.stdout, r.stderr))
    assert not failures, failures
    wait_for(lambda: sorted(_cgroup_procs(pids)) == procs0, what="only the init left in the cgroup")
    assert sorted(os.listdir(k.runtime_state(k.handler, cid))) == state0
    assert len(os.listdir(f"/proc/{shim}/fd")) <= fds0 + 2
    assert k.state(cid).state == k.pb.CONTAINER_RUNNING


def _shim_pid(pod_id: str) -> int:
    for pid in os.listdir("/proc"):
        if pid.isdigit() and "containerd-shim-runc-v2" in _cmdline(int(pid)) and f"-id {pod_id}" in _cmdline(int(pid)):
            return int(pid)
    raise AssertionError(f"no shim for {pod_id}")


def _ready(k, pod, name: str, script: str):
    """A container running script, once its log says `ready` (until sh as pid 1 has set its
    trap it ignores SIGTERM, and the grace period would run out). -> (id, log path)"""
    cid = k.container(pod, ["sh", "-c", script], name=name)
    log = pod.log_dir / f"{name}/0.log"
    wait_for(lambda: log.exists() and "ready" in log.read_text(), what="ready in the log")
    return cid, log


def test_stop_container_grace_period(k):
    pb = k.pb
    pod = k.pod()
    # Ignores SIGTERM (says so in its log): killed with SIGKILL when the grace period ends.
    stubborn, log = _ready(k, pod, "stubborn", "trap 'echo got-term' TERM; echo ready; while :; do sleep 0.1; done")
    t0 = time.monotonic()
    k.c.stop(stubborn, grace=2)
    took = time.monotonic() - t0
    st = k.state(stubborn)
    assert st.state == pb.CONTAINER_EXITED
    assert st.exit_code == 137, (st.exit_code, st.reason)
    assert 1.8 < took < 12, took
    assert ("stdout", "F", "got-term") in _cri_log(log)
    # Exits on SIGTERM: stops at once, with its own exit code.
    polite, _ = _ready(k, pod, "polite", "trap 'exit 0' TERM; echo ready; while :; do sleep 0.1; done")
    t0 = time.monotonic()
    k.c.stop(polite, grace=30)
    assert time.monotonic() - t0 < 5
    st = k.state(polite)
    assert (st.state, st.exit_code) == (pb.CONTAINER_EXITED, 0)
    # Stopping again is a no-op.
    k.c.stop(polite, grace=30)


def test_init_killed_from_outside(k):
    pb = k.pb
    pod = k.pod()
    cid = k.container(pod, ["sh", "-c", "while :; do sleep 0.1; done"])
    os.kill(k.c.pid(cid), signal.SIGKILL)
    st = k.wait_exited(cid)
    assert st.exit_code == 137
    assert st.reason == "Error"
    # The pod is still ready; a new container in it runs.
    assert k.c.pod_status(pod.id).status.state == pb.SANDBOX_READY
    cid2 = k.container(pod, ["sh", "-c", LOOP.format(pre="")])
    os.kill(k.c.pid(cid2), signal.SIGUSR1)  # sh as pid 1 without a handler: ignored
    time.sleep(0.3)
    assert k.state(cid2).state == pb.CONTAINER_RUNNING


def test_remove_leaves_nothing(k):
    pb = k.pb
    mounts0 = set(mounts())
    pod = k.pod()
    ids = [k.container(pod, ["sh", "-c", LOOP.format(pre="")], name=f"c{i}") for i in range(2)]
    created = k.container(pod, ["sh", "-c", "exit 0"], name="never-started", start=False)
    assert k.state(created).state == pb.CONTAINER_CREATED
    netns = json.loads(k.c.pod_status(pod.id, verbose=True).info["info"])["runtimeSpec"]["linux"]["namespaces"]
    netns = next(n["path"] for n in netns if n["type"] == "network")
    assert netns in mounts() or netns.replace("/var/run/", "/run/") in mounts()
    ipam = list((k.d.dir / "ipam/ocitest-cri").glob("10.250.77.*"))
    assert ipam
    # RemovePodSandbox alone, with running containers: it stops and removes them all.
    k.c.stop_pod(pod.id)
    for cid in ids:
        assert k.state(cid).state == pb.CONTAINER_EXITED
    k.c.remove_pod(pod.id)
    assert k.c.containers(pod.id) == []
    reap_zombies(keep=(k.d.proc.pid,))
    k.remove_pod_cgroups()
    found = k.leaks(mounts0)
    assert not found, found
    assert not Path(netns).exists()
    assert not (set(ipam) & set((k.d.dir / "ipam/ocitest-cri").glob("10.250.77.*")))


def test_containerd_restart(k):
    """The last scenario: containerd goes away and comes back; the shims keep the pod running."""
    pb = k.pb
    pod = k.pod()
    cid = k.container(pod, ["sh", "-c", LOOP.format(pre="")])
    pid = k.c.pid(cid)
    k.d.stop()
    assert Path(f"/proc/{pid}").exists()
    k.d.start()
    assert k.c.pod_status(pod.id).status.state == pb.SANDBOX_READY
    assert k.state(cid).state == pb.CONTAINER_RUNNING
    assert k.c.pid(cid) == pid
    assert k.sh(cid, "echo still here") == "still here\n"
    k.c.stop(cid, grace=5)
    assert (k.state(cid).state, k.state(cid).exit_code) == (pb.CONTAINER_EXITED, 0)
    k.c.remove(cid)
    k.c.stop_pod(pod.id)
    k.c.remove_pod(pod.id)
