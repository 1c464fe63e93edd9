"""Containers without a mount namespace of their own.

A config without a `mount` namespace shares the runtime's mount namespace; one with a `path`
shares the joined namespace. Either way ocirun leaves that namespace as it was: the rootfs is
set up in a private copy of it, and the process chroots into a detached copy of the finished
tree (docs/conformance.md, "Without a mount namespace of its own"). The tests look from inside
(namespace inode, the rootfs, the configured mounts) and from the host (no mount added, none
left after delete, / unchanged).
"""
import os
import subprocess
import time

import pytest
from test_terminal import console, short_dir  # noqa: F401 (fixtures)

MARKER = "/in-the-rootfs"
INSIDE = ("readlink /proc/self/ns/mnt; cat " + MARKER + "; "
          "test -e /proc/self/status && echo proc-ok; "
          "head -c1 /proc/kcore 2>/dev/null | wc -c; "  # masked: /dev/null
          "touch /x 2>/dev/null && echo root-writable || echo root-ro; "
          "cat /data/from-host; "
          "grep -c . /proc/self/mountinfo || true")


def without_mount_ns(cfg):
    cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"] if ns["type"] != "mount"]


def host_lines(*paths) -> list[str]:
    """Lines of the host's mount table that mention any of paths."""
    with open("/proc/self/mountinfo") as f:
        return [ln for ln in f if any(str(p) in ln for p in paths)]


def root_line() -> str:
    """The host's / entry, less the mount id fields: propagation must not change."""
    with open("/proc/self/mountinfo") as f:
        for ln in f:
            fields = ln.split()
            if fields[4] == "/":
                return " ".join(fields[2:])
    return ""


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    (d / "from-host").write_text("from-host\n")
    os.chmod(tmp_path, 0o755)
    return d


def _bundle_with_marker(bundle, args, patch, **overrides):
    b = bundle(args, patch, **overrides)
    (b / "rootfs" / MARKER.lstrip("/")).write_text("rootfs-marker\n")
    return b


def _data_mount(d):
    return {"destination": "/data", "type": "bind", "source": str(d), "options": ["rbind", "ro"]}


def test_no_mount_namespace_shares_the_hosts_and_leaves_it_alone(rt, bundle, unique_id, data_dir):
    before = root_line()

    def patch(cfg):
        without_mount_ns(cfg)
        cfg["mounts"].append(_data_mount(data_dir))

    b = _bundle_with_marker(bundle, ["sh", "-c", INSIDE], patch)
    rt("create", "--bundle", b, unique_id)
    # The init is set up and waits on the fifo: the rootfs is done, and none of it is on the host.
    assert host_lines(b, data_dir) == []
    pid = rt.state(unique_id)["pid"]
    assert os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
    rt("start", unique_id)
    rt.wait_status(unique_id, "stopped")
    lines = rt.out(unique_id).splitlines()
    rt("delete", unique_id)
    assert lines[0] == os.readlink("/proc/self/ns/mnt"), "not in the runtime's mount namespace"
    assert lines[1:6] == ["rootfs-marker", "proc-ok", "0", "root-ro", "from-host"]
    # The detached tree is in no namespace's mount table: the container sees no mount entries.
    assert lines[6] == "0"
    assert host_lines(b, data_dir) == []
    assert root_line() == before


def test_no_mount_namespace_chroots_into_the_rootfs(run_in, tmp_path):
    # The host's own files are out of reach: / is the bundle's rootfs, and .. of / is / again.
    (tmp_path / "host-only").write_text("x")
    r = run_in(["sh", "-c", f"ls /bin/busybox; ls {tmp_path}/host-only 2>&1 || echo absent; "
                            "cd /..; pwd; ls /../bin/busybox"], without_mount_ns)
    assert r.stdout.splitlines()[0] == "/bin/busybox"
    assert "absent" in r.stdout
    assert r.stdout.splitlines()[-2:] == ["/", "/../bin/busybox"]


def test_no_namespaces_at_all(rt, bundle, unique_id):
    # What runtime-tools' linux_ns_itype asks: every namespace is the runtime's own.
    def patch(cfg):
        cfg["linux"]["namespaces"] = []
        cfg.pop("hostname", None)

    b = bundle(["true"], patch)
    rt("create", "--bundle", b, unique_id)
    pid = rt.state(unique_id)["pid"]
    for ns in ("mnt", "pid", "net", "ipc", "uts", "cgroup"):
        assert os.readlink(f"/proc/{pid}/ns/{ns}") == os.readlink(f"/proc/self/ns/{ns}"), ns
    assert host_lines(b) == []
    rt("delete", "--force", unique_id)
    assert host_lines(b) == []


def test_exec_enters_the_chroot(rt, bundle, unique_id):
    b = _bundle_with_marker(bundle, ["sleep", "1000"], without_mount_ns)
    rt("run", "--detach", "--bundle", b, unique_id)
    try:
        r = rt("exec", unique_id, "sh", "-c", f"cat {MARKER}; readlink /proc/self/ns/mnt")
        assert r.stdout.splitlines() == ["rootfs-marker", os.readlink("/proc/self/ns/mnt")]
    finally:
        rt("delete", "--force", unique_id)


