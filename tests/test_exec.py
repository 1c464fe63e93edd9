"""`exec`: a new process in a running container, seen from inside and from the host.

Every test starts its own container (`sleep`), execs into it, and deletes it; what the process
sees of itself (/proc/self/...) is compared with the host's view of the container's init.
"""
import json
import os
import time

import pytest

from ocirun import attrs

NS_LIST = 'for f in /proc/self/ns/*; do echo "${f##*/} $(readlink $f)"; done'
ALL_NAMESPACES = ("pid", "network", "ipc", "uts", "mount", "cgroup")
USERNS = {
    "namespaces": [{"type": t} for t in ALL_NAMESPACES + ("user",)],
    "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
    "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
}


def status_of(text: str) -> dict:
    return {k: v.strip() for k, _, v in (ln.partition(":") for ln in text.splitlines()) if _}


def cap_bit(name: str) -> int:
    from test_process import CAPS

    return 1 << CAPS.index(name.removeprefix("CAP_"))


@pytest.fixture
def running(rt, bundle, new_id):
    """running(**overrides) -> (id, host pid of the init) of a started `sleep` container; it is
    deleted after the test (before the leak guard looks)."""
    made = []

    def make(args=("sleep", "1000"), **overrides):
        cid = new_id()
        rt("run", "--detach", "--bundle", bundle(list(args), **overrides), cid)
        made.append(cid)
        return cid, rt.state(cid)["pid"]
    yield make
    for cid in made:
        rt("delete", "--force", cid, check=False)


def ns_of(pid) -> dict:
    return {n: os.readlink(f"/proc/{pid}/ns/{n}") for n in os.listdir(f"/proc/{pid}/ns")}


# --- namespaces and cgroup --------------------------------------------------------------------

@pytest.mark.parametrize("linux", [
    {"namespaces": [{"type": t} for t in ALL_NAMESPACES]},
    USERNS,
], ids=["no-userns", "userns"])
def test_exec_joins_every_namespace_of_the_init(rt, running, linux):
    cid, pid = running(linux=linux)
    inside = dict(ln.split(" ", 1) for ln in rt("exec", cid, "sh", "-c", NS_LIST).stdout.splitlines())
    host_view = ns_of(pid)
    assert inside == host_view
    mine = ns_of("self")
    expect_new = {"pid", "mnt", "net", "uts", "ipc", "cgroup"} | ({"user"} if "uidMappings" in linux else set())
    for n in expect_new:
        assert host_view[n] != mine[n], f"{n}: the container's namespace is the host's; the test proves nothing"


def test_exec_is_in_the_containers_pid_namespace(rt, running):
    cid, pid = running()
    # In its own pid namespace the init is 1; the exec'd shell is another pid of the same namespace.
    out = rt("exec", cid, "sh", "-c", "echo $$; cat /proc/1/cmdline | tr '\\0' ' '; echo; "
             "grep NSpid /proc/self/status").stdout.splitlines()
    assert int(out[0]) > 1
    assert out[1].strip() == "sleep 1000"
    assert len(out[2].split()) == 2  # NSpid: one level as the container's own /proc shows it


def test_exec_joins_the_cgroup_of_the_init(rt, running):
    cid, pid = running()
    out = rt("exec", cid, "sh", "-c", "cat /proc/self/cgroup; echo --; cat /proc/1/cgroup").stdout
    mine, init_inside = out.split("--\n")
    assert mine == init_inside
    assert mine == open(f"/proc/{pid}/cgroup").read()
    assert mine != open("/proc/self/cgroup").read()


def test_exec_with_a_cgroup_namespace_sees_its_own_root(rt, running):
    cid, _ = running(linux={"namespaces": [{"type": t} for t in ALL_NAMESPACES]})
    out = rt("exec", cid, "cat", "/proc/self/cgroup").stdout
    assert out.splitlines() and all(ln.endswith(":/") for ln in out.splitlines()), out


# --- process settings ---------------------------------------------------------------------------

def test_exec_user_and_additional_gids(rt, running):
    cid, _ = running()
    out = rt("exec", "--user", "1000:1000", "--additional-gids", "10", "--additional-gids", "20", cid,
             "sh", "-c", "id; grep -E '^(Uid|Gid|Groups):' /proc/self/status").stdout
    lines = out.splitlines()
    assert lines[0] == "uid=1000(user) gid=1000(user) groups=10,20"
    st = status_of("\n".join(lines[1:]))
    assert st["Uid"].split() == ["1000"] * 4
    assert st["Gid"].split() == ["1000"] * 4
    assert st["Groups"].split() == ["10", "20"]


