"""CVE-2024-21626 class: no host directory reachable through an fd the runtime leaks.

runc leaked an fd of the host's /sys/fs/cgroup into the container process; with `cwd` set to
/proc/self/fd/N the process started with its working directory on the host, and `..` from
there walked up to the host's /. Here every fd number an attacker could name is tried, through
config.json's `process.cwd` (create/run) and through `exec --cwd`, with the caller passing extra
host directory fds as well. The process then climbs `..` as far as it goes and looks for a marker
file that exists only on the host, and tries to create a file next to it; the test asserts the
attempt failed or stayed inside the container, and that the host directory is unchanged.
"""
import os
import shutil
import tempfile

import pytest

from ocitest_conftest import MARK

FDS = range(3, 11)


@pytest.fixture
def host_dir():
    """A host directory the container must never reach, with a marker file in it."""
    d = tempfile.mkdtemp(prefix=f"{MARK}-hostdir-", dir="/tmp")
    with open(os.path.join(d, "host-marker"), "w") as f:
        f.write("host only\n")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def escape_script(host_dir: str) -> str:
    rel = host_dir.lstrip("/")
    return ("echo cwd=$(readlink /proc/self/cwd); "
            "i=0; while [ $i -lt 64 ]; do cd .. 2>/dev/null; i=$((i+1)); done; "
            "echo top=$(readlink /proc/self/cwd); "
            f"if [ -e ./{rel}/host-marker ]; then echo ESCAPED; touch ./{rel}/pwned; fi; "
            "ls -l /proc/self/fd/ | grep -v '/proc/' | tail -n +2")


def host_unchanged(host_dir: str) -> None:
    assert sorted(os.listdir(host_dir)) == ["host-marker"], f"the host directory changed: {os.listdir(host_dir)}"


def assert_contained(r, host_dir: str, what: str) -> None:
    """Either the call failed (cleanly: one error line), or the process ran inside the container."""
    if r.returncode != 0 and "cwd=" not in r.stdout:
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1, f"{what}: want one error line, got:\n{r.stderr}"
        assert "cwd" in lines[0], f"{what}: the error does not name the cwd: {lines[0]}"
    else:
        wrote = " and created a file there" if os.path.exists(os.path.join(host_dir, "pwned")) else ""
        assert "ESCAPED" not in r.stdout, f"{what}: the process reached the host's /{wrote}: {r.stdout}"
        cwd = r.stdout.split("cwd=", 1)[1].split("\n", 1)[0]
        assert cwd.startswith("/") and "unreachable" not in cwd, f"{what}: cwd outside the container: {cwd!r}"
    host_unchanged(host_dir)


def host_fds(host_dir: str) -> dict:
    """Directory fds the caller (a careless one) has open when it calls the runtime."""
    return {n: os.open(p, os.O_RDONLY | os.O_DIRECTORY)
            for n, p in ((3, host_dir), (4, "/"), (5, "/sys/fs/cgroup"), (7, "/proc"))}


@pytest.mark.parametrize("fd", FDS)
def test_config_cwd_through_proc_self_fd(rt, bundle, unique_id, host_dir, fd):
    b = bundle(["sh", "-c", escape_script(host_dir)], process={"cwd": f"/proc/self/fd/{fd}"})
    fds = host_fds(host_dir)
    try:
        r = rt("run", "--bundle", b, unique_id, check=False, fds=fds)
    finally:
        for f in fds.values():
            os.close(f)
    assert_contained(r, host_dir, f"process.cwd /proc/self/fd/{fd}")
    assert not rt.exists(unique_id)


@pytest.mark.parametrize("cwd", ["/proc/1/cwd", "/proc/self/root", "/proc/1/root/..", "/proc/self/cwd/../.."])
def test_config_cwd_through_other_magic_links(rt, bundle, unique_id, host_dir, cwd):
    b = bundle(["sh", "-c", escape_script(host_dir)], process={"cwd": cwd})
    r = rt("run", "--bundle", b, unique_id, check=False)
    assert_contained(r, host_dir, f"process.cwd {cwd}")
    assert not rt.exists(unique_id)


@pytest.fixture
def running(rt, bundle, unique_id):
    rt("run", "--detach", "--bundle", bundle(["sleep", "1000"]), unique_id)
    yield unique_id
    rt("delete", "--force", unique_id, check=False)


def contained_or_failures(attempts) -> list[str]:
    """Run every attempt (a description and a thunk returning (CompletedProcess, host_dir));
    return what went wrong, so that one test reports every fd number that escapes."""
    bad = []
    for what, go in attempts:
        r, host_dir = go()
        try:
            assert_contained(r, host_dir, what)
        except AssertionError as e:
            bad.append(str(e).split("\n")[0])
        try:
            os.unlink(os.path.join(host_dir, "pwned"))  # judge the next attempt on its own
        except FileNotFoundError:
            pass
    return bad


