"""Turn a checked Config into the one struct oci_plan the C trampoline executes.

All decisions are made here, in Python: which namespaces to create or join, the ordered list
of rootfs operations (mounts, devices, /dev symlinks, masks), the capability masks. The C side
only carries them out. The returned Plan owns every C buffer the struct points into.
"""
import posix

from . import kernel as k
from . import mountopts
from .cgroups import Hierarchy
from .config import Config
from .errors import ConfigError, shown
from .posixio import isdir, normpath

DEFAULT_DEVICES = (  # path, major, minor: created unless config.json lists them itself
    ("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7),
    ("/dev/random", 1, 8), ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0),
)
DEV_SYMLINKS = (
    ("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"),
    ("pts/ptmx", "/dev/ptmx"),
)
DEVICE_TYPES = {"c": k.S_IFCHR, "u": k.S_IFCHR, "b": k.S_IFBLK, "p": k.S_IFIFO}
OP_MOUNT, OP_MKNOD, OP_SYMLINK, OP_MKDIR, OP_MASK, OP_READONLY = 1, 2, 3, 4, 5, 6
# Files under /proc a bind mount may cover (what lxcfs-style tools provide); anything else there
# could hide the kernel files the runtime and LSMs rely on (the CVE-2019-16884 class).
PROC_BINDS_ALLOWED = {"/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
                      "/proc/uptime", "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev",
                      "/proc/sys/kernel/ns_last_pid"}


def _kernel_fs_path(path: str) -> bool:
    """Paths in /proc and /sys are resolved with no symlinks at all (CVE-2019-19921 class)."""
    return path in ("/proc", "/sys") or path.startswith(("/proc/", "/sys/"))


class Op:
    """One rootfs operation, as struct oci_op will hold it."""

    __slots__ = ("kind", "where", "source", "target", "fstype", "data", "flags", "propagation",
                 "attr_set", "attr_clr", "target_is_dir", "mode", "major", "minor", "uid", "gid", "copy_up",
                 "resolve_flags", "source_late", "idmap")

    def __init__(self, kind, where, target, source=None, fstype=None, data=None, flags=0, propagation=0,
                 attr_set=0, attr_clr=0, target_is_dir=1, mode=0, major=0, minor=0, uid=-1, gid=-1,
                 copy_up=False, source_late=False, idmap=None):
        self.kind, self.where, self.target, self.source = kind, where, target, source
        self.fstype, self.data = fstype, data
        self.flags, self.propagation, self.attr_set, self.attr_clr = flags, propagation, attr_set, attr_clr
        self.target_is_dir, self.mode, self.major, self.minor = target_is_dir, mode, major, minor
        self.uid, self.gid, self.copy_up, self.source_late = uid, gid, copy_up, source_late
        self.idmap = idmap  # (uid mappings, gid mappings, recursive) of an idmapped bind
        self.resolve_flags = k.RESOLVE_NO_SYMLINKS if _kernel_fs_path(target) or fstype in ("proc", "sysfs") else 0


def _idmap(cfg: Config, m, o, where: str):
    """An idmapped bind mount's mappings: its own, or with only idmap/ridmap the container's
    user namespace's, as runc does. None for a mount that is not idmapped."""
    if not (o.idmap or m.uid_mappings):
        return None
    if m.type != "bind":
        raise ConfigError("only bind mounts can be idmapped", f"{where}.options")
    uid_maps, gid_maps = m.uid_mappings, m.gid_mappings
    if not uid_maps:
        if not cfg.uid_mappings:
            raise ConfigError(f"{o.idmap} needs uidMappings and gidMappings, or a user namespace with mappings",
                              f"{where}.options")
        uid_maps, gid_maps = cfg.uid_mappings, cfg.gid_mappings
    return uid_maps, gid_maps, o.idmap == "ridmap"


