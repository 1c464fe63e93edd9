"""The container process as it sees itself: namespaces, identity, capabilities, limits, fds."""
import os

import pytest

CAPS = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
]


def capmask(names) -> int:
    return sum(1 << CAPS.index(n.removeprefix("CAP_")) for n in names)


def status_of(text: str) -> dict:
    """Parse /proc/PID/status text into {key: value}."""
    return {k: v.strip() for k, _, v in (ln.partition(":") for ln in text.splitlines()) if _}


def caps_seen(status: dict) -> dict:
    return {k: int(status[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}


def test_pid_1_in_a_new_pid_namespace(run_in):
    out = run_in(["sh", "-c", "echo $$; grep NSpid /proc/self/status"]).stdout.splitlines()
    assert out[0] == "1"
    assert len(out[1].split()) == 2  # NSpid: one level, seen from the container's own /proc


def test_requested_namespaces_are_new_and_others_shared(rt, bundle, unique_id):
    rt("create", "--bundle", bundle(["sleep", "1000"]), unique_id)
    pid = rt.state(unique_id)["pid"]
    ns = lambda p, n: os.readlink(f"/proc/{p}/ns/{n}")  # noqa: E731
    for n in ("pid", "mnt", "net", "ipc", "uts"):
        assert ns(pid, n) != ns("self", n), f"{n} namespace not new"
    for n in ("user", "cgroup"):  # not asked for
        assert ns(pid, n) == ns("self", n), f"{n} namespace new but not asked for"
    rt("delete", "--force", unique_id)


def test_joins_an_existing_namespace_by_path(rt, bundle, new_id):
    a, b = new_id(), new_id()
    rt("run", "--detach", "--bundle", bundle(["sleep", "1000"], hostname="first"), a)
    pid = rt.state(a)["pid"]

    def join_uts(cfg):
        for ns in cfg["linux"]["namespaces"]:
            if ns["type"] == "uts":
                ns["path"] = f"/proc/{pid}/ns/uts"
        cfg.pop("hostname")  # a joined uts namespace keeps its name
    r = rt("run", "--bundle", bundle(["hostname"], join_uts), b)
    assert r.stdout.strip() == "first"
    rt("delete", "--force", a)


def test_hostname(run_in):
    assert run_in(["hostname"], hostname="box1").stdout == "box1\n"


def test_domainname(run_in):
    # runc 1.1.5 ignores `domainname` (prints "(none)"); the issue asks for it.
    r = run_in(["sh", "-c", "hostname; cat /proc/sys/kernel/domainname"],
               hostname="box1", domainname="example.test")
    assert r.stdout.split() == ["box1", "example.test"]


def test_new_network_namespace_has_loopback_up(run_in):
    r = run_in(["sh", "-c", "ip -o link show; ip -o addr show lo"])
    links = [ln for ln in r.stdout.splitlines() if ": lo:" in ln or ": lo@" in ln]
    assert links and "UP" in links[0].split("<")[1].split(">")[0].split(","), r.stdout
    assert "127.0.0.1" in r.stdout
    assert all(": lo" in ln for ln in r.stdout.splitlines() if " link/" in ln)  # nothing but lo


def _userns(uid_maps, gid_maps=None):
    return {
        "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "user")],
        "uidMappings": [dict(zip(("containerID", "hostID", "size"), m)) for m in uid_maps],
        "gidMappings": [dict(zip(("containerID", "hostID", "size"), m)) for m in (gid_maps or uid_maps)],
    }


def test_user_namespace_uid_and_gid_map(run_in):
    r = run_in(["sh", "-c", "cat /proc/self/uid_map; echo --; cat /proc/self/gid_map; echo --; id -u; "
                "stat -c %u /bin/busybox"],
               linux=_userns([(0, 100000, 65536)]))
    uid_map, gid_map, rest = r.stdout.split("--\n")
    assert [ln.split() for ln in uid_map.splitlines()] == [["0", "100000", "65536"]]
    assert [ln.split() for ln in gid_map.splitlines()] == [["0", "100000", "65536"]]
    # root inside; the rootfs, owned by host root, is unmapped and shows as the overflow uid
    assert rest.split() == ["0", "65534"]


def test_user_namespace_several_ranges(run_in):
    maps = [(0, 100000, 1000), (1000, 200000, 10)]
    r = run_in(["sh", "-c", "cat /proc/self/uid_map; echo --; cat /proc/self/gid_map"],
               linux=_userns(maps, [(0, 300000, 1000), (1000, 400000, 10)]))
    uid_map, gid_map = r.stdout.split("--\n")
    assert [ln.split() for ln in uid_map.splitlines()] == [["0", "100000", "1000"], ["1000", "200000", "10"]]
    assert [ln.split() for ln in gid_map.splitlines()] == [["0", "300000", "1000"], ["1000", "400000", "10"]]


def test_user_namespace_host_view(rt, bundle, unique_id):
    rt("run", "--detach", "--bundle", bundle(["sleep", "1000"], linux=_userns([(0, 100000, 65536)])), unique_id)
    st = status_of(open(f"/proc/{rt.state(unique_id)['pid']}/status").read())
    assert st["Uid"].split() == ["100000"] * 4
    assert st["Gid"].split() == ["100000"] * 4
    rt("delete", "--force", unique_id)


def test_default_capabilities(run_in):
    caps = caps_seen(status_of(run_in(["cat", "/proc/self/status"]).stdout))
    three = capmask(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"])
    # The kernel keeps ambient within permitted & inheritable: with no inheritable set (runc's
    # default config) the ambient set asked for cannot be raised, and no runtime shows it.
    assert caps == {"CapInh": 0, "CapPrm": three, "CapEff": three, "CapBnd": three, "CapAmb": 0}


def test_capabilities_root(run_in):
    # For uid 0, execve makes permitted = bounding | inheritable, so those must agree in the config.
    a = ["CAP_CHOWN", "CAP_KILL", "CAP_SETUID", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT"]
    b = ["CAP_KILL", "CAP_SETUID"]
    caps = {"bounding": a, "effective": a, "permitted": a, "inheritable": b, "ambient": b}
    seen = caps_seen(status_of(run_in(["cat", "/proc/self/status"], process={"capabilities": caps}).stdout))
    assert seen == {"CapBnd": capmask(a), "CapPrm": capmask(a), "CapEff": capmask(a),
                    "CapInh": capmask(b), "CapAmb": capmask(b)}


def test_capabilities_non_root(run_in):
    # For another uid, execve leaves permitted = effective = ambient.
    a = ["CAP_CHOWN", "CAP_KILL", "CAP_SETUID", "CAP_NET_RAW"]
    b = ["CAP_KILL", "CAP_NET_RAW"]
    caps = {"bounding": a, "effective": b, "permitted": b, "inheritable": b, "ambient": b}
    seen = caps_seen(status_of(run_in(["cat", "/proc/self/status"], process={
        "capabilities": caps, "user": {"uid": 1000, "gid": 1000}}).stdout))
    assert seen == {"CapBnd": capmask(a), "CapPrm": capmask(b), "CapEff": capmask(b),
                    "CapInh": capmask(b), "CapAmb": capmask(b)}


def test_no_capabilities(run_in):
    none = dict.fromkeys(("bounding", "effective", "permitted", "inheritable", "ambient"), [])
    seen = caps_seen(status_of(run_in(["cat", "/proc/self/status"], process={"capabilities": none}).stdout))
    assert seen == dict.fromkeys(seen, 0)


def test_rlimits(run_in):
    hard = os.sysconf("SC_OPEN_MAX")  # our soft limit; ask for less than the current hard limit
    limits = [{"type": "RLIMIT_NOFILE", "soft": 200, "hard": min(1000, hard)},
              {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096}]
    r = run_in(["sh", "-c", "ulimit -n; ulimit -Hn; cat /proc/self/limits"], process={"rlimits": limits})
    lines = r.stdout.splitlines()
    assert lines[:2] == ["200", str(min(1000, hard))]
    table = {ln[:26].strip(): ln[26:].split() for ln in lines[2:]}
    assert table["Max open files"][:2] == ["200", str(min(1000, hard))]
    assert table["Max core file size"][:2] == ["0", "4096"]


def test_cwd(run_in):
    assert run_in(["pwd"], process={"cwd": "/tmp"}).stdout == "/tmp\n"


def test_env_is_exactly_the_config(run_in):
    env = ["PATH=/usr/bin:/bin", "FOO=bar", "WITH_SPACE=a b", "EMPTY=", "HOME=/root"]
    r = run_in(["env"], process={"env": env})
    seen = r.stdout.splitlines()
    assert set(env) <= set(seen)
    assert not any(ln.startswith("OCIRUN_TEST_CANARY=") for ln in seen), "the runtime's env leaked in"
    # runc adds nothing but HOME (when missing); allow that, nothing else
    assert set(seen) - set(env) <= {"HOME=/root"}


@pytest.mark.parametrize("umask, shown", [(0o027, "0027"), (0o077, "0077"), (0, "0000")])
def test_umask(run_in, umask, shown):
    assert run_in(["sh", "-c", "umask"], process={"user": {"uid": 0, "gid": 0, "umask": umask}}).stdout == shown + "\n"


def test_user_uid_gid_additional_gids(run_in):
    r = run_in(["sh", "-c", "cat /proc/self/status; id -u; id -g"],
               process={"user": {"uid": 1000, "gid": 1000, "additionalGids": [5, 1001]}})
    st = status_of(r.stdout)
    assert st["Uid"].split() == ["1000"] * 4
    assert st["Gid"].split() == ["1000"] * 4
    groups = set(st["Groups"].split())
    assert {"5", "1001"} <= groups <= {"5", "1001", "1000"}
    assert r.stdout.splitlines()[-2:] == ["1000", "1000"]


def test_user_without_additional_gids_has_no_host_groups(run_in):
    st = status_of(run_in(["cat", "/proc/self/status"], process={"user": {"uid": 1000, "gid": 1000}}).stdout)
    assert set(st["Groups"].split()) <= {"1000"}


@pytest.mark.parametrize("nnp", [True, False])
def test_no_new_privileges(run_in, nnp):
    st = status_of(run_in(["cat", "/proc/self/status"], process={"noNewPrivileges": nnp}).stdout)
    assert st["NoNewPrivs"] == ("1" if nnp else "0")


def test_oom_score_adj(run_in):
    assert run_in(["cat", "/proc/self/oom_score_adj"], process={"oomScoreAdj": 567}).stdout == "567\n"


def test_args_reach_the_process_unchanged(run_in):
    r = run_in(["sh", "-c", 'for a in "$@"; do echo "[$a]"; done', "sh", "a b", "", "*", "$HOME", "--x"])
    assert r.stdout.splitlines() == ["[a b]", "[]", "[*]", "[$HOME]", "[--x]"]


def test_executable_found_through_path(run_in):
    r = run_in(["busybox", "echo", "via PATH"], process={"env": ["PATH=/usr/sbin:/bin"]})
    assert r.stdout == "via PATH\n"


LIST_FDS = 'for f in /proc/self/fd/*; do echo "${f##*/} $(readlink $f)"; done'


def _fds_seen(text: str) -> dict:
    return {int(ln.split(" ", 1)[0]): ln.split(" ", 1)[1] for ln in text.splitlines() if ln[:1].isdigit()}


def test_preserve_fds(rt, bundle, unique_id, tmp_path):
    f3, f4 = tmp_path / "fd3.txt", tmp_path / "fd4.txt"
    with open(f3, "w") as a, open(f4, "w") as b:
        r = rt("run", "--preserve-fds", "2", "--bundle",
               bundle(["sh", "-c", LIST_FDS + "; echo three >&3; echo four >&4"]), unique_id, fds={3: a, 4: b})
    assert f3.read_text() == "three\n" and f4.read_text() == "four\n"
    fds = _fds_seen(r.stdout)
    assert fds[3] == str(f3) and fds[4] == str(f4)
    # 0-2, the two passed, and the directory the shell's glob had open at the time; nothing else
    assert len(set(fds) - {0, 1, 2, 3, 4}) <= 1


def test_other_fds_are_not_passed(rt, bundle, unique_id, tmp_path):
    f3 = tmp_path / "not-for-the-container.txt"
    with open(f3, "w") as a:
        r = rt("run", "--bundle", bundle(["sh", "-c", LIST_FDS]), unique_id, fds={3: a, 7: a})
    fds = _fds_seen(r.stdout)
    assert str(f3) not in fds.values()
    assert len(set(fds) - {0, 1, 2}) <= 1  # the glob's directory


def test_init_is_not_a_child_of_create(rt, bundle, unique_id):
    """Once create exits, the init belongs to the caller's subreaper (this pytest process)."""
    rt("create", "--bundle", bundle(["sleep", "1000"]), unique_id)
    pid = rt.state(unique_id)["pid"]
    ppid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
    assert ppid == os.getpid()
    rt("delete", "--force", unique_id)
