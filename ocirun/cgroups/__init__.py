"""cgroups: find the host's layout (v1, v2 or hybrid), place a container, and clean it up.

The layout is read from /proc/self/mountinfo, never assumed. A container's cgroup is one
directory per hierarchy; the state store keeps the list so `delete` needs no detection.

Placement lives here; the rest is imported only by the commands that need it:
resources.py (linux.resources as file writes), devices.py and bpf.py (device rules: v1 files,
the v2 eBPF filter), freezer.py (pause/resume), usage.py (stats and OOM kills for events).
"""
import _thread
import posix

from ..errors import OciError
from ..posixio import basename, dirname, exists, isdir

ROOT = "/sys/fs/cgroup"
# Superblock options of a v1 hierarchy that are not controllers.
_NOT_CONTROLLERS = {"rw", "ro", "clone_children", "noprefix", "xattr", "cpuset_v2_mode", "nosuid", "nodev", "noexec"}


class Hierarchy:
    """One mounted cgroup hierarchy: where it is, what it controls, and our own place in it."""

    __slots__ = ("mountpoint", "version", "controllers", "own_path")

    def __init__(self, mountpoint, version, controllers, own_path):
        self.mountpoint, self.version = mountpoint, version
        self.controllers, self.own_path = controllers, own_path

    @property
    def name(self) -> str:
        return basename(self.mountpoint)

    @property
    def mount_data(self) -> str:
        """The -o options that mount this hierarchy again (inside a cgroup namespace)."""
        return ",".join(sorted(self.controllers))


def hierarchies() -> list[Hierarchy]:
    """Every cgroup hierarchy mounted under /sys/fs/cgroup, with this process's path in it."""
    own_v1, own_v2 = {}, "/"
    with open("/proc/self/cgroup") as f:
        for line in f:
            num, ctrls, path = line.rstrip("\n").split(":", 2)
            if num == "0":
                own_v2 = path
            else:
                own_v1[frozenset(ctrls.split(","))] = path
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mountpoint = fields[4]
            if not (mountpoint == ROOT or mountpoint.startswith(ROOT + "/")):
                continue
            sep = fields.index("-")
            fstype, superopts = fields[sep + 1], fields[sep + 3]
            if fstype == "cgroup2":
                found.append(Hierarchy(mountpoint, 2, frozenset(), own_v2))
            elif fstype == "cgroup":
                ctrls = frozenset(o for o in superopts.split(",") if o not in _NOT_CONTROLLERS)
                found.append(Hierarchy(mountpoint, 1, ctrls, own_v1.get(ctrls, "/")))
    return found


def layout(found: list[Hierarchy]) -> str:
    """'v2' (unified), 'v1', or 'hybrid' (v1 controllers plus a cgroup2 mount)."""
    versions = {h.version for h in found}
    if versions == {2}:
        return "v2"
    return "hybrid" if 2 in versions else "v1"


def _systemd_form(cgroups_path: str) -> bool:
    return cgroups_path.count(":") == 2 and not cgroups_path.startswith("/")


def manager(cgroups_path: str, container_id: str, systemd: bool, found: list[Hierarchy],
            annotations: dict | None = None) -> "Cgroupfs":
    """The driver of a new container, chosen once here and kept in its state (manager_of): the
    systemd driver (systemd.py) with --systemd-cgroup, else cgroupfs."""
    if systemd:
        from .systemd import Systemd

        return Systemd.for_path(cgroups_path, container_id, found, annotations)
    if _systemd_form(cgroups_path):
        raise OciError(f"{cgroups_path!r} is the systemd driver's slice:prefix:name form: "
                       "pass --systemd-cgroup, or give a path", "linux.cgroupsPath")
    return Cgroupfs(container_dirs(cgroups_path, container_id, found))


def manager_of(private: dict) -> "Cgroupfs":
    """The driver a container was created with, from its state.json or init.json record."""
    dirs, made = private.get("cgroup_dirs") or [], private.get("cgroup_made") or []
    if private.get("cgroup_unit"):
        from .systemd import Systemd

        return Systemd(dirs, made, private["cgroup_unit"])
    return Cgroupfs(dirs, made)


