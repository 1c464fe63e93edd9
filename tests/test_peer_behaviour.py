"""What callers and the peers (runc, crun) rely on where the spec is silent, loose, or at odds
with them (issue 13): each seen from inside the container where it can be, with the leak guard
(conftest.py) checking that nothing is left behind.

- a created container is deleted without --force (containerd's shim and CRI do that);
- HOME comes from the container's /etc/passwd when process.env has none, for init and exec;
- a hook without `env` runs with the runtime's environment;
- a mount destination that is a dangling symlink is created at its target, inside the rootfs;
- a tmpcopyup tmpfs keeps its own mode over a directory made for it, and takes the mode and
  owner of one the image had;
- a capability name the kernel doesn't know (any string) is a warning;
- devices.list (cgroup v1) shows the config's rules in the listed order;
- poststart hooks see `running` and the pid, even when the process has already exited;
- `kill --all` of a stopped container kills what is left in its cgroup (containerd's shim sends
  it after every exit); a plain `kill` of a stopped container is still an error;
- delete removes the cgroups the container made inside its own, thawing frozen ones first.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from ocitest_conftest import MARK, find_cgroup_dirs

SLEEP = ["sleep", "1000"]
V1_FREEZER = Path("/sys/fs/cgroup/freezer")
V1_DEVICES = Path("/sys/fs/cgroup/devices")


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


# --- delete of a created container -----------------------------------------------------------

def test_delete_of_a_created_container_needs_no_force(rt, bundle, unique_id):
    b = bundle(SLEEP)
    rt("create", "--bundle", b, unique_id)
    pid = rt.state(unique_id)["pid"]
    assert _alive(pid) and find_cgroup_dirs(b.name)
    rt("delete", unique_id)
    rt.reap()
    assert not _alive(pid), "the waiting init still runs"
    assert not rt.exists(unique_id)
    assert find_cgroup_dirs(b.name) == []


def test_delete_of_a_running_container_still_needs_force(rt, bundle, unique_id):
    rt("run", "--detach", "--bundle", bundle(SLEEP), unique_id)
    rt.expect_error("delete", unique_id, mentions=["running", "--force"])
    assert rt.state(unique_id)["status"] == "running"
    rt("delete", "--force", unique_id)


# --- HOME --------------------------------------------------------------------------------------

def _no_home(cfg):
    cfg["process"]["env"] = [e for e in cfg["process"]["env"] if not e.startswith("HOME=")]


@pytest.mark.parametrize("uid, home", [(0, "/root"), (1000, "/tmp"), (4242, "/")],
                         ids=["root", "user-in-passwd", "user-not-in-passwd"])
def test_home_from_the_containers_passwd(run_in, uid, home):
    # busybox_bundle's /etc/passwd: root -> /root, user (1000) -> /tmp
    r = run_in(["sh", "-c", 'echo "HOME=$HOME"; id -u'], _no_home, process={"user": {"uid": uid, "gid": 0}})
    assert r.stdout.splitlines() == [f"HOME={home}", str(uid)]


def test_home_given_in_env_is_kept(run_in):
    r = run_in(["sh", "-c", 'echo "$HOME"'], lambda c: c["process"]["env"].append("HOME=/srv/mine"))
    assert r.stdout == "/srv/mine\n"


def test_home_for_exec(rt, bundle, unique_id, tmp_path):
    rt("run", "--detach", "--bundle", bundle(SLEEP, _no_home), unique_id)
    assert rt("exec", unique_id, "sh", "-c", 'echo "$HOME"').stdout == "/root\n"
    assert rt("exec", "--user", "1000:1000", unique_id, "sh", "-c", 'echo "$HOME"').stdout == "/tmp\n"
    assert rt("exec", "--env", "HOME=/x", unique_id, "sh", "-c", 'echo "$HOME"').stdout == "/x\n"
    proc = {"args": ["sh", "-c", 'echo "$HOME"'], "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 1000, "gid": 0}}
    (tmp_path / "p.json").write_text(json.dumps(proc))
    assert rt("exec", "--process", tmp_path / "p.json", unique_id).stdout == "/tmp\n"
    rt("delete", "--force", unique_id)


def test_home_passwd_is_read_inside_the_rootfs(rt, bundle, new_id, tmp_path):
    """/etc/passwd is the container's: a symlink out of the rootfs resolves inside it, and a
    fifo there (which would block a plain open) gives the default."""
    host_passwd = tmp_path / "passwd"
    host_passwd.write_text("root:x:0:0:root:/host-home:/bin/sh\n")
    b = bundle(["sh", "-c", 'echo "$HOME"'], _no_home)
    passwd = b / "rootfs/etc/passwd"
    passwd.unlink()
    passwd.symlink_to("../../../../../../../.." + str(host_passwd))
    assert rt("run", "--bundle", b, new_id()).stdout == "/\n", "the host's passwd was read"
    passwd.unlink()
    passwd.write_text("root:x:0:0:root:/root:/bin/sh\nlast:x:0:0:no newline:/home/last:/bin/sh")
    assert rt("run", "--bundle", b, new_id()).stdout == "/root\n"  # the first entry for uid 0
    passwd.write_text("user:x:1000:1000:no newline:/home/last:/bin/sh\nroot:x:0:0::/root-last:/bin/sh")
    assert rt("run", "--bundle", b, new_id()).stdout == "/root-last\n"  # a last line without newline
    passwd.unlink()
    os.mkfifo(passwd)
    assert rt("run", "--bundle", b, new_id(), timeout=15).stdout == "/\n"


# --- hooks without env -------------------------------------------------------------------------

def test_hook_without_env_gets_the_runtimes_environment(rt, bundle, unique_id, tmp_path):
    """conftest puts OCIRUN_TEST_CANARY in every runtime call's environment: a hook without
    `env` sees it, one with an empty `env` sees nothing, one with its own sees just that."""
    def hook(name, **kw):
        return {"path": "/bin/sh", "args": ["sh", "-c", f"env > {tmp_path / name}"], **kw}
    b = bundle(["true"], hooks={"prestart": [hook("none")], "poststart": [hook("empty", env=[])],
                                "poststop": [hook("own", env=["ONLY=this"])]})
    rt("run", "--bundle", b, unique_id)
    assert "OCIRUN_TEST_CANARY=host-env-must-not-leak" in (tmp_path / "none").read_text().splitlines()
    assert "OCIRUN_TEST_CANARY" not in (tmp_path / "empty").read_text()
    own = (tmp_path / "own").read_text().splitlines()
    assert "ONLY=this" in own and not any(ln.startswith("OCIRUN_TEST_CANARY=") for ln in own)


def test_start_container_hook_without_env_gets_the_process_env(run_in):
    """startContainer runs inside the container: never with the runtime's environment."""
    hook = {"path": "/bin/sh", "args": ["sh", "-c", "env > /tmp/hook-env"]}
    r = run_in(["sh", "-c", "cat /tmp/hook-env"], lambda c: c["process"]["env"].append("FROM_PROCESS=1"),
               hooks={"startContainer": [hook]}, root={"readonly": False})
    seen = r.stdout.splitlines()
    assert "FROM_PROCESS=1" in seen and not any(ln.startswith("OCIRUN_TEST_CANARY=") for ln in seen)


