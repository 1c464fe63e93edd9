"""config-linux.md: default filesystems, namespaces (new, inherited, joined), user namespace
mappings, devices and default devices, cgroups (path, device rules, memory, cpu, cpuset, pids,
blkio, unified), sysctl, seccomp, rootfsPropagation, masked and readonly paths, personality."""
from __future__ import annotations

import array
import os
import socket
import stat
import threading
import time

from ._harness import (Fail, Skip, add_namespace, bind, cgroup_dir_of, cgroup_mounts, cgroup_v2_only, check,
                       last_mount, mountinfo_entries, ns_link, read, set_namespaces, user_ns)

# --- Default filesystems --------------------------------------------------------------------------


@check("config-linux.md#default-filesystems", "SHOULD", "/proc, /sys, /dev/pts and /dev/shm are proc, sysfs, devpts and tmpfs")
def default_filesystems(ctx):
    out = ctx.must_inside("cat /proc/self/mountinfo")
    entries = mountinfo_entries(out)
    want = {"/proc": "proc", "/sys": "sysfs", "/dev/pts": "devpts", "/dev/shm": "tmpfs"}
    bad = {}
    for mnt, fs in want.items():
        e = last_mount(entries, mnt)
        if e is None or e["fstype"] != fs:
            bad[mnt] = e and e["fstype"]
    ctx.expect(not bad, f"wrong or missing: {bad}")


# --- Namespaces ------------------------------------------------------------------------------------
NS_FILE = {"pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts",
           "user": "user", "cgroup": "cgroup", "time": "time"}


def _ns_inside(ctx, cfg, kinds) -> dict[str, str]:
    script = "; ".join(f"echo {k}=$(readlink /proc/self/ns/{k})" for k in kinds)
    out = ctx.must_inside(script, cfg)
    return dict(line.split("=", 1) for line in out.split() if "=" in line)


def _ns_new(ctx, typ: str, extra: str = "", patch=None):
    f = NS_FILE[typ]
    if not os.path.exists(f"/proc/self/ns/{f}"):
        raise Skip(f"this kernel has no {typ} namespaces")
    cfg = ctx.config()
    add_namespace(cfg, {"type": typ})
    if patch:
        patch(cfg)
    out = ctx.must_inside(f"echo ns=$(readlink /proc/self/ns/{f}); {extra or 'true'}", cfg)
    lines = out.splitlines()
    seen = lines[0].split("=", 1)[1] if lines and lines[0].startswith("ns=") else None
    ctx.expect(seen and seen != ns_link("self", f), f"the container's {f} namespace {seen} is the runtime's")
    return lines[1:]


@check("config-linux.md#ns-pid", "SHOULD", "a new pid namespace: the program is pid 1 and sees only its processes")
def ns_pid(ctx):
    rest = _ns_new(ctx, "pid", "echo pid=$$; ls /proc | grep -c '^[0-9]'")
    ctx.expect(rest[:1] == ["pid=1"], f"the program is {rest[:1]}, not pid 1")
    ctx.expect(rest[1:2] and int(rest[1]) <= 3, f"{rest[1:2]} processes visible")


@check("config-linux.md#ns-network", "SHOULD", "a new network namespace: only lo")
def ns_network(ctx):
    rest = _ns_new(ctx, "network", "tail -n +3 /proc/net/dev | cut -d: -f1")
    ctx.expect([r.strip() for r in rest] == ["lo"], f"interfaces {rest}")


@check("config-linux.md#ns-mount", "SHOULD", "a new mount namespace")
def ns_mount(ctx):
    _ns_new(ctx, "mount")


@check("config-linux.md#ns-ipc", "SHOULD", "a new IPC namespace")
def ns_ipc(ctx):
    _ns_new(ctx, "ipc")


@check("config-linux.md#ns-uts", "SHOULD", "a new UTS namespace")
def ns_uts(ctx):
    _ns_new(ctx, "uts")


@check("config-linux.md#ns-user", "SHOULD", "a new user namespace")
def ns_user(ctx):
    _ns_new(ctx, "user", patch=lambda c: user_ns(c))


@check("config-linux.md#ns-cgroup", "SHOULD", "a new cgroup namespace: the container's cgroup is its root")
def ns_cgroup(ctx):
    rest = _ns_new(ctx, "cgroup", "cat /proc/self/cgroup")
    paths = [line.split(":", 2)[2] for line in rest if line.count(":") >= 2]
    ctx.expect(paths and all(p == "/" for p in paths), f"/proc/self/cgroup inside: {rest}")


@check("config-linux.md#ns-time", "SHOULD", "a new time namespace")
def ns_time(ctx):
    _ns_new(ctx, "time")


@check("config-linux.md#ns-inherit", "MUST", "namespaces not listed are the runtime's (network, ipc, uts, cgroup)")
def ns_inherit(ctx):
    cfg = ctx.config()
    set_namespaces(cfg, "pid", "mount")
    cfg.pop("hostname", None)
    seen = _ns_inside(ctx, cfg, ("net", "ipc", "uts", "cgroup"))
    bad = {k: v for k, v in seen.items() if v != ns_link("self", k)}
    ctx.expect(len(seen) == 4 and not bad, f"not the runtime's: {bad or seen}")


def _holder(ctx) -> int:
    cid = ctx.must_create(ctx.config(["sleep", "300"]))
    return ctx.must_state(cid)["pid"]


@check("config-linux.md#ns-path-join", "MUST", "a namespace with a path is joined (network, ipc, uts)")
def ns_path_join(ctx):
    hpid = _holder(ctx)
    cfg = ctx.config()
    cfg.pop("hostname", None)
    for t in ("network", "ipc", "uts"):
        add_namespace(cfg, {"type": t, "path": f"/proc/{hpid}/ns/{NS_FILE[t]}"})
    seen = _ns_inside(ctx, cfg, ("net", "ipc", "uts"))
    bad = {k: (v, ns_link(hpid, k)) for k, v in seen.items() if v != ns_link(hpid, k)}
    ctx.expect(len(seen) == 3 and not bad, f"not joined (seen, wanted): {bad or seen}")