class Cgroupfs:
    """The cgroupfs driver: ocirun makes the directories, writes the files, and removes what it
    made. The systemd driver keeps this interface; nothing outside cgroups/ asks which it is."""

    self_join = True  # the directories exist before the init does: it may place itself

    def __init__(self, dirs: list[str], made=()):
        self.dirs, self.made = dirs, list(made)

    def record(self) -> dict:
        """What init.json keeps before anything exists: what a delete -f after a killed create
        removes."""
        return {"cgroup_dirs": self.dirs, "cgroup_made": missing(self.dirs)}

    def state(self) -> dict:
        return {"cgroup_dirs": self.dirs, "cgroup_made": self.made}

    def prepare(self, resources: dict, devices) -> None:
        """Before the init exists: make the directories and write linux.resources."""
        self.made = create(self.dirs)
        apply(self.dirs, resources, devices=devices)

    def place(self, pid: int) -> None:
        """Put the new init in the container's cgroup (when it doesn't place itself)."""
        join(self.dirs, pid)

    def enter(self, pid: int) -> None:
        """Put an exec'd process in the container's cgroup."""
        join(self.dirs, pid)

    def update(self, resources: dict, devices) -> None:
        apply(self.dirs, resources, update=True, devices=devices)

    def destroy(self) -> list[str]:
        """Remove the container's cgroup and those below it; returns the directories that could
        not be removed."""
        return remove(self.made, own=self.dirs)


def container_dirs(cgroups_path: str, container_id: str, found: list[Hierarchy]) -> list[str]:
    """The directory of the container's cgroup in every hierarchy.

    An absolute cgroupsPath is taken from each hierarchy's root, a relative one (and the default,
    the container id) from ocirun's own cgroup, as runc does; on cgroup v2 from the parent of a
    .scope, which holds ocirun itself and so can't have children with controllers (v2's rule:
    no processes in a cgroup that passes controllers on).
    """
    path = cgroups_path or container_id
    if ".." in path.split("/"):
        raise OciError(f"{path!r} must not contain '..'", "linux.cgroupsPath")
    from ..posixio import normpath

    dirs = []
    for h in found:
        base = h.own_path
        if path.startswith("/"):
            base = "/"
        elif h.version == 2 and base.endswith(".scope"):
            base = dirname(base)
        dirs.append(normpath(h.mountpoint + "/" + base + "/" + path))
    return dirs


def missing(dirs: list[str]) -> list[str]:
    """The directories create(dirs) would make now, parents first."""
    out: list[str] = []
    for d in dirs:
        chain = []
        while not isdir(d) and d not in out:
            chain.append(d)
            d = dirname(d)
        out += reversed(chain)
    return out


def create(dirs: list[str]) -> list[str]:
    """Make the directories; returns those made here (parents first), so only they are removed.
    On cgroup v2 every parent first passes its controllers on to its children, as runc does."""
    made = []
    try:
        for m in missing(dirs):
            parent = dirname(m)
            v2 = exists(parent + "/cgroup.controllers")
            if v2:
                # a parent made just now: those above it have passed their controllers on already
                _enable_controllers(parent, above=parent not in made)
            posix.mkdir(m)
            made.append(m)
            if not v2 and exists(m + "/cpuset.cpus"):
                _inherit_cpuset(m)
    except OSError as e:
        remove(made)
        raise OciError(f"create cgroup: {e.strerror}", e.filename) from None
    return made


def _enable_controllers(d: str, above: bool = True) -> None:
    """Write every controller d (and, with `above`, each of its ancestors) has into its
    cgroup.subtree_control, from the top down (a controller reaches a child only through every
    ancestor). Not in a cgroup with processes of its own (but the root): v2 refuses the domain
    controllers there, and the threaded ones it takes would make it a thread root, whose new
    children take no process. A setting that needs a controller that didn't arrive then says so."""
    chain = [d]
    while above and exists(dirname(chain[-1]) + "/cgroup.controllers"):
        chain.append(dirname(chain[-1]))
    root = chain[-1] if above else None
    for d in reversed(chain):
        with open(d + "/cgroup.controllers") as f:
            have = f.read().split()
        if not have:
            continue
        if d != root:
            with open(d + "/cgroup.procs") as f:
                if f.read(1):
                    continue
        with open(d + "/cgroup.subtree_control") as f:
            enabled = set(f.read().split())
        for ctrl in have:
            if ctrl not in enabled:
                try:
                    with open(d + "/cgroup.subtree_control", "w") as f:
                        f.write("+" + ctrl)
                except OSError:
                    pass