def rootfs_ops(cfg: Config, in_userns: bool, cgroup_dirs: list[str], cgroup_layout: list[Hierarchy],
               cgroupns: bool, cgroup_late: bool = False) -> list[Op]:
    """The rootfs operations in the order runc does them: mounts, cwd, devices, symlinks, masks.
    cgroup_late: the cgroup directories are made around the init (systemd), so a bind of them
    is opened by the init, not before the clone."""
    ops = []
    dev_bound = False
    for i, m in enumerate(cfg.mounts):
        where = f"mounts[{i}]"
        dest = normpath(m.destination)
        if m.type != "proc" and (dest == "/proc" or dest.startswith("/proc/")) and dest not in PROC_BINDS_ALLOWED:
            raise ConfigError(f"{shown(dest)} is in /proc: only proc may be mounted there", f"{where}.destination")
        o = mountopts.parse(m.options)
        idmap = _idmap(cfg, m, o, where)
        if m.type == "bind":
            dev_bound |= dest == "/dev"
            attr_set = o.attr_set
            if o.flags & k.MS_REC and o.flags & k.MS_RDONLY and not o.attr_clr & k.MOUNT_ATTR_RDONLY:
                # ro on an rbind is read-only all the way down (as Docker 25's): a host submount,
                # such as /sys/fs/cgroup under a /sys bind, must not be writable through it (the
                # CVE-2023-25809 class)
                attr_set |= k.MOUNT_ATTR_RDONLY
            ops.append(Op(OP_MOUNT, where, m.destination, source=m.source, flags=o.flags | k.MS_BIND,
                          propagation=o.propagation, attr_set=attr_set, attr_clr=o.attr_clr,
                          target_is_dir=int(isdir(m.source)), idmap=idmap))
        elif m.type == "cgroup":
            ops += _cgroup_mount(where, m.destination, o, cgroup_dirs, cgroup_layout, cgroupns, cgroup_late)
        else:
            if not m.type:
                raise ConfigError("a mount that is not a bind mount needs a type", f"mounts[{i}].type")
            ops.append(Op(OP_MOUNT, where, m.destination, source=m.source or m.type, fstype=m.type,
                          data=with_mount_label(o.data, m.type, cfg.mount_label), flags=o.flags,
                          propagation=o.propagation,
                          attr_set=o.attr_set, attr_clr=o.attr_clr, copy_up=o.copy_up))
    ops.append(Op(OP_MKDIR, "process.cwd", cfg.process.cwd))

    if not dev_bound:
        listed = {d.path for d in cfg.devices}
        for path, major, minor in DEFAULT_DEVICES:
            if path not in listed:
                ops.append(_device_op("linux.devices (a default device)", path, k.S_IFCHR | 0o666, major, minor,
                                      0, 0, in_userns))
        for i, d in enumerate(cfg.devices):
            ops.append(_device_op(f"linux.devices[{i}]", d.path, DEVICE_TYPES[d.type] | (d.file_mode & 0o7777),
                                  d.major, d.minor, d.uid, d.gid, in_userns))
        for source, target in DEV_SYMLINKS:
            ops.append(Op(OP_SYMLINK, "linux (the /dev symlinks)", target, source=source))

    ops += [Op(OP_MASK, f"linux.maskedPaths[{i}]", p) for i, p in enumerate(cfg.masked_paths)]
    ops += [Op(OP_READONLY, f"linux.readonlyPaths[{i}]", p) for i, p in enumerate(cfg.readonly_paths)]
    return ops


# File systems whose files take no SELinux mount context, as runc leaves them.
NO_MOUNT_LABEL = frozenset(("proc", "sysfs", "mqueue", "cgroup", "cgroup2"))


def with_mount_label(data: str, fstype: str, label: str) -> str:
    """linux.mountLabel as the context= option of a mount that takes one."""
    if not label or fstype in NO_MOUNT_LABEL:
        return data
    option = f'context="{label}"'
    return f"{data},{option}" if data else option


def _device_op(where, path, mode, major, minor, uid, gid, in_userns) -> Op:
    # A user namespace may not mknod: bind the host's node instead, as runc does; nosuid and
    # noexec as crun has them (a device node is neither run nor setuid).
    if in_userns and (mode & k.S_IFIFO) != k.S_IFIFO:
        return Op(OP_MOUNT, where, path, source=path, flags=k.MS_BIND | k.MS_NOSUID | k.MS_NOEXEC, target_is_dir=0)
    return Op(OP_MKNOD, where, path, mode=mode, major=major, minor=minor, uid=uid, gid=gid)