@check("config-linux.md#ns-path-join-pid", "MUST", "a pid namespace with a path is joined")
def ns_path_join_pid(ctx):
    hpid = _holder(ctx)
    cfg = ctx.config()
    add_namespace(cfg, {"type": "pid", "path": f"/proc/{hpid}/ns/pid"})
    out = ctx.must_inside("readlink /proc/self/ns/pid; ps -o pid,args | grep -c 'sleep 300'", cfg)
    lines = out.split()
    ctx.expect(lines[:1] == [ns_link(hpid, "pid")], f"pid namespace {lines[:1]}, the holder's is {ns_link(hpid, 'pid')}")
    ctx.expect(lines[1:2] and int(lines[1]) >= 1, "the holder's process is not visible")


@check("config-linux.md#ns-path-wrong-type", "MUST", "a path that is not a namespace of that type is an error")
def ns_path_wrong_type(ctx):
    hpid = _holder(ctx)
    cfg = ctx.config()
    add_namespace(cfg, {"type": "uts", "path": f"/proc/{hpid}/ns/net"})
    cid, res = ctx.create(cfg)
    ctx.expect(not res.ok, "create accepted a network namespace file as the uts namespace")


@check("config-linux.md#ns-duplicate", "MUST", "two namespaces of the same type are an error")
def ns_duplicate(ctx):
    cfg = ctx.config()
    cfg["linux"]["namespaces"].append({"type": "network"})
    cid, res = ctx.create(cfg)
    ctx.expect(not res.ok, "create accepted two network namespaces")


@check("config-linux.md#ns-invalid-type", "MUST", "an unknown namespace type is an invalid value: error")
def ns_invalid(ctx):
    cfg = ctx.config()
    cfg["linux"]["namespaces"].append({"type": "no-such-namespace"})
    cid, res = ctx.create(cfg)
    ctx.expect(not res.ok, "create accepted namespace type 'no-such-namespace'")


@check("config-linux.md#ns-path-absolute", "MUST", "a relative namespace path is an error")
def ns_path_absolute(ctx):
    hpid = _holder(ctx)
    cfg = ctx.config()
    add_namespace(cfg, {"type": "network", "path": f"proc/{hpid}/ns/net"})
    cid, res = ctx.create(cfg, cwd="/")
    ctx.expect(not res.ok, f"create accepted namespace path 'proc/{hpid}/ns/net'")


# --- User namespace mappings -------------------------------------------------------------------------

@check("config-linux.md#userns-mappings", "MUST", "uidMappings and gidMappings are the user namespace's maps")
def userns_mappings(ctx):
    cfg = ctx.config()
    user_ns(cfg, 200000, 65536)
    out = ctx.must_inside("cat /proc/self/uid_map; echo --; cat /proc/self/gid_map; echo --; id -u", cfg)
    uid, gid, me = [p.split() for p in out.split("--")]
    ctx.expect(uid == ["0", "200000", "65536"], f"uid_map {uid}")
    ctx.expect(gid == ["0", "200000", "65536"], f"gid_map {gid}")
    ctx.expect(me == ["0"], f"id -u {me}")


@check("config-linux.md#userns-no-chown", "SHOULD NOT", "the rootfs's ownership is not changed to realize the mapping")
def userns_no_chown(ctx):
    cfg = ctx.config(["true"])
    user_ns(cfg, 300000, 65536)
    b = ctx.bundle(cfg)
    probes = [b / "rootfs", b / "rootfs" / "etc" / "passwd", b / "rootfs" / "tmp", b / "rootfs" / "bin"]
    before = [(os.lstat(p).st_uid, os.lstat(p).st_gid) for p in probes]
    res = ctx.run(b)
    ctx.expect(res.ok, f"container failed: {res.brief()}")
    after = [(os.lstat(p).st_uid, os.lstat(p).st_gid) for p in probes]
    ctx.expect(before == after, f"ownership changed: {before} -> {after}")


# --- Devices -------------------------------------------------------------------------------------------

def _stat(ctx, paths, cfg=None) -> dict[str, list[str]]:
    """path -> [type, major, minor, mode, uid, gid] seen inside (majors and minors in decimal)."""
    script = "; ".join(f"echo {p} $(stat -c '%F|%t|%T|%a|%u|%g' {p} 2>/dev/null | tr ' ' _)" for p in paths)
    out = ctx.must_inside(script, cfg)
    res = {}
    for line in out.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2:
            f = parts[1].split("|")
            f[1], f[2] = str(int(f[1], 16)), str(int(f[2], 16))
            res[parts[0]] = f
        else:
            res[parts[0]] = []
    return res


@check("config-linux.md#devices", "MUST", "a listed character device is made at its path with its major/minor")
def devices(ctx):
    cfg = ctx.config()
    cfg["linux"]["devices"] = [{"path": "/dev/conf-null", "type": "c", "major": 1, "minor": 3}]
    st = _stat(ctx, ["/dev/conf-null"], cfg)["/dev/conf-null"]
    ctx.expect(st[:3] == ["character_special_file", "1", "3"], f"/dev/conf-null is {st}")


@check("config-linux.md#devices-attributes", "MUST", "a device's fileMode, uid and gid are applied")
def devices_attrs(ctx):
    cfg = ctx.config()
    cfg["linux"]["devices"] = [{"path": "/dev/conf-zero", "type": "c", "major": 1, "minor": 5,
                                "fileMode": 0o640, "uid": 1000, "gid": 5}]
    st = _stat(ctx, ["/dev/conf-zero"], cfg)["/dev/conf-zero"]
    ctx.expect(st[3:] == ["640", "1000", "5"], f"mode/uid/gid {st[3:]}, expected 640/1000/5")


