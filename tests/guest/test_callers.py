"""The callers on a systemd host, with their defaults: podman 4.3 (cgroup manager systemd,
AppArmor's containers-default profile, the CNI default network) and containerd 1.6's runc v2
shim with SystemdCgroup (a `slice:prefix:name` cgroupsPath), each driving ocirun, runc and crun
through the same checks. A check runc or crun fails is a strict xfail for that runtime, with the
reason; ocirun is held to every check.

Needs the testhost's systemd boot (OCIRUN_TESTHOST=systemd: systemd as PID 1, pure cgroup v2,
AppArmor on); skipped elsewhere:

    scripts/testhost run -- env OCIRUN_TESTHOST=systemd .venv/bin/python -m pytest -q \\
        -p no:cacheprovider tests/guest/test_callers.py

podman keeps its storage, and containerd its root, state and socket, in one directory
/var/tmp/ocitest-XXXXXX-*; both are torn down at the end, with the AppArmor profiles and the CNI
bridge the module made. Every test must leave no unit, cgroup directory, mount or process of
its containers (`leak_check`).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import busybox_bundle
import pytest

from callers_support import (DENIED, IMAGE, MARK, PROBE_WRITES, RUNTIMES, Containerd, Podman, Snapshot,
                             apparmor_enabled, ctr_scope, leftovers, load_deny_profile, loaded_profiles,
                             mounts, private_dir, proc_cgroup, remove_profile, runtimes, task_pid, units,
                             unload_deny_profile, wait_for)
from guest_support import show as unit_props

pytestmark = pytest.mark.skipif(
    os.environ.get("OCIRUN_TESTHOST") != "systemd",
    reason="needs the testhost's systemd boot (OCIRUN_TESTHOST=systemd): podman's and containerd's "
           "systemd cgroup managers talk to systemd as PID 1")

MiB = 1024 * 1024
# A container init that ends with exit 0 on SIGTERM and otherwise waits (sh as PID 1 ignores an
# untrapped SIGTERM: exit 0 shows the signal was delivered). `wait` returns at once on the trap;
# one long sleep, not a loop of short ones, so that no new process comes up while a test looks.
LOOP = "echo ready; trap 'exit 0' TERM; sleep 100000 & wait $!"
# What a process sees of its confinement and its cgroup, from inside.
SHOW = ("cat /proc/self/attr/current /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max "
        "/sys/fs/cgroup/pids.max /proc/self/cgroup")


# --- session ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def workdir():
    assert apparmor_enabled(), "OCIRUN_TESTHOST=systemd promises AppArmor on; it is off"
    d = private_dir()
    profiles0 = set(loaded_profiles())
    bridge0 = Path("/sys/class/net/cni-podman0").exists()
    netns0 = "/run/netns" in mounts()
    yield d
    # podman loads its default profile, makes the CNI bridge and mounts /run/netns (shared, for
    # its namespaces' bind mounts) on first use: gone if we caused it and nothing uses them.
    for name in set(loaded_profiles()) - profiles0:
        if name.startswith("containers-default-"):
            remove_profile(name)
    brif = Path("/sys/class/net/cni-podman0/brif")
    if not bridge0 and brif.is_dir() and not any(brif.iterdir()):
        subprocess.run(["ip", "link", "delete", "cni-podman0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not netns0 and "/run/netns" in mounts() and not os.listdir("/run/netns"):
        subprocess.run(["umount", "/run/netns"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for m in sorted((m for m in mounts() if m.startswith(str(d) + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def runtime(request):
    return RUNTIMES[request.param]


@pytest.fixture(scope="module")
def podman_image(workdir):
    """The busybox image in the private storage (podman import of a rootfs tarball: no network)."""
    rootfs = busybox_bundle.make_rootfs(workdir / "image-rootfs")
    tar = workdir / "busybox-rootfs.tar"
    with tarfile.open(tar, "w") as t:
        t.add(rootfs, arcname=".")
    shutil.rmtree(rootfs)
    pm = Podman(workdir, RUNTIMES["ocirun"].path)
    # The defaults this module is about: a systemd host's, not a configuration of ours.
    info = pm("info", "--format", "{{.Host.CgroupManager}} {{.Host.NetworkBackend}} "
              "{{.Host.Security.AppArmorEnabled}}").stdout.split()
    assert info == ["systemd", "cni", "true"], info
    pm("import", "--change", "CMD=/bin/sh", "--change", "ENV=PATH=/usr/sbin:/usr/bin:/sbin:/bin", str(tar), IMAGE)
    yield IMAGE
    pm("rm", "--all", "--force", "--time", "0", check=False)
    pm("rmi", "--all", "--force", check=False)


@pytest.fixture
def podman(workdir, podman_image, runtime):
    """podman with --runtime `runtime`; every container the test named is force-removed after it."""
    pm = Podman(workdir, runtime.path)
    yield pm
    for name in pm.issued:
        pm("rm", "--force", "--time", "0", "--ignore", name, check=False)


@pytest.fixture(scope="module")
def deny_profile(workdir):
    """A custom AppArmor profile, loaded with apparmor_parser -r, removed with -R."""
    name, path = load_deny_profile(workdir)
    yield name
    unload_deny_profile(name, path)


@pytest.fixture(autouse=True)
def leak_check(request, workdir):
    """After a passing test: no new unit, cgroup directory, mount or process of a container."""
    before = Snapshot(workdir)
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.passed:
        found = before.leaks()
        assert not found, "left behind:\n  " + "\n  ".join(found)


# --- podman -----------------------------------------------------------------------------------

def run_d(pm, *args, name=None) -> tuple[str, str]:
    """`podman run -d`; (name, id)."""
    name = name or pm.name()
    cid = pm("run", "-d", "--name", name, *args).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid), cid
    return name, cid


def logs_when_ready(pm, name) -> str:
    """The container's output (podman logs) once LOOP has printed `ready`."""
    def ready():
        out = pm("logs", name).stdout
        return out if "ready" in out else None
    return wait_for(ready, timeout=60, interval=0.5, what=f"{name} to print ready")


