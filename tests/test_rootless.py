"""Rootless: ocirun run by a user with no privilege on the host (ocirun/rootless.py).

A throwaway user with subordinate ids (Debian's useradd gives it a range in /etc/subuid and
/etc/subgid) runs the runtime through setpriv, and is removed with everything it owned. Each
container is checked from inside (id, uid_map, setgroups, the mount table) and from the host
(the init's real uid, the cgroup trees, the state root).
"""
import json
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from ocitest_conftest import MARK, Runtime, _cgroup_dirs
from uid_processes import live_processes

pytestmark = pytest.mark.skipif(not shutil.which("setpriv"), reason="setpriv (util-linux) missing")


@pytest.fixture(scope="module")
def user():
    """A new user with subordinate ids; removed afterwards, and nothing of it may be left."""
    name = f"ocirl{os.getpid() % 100000}"
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True)
    try:
        pw = pwd.getpwnam(name)
        sub = next(line.split(":") for line in Path("/etc/subuid").read_text().splitlines()
                   if line.startswith(name + ":"))
        yield pw, int(sub[1]), int(sub[2])
    finally:
        left = live_processes(pw.pw_uid)
        subprocess.run(["userdel", "--remove", name], capture_output=True)
    assert not left, f"processes of the rootless user are left: {left}"


class RootlessRuntime(Runtime):
    """The same calls, as the user (setpriv: its uid and gid, no groups, no capabilities; the bounding set stays whole, as a
    login's does, or the setuid newuidmap would get none), in
    the v2 cgroup `session` when given (a delegated one, so that the user may move processes)."""

    def __init__(self, binary, state_root, tmp_path, pw, session=None, root=True):
        super().__init__(binary, state_root, tmp_path)
        self.pw, self.session, self.with_root = pw, session, root

    def _argv(self, args, fds):
        argv, pass_fds, high = super()._argv(args, fds)
        if not self.with_root:
            argv = [a for a in argv if a not in ("--root", str(self.state_root))]
        argv = ["setpriv", f"--reuid={self.pw.pw_uid}", f"--regid={self.pw.pw_gid}", "--clear-groups",
                "--inh-caps=-all", *argv]
        if self.session:
            argv = ["sh", "-c", f'echo $$ > {self.session}/cgroup.procs && exec "$@"', "sh", *argv]
        return argv, pass_fds, high

    def _env(self, env):
        e = super()._env(env)
        e.update(HOME=self.pw.pw_dir, USER=self.pw.pw_name, XDG_RUNTIME_DIR=str(self.state_root.parent))
        return e


@pytest.fixture
def user_dirs(user):
    """An XDG_RUNTIME_DIR for the user (0700, its own) with a state root in it."""
    pw = user[0]
    base = Path(tempfile.mkdtemp(prefix=f"{MARK}-xdg-", dir="/run"))
    root = base / "ocirun"
    root.mkdir()
    for d in (base, root):
        os.chown(d, pw.pw_uid, pw.pw_gid)
        os.chmod(d, 0o700)
    yield root
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def rl(runtime_bin, user, user_dirs, tmp_path):
    return RootlessRuntime(runtime_bin, user_dirs, tmp_path, user[0])


def rootless_config(bundle, args, pw, maps=None, **overrides):
    """runc's `spec --rootless` for this user, with `maps` ([(containerID, hostID, size)]) or
    the user's own ids alone."""
    own = [(0, pw.pw_uid, 1)], [(0, pw.pw_gid, 1)]
    uids, gids = maps or own

    def patch(cfg):
        from ocirun.default_spec import default_config

        rl = default_config(rootless=True, args=args, terminal=False)
        rl["linux"]["uidMappings"] = [{"containerID": c, "hostID": h, "size": s} for c, h, s in uids]
        rl["linux"]["gidMappings"] = [{"containerID": c, "hostID": h, "size": s} for c, h, s in gids]
        rl["root"]["path"] = cfg["root"]["path"]
        rl["linux"]["cgroupsPath"] = cfg["linux"]["cgroupsPath"]
        return rl
    b = bundle(args, patch)
    if overrides:
        cfg = json.loads((b / "config.json").read_text())
        for k, v in overrides.items():
            section, _, key = k.partition("__")
            (cfg.setdefault(section, {}) if key else cfg)[key or section] = v
        (b / "config.json").write_text(json.dumps(cfg))
    return b


def wide_maps(user):
    pw, first, count = user
    ranges = [(0, pw.pw_uid, 1), (1, first, min(count, 65536))]
    return ranges, [(0, pw.pw_gid, 1), (1, first, min(count, 65536))]


def _cgroup_snapshot() -> set[str]:
    return _cgroup_dirs()


