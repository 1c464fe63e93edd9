"""Rootless podman with `--runtime ocirun`, beside runc: a throwaway user with subordinate ids
runs podman 4.3 (its own storage in its home, vfs), which starts the runtime as root of a user
namespace of the user's own and hands it a config with no user namespace (rootless.py: auto).

Scenarios, each for both runtimes: run with the exit code and the ids seen inside, exec, a
volume whose files land on the host as the user, stop with a grace period, and port publishing
through slirp4netns where the user can open /dev/net/tun. The user, its storage and every
process it had are removed at the end.
"""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from integ_support import MARK, RUNTIME, run_cmd, wait_for  # noqa: E402

import busybox_bundle  # noqa: E402  (scripts/, put on the path by conftest.py)
from uid_processes import live_processes  # noqa: E402  (tests/, put on the path by pytest)

RUNC = "/usr/sbin/runc"
RUNTIMES = {"ocirun": RUNTIME, "runc": RUNC}
IMAGE = "localhost/ocitest-rootless:latest"


@pytest.fixture(scope="module")
def user():
    name = f"ocipr{os.getpid() % 100000}"
    run_cmd(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True)
    pw = pwd.getpwnam(name)
    xdg = Path(tempfile.mkdtemp(prefix=f"{MARK}-xdg-", dir="/run"))
    os.chown(xdg, pw.pw_uid, pw.pw_gid)
    os.chmod(xdg, 0o700)
    try:
        yield pw, xdg
    finally:
        # podman leaves its pause process (the user namespace's holder): by pid, as all of them
        for pid in live_processes(pw.pw_uid):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        try:
            wait_for(lambda: not live_processes(pw.pw_uid), timeout=10, what="the user's processes to end")
        finally:
            shutil.rmtree(xdg, ignore_errors=True)
            run_cmd(["userdel", "--remove", name])


class UserPodman:
    def __init__(self, pw, xdg: Path, runtime: str):
        self.pw, self.xdg, self.runtime = pw, xdg, runtime
        self._n = 0

    def __call__(self, *args, check=True, timeout=90, runtime=None) -> subprocess.CompletedProcess:
        argv = ["setpriv", f"--reuid={self.pw.pw_uid}", f"--regid={self.pw.pw_gid}", "--init-groups",
                "podman", "--storage-driver", "vfs", "--runtime", runtime or self.runtime,
                "--cgroup-manager", "cgroupfs", "--events-backend", "file", *map(str, args)]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": self.pw.pw_dir, "USER": self.pw.pw_name,
               "XDG_RUNTIME_DIR": str(self.xdg)}
        r = run_cmd(argv, env=env, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"podman {' '.join(map(str, args))} exited {r.returncode}\n"
                                 f"stdout: {r.stdout}\nstderr: {r.stderr}")
        return r

    def name(self) -> str:
        self._n += 1
        return f"{MARK}-rl{self._n}"


@pytest.fixture(scope="module")
def image(user):
    """The busybox test image, imported into the user's own storage."""
    pw, xdg = user
    d = Path(tempfile.mkdtemp(prefix=f"{MARK}-rlimg-", dir="/tmp"))
    os.chmod(d, 0o755)
    rootfs = busybox_bundle.make_rootfs(d / "rootfs")
    tar = d / "rootfs.tar"
    run_cmd(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
    os.chmod(tar, 0o644)
    UserPodman(pw, xdg, RUNTIME)("import", tar, IMAGE)
    shutil.rmtree(d, ignore_errors=True)
    return IMAGE


@pytest.fixture(params=sorted(RUNTIMES))
def podman(request, user, image):
    if not os.access(RUNTIMES[request.param], os.X_OK):
        pytest.skip(f"{RUNTIMES[request.param]} missing")
    p = UserPodman(*user, RUNTIMES[request.param])
    yield p
    p("rm", "--all", "--force", "--time", "0", check=False)


@pytest.fixture
def volume(user):
    pw = user[0]
    d = Path(tempfile.mkdtemp(prefix=f"{MARK}-rlvol-", dir="/tmp"))
    os.chown(d, pw.pw_uid, pw.pw_gid)
    (d / "in").write_text("from the host\n")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_run_exit_code_and_ids(podman, image):
    r = podman("run", "--rm", "--network", "none", image, "sh", "-c", "id -u; cat /proc/self/uid_map; exit 3",
               check=False)
    assert r.returncode == 3, r.stderr
    lines = r.stdout.split("\n")
    assert lines[0] == "0", r.stdout
    assert lines[1].split() == ["0", str(podman.pw.pw_uid), "1"], r.stdout  # podman's namespace


def test_exec_and_a_volume(podman, image, volume):
    name = podman.name()
    podman("run", "-d", "--name", name, "--network", "none", "-v", f"{volume}:/vol", image, "sleep", "1000")
    out = podman("exec", name, "sh", "-c", "cat /vol/in; echo made > /vol/out; id -u").stdout
    assert out == "from the host\n0\n", out
    st = (volume / "out").stat()
    assert (st.st_uid, st.st_gid) == (podman.pw.pw_uid, podman.pw.pw_gid), "root inside is the user outside"
    podman("rm", "--force", "--time", "0", name)


def test_stop_with_a_grace_period(podman, image):
    """sleep ignores nothing, but as pid 1 it has no SIGTERM handler: the kernel drops it, and
    podman sends SIGKILL after the grace period."""
    name = podman.name()
    podman("run", "-d", "--name", name, "--network", "none", image, "sleep", "1000")
    t0 = time.monotonic()
    podman("stop", "--time", "1", name)
    took = time.monotonic() - t0
    assert 0.9 < took < 20, took
    assert podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip() == "exited"
    podman("rm", name)


def test_port_publishing(podman, image, volume):
    """slirp4netns forwards a host port into the container's network namespace."""
    if not shutil.which("slirp4netns"):
        pytest.skip("slirp4netns missing (scripts/setup-integration installs it)")
    tun = os.stat("/dev/net/tun")
    if not tun.st_mode & 0o006:
        pytest.skip(f"/dev/net/tun is mode {oct(tun.st_mode & 0o777)} on this host: no user may open it, "
                    "so slirp4netns fails for every runtime (runc too)")
    name = podman.name()
    port = 20000 + os.getpid() % 10000
    podman("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080", "-v", f"{volume}:/www", image,
           "httpd", "-f", "-p", "8080", "-h", "/www")
    import urllib.request

    def fetched():
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/in", timeout=2).read()
        except OSError:
            return None
    body = wait_for(fetched, timeout=20, what="the published port")
    assert body == b"from the host\n"
    podman("rm", "--force", "--time", "0", name)