def test_exec_user_without_gid_keeps_the_configs_gid(rt, running):
    # runc: --user UID alone changes the uid; the gid stays the config's
    cid, _ = running(process={"user": {"uid": 0, "gid": 5}})
    assert rt("exec", "-u", "1000", cid, "sh", "-c", "id -u; id -g").stdout.split() == ["1000", "5"]
    assert rt("exec", "-u", "1000:1000", cid, "sh", "-c", "id -u; id -g").stdout.split() == ["1000", "1000"]


def test_exec_default_user_is_the_configs(rt, running):
    cid, _ = running(process={"user": {"uid": 1000, "gid": 1000}})
    assert rt("exec", cid, "sh", "-c", "id -u; id -g").stdout.split() == ["1000", "1000"]


def test_exec_cap_is_added(rt, running):
    cid, _ = running()
    base = status_of(rt("exec", cid, "cat", "/proc/self/status").stdout)
    st = status_of(rt("exec", "--cap", "CAP_SYS_ADMIN", "--cap", "CAP_NET_RAW", cid,
                      "cat", "/proc/self/status").stdout)
    added = cap_bit("CAP_SYS_ADMIN") | cap_bit("CAP_NET_RAW")
    for k in ("CapEff", "CapPrm", "CapBnd"):
        assert int(base[k], 16) & added == 0, f"{k}: the config already has the caps; the test proves nothing"
        assert int(st[k], 16) == int(base[k], 16) | added, k


def test_exec_cap_takes_effect(rt, running):
    # CAP_SYS_ADMIN is what sethostname needs inside the container's uts namespace.
    cid, _ = running()
    r = rt("exec", cid, "hostname", "nope", check=False)
    assert r.returncode != 0
    rt("exec", "--cap", "CAP_SYS_ADMIN", cid, "hostname", "changed")
    assert rt("exec", cid, "hostname").stdout.strip() == "changed"


def test_exec_env(rt, running):
    cid, _ = running()
    out = rt("exec", "--env", "FOO=bar", "-e", "EMPTY=", cid, "env").stdout.splitlines()
    assert "FOO=bar" in out
    assert "EMPTY=" in out
    assert "TERM=xterm" in out  # the config's env is kept
    assert not any(ln.startswith("OCIRUN_TEST_CANARY") for ln in out), "the caller's env leaked in"


def test_exec_env_replaces_the_configs_variable(rt, running):
    """--env PATH=... replaces the config's PATH instead of following it, where the first one
    would win (crun's exec-add-environment_variable)."""
    cid, _ = running()
    out = rt("exec", "--env", "PATH=/usr/bin:/bin", "--env", "TERM=dumb", cid, "env").stdout.splitlines()
    assert [ln for ln in out if ln.startswith(("PATH=", "TERM="))] == ["PATH=/usr/bin:/bin", "TERM=dumb"], out


def test_exec_cwd(rt, running):
    cid, _ = running()
    assert rt("exec", "--cwd", "/tmp", cid, "pwd").stdout == "/tmp\n"
    assert rt("exec", cid, "pwd").stdout == "/\n"  # the config's cwd


def test_exec_cwd_that_does_not_exist(rt, running):
    cid, _ = running()
    rt.expect_error("exec", "--cwd", "/no/such/dir", cid, "pwd", mentions=["/no/such/dir"])
    assert rt.state(cid)["status"] == "running"


def test_exec_no_new_privs(rt, running):
    cid, _ = running(process={"noNewPrivileges": False})
    assert status_of(rt("exec", cid, "cat", "/proc/self/status").stdout)["NoNewPrivs"] == "0"
    assert status_of(rt("exec", "--no-new-privs", cid, "cat", "/proc/self/status").stdout)["NoNewPrivs"] == "1"


def test_exec_flags_after_the_id_are_the_commands(rt, running):
    cid, _ = running()
    assert rt("exec", cid, "echo", "--env", "x").stdout == "--env x\n"


# --- --process FILE -------------------------------------------------------------------------------

def test_exec_process_file(rt, running, tmp_path):
    cid, _ = running()
    proc = {
        "terminal": False,
        "user": {"uid": 1000, "gid": 1000, "additionalGids": [5]},
        "args": ["sh", "-c", "id; pwd; echo $GREETING; grep NoNewPrivs /proc/self/status"],
        "env": ["PATH=/bin:/usr/bin", "GREETING=hello from the process file"],
        "cwd": "/tmp",
        "noNewPrivileges": True,
    }
    f = tmp_path / "process.json"
    f.write_text(json.dumps(proc))
    out = rt("exec", "--process", f, cid).stdout.splitlines()
    assert out[0] == "uid=1000(user) gid=1000(user) groups=5(tty)"
    assert out[1:3] == ["/tmp", "hello from the process file"]
    assert out[3].split() == ["NoNewPrivs:", "1"]