def _inherit_cpuset(d: str) -> None:
    """A new v1 cpuset cgroup starts empty and takes no task until it has cpus and mems."""
    parent = dirname(d)
    for name in ("cpuset.cpus", "cpuset.mems"):
        with open(f"{d}/{name}") as f:
            if f.read().strip():
                continue
        with open(f"{parent}/{name}") as f:
            value = f.read()
        with open(f"{d}/{name}", "w") as f:
            f.write(value)


# Moving a process between cgroups through cgroup.procs takes a global lock
# (cgroup_threadgroup_rwsem) whose first writer waits for an RCU grace period: 5-15 ms here.
# Writers that come within about 20 ms of the last one don't wait. create without a user
# namespace avoids the lock altogether (open_for_self_join). exec, which makes no cgroup, first
# starts a thread that moves ocirun into the cgroup it is already in (a no-op move that still
# takes the lock), so the grace period passes while the main thread works. It moves again
# every few ms until join() stops it, at most a few times: many execs at once must not flood
# the lock (each move also holds cgroup_mutex, and stalls fork and exit). (create with a user
# namespace gains nothing from it: its mkdirs, right after the config says so, would wait
# for the grace period through cgroup_mutex instead.)
_WARM_PERIOD_S = 0.008
_WARM_MOVES_MAX = 6
_warm_until_join = _thread.allocate_lock()


def warm_up() -> None:
    """Start keeping the cgroup-move lock warm until join() (best effort, never fails)."""
    fd = _own_procs_fd()
    if fd is not None:
        _warm_until_join.acquire()
        _thread.start_new_thread(_keep_warm, (fd,))


def _own_procs_fd() -> int | None:
    """cgroup.procs of a cgroup this process is in: cgroup2 first (unified or pure v2)."""
    try:
        with open("/proc/self/cgroup", "rb") as f:
            lines = f.read().decode().splitlines()
    except OSError:
        return None
    candidates = []
    for line in lines:
        num, ctrls, path = line.split(":", 2)
        if num == "0":
            candidates[:0] = [f"{ROOT}/unified{path}", f"{ROOT}{path}"]
        else:
            candidates.append(f"{ROOT}/{ctrls.split(',')[0].removeprefix('name=')}{path}")
    for d in candidates:
        try:
            return posix.open(d.rstrip("/") + "/cgroup.procs", posix.O_WRONLY | posix.O_CLOEXEC)
        except OSError:
            continue
    return None


def _keep_warm(fd: int) -> None:
    try:
        for _ in range(_WARM_MOVES_MAX):
            posix.write(fd, b"0")  # 0: the writing process itself, into the cgroup it is in
            if _warm_until_join.acquire(timeout=_WARM_PERIOD_S):
                break
    except OSError:
        pass  # not allowed here: no warm-up, only the wait
    finally:
        posix.close(fd)