@pytest.fixture(params=["proc", "no-proc"])
def other_mount_ns(request):
    """A process in a mount namespace of its own (private propagation), whose /proc is the host's
    or, for no-proc, an empty tmpfs: ocirun must not need that namespace's /proc. Its pid."""
    hide = "mount -t tmpfs -o size=1k tmpfs /proc && " if request.param == "no-proc" else ""
    p = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", hide + "exec sleep 1000"])
    try:
        deadline = time.monotonic() + 5
        while not os.readlink(f"/proc/{p.pid}/exe").endswith("/sleep"):  # set up, and exec'd
            assert time.monotonic() < deadline, "unshare did not make the mount namespace"
            time.sleep(0.01)
        assert os.readlink(f"/proc/{p.pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
        yield p.pid
    finally:
        p.kill()
        p.wait()


def test_joined_mount_namespace_by_path(rt, bundle, unique_id, other_mount_ns, data_dir):
    pid = other_mount_ns
    path = f"/proc/{pid}/ns/mnt"
    with open(f"/proc/{pid}/mountinfo") as f:
        table = f.read()

    def patch(cfg):
        for ns in cfg["linux"]["namespaces"]:
            if ns["type"] == "mount":
                ns["path"] = path
        cfg["mounts"].append(_data_mount(data_dir))

    b = _bundle_with_marker(bundle, ["sh", "-c", INSIDE], patch)
    rt("create", "--bundle", b, unique_id)
    with open(f"/proc/{pid}/mountinfo") as f:
        assert f.read() == table, "the joined namespace's mounts changed"
    rt("start", unique_id)
    rt.wait_status(unique_id, "stopped")
    lines = rt.out(unique_id).splitlines()
    rt("delete", unique_id)
    assert lines[0] == os.readlink(path)
    assert lines[1:6] == ["rootfs-marker", "proc-ok", "0", "root-ro", "from-host"]
    with open(f"/proc/{pid}/mountinfo") as f:
        assert f.read() == table
    assert host_lines(b, data_dir) == []


@pytest.mark.parametrize("field, patch, mentions", [
    ("user", lambda cfg: cfg["linux"].update(
        namespaces=cfg["linux"]["namespaces"] + [{"type": "user"}],
        uidMappings=[{"containerID": 0, "hostID": 100000, "size": 65536}],
        gidMappings=[{"containerID": 0, "hostID": 100000, "size": 65536}]), "user namespace"),
    ("unbindable", lambda cfg: cfg["mounts"].append(
        {"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["runbindable"]}), "mounts["),
    ("propagation", lambda cfg: cfg["linux"].update(rootfsPropagation="rshared"), "rootfsPropagation"),
])
def test_refused_without_a_mount_namespace(rt, bundle, unique_id, field, patch, mentions):
    def both(cfg):
        without_mount_ns(cfg)
        patch(cfg)
    b = bundle(["true"], both)
    err = rt.expect_error("run", "--bundle", b, unique_id, mentions=(mentions,))
    assert "mount namespace" in err


def test_terminal_without_a_mount_namespace(rt, bundle, unique_id, console):
    # The pty comes from the container's own devpts and /dev/console is bound to it in the
    # private copy; both must come along into the detached tree.
    from test_terminal import COMMANDS, SHELL, between, has_line, pty_index, read_until, terminal, to_eof, wait_child

    b = bundle(SHELL, without_mount_ns, **terminal())
    rt("create", "--console-socket", console.path, "--bundle", b, unique_id)
    master = console.receive()
    pid = rt.state(unique_id)["pid"]
    n = pty_index(master)
    rt("start", unique_id)
    os.write(master, COMMANDS)
    tty, _size, console_dev, tty_dev, _fds = between(read_until(master, has_line("END")))
    assert tty == f"/dev/pts/{n}"
    assert console_dev == tty_dev, "/dev/console is not the init's pty"
    to_eof(master)
    assert wait_child(pid) == 3
    rt("delete", unique_id)
    assert host_lines(b) == []


def test_exec_with_a_joined_mount_namespace(rt, bundle, unique_id, other_mount_ns):
    # exec joins the container's (the joined) mount namespace, whose root is not the container's.
    path = f"/proc/{other_mount_ns}/ns/mnt"

    def patch(cfg):
        for ns in cfg["linux"]["namespaces"]:
            if ns["type"] == "mount":
                ns["path"] = path

    b = _bundle_with_marker(bundle, ["sleep", "1000"], patch)
    rt("run", "--detach", "--bundle", b, unique_id)
    try:
        r = rt("exec", unique_id, "sh", "-c", f"cat {MARKER}; readlink /proc/self/ns/mnt")
        assert r.stdout.splitlines() == ["rootfs-marker", os.readlink(path)]
    finally:
        rt("delete", "--force", unique_id)