@runtimes()
def test_podman_run_foreground(podman, runtime):
    """podman run --rm: the container's output and exit status come back; its scope goes."""
    r = podman("run", "--rm", "--name", podman.name(), podman.image,
               "sh", "-c", f"echo hello from {runtime.name}; cat /proc/self/attr/current; echo err >&2; exit 3",
               check=False)
    assert r.returncode == 3, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"hello from {runtime.name}", r.stdout
    # podman's default AppArmor profile, enforced from the first instruction of the process.
    assert re.fullmatch(r"containers-default-[0-9.]+ \(enforce\)", lines[1]), r.stdout
    assert "err\n" in r.stderr
    assert podman("ps", "--all", "--quiet", "--filter", f"name={podman.issued[0]}").stdout == ""


@pytest.fixture(scope="module")
def limited(workdir, podman_image, runtime):
    """One running container per runtime with --memory/--cpus/--pids-limit, podman's default
    AppArmor profile and network: (podman, name, id). The test_podman_limited_* checks look at
    it; test_podman_limited_stop_rm, last, stops and removes it."""
    pm = Podman(workdir, runtime.path)
    name = pm.name("limited")
    _, cid = run_d(pm, "--memory", "64m", "--cpus", "1.5", "--pids-limit", "50", pm.image,
                   "sh", "-c", f"{SHOW}; ip -4 -o addr show eth0; {LOOP}", name=name)
    yield pm, name, cid
    pm("rm", "--force", "--time", "0", "--ignore", name, check=False)


def seen(out: str) -> dict:
    """SHOW's output, parsed."""
    lines = out.splitlines()
    return {"apparmor": lines[0], "memory.max": lines[1], "cpu.max": lines[2], "pids.max": lines[3],
            "cgroup": lines[4]}


LIMITS = {"memory.max": str(64 * MiB), "cpu.max": "150000 100000", "pids.max": "50"}


@runtimes()
def test_podman_limited_inside(limited, runtime):
    """--memory/--cpus/--pids-limit and the default profile, as the container's init and an exec'd
    process see them; the default network's address; the init in the scope podman asked for."""
    pm, name, cid = limited
    profile = pm.inspect(name, "{{.AppArmorProfile}}")
    assert profile.startswith("containers-default-"), profile
    logs = logs_when_ready(pm, name)
    init = seen(logs)
    ex = seen(pm("exec", name, "sh", "-c", SHOW).stdout)
    for who in (init, ex):
        assert who["apparmor"] == f"{profile} (enforce)", who
        assert {k: who[k] for k in LIMITS} == LIMITS, who
        assert who["cgroup"] == "0::/", who  # its own cgroup namespace, rooted at the container's cgroup
    assert re.search(r"\beth0\s+inet 10\.88\.\d+\.\d+/16", logs), logs  # podman's default network
    pid = int(pm.inspect(name, "{{.State.Pid}}"))
    assert proc_cgroup(pid) == f"/machine.slice/libpod-{cid}.scope{runtime.below_scope}"
    assert Path(f"/proc/{pid}/attr/current").read_text().strip() == f"{profile} (enforce)"