# --- a destination reached through a dangling symlink ---------------------------------------

def test_mount_destination_through_a_dangling_symlink(rt, bundle, new_id, tmp_path):
    outside = tmp_path / "outside"
    host_file = tmp_path / "host-file"
    host_file.write_text("bound file\n")

    def mounts(c):
        c["mounts"] += [{"destination": d, "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}
                        for d in ("/etc/not-existing", "/etc/escape", "/srv/link/target")]
        c["mounts"].append({"destination": "/etc/file-link", "type": "bind", "source": str(host_file),
                            "options": ["bind", "ro"]})
    b = bundle(["sh", "-c", "grep -E ' /tmp/somewhere | /srv/rel/target | " + str(outside) + " ' /proc/self/mounts;"
                " cat /srv/file-target"], mounts)
    etc = b / "rootfs/etc"
    (etc / "not-existing").symlink_to("/tmp/somewhere")
    (etc / "escape").symlink_to("../../../../../../../../../.." + str(outside))  # .. stops at the root
    (b / "rootfs/srv").mkdir()
    (b / "rootfs/srv/link").symlink_to("rel")  # relative, and the path goes on below it
    (etc / "file-link").symlink_to("/srv/file-target")  # a file's destination: made a file
    seen = rt("run", "--bundle", b, new_id()).stdout
    assert seen.endswith("bound file\n")
    assert " /tmp/somewhere tmpfs " in seen
    assert f" {outside} tmpfs " in seen
    assert " /srv/rel/target tmpfs " in seen
    assert not outside.exists(), "a directory was made outside the rootfs"
    assert (b / "rootfs" / str(outside).lstrip("/")).is_dir()


def test_symlink_loop_in_a_destination_is_an_error(rt, bundle, unique_id):
    b = bundle(["true"], lambda c: c["mounts"].append(
        {"destination": "/etc/loop/x", "type": "tmpfs", "source": "tmpfs"}))
    (b / "rootfs/etc/loop").symlink_to("/etc/loop2")
    (b / "rootfs/etc/loop2").symlink_to("/etc/loop")
    rt.expect_error("run", "--bundle", b, unique_id, mentions=["mounts[", "/etc/loop/x"])
    assert not rt.exists(unique_id)


# --- tmpcopyup ---------------------------------------------------------------------------------

def test_tmpcopyup_root_mode_and_owner(rt, bundle, new_id):
    def mounts(cfg):
        cfg["mounts"] += [
            {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
             "options": ["rw", "size=1m", "mode=1777", "tmpcopyup"]},
            {"destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "tmpcopyup"]},
        ]
    b = bundle(["sh", "-c", "stat -c '%a %u %g' /scratch /data; cat /data/f; grep -c ' /data tmpfs ' /proc/self/mounts"],
               mounts)
    data = b / "rootfs/data"
    data.mkdir()
    (data / "f").write_text("copied\n")
    os.chown(data, 5, 6)
    data.chmod(0o1733)
    out = rt("run", "--bundle", b, new_id()).stdout.splitlines()
    # /scratch was made for the mount: the tmpfs keeps its mode=; /data was the image's
    assert out == ["1777 0 0", "1733 5 6", "copied", "1"]


# --- capabilities that can't be mapped ---------------------------------------------------------

def test_unknown_capabilities_are_warned_about_and_ignored(rt, bundle, new_id):
    script = ["sh", "-c", "grep -E '^Cap(Bnd|Eff|Prm)' /proc/self/status"]
    plain = rt("run", "--bundle", bundle(script), new_id()).stdout

    def more(cfg):
        for kind in ("bounding", "effective", "permitted"):
            cfg["process"]["capabilities"][kind] += ["UNKNOWN_CAP", "CAP_UNKNOWN", "cap_chown"]
    r = rt("run", "--bundle", bundle(script, more), new_id())
    assert r.stdout == plain
    for name in ("UNKNOWN_CAP", "CAP_UNKNOWN", "cap_chown"):
        assert f"unknown capability {name!r} ignored" in r.stderr


# --- device rules in the listed order (cgroup v1) -------------------------------------------

@pytest.mark.skipif(not (V1_DEVICES / "devices.list").exists(), reason="no cgroup v1 devices controller")
def test_devices_list_shows_the_config_order(rt, bundle, unique_id):
    rules = [{"allow": False, "access": "rwm"},
             {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
             {"allow": True, "type": "b", "major": 8, "minor": 20, "access": "rw"},
             {"allow": True, "type": "b", "major": 10, "minor": 200, "access": "r"},
             {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}]
    b = bundle(["sh", "-c", "cat /dev/null && echo read-ok; echo x > /dev/null || echo write-denied; sleep 1000"],
               linux={"resources": {"devices": rules}})
    rt("run", "--detach", "--bundle", b, unique_id)
    d = next(d for d in find_cgroup_dirs(b.name) if d.startswith(str(V1_DEVICES) + "/"))
    listed = Path(d, "devices.list").read_text().splitlines()
    assert listed[:3] == ["c 10:229 rwm", "b 8:20 rw", "b 10:200 r"], listed
    # the defaults come after, less what the config took away from them
    assert "c 1:3 rm" in listed and "c 1:5 rwm" in listed and "c 136:* rwm" in listed
    for _ in range(100):
        if "write-denied" in rt.out(unique_id):
            break
        time.sleep(0.05)
    assert rt.out(unique_id).splitlines() == ["read-ok", "write-denied"]
    rt("delete", "--force", unique_id)


# --- the state poststart hooks see -------------------------------------------------------------

def test_poststart_hook_sees_running_and_the_pid(rt, bundle, unique_id, tmp_path):
    seen = tmp_path / "poststart"
    b = bundle(["true"], hooks={"poststart": [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {seen}"]}]})
    rt("create", "--bundle", b, unique_id)
    pid = rt.state(unique_id)["pid"]
    rt("start", unique_id)
    rt.wait_status(unique_id, "stopped")
    st = json.loads(seen.read_text())
    assert (st["status"], st["pid"], st["id"]) == ("running", pid, unique_id)
    rt("delete", unique_id)


def _no_pid_namespace(cfg):
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "pid"]


def test_kill_all_of_a_stopped_container_kills_what_is_left(rt, bundle, unique_id):
    # without a pid namespace the init can exit and leave its child running in the cgroup
    b = bundle(["sh", "-c", "sleep 1000 & exit 0"], _no_pid_namespace)
    rt("run", "--detach", "--bundle", b, unique_id)
    rt.wait_status(unique_id, "stopped")
    procs = next(Path(d, "cgroup.procs") for d in find_cgroup_dirs(b.name) if "/memory/" in d or "/unified/" in d)
    left = [int(p) for p in procs.read_text().split()]
    assert len(left) == 1 and _alive(left[0]), "the init's child should outlive it"
    rt.expect_error("kill", unique_id, "KILL", mentions=["stopped"])
    assert _alive(left[0])
    rt("kill", "--all", unique_id, "KILL")
    for _ in range(100):
        if not _alive(left[0]):
            break
        time.sleep(0.05)
    assert not _alive(left[0]), "kill --all left the init's child running"
    rt("delete", unique_id)


# --- cgroups the container made inside its own ------------------------------------------------

def _move(pid: int, d: Path) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / "cgroup.procs").write_text(str(pid))


def test_delete_removes_the_cgroups_below_the_containers(rt, bundle, unique_id):
    b = bundle(SLEEP)
    rt("run", "--detach", "--bundle", b, unique_id)
    pid = rt.state(unique_id)["pid"]
    dirs = find_cgroup_dirs(b.name)
    for d in dirs:
        (Path(d) / "empty-child").mkdir()
        if not Path(d, "cpuset.cpus").exists():  # a new v1 cpuset cgroup takes no task yet
            _move(pid, Path(d) / "inner" / "deeper")
    rt("delete", "--force", unique_id)
    assert find_cgroup_dirs(b.name) == []
    assert not _alive(pid)


@pytest.mark.skipif(not V1_FREEZER.is_dir(), reason="no cgroup v1 freezer")
def test_delete_force_thaws_a_frozen_child_cgroup(rt, bundle, unique_id):
    """On v1 a frozen task never handles SIGKILL: a child cgroup the container froze itself
    (its own cgroup stays THAWED, so the status is `running`) is thawed first."""
    b = bundle(SLEEP)
    rt("run", "--detach", "--bundle", b, unique_id)
    pid = rt.state(unique_id)["pid"]
    freezer = Path(next(d for d in find_cgroup_dirs(b.name) if d.startswith(str(V1_FREEZER) + "/")))
    _move(pid, freezer / "child")
    (freezer / "child/freezer.state").write_text("FROZEN")
    for _ in range(100):
        if (freezer / "child/freezer.state").read_text().strip() == "FROZEN":
            break
        time.sleep(0.01)
    assert rt.state(unique_id)["status"] == "running"
    t0 = time.monotonic()
    rt("delete", "--force", unique_id)
    assert time.monotonic() - t0 < 5
    assert find_cgroup_dirs(b.name) == [] and not _alive(pid)


@pytest.mark.skipif(not V1_FREEZER.is_dir(), reason="no cgroup v1 freezer")
def test_delete_that_cannot_remove_a_cgroup_fails_and_names_it(rt, bundle, unique_id):
    """A process in a cgroup below the container's that is held frozen by a cgroup that isn't
    the container's can't die: delete fails, names the cgroup, keeps the state, and works once
    the hold is gone. (The process is one of the test's: one in the container's pid namespace
    would keep its dying init from exiting, which fails delete earlier.)"""
    b = bundle(SLEEP)
    rt("run", "--detach", "--bundle", b, unique_id)
    memory = Path(next(d for d in find_cgroup_dirs(b.name) if "/memory/" in d))
    held = subprocess.Popen(["sleep", "1000"])
    hold = V1_FREEZER / f"{MARK}-hold-{unique_id}"
    try:
        _move(held.pid, memory / "inner")
        _move(held.pid, hold)
        (hold / "freezer.state").write_text("FROZEN")
        line = rt.expect_error("delete", "--force", unique_id, mentions=["still has processes", f"{b.name}/inner"])
        assert rt.exists(unique_id), f"state went with the failed delete: {line}"
    finally:
        if hold.is_dir():
            (hold / "freezer.state").write_text("THAWED")
    rt("delete", "--force", unique_id)
    rt.reap()  # the test's pytest reaps as a subreaper: the sleep may be gone already
    for _ in range(100):
        if not _alive(held.pid):
            break
        time.sleep(0.05)
    assert not _alive(held.pid)
    assert find_cgroup_dirs(b.name) == []
    hold.rmdir()


# --- what crun's suite showed besides ------------------------------------------------------------

def test_create_container_hook_runs_in_the_bundle_and_the_pid_namespace(rt, bundle, unique_id, tmp_path):
    """crun's test-createContainer-hook-after-mounts: the hook runs in the bundle directory
    and is itself in the container's pid namespace, so rootfs/proc/self (the container's
    procfs, mounted by then) resolves for it."""
    out = tmp_path / "seen"
    script = f"pwd >> {out}; readlink /proc/self/ns/pid >> {out}; test -e rootfs/proc/self && echo self >> {out}"
    b = bundle(SLEEP, hooks={"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", script]}],
                             "prestart": [{"path": "/bin/sh", "args": ["sh", "-c", f"pwd > {out}"]}]})
    rt("create", "--bundle", b, unique_id)
    pid = rt.state(unique_id)["pid"]
    seen = out.read_text().splitlines()
    assert seen == [str(b), str(b), os.readlink(f"/proc/{pid}/ns/pid"), "self"], seen
    rt("delete", unique_id)


def test_tmpfs_over_a_directory_takes_its_mode(rt, bundle, new_id):
    """As runc and crun: a tmpfs over a directory of the image takes its mode, read-only ones
    too; a mode= in the options wins."""
    def mounts(cfg):
        cfg["mounts"] += [{"destination": "/t712", "type": "tmpfs", "source": "tmpfs", "options": ["ro"]},
                          {"destination": "/tmode", "type": "tmpfs", "source": "tmpfs", "options": ["mode=750"]}]
    b = bundle(["stat", "-c", "%a", "/t712", "/tmode"], mounts)
    for name in ("t712", "tmode"):
        (b / "rootfs" / name).mkdir()
        (b / "rootfs" / name).chmod(0o712)
    assert rt("run", "--bundle", b, new_id()).stdout.split() == ["712", "750"]


def test_user_namespace_without_mappings_maps_the_runtimes_ids(run_in):
    """As crun: a new user namespace with no mappings maps container 0 to ocirun's own ids."""
    def userns(cfg):
        cfg["linux"]["namespaces"].append({"type": "user"})
        for m in cfg["mounts"]:  # gid 5 (tty) has no id in the namespace
            m["options"] = [o for o in m.get("options", []) if o != "gid=5"]
    r = run_in(["cat", "/proc/self/uid_map", "/proc/self/gid_map"], userns)
    assert [ln.split() for ln in r.stdout.splitlines()] == [["0", "0", "1"], ["0", "0", "1"]]


def test_domainname_and_a_different_sysctl_is_refused(rt, bundle, unique_id, run_in):
    rt.expect_error("run", "--bundle", bundle(["true"], domainname="foo", linux={"sysctl": {"kernel.domainname": "bar"}}),
                    unique_id, mentions=["linux.sysctl.kernel.domainname", "'bar'"])
    assert not rt.exists(unique_id)
    r = run_in(["cat", "/proc/sys/kernel/domainname"], domainname="foo", linux={"sysctl": {"kernel.domainname": "foo"}})
    assert r.stdout == "foo\n"


def test_io_priority_without_a_level(run_in):
    r = run_in(["sh", "-c", "cat /proc/self/io 2>/dev/null; ionice 2>/dev/null || echo no-ionice"],
               process={"ioPriority": {"class": "IOPRIO_CLASS_IDLE"}})
    assert r.returncode == 0


def test_run_keep_leaves_the_stopped_container(rt, bundle, unique_id):
    b = bundle(["sh", "-c", "exit 3"])
    r = rt("run", "--keep", "--bundle", b, unique_id, check=False)
    assert r.returncode == 3
    assert rt.state(unique_id)["status"] == "stopped"
    assert find_cgroup_dirs(b.name), "the kept container's cgroup went already"
    rt("delete", unique_id)
    assert find_cgroup_dirs(b.name) == []


def test_device_path_with_a_trailing_slash(run_in):
    r = run_in(["stat", "-c", "%t:%T", "/dev/mydev"],
               linux={"devices": [{"path": "/dev/mydev/", "type": "c", "major": 1, "minor": 3}]})
    assert r.stdout == "1:3\n"


STAT_IDS = "cut -d' ' -f1,5,6 /proc/$$/stat"  # the shell's pid, process group and session


def test_init_and_exec_lead_a_session_of_their_own(rt, bundle, unique_id):
    """As runc's: without a terminal too, the init and each exec'd process start a new session.
    Otherwise ^C on the caller's terminal reaches the container's process group directly, and
    getpgrp() inside reads 0 (a group leader outside the container's pid namespace)."""
    rt("run", "--detach", "--bundle", bundle(["sh", "-c", f"{STAT_IDS} >/tmp/ids; exec sleep 1000"],
                                         root={"readonly": False}), unique_id)
    init = rt("exec", unique_id, "sh", "-c", "while [ ! -s /tmp/ids ]; do sleep 0.05; done; cat /tmp/ids").stdout
    assert init.split() == ["1", "1", "1"], init
    pid, pgrp, session = rt("exec", unique_id, "sh", "-c", STAT_IDS).stdout.split()
    assert pid == pgrp == session, (pid, pgrp, session)
    rt("delete", "--force", unique_id)