def test_run_with_the_users_own_ids(rl, bundle, unique_id, user):
    """One mapping of the user's own uid and gid, written without a helper: root inside, the
    user outside, setgroups off (the kernel's rule for an unprivileged gid_map writer)."""
    pw = user[0]
    before = _cgroup_snapshot()
    b = rootless_config(bundle, ["sh", "-c", "id; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups"], pw)
    r = rl("run", "--bundle", b, unique_id)
    lines = r.stdout.split("\n")
    assert lines[0].startswith("uid=0(root) gid=0(root)"), r.stdout
    assert lines[1].split() == ["0", str(pw.pw_uid), "1"], r.stdout
    assert lines[2].split() == ["0", str(pw.pw_gid), "1"], r.stdout
    assert lines[3] == "deny", r.stdout
    assert _cgroup_snapshot() == before, "a rootless run made a cgroup that is not delegated to it"
    assert not list(rl.state_root.iterdir()), "state left behind"


def test_subordinate_ids_through_newuidmap_and_the_lifecycle(rl, bundle, unique_id, user):
    """A wider mapping goes through newuidmap/newgidmap; create, start, exec, kill and delete
    as the user. The init runs on the host as the subordinate id its container uid maps to."""
    pw, first, _ = user
    b = rootless_config(bundle, ["sleep", "1000"], pw, wide_maps(user),
                        process__user={"uid": 1000, "gid": 1000, "additionalGids": [5]})
    rl("create", "--bundle", b, unique_id)
    pid = rl.state(unique_id)["pid"]
    rl("start", unique_id)
    rl.wait_status(unique_id, "running")
    status = Path(f"/proc/{pid}/status").read_text()
    uids = next(ln for ln in status.splitlines() if ln.startswith("Uid:")).split()[1:]
    assert uids == [str(first + 999)] * 4, status
    inside = rl("exec", unique_id, "sh", "-c", "id -u; id -G; cat /proc/self/uid_map; cat /proc/self/setgroups")
    out = inside.stdout.split("\n")
    assert out[0] == "1000" and out[1].split() == ["1000", "5"], inside.stdout
    assert out[2].split() == ["0", str(pw.pw_uid), "1"] and out[3].split() == ["1", str(first), "65536"]
    assert out[4] == "allow", inside.stdout
    rl("kill", unique_id, "KILL")
    rl.wait_status(unique_id, "stopped")
    rl("delete", unique_id)
    assert not list(rl.state_root.iterdir())


def test_exec_with_the_users_own_ids(rl, bundle, unique_id, user):
    """exec joins a namespace where setgroups is off: it must not call it."""
    b = rootless_config(bundle, ["sleep", "1000"], user[0])
    rl("run", "--detach", "--bundle", b, unique_id)
    assert rl("exec", unique_id, "id", "-u").stdout == "0\n"
    assert rl("exec", "--user", "0:0", unique_id, "cat", "/proc/self/setgroups").stdout == "deny\n"
    rl("delete", "--force", unique_id)


def test_default_state_root_is_under_xdg_runtime_dir(runtime_bin, user, user_dirs, tmp_path, bundle, unique_id):
    """Without --root, a user's containers are kept in $XDG_RUNTIME_DIR/ocirun, as runc's."""
    r = RootlessRuntime(runtime_bin, user_dirs, tmp_path, user[0], root=False)
    b = rootless_config(bundle, ["sleep", "1000"], user[0])
    r("create", "--bundle", b, unique_id)
    assert (user_dirs / unique_id / "state.json").exists()
    r("delete", "--force", unique_id)
    assert not list(user_dirs.iterdir())


@pytest.mark.parametrize("field, overrides, mentions", [
    ("linux.resources", {"linux__resources": {"pids": {"limit": 10}}}, ("linux.resources", "delegated")),
    ("process.user.additionalGids", {"process__user": {"uid": 0, "gid": 0, "additionalGids": [5]}},
     ("process.user.additionalGids", "setgroups")),
])
def test_what_a_user_can_not_have_is_refused(rl, bundle, unique_id, user, field, overrides, mentions):
    """Limits without a delegated cgroup, and extra groups where setgroups is off: one line
    naming the field, and nothing left behind."""
    before = _cgroup_snapshot()
    b = rootless_config(bundle, ["true"], user[0], **overrides)
    rl.expect_error("run", "--bundle", b, unique_id, mentions=mentions)
    assert _cgroup_snapshot() == before
    assert not list(rl.state_root.iterdir())


def test_ids_not_delegated_to_the_user_are_refused(rl, bundle, unique_id, user):
    """newuidmap checks the mapping against /etc/subuid: host ids that aren't the user's."""
    pw, first, count = user
    maps = [(0, pw.pw_uid, 1), (1, first + count, 1000)], [(0, pw.pw_gid, 1)]
    b = rootless_config(bundle, ["true"], pw, maps)
    rl.expect_error("run", "--bundle", b, unique_id, mentions=("linux.uidMappings", "newuidmap"))
    assert not list(rl.state_root.iterdir())


def _v2_mountpoint() -> str | None:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[fields.index("-") + 1] == "cgroup2":
                return fields[4]
    return None


