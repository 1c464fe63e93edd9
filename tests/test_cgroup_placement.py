"""Where the container's process lands in the cgroup hierarchies, seen from inside.

Without a user namespace the init places itself: it writes "0" to each v1 directory's `tasks`
(a thread moving itself takes no cgroup_threadgroup_rwsem, so no RCU grace period) and is
cloned straight into the v2 directory (CLONE_INTO_CGROUP). With a user namespace ocirun joins
it through cgroup.procs, as before. Either way, every hierarchy must show the container's
cgroup from the first instruction of the user's program, and a failed placement must leave
nothing behind.
"""
import os

import pytest

from ocitest_conftest import MARK

# /proc/self/cgroup without a cgroup namespace: every line ends with the container's path.
SHOW = ["cat", "/proc/self/cgroup"]
USERNS = {
    "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "user")],
    "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
    "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
}


def _hierarchies() -> list[str]:
    """This process's own /proc/self/cgroup lines: one per hierarchy the host has."""
    with open("/proc/self/cgroup") as f:
        return [line.split(":", 2)[0] + ":" + line.split(":", 2)[1] for line in f.read().splitlines()]


def _placement(stdout: str) -> dict[str, str]:
    return {ln.rsplit(":", 1)[0]: ln.rsplit(":", 1)[1] for ln in stdout.splitlines()}


def _assert_in(stdout: str, path: str) -> None:
    seen = _placement(stdout)
    assert sorted(seen) == sorted(_hierarchies()), stdout
    wrong = {h: p for h, p in seen.items() if not p.endswith(path)}
    assert not wrong, f"not in {path}: {wrong}"


def test_init_placed_in_every_hierarchy_without_a_user_namespace(rt, bundle, new_id):
    path = f"/{MARK}-{new_id()}"
    b = bundle(SHOW, linux={"cgroupsPath": path})
    r = rt("run", "--bundle", b, new_id())
    _assert_in(r.stdout, path)


def test_created_init_is_in_its_cgroups_before_start(rt, bundle, new_id):
    """The placement is done by the time `create` returns: the waiting init is listed in
    cgroup.procs of every hierarchy (read on the host)."""
    path = f"/{MARK}-{new_id()}"
    b = bundle(["true"], linux={"cgroupsPath": path})
    cid = new_id()
    rt("create", "--bundle", b, cid)
    try:
        pid = rt.state(cid)["pid"]
        with open(f"/proc/{pid}/cgroup") as f:
            _assert_in(f.read(), path)
    finally:
        rt("delete", "--force", cid)


def test_init_placed_in_every_hierarchy_with_a_user_namespace(rt, bundle, new_id):
    path = f"/{MARK}-{new_id()}"
    b = bundle(SHOW, linux={"cgroupsPath": path, **USERNS})
    r = rt("run", "--bundle", b, new_id())
    _assert_in(r.stdout, path)


def test_exec_joins_the_same_cgroups(rt, bundle, new_id):
    path = f"/{MARK}-{new_id()}"
    b = bundle(["sleep", "100"], linux={"cgroupsPath": path})
    cid = new_id()
    rt("run", "--detach", "--bundle", b, cid)
    try:
        r = rt("exec", cid, *SHOW)
        _assert_in(r.stdout, path)
    finally:
        rt("delete", "--force", cid)


@pytest.mark.skipif(not os.path.exists("/sys/fs/cgroup/cpuset/cpuset.cpus"), reason="needs a cgroup v1 cpuset hierarchy")
@pytest.mark.parametrize("namespaces", ["plain", "userns"])
def test_failed_placement_is_reported_and_leaves_nothing(rt, bundle, new_id, namespaces):
    """A cpuset cgroup with no cpus takes no task (ENOSPC). ocirun makes the cgroup's
    directories it needs, but an existing one is used as it is: here the test makes it empty.
    create must fail naming that cgroup, and leave no process, state or cgroup of its own."""
    path = f"/{MARK}-{new_id()}"
    empty = f"/sys/fs/cgroup/cpuset{path}"
    os.mkdir(empty)
    try:
        b = bundle(["true"], linux={"cgroupsPath": path, **(USERNS if namespaces == "userns" else {})})
        cid = new_id()
        err = rt.expect_error("create", "--bundle", b, cid, mentions=("cgroup", empty))
        assert "No space left on device" in err, err
        assert not rt.exists(cid)
        with open(f"{empty}/cgroup.procs") as f:
            assert f.read() == ""
    finally:
        os.rmdir(empty)