def test_exec_process_file_with_capabilities(rt, running, tmp_path):
    cid, _ = running()
    caps = ["CAP_KILL", "CAP_SYS_ADMIN"]
    proc = {"args": ["cat", "/proc/self/status"], "cwd": "/", "user": {"uid": 0, "gid": 0},
            "capabilities": {k: caps for k in ("bounding", "effective", "permitted")}}
    f = tmp_path / "p.json"
    f.write_text(json.dumps(proc))
    st = status_of(rt("exec", "-p", f, cid).stdout)
    want = cap_bit("CAP_KILL") | cap_bit("CAP_SYS_ADMIN")
    assert int(st["CapEff"], 16) == want and int(st["CapBnd"], 16) == want


@pytest.mark.parametrize("text, mention", [
    ("{", "invalid json"),
    ('{"args": ["true"], "cwd": "/"', "invalid json"),
    ('{"args": "true", "cwd": "/"}', "args"),
    ('{"args": ["true"]}', "cwd"),
    ('{"args": ["true"], "cwd": "/", "user": {"uid": "root", "gid": 0}}', "uid"),
    ('["true"]', ("object", "process")),
], ids=["truncated", "unclosed", "args-not-array", "no-cwd", "uid-string", "not-an-object"])
def test_exec_bad_process_file(rt, running, tmp_path, text, mention):
    cid, pid = running()
    f = tmp_path / "bad-process.json"
    f.write_text(text)
    line = rt.expect_error("exec", "--process", f, cid, mentions=[str(f), mention])
    assert "Traceback" not in line
    assert rt.state(cid)["status"] == "running" and rt.state(cid)["pid"] == pid


def test_exec_process_file_missing(rt, running, tmp_path):
    cid, _ = running()
    f = tmp_path / "nope.json"
    rt.expect_error("exec", "--process", f, cid, mentions=[str(f), ("no such file", "not found")])


def test_exec_without_command(rt, running):
    cid, _ = running()
    rt.expect_error("exec", cid, mentions=[("--process", "command")])


def test_exec_missing_executable(rt, running):
    cid, _ = running()
    rt.expect_error("exec", cid, "no-such-program", mentions=["no-such-program"])
    assert rt.state(cid)["status"] == "running"


# --- exit status ----------------------------------------------------------------------------------

@pytest.mark.parametrize("code", [0, 1, 7, 255])
def test_exec_exit_code(rt, running, code):
    cid, _ = running()
    assert rt("exec", cid, "sh", "-c", f"exit {code}", check=False).returncode == code


@pytest.mark.parametrize("sig, code", [("KILL", 137), ("TERM", 143), ("USR1", 138)])
def test_exec_killed_by_a_signal(rt, running, sig, code):
    cid, _ = running()
    r = rt("exec", cid, "sh", "-c", f"kill -{sig} $$; sleep 5", check=False)
    assert r.returncode == code
    assert rt.state(cid)["status"] == "running"  # only the exec'd process died


def test_exec_stdin_and_stdout(rt, running):
    cid, _ = running()
    assert rt("exec", cid, "tr", "a-z", "A-Z", input="piped in\n").stdout == "PIPED IN\n"


# --- --detach and --pid-file ----------------------------------------------------------------------

def test_exec_detach_pid_file(rt, running, tmp_path):
    cid, init = running()
    pid_file = tmp_path / "exec.pid"
    t0 = time.monotonic()
    rt("exec", "--detach", "--pid-file", pid_file, cid, "sleep", "1000", timeout=10)
    assert time.monotonic() - t0 < 5, "exec --detach waited for the process"
    text = pid_file.read_text()
    assert text.strip().isdigit()
    pid = int(text)
    st = status_of(open(f"/proc/{pid}/status").read())
    assert st["State"][0] in "SR"
    assert open(f"/proc/{pid}/cmdline").read() == "sleep\x001000\x00"
    assert ns_of(pid) == ns_of(init)
    assert open(f"/proc/{pid}/cgroup").read() == open(f"/proc/{init}/cgroup").read()
    nspid = st["NSpid"].split()
    assert len(nspid) == 2 and nspid[0] == str(pid)
    # the container sees the same process under its namespace pid
    inside = rt("exec", cid, "cat", f"/proc/{nspid[1]}/cmdline").stdout
    assert inside == "sleep\x001000\x00"
    assert not list(tmp_path.glob(".exec.pid*")), "a temporary pid file was left behind"
    # Once `exec --detach` has exited, the process is ours (the subreaper's), as it would be a
    # shim's or conmon's: reap it, or the dying init would wait for it.
    os.kill(pid, 9)
    assert os.waitpid(pid, 0)[0] == pid
    assert rt.state(cid)["status"] == "running"