def open_for_self_join(dirs: list[str], found: list[Hierarchy],
                       fds: list[int]) -> tuple[list[int], list[str], int, str | None]:
    """What a new process needs to place itself in the container's cgroups without
    cgroup.procs (csrc/trampoline.h, cgroup_tasks_fds): the v1 directories' `tasks` fds with
    those directories, and an O_PATH fd of the v2 directory (or -1) with that directory. Every
    fd opened is also appended to fds, which the caller closes. Opened here, by host root, so
    that neither the path nor the permission is the container's."""
    tasks_fds, tasks_dirs, v2_fd, v2_dir = [], [], -1, None
    for h, d in zip(found, dirs):
        try:
            if h.version == 1:
                fd = posix.open(d + "/tasks", posix.O_WRONLY | posix.O_CLOEXEC)
                tasks_fds.append(fd)
                tasks_dirs.append(d)
            else:
                fd = v2_fd = posix.open(d, posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
                v2_dir = d
        except OSError as e:
            raise OciError(f"open cgroup: {e.strerror}", d) from None
        fds.append(fd)
    return tasks_fds, tasks_dirs, v2_fd, v2_dir


def join(dirs: list[str], pid: int) -> None:
    if _warm_until_join.locked():
        _warm_until_join.release()
    for d in dirs:
        try:
            with open(d + "/cgroup.procs", "w") as f:
                f.write(str(pid))
        except OSError as e:
            raise OciError(f"join cgroup: {e.strerror}", d) from None


def below(d: str) -> list[str]:
    """The cgroups under d (made by the container, or by a caller for it), deepest first."""
    out = []
    try:
        entries = [e.path for e in posix.scandir(d) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return out
    for sub in entries:
        out += below(sub) + [sub]
    return out


def _procs(d: str) -> list[int]:
    try:
        with open(d + "/cgroup.procs") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def pids(dirs: list[str]) -> list[int]:
    """Every process in the container's cgroups and the cgroups below them, in any hierarchy:
    a process the container moved into a child cgroup of one hierarchy is still its own."""
    found = set()
    for d in dirs:
        for sub in [d] + below(d):
            found.update(_procs(sub))
    return sorted(found)


def kill_all(dirs: list[str], sig: int) -> None:
    for pid in pids(dirs):
        try:
            posix.kill(pid, sig)
        except ProcessLookupError:
            pass


def thaw_all(dirs: list[str]) -> None:
    """Thaw the container's cgroups and every cgroup below them: a v1 task frozen in a child
    cgroup never handles its SIGKILL, and thawing a parent leaves a child frozen by itself."""
    for d in dirs:
        for sub in [d] + below(d):
            _unfreeze(sub)


def remove(made: list[str], own=()) -> list[str]:
    """Remove the directories we made, deepest first, killing what still runs in them; below
    the container's own directories (`own`), every cgroup there first, as runc does.

    A parent that another container's cgroup still sits in stays, and that is fine. Returns
    the directories that still hold processes (or, below the container's own, that could not
    be removed) after about a second of trying.
    """
    own = set(own)
    stuck = []
    for d in sorted(made, key=len, reverse=True):
        tree = below(d) + [d] if d in own else [d]
        for sub in tree:
            if not _rmdir(sub, must=d in own):
                stuck.append(sub)
                break
    return stuck


def _rmdir(d: str, must: bool) -> bool:
    """rmdir d, killing and thawing what keeps it busy. Without `must`, a directory that holds
    no process (only other cgroups) is left, and that counts as done."""
    import time

    for _ in range(200):
        try:
            posix.rmdir(d)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            procs = _procs(d)
            if not procs and not must:
                return True
            _unfreeze(d)
            for pid in procs:
                try:
                    posix.kill(pid, 9)
                except ProcessLookupError:
                    pass
            time.sleep(0.005)
    return False


def _unfreeze(d: str) -> None:
    for name, value in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
        try:
            with open(f"{d}/{name}", "w") as f:
                f.write(value)
            return
        except OSError:
            pass


def apply(dirs: list[str], resources: dict, update: bool = False, devices=()) -> None:
    """Write linux.resources into the container's cgroup (see resources.py).

    devices: the config's linux.devices as allow rules (`device_allows`), always allowed.
    update: change a running container's cgroup: only the fields given are written, and the
    device rules only when `resources` has `devices`.
    """
    if update and not resources:
        return
    from .resources import apply as _apply

    _apply(dirs, resources, update, devices)


def device_allows(devices) -> list[dict]:
    """linux.devices (config Device records or dicts) as device allow rules, JSON-ready: what
    create passes to apply() and keeps in state.json for `update`."""
    from .devices import device_allows as _allows

    return _allows(devices)


def freeze(dirs: list[str]) -> None:
    from .freezer import freeze as _freeze

    _freeze(dirs)


def thaw(dirs: list[str]) -> None:
    from .freezer import thaw as _thaw

    _thaw(dirs)


def stats(dirs: list[str]) -> dict:
    """The `data` of runc's `events --stats` for the cgroup (see usage.py)."""
    from .usage import stats as _stats

    return _stats(dirs)


def oom_events(dirs: list[str]) -> int:
    """How many OOM kills the cgroup has seen."""
    from .usage import oom_kills

    return oom_kills(dirs)