@runtimes()
def test_podman_limited_scope_unit(limited, runtime):
    """cgroupsPath machine.slice:libpod:ID with --systemd-cgroup: the runtime made the transient
    unit libpod-ID.scope itself (its Description says which runtime), delegated, in machine.slice."""
    pm, name, cid = limited
    p = unit_props(f"libpod-{cid}.scope", "ActiveState", "ControlGroup", "Description", "Delegate")
    assert p["ActiveState"] == "active", p
    assert p["ControlGroup"] == f"/machine.slice/libpod-{cid}.scope", p
    assert p["Description"].startswith(runtime.describes), p
    assert p["Delegate"] == "yes", p


@runtimes(crun="crun 1.8.1 writes the limits into the cgroup files of the scope's child "
               "'container', not as properties of the scope: systemctl shows MemoryMax=infinity, "
               "CPUQuotaPerSecUSec=infinity, TasksMax=the default, and the scope's memory.max is max")
def test_podman_limited_scope_limits(limited, runtime):
    """The scope carries --memory/--cpus/--pids-limit as unit properties (so that systemd's own
    view, and a daemon-reload, keep them), and systemd wrote them to its cgroup."""
    pm, name, cid = limited
    p = unit_props(f"libpod-{cid}.scope", "MemoryMax", "CPUQuotaPerSecUSec", "TasksMax")
    assert (p["MemoryMax"], p["CPUQuotaPerSecUSec"], p["TasksMax"]) == (str(64 * MiB), "1.500000s", "50"), p
    assert Path(f"/sys/fs/cgroup/machine.slice/libpod-{cid}.scope/memory.max").read_text().strip() == str(64 * MiB)


@runtimes()
def test_podman_limited_exec(limited, runtime):
    """podman exec: output, stderr, exit status and stdin of a process in the running container."""
    pm, name, _ = limited
    r = pm("exec", name, "sh", "-c", "echo in-$(cat /proc/1/comm); echo err >&2; exit 5", check=False)
    assert (r.returncode, r.stdout) == (5, "in-sh\n"), r.stderr
    assert "err\n" in r.stderr
    assert pm("exec", "-i", name, "cat", input="via stdin\n").stdout == "via stdin\n"


@runtimes()
def test_podman_limited_stop_rm(limited, runtime):
    """podman stop delivers SIGTERM (the init's trap exits 0); after podman rm neither the
    container's scope nor conmon's, nor any cgroup directory, mount or process of it is left."""
    pm, name, cid = limited
    assert pm.inspect(name, "{{.State.Status}}") == "running"
    assert {f"libpod-{cid}.scope", f"libpod-conmon-{cid}.scope"} <= units(cid), "its scopes, while it runs"
    assert pm("stop", "--time", "60", name).stdout.strip() == name
    assert (pm.inspect(name, "{{.State.Status}}"), pm.inspect(name, "{{.State.ExitCode}}")) == ("exited", "0")
    pm("rm", name)
    assert pm("ps", "--all", "--quiet", "--filter", f"name={name}").stdout == ""
    assert leftovers(cid) == []


@runtimes()
def test_podman_apparmor_unconfined(podman, runtime):
    """--security-opt apparmor=unconfined: no profile, and the write the custom profile denies
    works (the control for test_podman_apparmor_custom)."""
    r = podman("run", "--rm", "--name", podman.name(), "--security-opt", "apparmor=unconfined", podman.image,
               "sh", "-c", f"cat /proc/self/attr/current; {PROBE_WRITES}")
    assert r.stdout.splitlines() == ["unconfined", "allowed-ok", "denied-ok"], r.stdout


@runtimes()
def test_podman_apparmor_custom(podman, runtime, deny_profile):
    """--security-opt apparmor=NAME of a profile loaded with apparmor_parser: the init and an
    exec'd process run under it, enforced (the one write it denies fails, others work)."""
    name, cid = run_d(podman, "--security-opt", f"apparmor={deny_profile}", podman.image,
                      "sh", "-c", f"cat /proc/self/attr/current; {PROBE_WRITES}; {LOOP}")
    init = logs_when_ready(podman, name).splitlines()
    want = [f"{deny_profile} (enforce)", "allowed-ok", f"sh: {DENIED}"]
    assert init[:3] == want, init
    ex = podman("exec", name, "sh", "-c", f"cat /proc/self/attr/current; {PROBE_WRITES}").stdout.splitlines()
    assert ex == want, ex
    pid = int(podman.inspect(name, "{{.State.Pid}}"))
    assert Path(f"/proc/{pid}/attr/current").read_text().strip() == f"{deny_profile} (enforce)"
    podman("rm", "--force", "--time", "0", name)
    assert leftovers(cid) == []