def test_exec_detach_returns_at_once_and_process_runs(rt, running, tmp_path):
    cid, _ = running()
    t0 = time.monotonic()
    rt("exec", "-d", cid, "sh", "-c", "sleep 0.5; echo done > /dev/shm/marker")
    assert time.monotonic() - t0 < 0.5, "exec --detach waited for the process"
    deadline = time.monotonic() + 5
    while rt("exec", cid, "cat", "/dev/shm/marker", check=False).stdout != "done\n":
        assert time.monotonic() < deadline, "the detached process never ran"
        time.sleep(0.05)


# --- fds -----------------------------------------------------------------------------------------

LIST_FDS = "ls /proc/self/fd | tr '\\n' ' '"


def test_exec_sees_no_host_fd(rt, running, tmp_path):
    cid, _ = running()
    extra = open(tmp_path / "host-secret", "w")
    d = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        out = rt("exec", cid, "sh", "-c", "ls /proc/self/fd; echo --; ls -l /proc/self/fd/; echo --; "
                 "readlink /proc/self/exe", fds={3: extra, 5: d, 9: extra}).stdout
    finally:
        extra.close()
        os.close(d)
    names, long, exe = out.split("--\n")
    # 0, 1, 2, and the directory fd `ls` opened to list /proc/self/fd
    assert sorted(int(n) for n in names.split()) == [0, 1, 2, 3]
    assert "host-secret" not in long
    assert exe.strip() == "/bin/busybox"


def test_exec_preserve_fds(rt, running, tmp_path):
    cid, _ = running()
    a, b = tmp_path / "three", tmp_path / "four"
    with open(a, "w") as fa, open(b, "w") as fb:
        r = rt("exec", "--preserve-fds", "2", cid, "sh", "-c",
               f"{LIST_FDS}; echo to-three >&3; echo to-four >&4", fds={3: fa, 4: fb, 5: fa})
    assert sorted(int(n) for n in r.stdout.split()) == [0, 1, 2, 3, 4, 5]  # 5: ls's own dir fd
    assert a.read_text() == "to-three\n"
    assert b.read_text() == "to-four\n"


def test_exec_preserve_fds_not_a_number(rt, running):
    cid, _ = running()
    rt.expect_error("exec", "--preserve-fds", "two", cid, "true", mentions=["--preserve-fds"])


# --- containers that are not running ----------------------------------------------------------

def test_exec_into_unknown_container(rt, unique_id):
    rt.expect_error("exec", unique_id, "true", mentions=[unique_id, "does not exist"])


def test_exec_into_created_container(rt, bundle, unique_id):
    rt("create", "--bundle", bundle(["sleep", "1000"]), unique_id)
    rt.expect_error("exec", unique_id, "true", mentions=[unique_id, "created"])
    assert rt.state(unique_id)["status"] == "created"
    rt("delete", "--force", unique_id)


def test_exec_into_stopped_container(rt, bundle, unique_id):
    rt("run", "--detach", "--bundle", bundle(["true"]), unique_id)
    rt.wait_status(unique_id, "stopped")
    rt.expect_error("exec", unique_id, "true", mentions=[unique_id, "stopped"])
    rt("delete", unique_id)


@pytest.mark.skipif(attrs.apparmor_enabled() or attrs.selinux_enabled(), reason="an LSM is on here (tests/guest)")
def test_exec_lsm_flags_without_the_lsm(rt, running):
    """--apparmor and --process-label reach the process's own check: without AppArmor, one line
    naming the field, and no process left; "unconfined" asks for nothing and runs. A label
    without SELinux is a warning, as crun has it."""
    cid, _ = running()
    rt.expect_error("exec", "--apparmor", "p", cid, "true", mentions=["process.apparmorProfile", "AppArmor"])
    r = rt("exec", "--process-label", "x", cid, "echo", "ran")
    assert r.stdout == "ran\n" and "process.selinuxLabel: SELinux is not enabled" in r.stderr
    rt("exec", "--apparmor", "unconfined", cid, "true")
    assert rt("ps", cid).stdout.count("\n") == 2  # the header and the init


def test_many_execs_leave_nothing(rt, running):
    cid, pid = running()
    for i in range(10):
        assert rt("exec", cid, "echo", str(i)).stdout == f"{i}\n"
    procs = rt("exec", cid, "sh", "-c", "echo /proc/[0-9]*").stdout.split()
    assert "/proc/1" in procs
    assert len(procs) == 2, procs  # the init and this sh: no exec'd process lingers