@pytest.mark.parametrize("stray", [False, True], ids=["runtime-fds", "caller-host-dir-fds"])
@pytest.mark.parametrize("target", ["/proc/self/fd/{n}", "/proc/1/fd/{n}"])
def test_exec_cwd_through_proc_fd(rt, running, host_dir, target, stray):
    # runtime-fds: only what ocirun itself has open can be named. caller-host-dir-fds: the caller
    # also has host directories open without close-on-exec (fds 3, 4, 5, 7: the test dir, /,
    # /sys/fs/cgroup, /proc) and doesn't ask for them to be preserved: they must not be reachable.
    fds = host_fds(host_dir) if stray else {}
    try:
        bad = contained_or_failures(
            (f"exec --cwd {target.format(n=n)}",
             lambda n=n: (rt("exec", "--cwd", target.format(n=n), running, "sh", "-c", escape_script(host_dir),
                             check=False, fds=fds), host_dir))
            for n in FDS)
    finally:
        for f in fds.values():
            os.close(f)
    assert not bad, "\n".join(bad)
    assert rt.state(running)["status"] == "running"


@pytest.mark.parametrize("stray", [False, True], ids=["runtime-fds", "caller-host-dir-fds"])
def test_exec_process_file_cwd_through_proc_fd(rt, running, host_dir, tmp_path, stray):
    import json

    fds = host_fds(host_dir) if stray else {}

    def go(n):
        f = tmp_path / f"p{n}.json"
        f.write_text(json.dumps({"args": ["sh", "-c", escape_script(host_dir)], "cwd": f"/proc/self/fd/{n}"}))
        return rt("exec", "--process", f, running, check=False, fds=fds), host_dir
    try:
        bad = contained_or_failures((f"exec --process, cwd /proc/self/fd/{n}", lambda n=n: go(n)) for n in FDS)
    finally:
        for f in fds.values():
            os.close(f)
    assert not bad, "\n".join(bad)


def fd_table(ls_output: str) -> dict[int, str]:
    """fd -> target from `ls -l DIR/fd/` (busybox: `... N -> TARGET`)."""
    out = {}
    for ln in ls_output.splitlines():
        if " -> " in ln:
            left, target = ln.split(" -> ", 1)
            out[int(left.split()[-1])] = target
        elif ln.startswith("l"):
            out[int(ln.split()[-1])] = ""
    return out


def without_own_listing(fds: dict[int, str]) -> dict[int, str]:
    """Drop the directory fd that `ls` itself opened to list /proc/self/fd: its highest, whose
    link busybox shows empty (or as the /proc directory)."""
    top = max(fds)
    if fds[top] == "" or fds[top].startswith("/proc/"):
        return {n: t for n, t in fds.items() if n != top}
    return fds


def test_no_host_fd_in_a_running_container(rt, bundle, unique_id, host_dir):
    fds = host_fds(host_dir)
    try:
        rt("run", "--detach", "--bundle", bundle(["sleep", "1000"]), unique_id, fds=fds)
        out = rt("exec", unique_id, "sh", "-c", "ls -l /proc/1/fd/; echo --; ls -l /proc/self/fd/; echo --; "
                 "readlink /proc/1/cwd /proc/1/root 2>/dev/null || { readlink /proc/1/cwd; readlink /proc/1/root; }",
                 fds=fds).stdout
    finally:
        for f in fds.values():
            os.close(f)
    init_ls, self_ls, dirs = out.split("--\n")
    init_fds, self_fds = fd_table(init_ls), without_own_listing(fd_table(self_ls))
    # stdio is the caller's by protocol (here: /dev/null and the test's output files); nothing else
    assert sorted(init_fds) == [0, 1, 2], f"the init has fds beyond stdio: {init_fds}"
    assert sorted(self_fds) == [0, 1, 2], f"the exec'd process has fds beyond stdio: {self_fds}"
    for n, target in {**init_fds, **self_fds}.items():
        assert host_dir not in target and target not in ("/", "/sys/fs/cgroup", "/proc"), (n, target)
    assert dirs.split() == ["/", "/"]  # the init's cwd and root: the container's
    host_unchanged(host_dir)
    rt("delete", "--force", unique_id)


def test_preserved_fds_are_only_the_ones_asked_for(rt, bundle, unique_id, host_dir):
    # --preserve-fds 1 passes fd 3 on purpose (the caller's choice); fds 4, 5 and 7, host
    # directories too, must not follow it.
    fds = host_fds(host_dir)
    try:
        r = rt("run", "--preserve-fds", "1", "--bundle", bundle(["ls", "-l", "/proc/self/fd/"]), unique_id, fds=fds)
    finally:
        for f in fds.values():
            os.close(f)
    assert sorted(without_own_listing(fd_table(r.stdout))) == [0, 1, 2, 3], r.stdout
    host_unchanged(host_dir)