# --- containerd -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def containerd(workdir, podman_image):
    """A private containerd with the busybox image (podman save | ctr images import)."""
    archive = workdir / "busybox-oci.tar"
    Podman(workdir, RUNTIMES["ocirun"].path)("save", "--format", "oci-archive", "--output", str(archive), podman_image)
    cd = Containerd(workdir)
    try:
        cd.ctr("images", "import", "--base-name", IMAGE.rsplit(":", 1)[0], str(archive), timeout=120)
        yield cd
    finally:
        cd.stop()


@pytest.fixture
def ctr(containerd, runtime):
    """ctr for `runtime` on the private containerd; every task and container is removed after it."""
    c = containerd.ctr_for(runtime)
    yield c
    c.remove_all()


@runtimes()
def test_ctr_run_foreground(ctr, runtime):
    """ctr run --rm: output and exit status; the container sits in its own systemd scope, which
    goes with it."""
    cid = ctr.name()
    r = ctr("run", "--rm", *ctr.run_flags(cid), IMAGE, cid,
            "sh", "-c", f"echo hello from {runtime.name}; cat /proc/self/cgroup; exit 4", check=False)
    assert r.returncode == 4, r.stderr
    assert r.stdout.splitlines() == [f"hello from {runtime.name}", f"0::{ctr_scope(cid)}{runtime.below_scope}"], r.stdout
    assert cid not in ctr.containers() and cid not in ctr.tasks()
    assert leftovers(cid) == []


@runtimes(crun="crun 1.8.1 writes the limits into the cgroup files of the scope's child "
               "'container', not as properties of the scope: systemctl shows MemoryMax=infinity, "
               "CPUQuotaPerSecUSec=infinity")
def test_ctr_limits_on_scope(ctr, runtime):
    """--memory-limit/--cpus as properties of the scope the runtime asked systemd for."""
    cid = ctr.name()
    ctr("run", "-d", "--null-io", *ctr.run_flags(cid), "--memory-limit", str(64 * MiB), "--cpus", "1.5",
        IMAGE, cid, "sh", "-c", LOOP)
    task_pid(ctr, cid)
    p = unit_props(f"cri-containerd-{cid}.scope", "MemoryMax", "CPUQuotaPerSecUSec")
    assert (p["MemoryMax"], p["CPUQuotaPerSecUSec"]) == (str(64 * MiB), "1.500000s"), p


@runtimes()
def test_ctr_task_apparmor_kill_delete(ctr, runtime, deny_profile):
    """A detached task with --memory-limit and a custom AppArmor profile: it sits in the scope the
    runtime made (cri-containerd-ID.scope in system.slice), the limit holds in its cgroup, the
    init and a `ctr task exec` process are confined; task kill (SIGTERM) stops it, and after task
    delete and container delete no unit, cgroup, process or mount of it is left."""
    cid = ctr.name()
    ctr("run", "-d", "--null-io", *ctr.run_flags(cid), "--memory-limit", str(64 * MiB),
        "--apparmor-profile", deny_profile, IMAGE, cid, "sh", "-c", LOOP)
    pid = task_pid(ctr, cid)
    p = unit_props(f"cri-containerd-{cid}.scope", "ActiveState", "ControlGroup", "Description")
    assert (p["ActiveState"], p["ControlGroup"]) == ("active", ctr_scope(cid)), p
    assert p["Description"].startswith(runtime.describes), p
    cg = proc_cgroup(pid)
    assert cg == ctr_scope(cid) + runtime.below_scope
    assert Path(f"/sys/fs/cgroup{cg}/memory.max").read_text().strip() == str(64 * MiB)
    assert Path(f"/proc/{pid}/attr/current").read_text().strip() == f"{deny_profile} (enforce)"
    r = ctr("task", "exec", "--exec-id", "probe", cid, "sh", "-c", f"cat /proc/self/attr/current; {PROBE_WRITES}")
    assert r.stdout.splitlines() == [f"{deny_profile} (enforce)", "allowed-ok", f"sh: {DENIED}"], r.stdout

    ctr("task", "kill", "--signal", "SIGTERM", cid)
    wait_for(lambda: ctr.tasks().get(cid, {}).get("status") == "STOPPED", timeout=30, what=f"{cid} stopped by SIGTERM")
    ctr("task", "delete", cid)
    ctr("containers", "delete", cid)
    assert cid not in ctr.containers()
    assert leftovers(cid) == []
    assert not Path(f"/run/containerd/runc/{MARK}/{cid}").exists()