@check("config-linux.md#devices-block", "MUST", "a listed block device is made")
def devices_block(ctx):
    cfg = ctx.config()
    cfg["linux"]["devices"] = [{"path": "/dev/conf-loop", "type": "b", "major": 7, "minor": 200}]
    st = _stat(ctx, ["/dev/conf-loop"], cfg)["/dev/conf-loop"]
    ctx.expect(st[:3] == ["block_special_file", "7", "200"], f"/dev/conf-loop is {st}")


@check("config-linux.md#devices-fifo", "MUST", "a listed fifo (type p) is made")
def devices_fifo(ctx):
    cfg = ctx.config()
    cfg["linux"]["devices"] = [{"path": "/dev/conf-fifo", "type": "p"}]
    st = _stat(ctx, ["/dev/conf-fifo"], cfg)["/dev/conf-fifo"]
    ctx.expect(st[:1] == ["fifo"], f"/dev/conf-fifo is {st}")


@check("config-linux.md#devices-outside-dev", "MUST", "a device path may be outside /dev")
def devices_outside_dev(ctx):
    cfg = ctx.config()
    cfg["linux"]["devices"] = [{"path": "/devdir/conf-null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666}]
    st = _stat(ctx, ["/devdir/conf-null"], cfg)["/devdir/conf-null"]
    ctx.expect(st[:3] == ["character_special_file", "1", "3"], f"/devdir/conf-null is {st}")


@check("config-linux.md#devices-existing-mismatch", "MUST", "a file already at a device's path that is not that device is an error")
def devices_existing_mismatch(ctx):
    cfg = ctx.config()
    cfg["linux"]["devices"] = [{"path": "/etc/not-a-device", "type": "c", "major": 1, "minor": 3}]
    b = ctx.bundle(cfg)
    (b / "rootfs" / "etc" / "not-a-device").write_text("regular file\n")
    cid, res = ctx.create(b)
    ctx.expect(not res.ok, "create replaced (or bound over) a regular file with a device node")


DEFAULT_DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9), "tty": (5, 0)}


def _default_device(name, major, minor):
    def fn(ctx):
        st = _stat(ctx, [f"/dev/{name}"])[f"/dev/{name}"]
        ctx.expect(st[:3] == ["character_special_file", str(major), str(minor)],
                   f"/dev/{name} is {st or 'missing'}, expected character device {major}:{minor}")
    return fn


for _n, (_maj, _min) in DEFAULT_DEVICES.items():
    check(f"config-linux.md#default-devices-{_n}", "MUST", f"/dev/{_n} is supplied (character device {_maj}:{_min})")(
        _default_device(_n, _maj, _min))


@check("config-linux.md#default-devices-ptmx", "MUST", "/dev/ptmx is a symlink to or bind mount of /dev/pts/ptmx")
def default_ptmx(ctx):
    out = ctx.must_inside("readlink /dev/ptmx; echo @; stat -c '%d:%i' /dev/ptmx /dev/pts/ptmx")
    link, _, ids = out.partition("@")
    link = link.strip()
    ids = ids.split()
    if link:
        ctx.expect(link in ("pts/ptmx", "/dev/pts/ptmx"), f"/dev/ptmx -> {link}")
    else:
        ctx.expect(len(ids) == 2 and ids[0] == ids[1], f"/dev/ptmx is neither a link nor the same file as /dev/pts/ptmx: {ids}")


@check("config-linux.md#default-devices-usable", "MUST", "the default devices work under a deny-all device cgroup (read, write)")
def default_devices_usable(ctx):
    out = ctx.must_inside("echo x > /dev/null && echo null-ok; head -c 4 /dev/zero | wc -c; "
                          "head -c 4 /dev/urandom | wc -c; head -c 4 /dev/random | wc -c; "
                          "echo x > /dev/full 2>/dev/null || echo full-enospc")
    ctx.expect(out.split() == ["null-ok", "4", "4", "4", "full-enospc"], f"device use gave {out.split()}")