@pytest.fixture
def delegated(user):
    """A cgroup v2 subtree owned by the user (as systemd's Delegate=yes gives one), with a
    `session` child that the user's runtime process starts in."""
    v2 = _v2_mountpoint()
    if v2 is None:
        pytest.skip("no cgroup2 hierarchy")
    pw = user[0]
    top = Path(v2) / f"{MARK}-deleg-{os.getpid()}"
    top.mkdir()
    session = top / "session"
    session.mkdir()
    for d in (top, session):
        for f in [d, *(d / n for n in ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads"))]:
            os.chown(f, pw.pw_uid, pw.pw_gid)
    yield top
    for d in sorted((p for p in top.rglob("*") if p.is_dir()), reverse=True) + [top]:
        try:
            d.rmdir()
        except OSError:
            pass


def test_a_delegated_cgroup_is_used_and_others_are_not(runtime_bin, user, user_dirs, tmp_path, bundle,
                                                       unique_id, delegated):
    """The container's cgroup is made where the user may (the delegated v2 subtree) and in no
    other hierarchy; delete removes it."""
    r = RootlessRuntime(runtime_bin, user_dirs, tmp_path, user[0], session=delegated / "session")
    v2 = _v2_mountpoint()
    rel = "/" + str((delegated / "c1").relative_to(v2))
    before = _cgroup_snapshot()
    b = rootless_config(bundle, ["sleep", "1000"], user[0])
    cfg = json.loads((b / "config.json").read_text())
    cfg["linux"]["cgroupsPath"] = rel
    (b / "config.json").write_text(json.dumps(cfg))
    r("run", "--detach", "--bundle", b, unique_id)
    pid = r.state(unique_id)["pid"]
    own = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    assert f"0::{rel}" in own, own
    assert _cgroup_snapshot() - before == {str(delegated / "c1")}
    r("delete", "--force", unique_id)
    assert _cgroup_snapshot() == before


def test_no_host_cgroup_is_writable_through_a_read_only_sys(runtime_bin, user, user_dirs, tmp_path, bundle,
                                                            unique_id, delegated):
    """The CVE-2023-25809 class: a rootless container without a cgroup namespace gets /sys as a
    read-only recursive bind. The user's own delegated cgroup on the host is writable by the
    container's root (the same host uid), so only the mount stands between them."""
    r = RootlessRuntime(runtime_bin, user_dirs, tmp_path, user[0], session=delegated / "session")
    v2 = _v2_mountpoint()
    # `session` holds the runtime and passes no controller on: a move into it would work
    target = str(delegated / "session/cgroup.procs")
    b = rootless_config(bundle, ["sh", "-c", f"echo $$ 2>&1 > {target}; echo rc=$?; grep ' {v2} ' /proc/self/mountinfo"],
                        user[0])
    out = r("run", "--bundle", b, unique_id).stdout
    assert "rc=1" in out and "Read-only file system" in out, out
    mount = next(ln for ln in out.splitlines() if f" {v2} " in ln)
    assert mount.split()[5].split(",")[0] == "ro", mount


def test_the_host_interpreter_is_out_of_reach(rl, bundle, unique_id, user):
    """/proc/self/exe of a runtime copy in the container (a created init waiting for `start`, an
    exec'd process before its execve) is a sealed memfd, never the host's Python, rootless too."""
    from ocirun.state import SEALED_EXE

    b = rootless_config(bundle, ["sleep", "1000"], user[0])
    (b / "rootfs/bin/evil").write_text("#!/proc/self/exe\nprint('Python ran')\n")
    os.chmod(b / "rootfs/bin/evil", 0o755)
    rl("create", "--bundle", b, unique_id)
    pid = rl.state(unique_id)["pid"]
    assert os.readlink(f"/proc/{pid}/exe") == SEALED_EXE
    rl("start", unique_id)
    for argv in (["/bin/evil"], ["/proc/self/exe", "-c", "print('Python ran')"]):
        r = rl("exec", unique_id, *argv, check=False)
        assert r.returncode != 0 and "Python ran" not in r.stdout + r.stderr, (argv, r)
    rl("delete", "--force", unique_id)


def test_rootless_flag(rl, bundle, unique_id, user):
    """--rootless false as a user: the cgroups are not skipped (and can't be made); a value that
    isn't true, false or auto is refused."""
    b = rootless_config(bundle, ["true"], user[0])
    rl.expect_error("--rootless", "false", "run", "--bundle", b, unique_id, mentions=("create cgroup",))
    rl.expect_error("--rootless", "maybe", "run", "--bundle", b, unique_id, mentions=("--rootless",))
    assert not list(rl.state_root.iterdir())


def test_features_say_what_works(rt):
    """`features` claims rootless, and the uid helpers that the newuidmap test above used."""
    notes = json.loads(rt("features").stdout)["annotations"]
    assert notes["io.github.ocirun.rootless.enabled"] == "true"
    assert notes["io.github.ocirun.rootless.idmapHelpers"] == str(bool(shutil.which("newuidmap"))).lower()
    assert notes["io.github.ocirun.checkpoint.enabled"] == "false"