def _cgroup_mount(where, dest, o, dirs, found, cgroupns, late) -> list[Op]:
    """A `cgroup` mount shows the container's own cgroup in every hierarchy.

    In a cgroup namespace the hierarchies are mounted afresh (the namespace roots them at the
    container's cgroup); without one, the container's directories are bind-mounted.
    """
    flags = o.flags & ~k.MS_RDONLY
    if len(found) == 1 and found[0].version == 2:
        if cgroupns:
            return [Op(OP_MOUNT, where, dest, source="cgroup2", fstype="cgroup2", flags=o.flags)]
        return [Op(OP_MOUNT, where, dest, source=dirs[0], flags=k.MS_BIND | k.MS_REC | o.flags, source_late=late)]
    ops = [Op(OP_MOUNT, where, dest, source="tmpfs", fstype="tmpfs", data="mode=755", flags=flags)]
    for h, d in zip(found, dirs):
        target = f"{dest.rstrip('/')}/{h.name}"
        if cgroupns:
            fstype, data = ("cgroup2", None) if h.version == 2 else ("cgroup", h.mount_data)
            ops.append(Op(OP_MOUNT, where, target, source="cgroup", fstype=fstype, data=data, flags=o.flags))
        else:
            ops.append(Op(OP_MOUNT, where, target, source=d, flags=k.MS_BIND | k.MS_REC | o.flags, source_late=late))
    if o.flags & k.MS_RDONLY:
        ops.append(Op(OP_MOUNT, where, dest, fstype="tmpfs", flags=k.MS_REMOUNT | o.flags))
    return ops


def capability_mask(names) -> int:
    mask = 0
    last = _LAST_CAP
    for name in names or ():
        num = k.CAPABILITIES.index(name) if name in k.CAPABILITIES else last + 1
        if num <= last:  # caps newer than this kernel are ignored, as runc does
            mask |= 1 << num
    return mask


_LAST_CAP = k.last_cap()


def _c_id(n: int) -> int:
    return n - 2**32 if n >= 2**31 else n


def timens_offsets(offsets: dict) -> str | None:
    lines = []
    for clock in ("monotonic", "boottime"):
        if clock in offsets:
            o = offsets[clock]
            lines.append(f"{clock} {o.get('secs', 0)} {o.get('nanosecs', 0)}\n")
    return "".join(lines) or None


# The fd fields of struct oci_plan (tests/test_units.py checks this against the header).
FD_FIELDS = ("shared_mntns_fd", "chroot_fd", "cgroup_v2_fd", "exec_fifo_fd", "lock_fd")
OP_FD_FIELDS = ("source_fd", "userns_fd")  # given by stage 1, and by set_idmaps