class _ConsoleReceiver(threading.Thread):
    """Receives the pty master on a unix socket (--console-socket) and reads everything from it."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(1)
        self.sock.settimeout(20)
        self.master = None
        self.data = b""
        self.error = None

    def run(self):
        try:
            conn, _ = self.sock.accept()
            with conn:
                fds = array.array("i")
                msg, anc, _flags, _addr = conn.recvmsg(4096, socket.CMSG_SPACE(4 * fds.itemsize))
                for level, typ, data in anc:
                    if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                        fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
                if not fds:
                    self.error = "no fd received"
                    return
                self.master = fds[0]
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # EIO: the slave side is closed
                    break
                if not chunk:
                    break
                self.data += chunk
        except Exception as e:  # noqa: BLE001
            self.error = str(e)
        finally:
            if self.master is not None:
                os.close(self.master)
            self.sock.close()


@check("config-linux.md#dev-console", "MUST", "with terminal true, /dev/console is the container's pty")
def dev_console(ctx):
    cfg = ctx.config(["sh", "-c", "stat -c 'console=%t:%T' /dev/console; stat -L -c 'stdin=%t:%T' /proc/self/fd/0; tty"])
    cfg["process"]["terminal"] = True
    sock = ctx.tmp / "console.sock"
    rx = _ConsoleReceiver(sock)
    rx.start()
    cid = ctx.must_create(cfg, extra=("--console-socket", str(sock)))
    ctx.must_start(cid)
    ctx.wait_status(cid, "stopped", 10)
    rx.join(10)
    text = rx.data.decode(errors="replace").replace("\r", "")
    ctx.expect(rx.error is None, f"console socket: {rx.error}")
    vals = dict(line.split("=", 1) for line in text.split() if "=" in line)
    con, tty = vals.get("console"), vals.get("stdin")
    ctx.expect(con and con == tty, f"/dev/console is {con}, the pty is {tty} (output {text!r})")


# --- Cgroups --------------------------------------------------------------------------------------------

def _created_cgroup(ctx, patch=None) -> tuple[str, int]:
    """A created container (sleep) with the resources patch applied; -> (id, host pid)."""
    cfg = ctx.config(["sleep", "300"])
    if patch:
        patch(cfg["linux"].setdefault("resources", {}))
    cid = ctx.must_create(cfg)
    return cid, ctx.must_state(cid)["pid"]


def _cg_file(ctx, pid, controller, v1name, v2name=None) -> str:
    if cgroup_v2_only():
        if v2name is None:
            raise Skip(f"{v1name} has no cgroup v2 equivalent")
        d, name = cgroup_dir_of(pid, ""), v2name
    else:
        d, name = cgroup_dir_of(pid, controller), v1name
    if d is None:
        raise Skip(f"no {controller} cgroup controller on this host")
    val = read(os.path.join(d, name))
    if val is None:
        raise Skip(f"{os.path.join(d, name)} does not exist on this host")
    return val.strip()


@check("config-linux.md#cgroups-path-absolute", "MUST", "an absolute cgroupsPath is taken relative to the cgroup mount point (and created)")
def cgroups_path_absolute(ctx):
    cfg = ctx.config(["sleep", "300"])
    want = cfg["linux"]["cgroupsPath"]
    cid = ctx.must_create(cfg)
    pid = ctx.must_state(cid)["pid"]
    bad, seen = [], 0
    for line in (read(f"/proc/{pid}/cgroup") or "").splitlines():
        _, ctrls, path = line.split(":", 2)
        names = ctrls.split(",")
        if (cgroup_v2_only() and ctrls == "") or "memory" in names or "pids" in names:
            seen += 1
            if path != want:
                bad.append(f"{ctrls or 'v2'}:{path}")
    ctx.expect(seen and not bad, f"container cgroups {bad}, expected {want} (the path under the mount point)")
    for ctrl in ("memory", "pids") if not cgroup_v2_only() else ("",):
        d = cgroup_dir_of(pid, ctrl)
        procs = (read(os.path.join(d, "cgroup.procs")) or "").split() if d else []
        ctx.expect(str(pid) in procs, f"{d}/cgroup.procs does not list the container's pid {pid}")


@check("config-linux.md#cgroups-path-consistent", "MUST", "the same cgroupsPath puts containers in the same place")
def cgroups_path_consistent(ctx):
    cfg1 = ctx.config(["sleep", "300"])
    path = cfg1["linux"]["cgroupsPath"]
    c1 = ctx.must_create(cfg1)
    first = read(f"/proc/{ctx.must_state(c1)['pid']}/cgroup")
    ctx.delete(c1, force=True)
    cfg2 = ctx.config(["sleep", "300"])
    cfg2["linux"]["cgroupsPath"] = path
    c2 = ctx.must_create(cfg2)
    second = read(f"/proc/{ctx.must_state(c2)['pid']}/cgroup")
    ctx.expect(first == second and path in (first or ""), f"first {first!r}, then {second!r}")


def _dev_access(ctx, rules):
    """Run `head -c1` on a device node c 1:200 (no driver behind it: ENXIO if the device cgroup
    lets it open, EPERM if not) under the given device cgroup rules. The node is made in the
    rootfs beforehand, not listed in linux.devices, so that only the rules decide."""
    cfg = ctx.config(["sh", "-c", "head -c1 /conf-test 2>&1; true"])
    cfg["linux"]["resources"]["devices"] = rules
    b = ctx.bundle(cfg)
    os.mknod(b / "rootfs" / "conf-test", 0o666 | stat.S_IFCHR, os.makedev(1, 200))
    res = ctx.run(b)
    if not res.ok:
        raise Fail(f"container failed: {res.brief()}")
    return res.out.strip()


@check("config-linux.md#cgroups-devices-allow", "MUST", "device rules: an allow entry after deny-all lets the device open")
def cgroups_devices_allow(ctx):
    out = _dev_access(ctx, [{"allow": False, "access": "rwm"},
                            {"allow": True, "type": "c", "major": 1, "minor": 200, "access": "rw"}])
    ctx.expect("No such device" in out, f"opening the allowed device gave {out!r} (expected ENXIO, no driver)")


@check("config-linux.md#cgroups-devices-order", "MUST", "device rules are applied in the listed order (a later deny wins)")
def cgroups_devices_order(ctx):
    out = _dev_access(ctx, [{"allow": False, "access": "rwm"},
                            {"allow": True, "type": "c", "major": 1, "minor": 200, "access": "rw"},
                            {"allow": False, "type": "c", "major": 1, "minor": 200, "access": "r"}])
    ctx.expect("not permitted" in out, f"opening a device denied by the last rule gave {out!r}")


@check("config-linux.md#cgroups-devices-deny", "MUST", "device rules: under deny-all a device node that is neither listed nor default cannot be opened")
def cgroups_devices_deny(ctx):
    out = _dev_access(ctx, [{"allow": False, "access": "rwm"}])
    ctx.expect("not permitted" in out, f"opening a device under deny-all gave {out!r}")


def _resource_check(controller, patch, v1name, v1want, v2name=None, v2want=None):
    def fn(ctx):
        if not cgroup_v2_only() and controller not in cgroup_mounts():
            raise Skip(f"no {controller} cgroup controller on this host")
        _, pid = _created_cgroup(ctx, patch)
        got = _cg_file(ctx, pid, controller, v1name, v2name)
        want = v2want if cgroup_v2_only() else v1want
        ctx.expect(got == want, f"{v2name if cgroup_v2_only() else v1name} is {got!r}, expected {want!r}")
    return fn


MiB = 1 << 20
RESOURCES = [
    ("memory-limit", "memory", lambda r: r.update(memory={"limit": 64 * MiB}),
     "memory.limit_in_bytes", str(64 * MiB), "memory.max", str(64 * MiB)),
    ("memory-reservation", "memory", lambda r: r.update(memory={"limit": 64 * MiB, "reservation": 32 * MiB}),
     "memory.soft_limit_in_bytes", str(32 * MiB), "memory.low", str(32 * MiB)),
    ("memory-swap", "memory", lambda r: r.update(memory={"limit": 64 * MiB, "swap": 96 * MiB}),
     "memory.memsw.limit_in_bytes", str(96 * MiB), "memory.swap.max", str(32 * MiB)),
    ("memory-swappiness", "memory", lambda r: r.update(memory={"swappiness": 17}),
     "memory.swappiness", "17", None, None),
    ("memory-disable-oom-killer", "memory", lambda r: r.update(memory={"limit": 64 * MiB, "disableOOMKiller": True}),
     "memory.oom_control", None, None, None),
    ("cpu-shares", "cpu", lambda r: r.update(cpu={"shares": 512}), "cpu.shares", "512", "cpu.weight", "20"),
    ("cpu-quota", "cpu", lambda r: r.update(cpu={"quota": 30000, "period": 60000}),
     "cpu.cfs_quota_us", "30000", "cpu.max", "30000 60000"),
    ("cpu-period", "cpu", lambda r: r.update(cpu={"quota": 30000, "period": 60000}),
     "cpu.cfs_period_us", "60000", "cpu.max", "30000 60000"),
    ("cpuset-cpus", "cpuset", lambda r: r.update(cpu={"cpus": "0"}), "cpuset.cpus", "0", "cpuset.cpus", "0"),
    ("cpuset-mems", "cpuset", lambda r: r.update(cpu={"mems": "0"}), "cpuset.mems", "0", "cpuset.mems", "0"),
    ("pids-limit", "pids", lambda r: r.update(pids={"limit": 42}), "pids.max", "42", "pids.max", "42"),
]

for _name, _ctrl, _patch, _v1, _v1w, _v2, _v2w in RESOURCES:
    if _name == "memory-disable-oom-killer":
        continue
    check(f"config-linux.md#cgroups-{_name}", "MUST", f"resources: {_name.replace('-', ' ')} lands in {_v1} ({_v2 or 'v1 only'})")(
        _resource_check(_ctrl, _patch, _v1, _v1w, _v2, _v2w))


@check("config-linux.md#cgroups-memory-disable-oom-killer", "MUST", "resources: disableOOMKiller sets memory.oom_control's oom_kill_disable (v1)")
def cgroups_oom_killer(ctx):
    if cgroup_v2_only():
        raise Skip("cgroup v2 has no oom_kill_disable")
    _, pid = _created_cgroup(ctx, lambda r: r.update(memory={"limit": 64 * MiB, "disableOOMKiller": True}))
    text = _cg_file(ctx, pid, "memory", "memory.oom_control")
    ctx.expect("oom_kill_disable 1" in text, f"memory.oom_control: {text!r}")


@check("config-linux.md#cgroups-pids-zero", "SHOULD", "resources: a pids limit of 0 is a limit of 0, not `unset`")
def cgroups_pids_zero(ctx):
    if not cgroup_v2_only() and "pids" not in cgroup_mounts():
        raise Skip("no pids cgroup controller on this host")
    _, pid = _created_cgroup(ctx, lambda r: r.update(pids={"limit": 0}))
    got = _cg_file(ctx, pid, "pids", "pids.max", "pids.max")
    ctx.expect(got == "0", f"pids.max is {got!r} for limit 0")


@check("config-linux.md#cgroups-pids-enforced", "MUST", "resources: the pids limit is enforced inside (fork fails beyond it)")
def cgroups_pids_enforced(ctx):
    cfg = ctx.config()
    cfg["linux"]["resources"]["pids"] = {"limit": 5}
    # sh and the subshell take 2 of the 5: the subshell starts 3 sleeps, then fork fails and it
    # exits; the count is then read with shell builtins only (no fork left to spare).
    out = ctx.must_inside("(for i in 1 2 3 4 5 6 7 8 9 10; do sleep 2 & echo started >> /tmp/count; done) 2>/dev/null; "
                          "n=0; while read l; do n=$((n+1)); done < /tmp/count; echo $n", cfg)
    n = int(out.split()[0]) if out.split() and out.split()[0].isdigit() else None
    ctx.expect(n is not None and n < 10, f"{n} of 10 background processes started under a limit of 5")


@check("config-linux.md#cgroups-memory-enforced", "MUST", "resources: the memory limit is enforced inside (a 96 MiB buffer under 32 MiB is OOM-killed)")
def cgroups_memory_enforced(ctx):
    if not cgroup_v2_only() and "memory" not in cgroup_mounts():
        raise Skip("no memory cgroup controller on this host")
    cfg = ctx.config()
    cfg["linux"]["resources"]["memory"] = {"limit": 32 * MiB, "swap": 32 * MiB}
    out = ctx.must_inside("dd if=/dev/zero of=/dev/null bs=96M count=1 2>/dev/null; echo status=$?", cfg)
    ctx.expect("status=137" in out, f"dd of a 96 MiB buffer under a 32 MiB limit: {out.strip()!r}")


def _block_device() -> tuple[int, int] | None:
    for name in sorted(os.listdir("/sys/block")):
        d = read(f"/sys/block/{name}/dev")
        if d and not name.startswith(("loop", "ram", "zram")):
            ma, mi = d.strip().split(":")
            return int(ma), int(mi)
    return None


@check("config-linux.md#cgroups-blkio-throttle", "MUST", "resources: blockIO throttleReadBpsDevice lands in the blkio/io cgroup")
def cgroups_blkio_throttle(ctx):
    dev = _block_device()
    if dev is None:
        raise Skip("no block device on this host")
    if not cgroup_v2_only() and "blkio" not in cgroup_mounts():
        raise Skip("no blkio cgroup controller on this host")
    ma, mi = dev
    _, pid = _created_cgroup(ctx, lambda r: r.update(blockIO={"throttleReadBpsDevice": [{"major": ma, "minor": mi, "rate": 1048576}]}))
    if cgroup_v2_only():
        got = _cg_file(ctx, pid, "io", "", "io.max")
        ctx.expect(f"{ma}:{mi} rbps=1048576" in got, f"io.max: {got!r}")
    else:
        got = _cg_file(ctx, pid, "blkio", "blkio.throttle.read_bps_device")
        ctx.expect(f"{ma}:{mi} 1048576" in got, f"blkio.throttle.read_bps_device: {got!r}")


@check("config-linux.md#cgroups-blkio-weight", "MUST", "resources: blockIO weight lands in blkio.weight (or io.bfq.weight)")
def cgroups_blkio_weight(ctx):
    if not cgroup_v2_only() and "blkio" not in cgroup_mounts():
        raise Skip("no blkio cgroup controller on this host")
    base = cgroup_mounts().get("blkio", "/sys/fs/cgroup")
    if not any(os.path.exists(os.path.join(base, f)) for f in ("blkio.weight", "blkio.bfq.weight", "io.bfq.weight", "io.weight")):
        raise Skip("no blkio weight files on this host (no CFQ/BFQ scheduler)")
    _, pid = _created_cgroup(ctx, lambda r: r.update(blockIO={"weight": 300}))
    d = cgroup_dir_of(pid, "" if cgroup_v2_only() else "blkio")
    vals = {f: (read(os.path.join(d, f)) or "").strip() for f in ("blkio.weight", "blkio.bfq.weight", "io.bfq.weight", "io.weight")}
    ctx.expect(any(v.split()[-1:] == ["300"] or "default 300" in v for v in vals.values() if v), f"weights: {vals}")


@check("config-linux.md#cgroups-hugepage-limits", "MUST", "resources: hugepageLimits lands in the hugetlb cgroup")
def cgroups_hugetlb(ctx):
    if not cgroup_v2_only() and "hugetlb" not in cgroup_mounts():
        raise Skip("no hugetlb cgroup controller on this host")
    _, pid = _created_cgroup(ctx, lambda r: r.update(hugepageLimits=[{"pageSize": "2MB", "limit": 4 * MiB}]))
    got = _cg_file(ctx, pid, "hugetlb", "hugetlb.2MB.limit_in_bytes", "hugetlb.2MB.max")
    ctx.expect(got == str(4 * MiB), f"hugetlb 2MB limit {got!r}")


@check("config-linux.md#cgroups-network-classid", "MUST", "resources: network classID lands in net_cls.classid")
def cgroups_net_cls(ctx):
    if cgroup_v2_only() or "net_cls" not in cgroup_mounts():
        raise Skip("no net_cls cgroup controller on this host")
    _, pid = _created_cgroup(ctx, lambda r: r.update(network={"classID": 1048577}))
    got = _cg_file(ctx, pid, "net_cls", "net_cls.classid")
    ctx.expect(got == "1048577", f"net_cls.classid {got!r}")


@check("config-linux.md#cgroups-unified", "MUST", "unified: keys are written to the cgroup v2 files")
def cgroups_unified(ctx):
    if not cgroup_v2_only():
        raise Skip("the host is not on cgroup v2 alone (unified needs the v2 hierarchy for the container)")
    _, pid = _created_cgroup(ctx, lambda r: r.update(unified={"pids.max": "33"}))
    got = _cg_file(ctx, pid, "pids", "pids.max", "pids.max")
    ctx.expect(got == "33", f"pids.max {got!r}")


# --- Sysctl ----------------------------------------------------------------------------------------------

@check("config-linux.md#sysctl-net", "MUST", "sysctl: a net.* value is set in the container's network namespace")
def sysctl_net(ctx):
    cfg = ctx.config(["cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv4/ip_default_ttl"])
    cfg["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "net.ipv4.ip_default_ttl": "42"}
    res = ctx.run(cfg)
    ctx.expect(res.ok and res.out.split() == ["1", "42"], f"sysctls seen: {res.brief()}")
    ctx.expect(read("/proc/sys/net/ipv4/ip_default_ttl", "").strip() != "42", "the host's value changed")


@check("config-linux.md#sysctl-ipc", "MUST", "sysctl: a kernel.msg* value is set in the container's IPC namespace")
def sysctl_ipc(ctx):
    cfg = ctx.config(["cat", "/proc/sys/kernel/msgmax"])
    cfg["linux"]["sysctl"] = {"kernel.msgmax": "4321"}
    res = ctx.run(cfg)
    ctx.expect(res.ok and res.out.strip() == "4321", f"kernel.msgmax: {res.brief()}")


# --- Seccomp ---------------------------------------------------------------------------------------------

def _seccomp(ctx, rules, script, default="SCMP_ACT_ALLOW", **extra):
    cfg = ctx.config()
    cfg["linux"]["seccomp"] = {"defaultAction": default, "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                               "syscalls": rules, **extra}
    return ctx.inside(script, cfg)


@check("config-linux.md#seccomp-errno", "MUST", "seccomp: SCMP_ACT_ERRNO fails the syscall with EPERM by default")
def seccomp_errno(ctx):
    res = _seccomp(ctx, [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
                   "mkdir /tmp/x 2>&1; grep Seccomp: /proc/self/status; true")
    ctx.expect(res.ok, f"container failed: {res.brief()}")
    ctx.expect("Operation not permitted" in res.out, f"mkdir under the filter: {res.out!r}")
    ctx.expect("Seccomp:\t2" in res.out or "Seccomp: 2" in " ".join(res.out.split()), "Seccomp mode is not 2 (filter)")


@check("config-linux.md#seccomp-errno-ret", "MUST", "seccomp: errnoRet is the errno returned")
def seccomp_errno_ret(ctx):
    res = _seccomp(ctx, [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}],
                   "mkdir /tmp/x 2>&1; true")
    ctx.expect(res.ok and "Permission denied" in res.out, f"mkdir with errnoRet 13: {res.brief()}")


@check("config-linux.md#seccomp-args", "MUST", "seccomp: argument conditions select the calls the action applies to")
def seccomp_args(ctx):
    rules = [{"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 0o700, "op": "SCMP_CMP_EQ"}]},
             {"names": ["fchmodat"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 2, "value": 0o700, "op": "SCMP_CMP_EQ"}]},
             {"names": ["fchmod"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 0o700, "op": "SCMP_CMP_EQ"}]}]
    res = _seccomp(ctx, rules, "touch /tmp/f; chmod 700 /tmp/f 2>&1 || echo denied; chmod 750 /tmp/f && echo allowed; true")
    ctx.expect(res.ok, f"container failed: {res.brief()}")
    ctx.expect("denied" in res.out and "allowed" in res.out, f"chmod 700 / 750 under the filter: {res.out!r}")


@check("config-linux.md#seccomp-kill", "MUST", "seccomp: SCMP_ACT_KILL_PROCESS kills the caller")
def seccomp_kill(ctx):
    res = _seccomp(ctx, [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}],
                   "mkdir /tmp/x; echo status=$?")
    ctx.expect(res.ok, f"container failed: {res.brief()}")
    ctx.expect("status=159" in res.out, f"mkdir was not killed by SIGSYS: {res.out!r}")


@check("config-linux.md#seccomp-errno-unsupported-action", "MUST", "seccomp: errnoRet on an action without an errno is an error")
def seccomp_errno_kill(ctx):
    cfg = ctx.config()
    cfg["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                               "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]}
    cid, res = ctx.create(cfg)
    ctx.expect(not res.ok, "create accepted errnoRet on SCMP_ACT_KILL")


@check("config-linux.md#seccomp-invalid-action", "MUST", "seccomp: an unknown action is an invalid value: error")
def seccomp_invalid(ctx):
    cfg = ctx.config()
    cfg["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                               "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NO_SUCH_ACTION"}]}
    cid, res = ctx.create(cfg)
    ctx.expect(not res.ok, "create accepted action SCMP_ACT_NO_SUCH_ACTION")


@check("config-linux.md#seccomp-names-required", "MUST", "seccomp: a syscalls entry with no names is an error")
def seccomp_names_required(ctx):
    cfg = ctx.config()
    cfg["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]}
    cid, res = ctx.create(cfg)
    ctx.expect(not res.ok, "create accepted a syscalls entry with empty names")


@check("config-linux.md#seccomp-metadata-needs-listener", "MUST NOT", "seccomp: listenerMetadata without listenerPath is an error")
def seccomp_metadata_needs_listener(ctx):
    cfg = ctx.config()
    cfg["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "meta",
                               "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    cid, res = ctx.create(cfg)
    ctx.expect(not res.ok, "create accepted listenerMetadata without listenerPath")


# --- Rootfs propagation, masked and readonly paths, personality ---------------------------------------

def _root_propagation(kind):
    """rootfsPropagation, seen from inside: the propagation fields of the container's /. For
    slave and private also whether a mount made on the host under the rootfs after start shows
    up inside: for those the rootfs is first made an rshared mount on the host (as on a host
    whose / is shared, e.g. under systemd), so that there are host events to receive or not."""
    def fn(ctx):
        probe = kind in ("slave", "private")
        out = ctx.hostdir("out")
        script = "cat /proc/self/mountinfo > /out/before"
        if probe:
            script += ("; while [ ! -e /out/mounted ]; do sleep 0.05; done; "
                       "grep -c ' /probe ' /proc/self/mountinfo > /out/seen; true")
            cfg = ctx.config(["sh", "-c", script])
            cfg["mounts"].append(bind(out, "/out"))
        else:  # no bind mount: an unbindable / would refuse it (runc 1.1 makes / unbindable first)
            cfg = ctx.config(["cat", "/proc/self/mountinfo"])
        cfg["linux"]["rootfsPropagation"] = kind
        b = ctx.bundle(cfg)
        rootfs = b / "rootfs"
        if probe:
            (rootfs / "probe").mkdir()
            ctx.mount("--rbind", rootfs, rootfs)
            if not ctx.sh_ok("mount", "--make-rshared", rootfs):
                raise Skip("cannot make the rootfs a shared mount on this host")
            cid = ctx.must_create(b)
            ctx.must_start(cid)
            deadline = time.monotonic() + 5
            while not (out / "before").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            ctx.mount("-t", "tmpfs", "-o", "size=1m", "conf-probe", rootfs / "probe")
            (out / "mounted").write_text("")
            ctx.wait_status(cid, "stopped", 10)
            info = read(out / "before", "")
        else:
            res = ctx.run(b)
            if not res.ok:
                raise Fail(f"container failed: {res.brief()}")
            info = res.out
        root = last_mount(mountinfo_entries(info), "/")
        if root is None:
            raise Fail("no / in the container's mountinfo")
        seen = read(out / "seen", "").strip()
        opt = root["optional"]
        has = lambda p: any(o.startswith(p) for o in opt)  # noqa: E731
        fields = opt or ["(none: private)"]
        if kind == "shared":
            ctx.expect(has("shared:"), f"/ has {fields}")
        elif kind == "slave":
            ctx.expect(has("master:") and not has("shared:"), f"/ has {fields}")
            ctx.expect(seen == "1", f"a host mount under the rootfs did not reach the container ({seen!r})")
        elif kind == "private":
            ctx.expect(not has("shared:") and not has("master:"), f"/ has {fields}")
            ctx.expect(seen == "0", f"a host mount under the rootfs reached the container ({seen!r})")
        else:
            ctx.expect("unbindable" in opt, f"/ has {fields}")
    return fn


for _k in ("shared", "slave", "private", "unbindable"):
    check(f"config-linux.md#rootfs-propagation-{_k}", "MUST", f"rootfsPropagation {_k}: the container's / has {_k} propagation"
          + (" and gets the host's mounts (rootfs on a shared host mount)" if _k == "slave" else
             " and does not get the host's mounts (rootfs on a shared host mount)" if _k == "private" else ""))(
        _root_propagation(_k))


@check("config-linux.md#masked-paths-file", "MUST", "a masked file cannot be read (reads nothing)")
def masked_file(ctx):
    cfg = ctx.config()
    cfg["linux"]["maskedPaths"] = ["/etc/secret", "/proc/kcore"]
    b = ctx.bundle(cfg)
    (b / "rootfs" / "etc" / "secret").write_text("top secret\n")
    cfg["process"]["args"] = ["sh", "-c", "cat /etc/secret; echo @; head -c 16 /proc/kcore | wc -c"]
    ctx.write_config(b, cfg)
    res = ctx.run(b)
    ctx.expect(res.ok, f"container failed: {res.brief()}")
    secret, _, kcore = res.out.partition("@")
    ctx.expect(secret.strip() == "", f"read {secret.strip()!r} from the masked /etc/secret")
    ctx.expect(kcore.strip() == "0", f"read {kcore.strip()} bytes from the masked /proc/kcore")


@check("config-linux.md#masked-paths-dir", "MUST", "a masked directory shows nothing")
def masked_dir(ctx):
    cfg = ctx.config()
    cfg["linux"]["maskedPaths"] = ["/secretdir", "/sys/firmware"]
    b = ctx.bundle(cfg)
    (b / "rootfs" / "secretdir").mkdir()
    (b / "rootfs" / "secretdir" / "inside").write_text("x\n")
    cfg["process"]["args"] = ["sh", "-c", "ls -A /secretdir; echo @; ls -A /sys/firmware"]
    ctx.write_config(b, cfg)
    res = ctx.run(b)
    ctx.expect(res.ok, f"container failed: {res.brief()}")
    a, _, fw = res.out.partition("@")
    ctx.expect(a.strip() == "" and fw.strip() == "", f"masked dirs list {a.split()} and {fw.split()}")


@check("config-linux.md#masked-paths-missing", "MUST", "a masked path that does not exist is not an error")
def masked_missing(ctx):
    cfg = ctx.config(["true"])
    cfg["linux"]["maskedPaths"] = ["/no/such/path"]
    res = ctx.run(cfg)
    ctx.expect(res.ok, f"container failed on a missing masked path: {res.brief()}")


@check("config-linux.md#readonly-paths", "MUST", "a readonly path cannot be written (file and directory)")
def readonly_paths(ctx):
    cfg = ctx.config()
    cfg["linux"]["readonlyPaths"] = ["/rodir", "/etc/rofile", "/proc/sys"]
    b = ctx.bundle(cfg)
    (b / "rootfs" / "rodir").mkdir()
    (b / "rootfs" / "etc" / "rofile").write_text("x\n")
    cfg["process"]["args"] = ["sh", "-c", "touch /rodir/new 2>/dev/null && echo wrote-dir; "
                                          "echo y > /etc/rofile 2>/dev/null && echo wrote-file; "
                                          "echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo wrote-proc; "
                                          "touch /writable && echo root-ok; true"]
    ctx.write_config(b, cfg)
    res = ctx.run(b)
    ctx.expect(res.ok, f"container failed: {res.brief()}")
    ctx.expect(res.out.split() == ["root-ok"], f"writes that went through: {res.out.split()}")


@check("config-linux.md#personality-linux32", "MUST", "personality LINUX32: uname reports a 32-bit machine")
def personality32(ctx):
    if os.uname().machine not in ("x86_64", "aarch64"):
        raise Skip(f"no 32-bit personality check for {os.uname().machine}")
    cfg = ctx.config(["uname", "-m"])
    cfg["linux"]["personality"] = {"domain": "LINUX32"}
    res = ctx.run(cfg)
    ctx.expect(res.ok and res.out.strip() in ("i686", "i386", "armv7l", "armv8l"), f"uname -m: {res.brief()}")


@check("config-linux.md#personality-linux", "MUST", "personality LINUX: uname reports the native machine")
def personality_linux(ctx):
    cfg = ctx.config(["uname", "-m"])
    cfg["linux"]["personality"] = {"domain": "LINUX"}
    res = ctx.run(cfg)
    ctx.expect(res.ok and res.out.strip() == os.uname().machine, f"uname -m: {res.brief()}")


@check("config-linux.md#personality-invalid", "MUST", "an unknown personality domain is an invalid value: error")
def personality_invalid(ctx):
    cfg = ctx.config(["true"])
    cfg["linux"]["personality"] = {"domain": "NO_SUCH_DOMAIN"}
    cid, res = ctx.create(cfg)
    ctx.expect(not res.ok, "create accepted personality domain NO_SUCH_DOMAIN")
