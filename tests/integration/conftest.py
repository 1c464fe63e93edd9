"""Real callers driving ocirun: podman 4.3 (through conmon) and containerd 1.6 (`ctr`, the runc v2
shim with ocirun as its runc binary), on images built locally from Debian's static busybox.

    scripts/setup-integration && .venv/bin/python -m pytest tests/integration

Runs when `OCIRUN_INTEGRATION=1`, or when podman, conmon, containerd and ctr are installed (and
we are root); `OCIRUN_INTEGRATION=0` skips it. The runtime under test is /usr/local/bin/ocirun,
or $OCIRUN_INTEGRATION_RUNTIME (e.g. /usr/sbin/runc, to check the tests themselves).

Everything lives in one private directory per session (`scripts/setup-integration --config-only
DIR` writes its configuration): podman runs with `--root/--runroot` there, `--runtime`,
`--cgroup-manager cgroupfs`, `--events-backend file`, and CONTAINERS_CONF/CONTAINERS_STORAGE_CONF
pointing there; containerd runs on its own socket, root and state there, in the namespace
`ocitest-XXXXXX`, and is stopped at the end. After each test every container is removed, and no
process, mount or cgroup of the test's containers may remain.

Fixtures
  podman      podman(*args, timeout=60, check=True, input=None) -> CompletedProcess (text);
              podman.name() a fresh container name; podman.image the test image; podman.runc(...)
              the same command with --runtime /usr/sbin/runc (to show what the host does with it)
  ctr         ctr(*args, ...) with the private socket and namespace; ctr.name(), ctr.image,
              ctr.runtime_flags (the --runc-binary to pass to `ctr run`)
  host        facts about this machine (cgroup layout, catatonit, ...) used in skip reasons
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import busybox_bundle  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from integ_support import (CTR_TOOLS, HERE, IMAGE, MARK, PODMAN_TOOLS, RUNTIME, TEST_TIMEOUT, Ctr,  # noqa: E402
                           Host, Podman, cgroup_dirs, mounts, processes_naming, reap_zombies, run_cmd,
                           wait_for)

# --- whether to run at all ---------------------------------------------------------------

def _missing(tools) -> list[str]:
    return [t for t in tools if shutil.which(t) is None and not Path(f"/usr/bin/{t}").exists()]


def _skip_reason(tools) -> str | None:
    flag = os.environ.get("OCIRUN_INTEGRATION", "")
    if flag == "0":
        return "OCIRUN_INTEGRATION=0: the podman/containerd integration tests are turned off"
    if os.geteuid() != 0:
        return "integration tests run containers with podman/containerd: they need root"
    missing = _missing(tools)
    if missing and flag != "1":
        return (f"{', '.join(missing)} not installed: run scripts/setup-integration "
                "(or set OCIRUN_INTEGRATION=1 to make this an error)")
    if not os.access(RUNTIME, os.X_OK) and flag != "1":
        return f"{RUNTIME} missing: run scripts/setup first"
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(str(item.fspath)).resolve()
        if HERE not in path.parents:
            continue
        tools = CTR_TOOLS if "ctr" in path.name or "containerd" in path.name else PODMAN_TOOLS
        reason = _skip_reason(tools)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def host():
    return Host()


# --- session state ------------------------------------------------------------------------

@pytest.fixture(scope="session")
def integ_dir():
    base = Path(os.environ.get("OCIRUN_INTEGRATION_TMP", "/var/tmp"))
    d = Path(tempfile.mkdtemp(prefix=f"{MARK}-", dir=base))
    run_cmd([str(REPO / "scripts/setup-integration"), "--config-only", str(d)], check=True, timeout=60)
    yield d
    # Whatever is still mounted under it (podman's overlay home, a leaked merged dir) goes first.
    for m in sorted((m for m in mounts() if m == str(d) or m.startswith(str(d) + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def rootfs_tar(integ_dir):
    rootfs = busybox_bundle.make_rootfs(integ_dir / "image-rootfs")
    tar = integ_dir / "busybox-rootfs.tar"
    with tarfile.open(tar, "w") as t:
        for entry in sorted(os.listdir(rootfs)):
            t.add(rootfs / entry, arcname=entry)
    shutil.rmtree(rootfs)
    return tar


@pytest.fixture(scope="session")
def podman_session(integ_dir, rootfs_tar):
    if _skip_reason(PODMAN_TOOLS):
        pytest.skip(_skip_reason(PODMAN_TOOLS))
    pm = Podman(integ_dir, RUNTIME)
    pm("import", "--change", "CMD=/bin/sh", "--change", "ENV=PATH=/usr/sbin:/usr/bin:/sbin:/bin",
       str(rootfs_tar), IMAGE, timeout=120)
    yield pm
    pm("rm", "--all", "--force", "--time", "0", check=False, timeout=120)
    pm("pod", "rm", "--all", "--force", check=False, timeout=120)
    pm("rmi", "--all", "--force", check=False, timeout=120)
    reap_zombies()


@pytest.fixture
def podman(podman_session):
    """The session's podman; after the test, every container is removed and none of theirs
    may leave a process, mount or cgroup."""
    pm = podman_session
    since = pm.events_size()
    mounts0 = set(mounts())
    yield pm
    pm("rm", "--all", "--force", "--time", "0", check=False, timeout=120)
    pm("pod", "rm", "--all", "--force", check=False, timeout=60)
    left = pm("ps", "--all", "--quiet", check=False).stdout.split()
    ids = pm.event_ids(since)
    reap_zombies()

    def leaks():
        found = [f"container still listed: {c}" for c in left]
        found += [f"cgroup: {c}" for c in cgroup_dirs(ids)]
        found += [f"process: {p}" for p in processes_naming(ids)]
        found += [f"mount: {m}" for m in set(mounts()) - mounts0
                  if (m.startswith(str(pm.dir)) and m != str(pm.dir / "storage/overlay"))
                  or m.startswith("/run/netns/") or any(i in m for i in ids)]
        return found

    # conmon's exit command (`podman container cleanup`) may still be finishing.
    end = time.monotonic() + 10
    while (found := leaks()) and time.monotonic() < end:
        time.sleep(0.2)
        reap_zombies()
    assert not found, "left behind by the test's containers:\n" + "\n".join(found)


@pytest.fixture(scope="session")
def ctr_session(integ_dir, podman_session):
    if _skip_reason(CTR_TOOLS):
        pytest.skip(_skip_reason(CTR_TOOLS))
    archive = integ_dir / "busybox-oci.tar"
    podman_session("save", "--format", "oci-archive", "--output", str(archive), IMAGE, timeout=120)
    log = open(integ_dir / "containerd.log", "w")
    daemon = subprocess.Popen(["containerd", "--config", str(integ_dir / "containerd.toml")],
                              stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    c = Ctr(integ_dir, RUNTIME)
    c.daemon = daemon
    try:
        wait_for(lambda: daemon.poll() is not None or
                 run_cmd(c.argv("version"), timeout=10).returncode == 0, timeout=30, what="containerd")
        assert daemon.poll() is None, f"containerd exited: {(integ_dir / 'containerd.log').read_text()[-2000:]}"
        c("images", "import", "--base-name", "localhost/ocitest-busybox", str(archive), timeout=120)
        yield c
    finally:
        if daemon.poll() is None:
            try:
                c.remove_all()
                c("images", "rm", IMAGE, check=False)
                c("namespaces", "remove", c.namespace, check=False)
            finally:
                daemon.terminate()
                try:
                    daemon.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait(timeout=10)
        log.close()
        reap_zombies()
        # The shim's runc root for our namespace (empty once every task is deleted).
        for d in (f"/run/containerd/runc/{c.namespace}",):
            try:
                os.rmdir(d)
            except OSError:
                pass


@pytest.fixture
def ctr(ctr_session):
    c = ctr_session
    mounts0 = set(mounts())
    c.issued.clear()
    yield c
    names = set(c.issued) | set(c.containers()) | set(c.tasks())
    c.remove_all()
    left = c.containers()
    reap_zombies(keep=(c.daemon.pid,))

    def leaks():
        found = [f"container still listed: {x}" for x in left]
        found += [f"cgroup: {x}" for x in cgroup_dirs(names)]
        found += [f"process: {p}" for p in processes_naming(names)]
        found += [f"mount: {m}" for m in set(mounts()) - mounts0
                  if m.startswith(str(c.dir)) or any(n in m for n in names)]
        return found

    end = time.monotonic() + 10
    while (found := leaks()) and time.monotonic() < end:
        time.sleep(0.2)
        reap_zombies(keep=(c.daemon.pid,))
    assert not found, "left behind by the test's containers:\n" + "\n".join(found)


# --- what the session leaves on the host ----------------------------------------------------

def _session_cgroups() -> set[str]:
    """podman's cgroupfs parents (libpod_parent, libpod_parent/conmon) and containerd's
    per-namespace parent (/MARK), in every hierarchy."""
    out = set()
    for ctl in Path("/sys/fs/cgroup").iterdir():
        for rel in ("libpod_parent/conmon", "libpod_parent", MARK):
            if (ctl / rel).is_dir():
                out.add(str(ctl / rel))
    return out


@pytest.fixture(scope="session", autouse=True)
def _session_host_cleanup():
    """Finalized after the podman and containerd sessions: the parent cgroups they made for our
    containers, and podman's CNI bridge, go when this session made them and nothing uses them
    (rmdir of a cgroup only succeeds when it is empty)."""
    cgroups0 = _session_cgroups()
    bridge0 = Path("/sys/class/net/cni-podman0").exists()
    yield
    for d in sorted(_session_cgroups() - cgroups0, key=len, reverse=True):
        try:
            os.rmdir(d)
        except OSError:
            pass
    brif = Path("/sys/class/net/cni-podman0/brif")
    if not bridge0 and brif.is_dir() and not any(brif.iterdir()):
        subprocess.run(["ip", "link", "delete", "cni-podman0"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


# --- every test bounded in time ------------------------------------------------------------

class TestTimeout(Exception):
    pass


@pytest.fixture(autouse=True)
def _time_limit(request):
    if HERE not in Path(str(request.node.fspath)).resolve().parents:
        yield
        return

    def on_alarm(signum, frame):
        raise TestTimeout(f"{request.node.nodeid}: over {TEST_TIMEOUT}s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