class Plan:
    """Builds struct oci_plan with cffi and keeps every buffer it points into alive."""

    def __init__(self, ffi):
        self.ffi = ffi
        self._keep = []
        self.c = ffi.new("struct oci_plan *")
        self._keep.append(self.c)
        # Every fd unset until given: a zeroed struct would hand the children fd 0 as a fifo,
        # a lock or a cgroup.
        for name in FD_FIELDS:
            setattr(self.c, name, -1)
        self.seccomp = None  # the compiled Filter, when there is one

    def str(self, s):
        if s is None:
            return self.ffi.NULL
        buf = self.ffi.new("char[]", s.encode() if isinstance(s, str) else s)
        self._keep.append(buf)
        return buf

    def strv(self, items):
        bufs = [self.str(s) for s in items] + [self.ffi.NULL]
        arr = self.ffi.new("char *[]", bufs)
        self._keep.append(arr)
        return arr

    def array(self, ctype, n):
        arr = self.ffi.new(f"{ctype}[]", max(n, 1))
        self._keep.append(arr)
        return arr

    def set_cgroup_self_join(self, tasks_fds: list[int], tasks_dirs: list, v2_fd: int, v2_dir) -> None:
        """The init places itself in its cgroups (see cgroups.open_for_self_join)."""
        fds = self.array("int", len(tasks_fds))
        for i, fd in enumerate(tasks_fds):
            fds[i] = fd
        c = self.c
        c.cgroup_tasks_fds, c.cgroup_tasks_dirs, c.ncgroup_tasks = fds, self.strv(tasks_dirs), len(tasks_fds)
        c.cgroup_v2_fd, c.cgroup_v2_dir = v2_fd, self.str(v2_dir)

    def set_joins(self, joins: list[tuple[str, int]], fds: list[int], where: str) -> None:
        """Namespaces to join, in order: (nsfs path, CLONE_NEW* type). Opened fds go into fds."""
        arr = self.array("struct oci_ns_join", len(joins))
        for i, (path, ns_type) in enumerate(joins):
            try:
                fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
            except OSError as e:
                raise ConfigError(f"open {shown(path)}: {e.strerror}", where) from None
            fds.append(fd)
            arr[i].fd, arr[i].type = fd, ns_type
        self.c.joins, self.c.njoins = arr, len(joins)

    def set_process(self, proc, setgroups: bool = True) -> None:
        """The process fields: program, environment, user, limits, capabilities, terminal.
        setgroups: False where the user namespace refuses setgroups(2) (rootless.py)."""
        c = self.c
        env = list(proc.env)
        # Without HOME the init sets it from the container's /etc/passwd, as runc does; "/"
        # when the user has no entry there.
        c.home_from_passwd = not any(e.startswith("HOME=") for e in env)
        if c.home_from_passwd:
            env.append("HOME=/")
        c.argv, c.envp, c.cwd = self.strv(proc.args), self.strv(env), self.str(proc.cwd)
        u = proc.user
        # uid_t is unsigned, the plan's fields C ints: ids above 2**31 - 1 travel as their
        # two's complement, which setresuid/setresgid take back as the same 32 bits
        c.uid, c.gid = _c_id(u.uid), _c_id(u.gid)
        groups = self.array("unsigned int", len(u.additional_gids))
        for i, g in enumerate(u.additional_gids):
            groups[i] = g
        if u.additional_gids and not setgroups:
            raise ConfigError("the user namespace refuses setgroups: its gid map is the caller's own gid "
                              "alone, written without newgidmap", "process.user.additionalGids")
        c.groups, c.ngroups, c.set_groups = groups, len(u.additional_gids), int(setgroups)
        c.umask = -1 if u.umask is None else u.umask
        rl = self.array("struct oci_rlimit", len(proc.rlimits))
        for i, r in enumerate(proc.rlimits):
            rl[i].resource, rl[i].soft, rl[i].hard, rl[i].name = r.resource, r.soft, r.hard, self.str(r.name)
        c.rlimits, c.nrlimits = rl, len(proc.rlimits)
        c.no_new_privs = int(proc.no_new_privileges)
        caps = proc.capabilities
        if caps is not None:
            c.set_caps = 1
            c.cap_bounding = capability_mask(caps.get("bounding"))
            c.cap_effective = capability_mask(caps.get("effective"))
            c.cap_permitted = capability_mask(caps.get("permitted"))
            c.cap_inheritable = capability_mask(caps.get("inheritable"))
            c.cap_ambient = capability_mask(caps.get("ambient"))
            c.last_cap = _LAST_CAP
        c.terminal = int(proc.terminal)
        if proc.console_size:
            c.rows, c.cols = proc.console_size

    def set_seccomp(self, profile: dict | None) -> None:
        """Compile linux.seccomp here, in the parent: the init only installs the program."""
        if not profile:
            return
        from .seccomp import compile_filter

        f = compile_filter(profile)
        prog = self.ffi.from_buffer("unsigned char[]", f.program)
        self._keep += [f.program, prog]
        c = self.c
        c.seccomp_prog, c.seccomp_len, c.seccomp_flags, c.seccomp_notify = prog, f.ninsns, f.flags, int(f.notify)
        self.seccomp = f

    def send_seccomp_listener(self, doc: dict, fd: int, pid: int) -> None:
        """Hand the notify listener fd of process pid to the agent at listenerPath."""
        from .seccomp_notify import send_listener

        send_listener(self.seccomp.listener_path, self.seccomp.listener_metadata, doc, fd, pid)

    def set_ops(self, ops: list[Op]) -> None:
        arr = self.array("struct oci_op", len(ops))
        for i, op in enumerate(ops):
            c = arr[i]
            c.kind, c.where, c.target, c.source = op.kind, self.str(op.where), self.str(op.target), self.str(op.source)
            c.fstype, c.data = self.str(op.fstype), self.str(op.data)
            c.flags, c.propagation = op.flags, op.propagation
            c.attr_set, c.attr_clr, c.target_is_dir = op.attr_set, op.attr_clr, op.target_is_dir
            c.mode, c.major, c.minor, c.uid, c.gid = op.mode, op.major, op.minor, op.uid, op.gid
            c.copy_up, c.resolve_flags, c.source_late = int(op.copy_up), op.resolve_flags, int(op.source_late)
            for name in OP_FD_FIELDS:
                setattr(c, name, -1)
            c.idmap_recursive = int(bool(op.idmap and op.idmap[2]))
        self.c.ops, self.c.nops = arr, len(ops)

    def set_idmaps(self, ops: list[Op], fds: list[int]) -> None:
        """The user namespace each idmapped bind takes its mappings from; one per mapping."""
        from .idmap import userns_fd

        made: dict = {}
        for i, op in enumerate(ops):
            if op.idmap:
                uid_maps, gid_maps, _ = op.idmap
                key = tuple(tuple((m.container_id, m.host_id, m.size) for m in maps) for maps in (uid_maps, gid_maps))
                if key not in made:
                    made[key] = userns_fd(uid_maps, gid_maps, op.where)
                    fds.append(made[key])
                self.c.ops[i].userns_fd = made[key]
