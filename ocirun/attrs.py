"""The remaining process and linux settings: checked and converted here, applied in C.

    linux.sysctl             only keys the container's own namespaces hold, as runc allows them
    linux.personality        domain LINUX or LINUX32, and personality(2) flags
    process.scheduler        sched_setattr(2)
    process.ioPriority       ioprio_set(2)
    process.execCPUAffinity  `exec` only: the spec makes it "not applicable to the container's
                             init process"; `initial` is set in stage 1 (the process starts
                             with it, before it is moved into the container's cgroup) and
                             `final` once it is in the cgroup, as runc does
    linux.memoryPolicy       set_mempolicy(2)

`convert(doc)` (create) and `convert_exec(process, saved)` (exec) check a config and return an
`Attrs`, or None when there is nothing to do; `fill(plan, attrs)` turns it into the
`struct oci_attrs` of csrc/attrs.h, which the trampoline applies (csrc/attrs.c).

`check_lsm(doc)` and `check_intel_rdt(doc)` refuse, with an error naming the field, what
this host can't give: an AppArmor profile where AppArmor is off, Intel RDT where no resctrl is
mounted. SELinux labels where SELinux is off are a warning, and dropped (`selinux_label`).

The module imports nothing heavy: `create` imports it only when `wanted(doc)` says the config
has one of these fields.
"""
from .errors import ConfigError

# The sysctls of an ipc namespace (runc's list); fs.mqueue.* besides.
IPC_SYSCTLS = frozenset((
    "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
    "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
))

PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}
# The runtime spec defines no flag values yet; these are personality(2)'s own, by their names in
# <linux/personality.h> (runc ignores flags; an unknown name here is an error rather than ignored).
PERSONALITY_FLAGS = {
    "UNAME26": 0x0020000, "ADDR_NO_RANDOMIZE": 0x0040000, "FDPIC_FUNCPTRS": 0x0080000,
    "MMAP_PAGE_ZERO": 0x0100000, "ADDR_COMPAT_LAYOUT": 0x0200000, "READ_IMPLIES_EXEC": 0x0400000,
    "ADDR_LIMIT_32BIT": 0x0800000, "SHORT_INODE": 0x1000000, "WHOLE_SECONDS": 0x2000000,
    "STICKY_TIMEOUTS": 0x4000000, "ADDR_LIMIT_3GB": 0x8000000,
}

SCHED_POLICIES = {
    "SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3,
    "SCHED_ISO": 4, "SCHED_IDLE": 5, "SCHED_DEADLINE": 6,
}
SCHED_FLAGS = {
    "SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02, "SCHED_FLAG_DL_OVERRUN": 0x04,
    "SCHED_FLAG_KEEP_POLICY": 0x08, "SCHED_FLAG_KEEP_PARAMS": 0x10,
    "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20, "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40,
}

IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}

MPOL_MODES = {
    "MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3,
    "MPOL_LOCAL": 4, "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6,
}
MPOL_FLAGS = {"MPOL_F_STATIC_NODES": 1 << 15, "MPOL_F_RELATIVE_NODES": 1 << 14, "MPOL_F_NUMA_BALANCING": 1 << 13}
MPOL_NO_NODES = ("MPOL_DEFAULT", "MPOL_LOCAL")
MPOL_NEED_NODES = ("MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_PREFERRED_MANY", "MPOL_WEIGHTED_INTERLEAVE")

MAX_CPU = 64 * 1024   # runc's sanity limit on a CPU number
MAX_NODE = 4095       # above any kernel's MAX_NUMNODES (1 << 10), within set_mempolicy's limit

# Fields that need this module (dotted paths); `wanted` looks for any of them.
FIELDS = (
    ("linux", "sysctl"), ("linux", "personality"), ("linux", "memoryPolicy"), ("linux", "intelRdt"),
    ("linux", "mountLabel"), ("process", "scheduler"), ("process", "ioPriority"),
    ("process", "execCPUAffinity"), ("process", "apparmorProfile"), ("process", "selinuxLabel"),
)


class Attrs:
    """What struct oci_attrs will hold. Unset fields are None (left as they are)."""

    __slots__ = ("sysctls", "personality", "scheduler", "ioprio", "cpus_initial", "cpus_final", "mempolicy",
                 "apparmor", "selinux")

    def __init__(self):
        self.sysctls = []          # [(key as written, path below /proc/sys, value)]
        self.personality = None    # int persona
        self.scheduler = None      # dict of struct sched_attr fields
        self.ioprio = None         # (class, level)
        self.cpus_initial = None   # sorted list of CPU numbers
        self.cpus_final = None
        self.mempolicy = None      # (mode, flags, sorted node numbers)
        self.apparmor = None       # the profile the execve enters
        self.selinux = None        # the label the execve takes

    def empty(self) -> bool:
        return not self.sysctls and all(getattr(self, n) is None for n in self.__slots__[1:])

    def __repr__(self):
        return "Attrs(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__) + ")"


def wanted(doc: dict) -> bool:
    """Whether config.json has any field this module handles (cheap: no validation)."""
    for section, name in FIELDS:
        part = doc.get(section)
        if isinstance(part, dict) and part.get(name) not in (None, "", {}, []):
            return True
    # An empty intelRdt object still asks for RDT.
    linux = doc.get("linux")
    return isinstance(linux, dict) and linux.get("intelRdt") is not None


# ---- create and exec --------------------------------------------------------------------------

def convert(doc: dict) -> "Attrs | None":
    """The settings of a container init, from a whole config.json; None if there are none.

    process.execCPUAffinity is checked but not applied: the spec says it is not applicable to
    the container's init process."""
    linux = _obj(doc.get("linux"), "linux")
    process = _obj(doc.get("process"), "process")
    a = Attrs()
    a.sysctls = _sysctls(linux.get("sysctl"), linux.get("namespaces") or [])
    a.personality = _personality(linux.get("personality"))
    a.mempolicy = _mempolicy(linux.get("memoryPolicy"))
    a.scheduler = _scheduler(process.get("scheduler"), "process.scheduler")
    a.ioprio = _ioprio(process.get("ioPriority"), "process.ioPriority")
    _affinity(process.get("execCPUAffinity"), "process.execCPUAffinity")
    a.apparmor, a.selinux = _labels(process, "process")
    return None if a.empty() else a


def convert_exec(process: dict, saved: "dict | None" = None, where: str = "process") -> "Attrs | None":
    """The settings of an `exec`'d process: its own scheduler, ioPriority and execCPUAffinity,
    and the container's personality and memory policy (`saved`, from `for_state`), as runc's
    setns init applies them. Sysctls belong to the namespaces, set once at create."""
    process = _obj(process, where)
    saved = saved or {}
    a = Attrs()
    a.personality = _personality(saved.get("personality"))
    a.mempolicy = _mempolicy(saved.get("memoryPolicy"))
    a.scheduler = _scheduler(process.get("scheduler"), f"{where}.scheduler")
    a.ioprio = _ioprio(process.get("ioPriority"), f"{where}.ioPriority")
    a.cpus_initial, a.cpus_final = _affinity(process.get("execCPUAffinity"), f"{where}.execCPUAffinity")
    a.apparmor, a.selinux = _labels(process, where)
    return None if a.empty() else a


def for_state(doc: dict) -> "dict | None":
    """The container-wide settings an `exec` applies too, to keep in the container's state."""
    linux = doc.get("linux") or {}
    saved = {k: linux[k] for k in ("personality", "memoryPolicy") if linux.get(k) is not None}
    return saved or None


def fill(plan, attrs: "Attrs | None"):
    """A struct oci_attrs * for attrs (kept alive by plan), or NULL for None."""
    ffi = plan.ffi
    if attrs is None:
        return ffi.NULL
    arr = plan.array("struct oci_attrs", 1)
    c = arr[0]
    if attrs.sysctls:
        c.sysctl_keys = plan.strv([k for k, _, _ in attrs.sysctls])
        c.sysctl_paths = plan.strv([p for _, p, _ in attrs.sysctls])
        c.sysctl_values = plan.strv([v for _, _, v in attrs.sysctls])
        c.nsysctl = len(attrs.sysctls)
    if attrs.personality is not None:
        c.set_personality, c.personality = 1, attrs.personality
    s = attrs.scheduler
    if s is not None:
        c.set_scheduler = 1
        c.sched_policy, c.sched_nice, c.sched_priority = s["policy"], s["nice"], s["priority"]
        c.sched_flags, c.sched_runtime = s["flags"], s["runtime"]
        c.sched_deadline, c.sched_period = s["deadline"], s["period"]
    if attrs.ioprio is not None:
        c.set_ioprio = 1
        c.ioprio_class, c.ioprio_level = attrs.ioprio
    if attrs.cpus_initial:
        c.cpus_initial, c.ncpus_initial = _mask(plan, attrs.cpus_initial)
    if attrs.cpus_final:
        c.cpus_final, c.ncpus_final = _mask(plan, attrs.cpus_final)
    if attrs.mempolicy is not None:
        mode, flags, nodes = attrs.mempolicy
        c.set_mempolicy, c.mpol_mode, c.mpol_flags = 1, mode, flags
        if nodes:
            c.mpol_nodes, c.nmpol_nodes = _mask(plan, nodes)
    if attrs.apparmor:
        c.apparmor_profile = plan.str(attrs.apparmor)
    if attrs.selinux:
        c.selinux_label = plan.str(attrs.selinux)
    return arr


def _mask(plan, numbers):
    """A bitmask in unsigned long words, as the kernel reads CPU and node masks."""
    bits = plan.ffi.sizeof("unsigned long") * 8
    words = max(numbers) // bits + 1
    arr = plan.array("unsigned long", words)
    for n in numbers:
        arr[n // bits] |= 1 << (n % bits)
    return arr, words


# ---- linux.sysctl ----------------------------------------------------------------------------

def _sysctls(sysctl, namespaces) -> list:
    if not sysctl:
        return []
    if not isinstance(sysctl, dict):
        raise ConfigError("must be an object of strings", "linux.sysctl")
    types = {}
    for ns in namespaces:
        if isinstance(ns, dict) and ns.get("type"):
            types[ns["type"]] = ns.get("path") or ""
    out = []
    for key, value in sysctl.items():
        if not isinstance(value, str):
            raise ConfigError(f"{key}: the value must be a string", "linux.sysctl")
        if "\0" in key or "\0" in value:
            raise ConfigError(f"{key!r}: NUL in a sysctl", "linux.sysctl")
        dotted = dotted_name(key)
        path = _proc_path(key, dotted)
        _check_namespaced(key, dotted, types)
        out.append((key, path, value))
    return out


def dotted_name(key: str) -> str:
    """A sysctl name in the dotted form, as sysctl(8) and runc read it: a name whose first
    separator is '/' is a path, with '.' and '/' swapped ("net/ipv4/conf/eth0.100/rp_filter"
    -> "net.ipv4.conf.eth0/100.rp_filter")."""
    for ch in key:
        if ch == ".":
            return key
        if ch == "/":
            return key.translate(_SWAP)
    return key


_SWAP = str.maketrans("./", "/.")


def _proc_path(key: str, dotted: str) -> str:
    path = dotted.translate(_SWAP)
    parts = path.split("/")
    if not key or any(p in ("", ".", "..") for p in parts):
        raise ConfigError(f"{key!r} is not a sysctl name", "linux.sysctl")
    return path


def _check_namespaced(key: str, dotted: str, types: dict) -> None:
    """runc's rules: the key must be held by a namespace the container has of its own."""
    if dotted in IPC_SYSCTLS or dotted.startswith("fs.mqueue."):
        if "ipc" not in types:
            raise ConfigError(f"{key} is only allowed with an ipc namespace (it would change the host's)",
                              "linux.sysctl")
        return
    if dotted.startswith("net."):
        if "network" not in types:
            raise ConfigError(f"{key} is only allowed with a network namespace (it would change the host's)",
                              "linux.sysctl")
        if types["network"] and _is_host_netns(types["network"]):
            raise ConfigError(f"{key} is not allowed in the host's network namespace "
                              f"({types['network']} is ours)", "linux.sysctl")
        return
    if "uts" in types and dotted == "kernel.domainname":
        return
    if "uts" in types and dotted == "kernel.hostname":
        raise ConfigError(f"{key} is not allowed: set the `hostname` field instead", "linux.sysctl")
    if dotted.startswith("user."):
        if "user" not in types:
            raise ConfigError(f"{key} is only allowed with a user namespace (it would change the host's)",
                              "linux.sysctl")
        return
    raise ConfigError(f"{key} is not in a separate kernel namespace: a container may only set "
                      f"namespaced sysctls (kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.* with an ipc "
                      f"namespace; net.* with a network namespace; kernel.domainname with a uts namespace; "
                      f"user.* with a user namespace)", "linux.sysctl")


def _is_host_netns(path: str) -> bool:
    import os

    try:
        a, b = os.stat("/proc/self/ns/net"), os.stat(path)
    except OSError as e:
        raise ConfigError(f"network namespace {path}: {e.strerror}", "linux.sysctl") from None
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


# ---- the process settings --------------------------------------------------------------------

def _personality(p) -> "int | None":
    if p is None:
        return None
    p = _obj(p, "linux.personality")
    domain = p.get("domain")
    if domain not in PERSONALITY_DOMAINS:
        raise ConfigError(f"unknown personality domain {domain!r} (known: LINUX, LINUX32)",
                          "linux.personality.domain")
    value = PERSONALITY_DOMAINS[domain]
    for i, flag in enumerate(p.get("flags") or []):
        if flag not in PERSONALITY_FLAGS:
            raise ConfigError(f"unknown personality flag {flag!r}", f"linux.personality.flags[{i}]")
        value |= PERSONALITY_FLAGS[flag]
    return value


def _scheduler(s, where: str) -> "dict | None":
    """runc's checks; the kernel has the last word on the rest (sched_setattr(2))."""
    if s is None:
        return None
    s = _obj(s, where)
    policy = s.get("policy")
    if policy not in SCHED_POLICIES:
        raise ConfigError(f"unknown scheduler policy {policy!r}", f"{where}.policy")
    nice, priority = _int(s, "nice", where), _int(s, "priority", where)
    runtime, deadline, period = (_int(s, k, where, 0, (1 << 64) - 1) for k in ("runtime", "deadline", "period"))
    if policy in ("SCHED_OTHER", "SCHED_BATCH") and not -20 <= nice <= 19:
        raise ConfigError(f"nice {nice} is out of range (-20 to 19)", f"{where}.nice")
    if priority and policy not in ("SCHED_FIFO", "SCHED_RR"):
        raise ConfigError(f"a priority is only for SCHED_FIFO and SCHED_RR, not {policy}", f"{where}.priority")
    if policy != "SCHED_DEADLINE" and (runtime or deadline or period):
        raise ConfigError(f"runtime, deadline and period are only for SCHED_DEADLINE, not {policy}", where)
    flags = 0
    for i, flag in enumerate(s.get("flags") or []):
        if flag not in SCHED_FLAGS:
            raise ConfigError(f"unknown scheduler flag {flag!r}", f"{where}.flags[{i}]")
        flags |= SCHED_FLAGS[flag]
    return {"policy": SCHED_POLICIES[policy], "nice": nice, "priority": priority, "flags": flags,
            "runtime": runtime, "deadline": deadline, "period": period}


def _ioprio(p, where: str) -> "tuple | None":
    if p is None:
        return None
    p = _obj(p, where)
    cls = p.get("class")
    if cls not in IOPRIO_CLASSES:
        raise ConfigError(f"unknown I/O priority class {cls!r} (known: IOPRIO_CLASS_RT, IOPRIO_CLASS_BE, "
                          f"IOPRIO_CLASS_IDLE)", f"{where}.class")
    if "priority" not in p:  # as crun: the idle class has no levels, and 0 is the default
        return IOPRIO_CLASSES[cls], 0
    return IOPRIO_CLASSES[cls], _int(p, "priority", where, 0, 7)


def _affinity(aff, where: str) -> tuple:
    if aff is None:
        return None, None
    aff = _obj(aff, where)
    return (parse_list(aff.get("initial"), f"{where}.initial", MAX_CPU),
            parse_list(aff.get("final"), f"{where}.final", MAX_CPU))


def _mempolicy(m) -> "tuple | None":
    if m is None:
        return None
    where = "linux.memoryPolicy"
    m = _obj(m, where)
    mode = m.get("mode")
    if mode not in MPOL_MODES:
        raise ConfigError(f"unknown memory policy mode {mode!r}", f"{where}.mode")
    nodes = parse_list(m.get("nodes"), f"{where}.nodes", MAX_NODE) or []
    if mode in MPOL_NO_NODES and nodes:
        raise ConfigError(f"{mode} takes no nodes", f"{where}.nodes")
    if mode in MPOL_NEED_NODES and not nodes:
        raise ConfigError(f"{mode} needs at least one node", f"{where}.nodes")
    flags = 0
    for i, flag in enumerate(m.get("flags") or []):
        if flag not in MPOL_FLAGS:
            raise ConfigError(f"unknown memory policy flag {flag!r}", f"{where}.flags[{i}]")
        flags |= MPOL_FLAGS[flag]
    both = MPOL_FLAGS["MPOL_F_STATIC_NODES"] | MPOL_FLAGS["MPOL_F_RELATIVE_NODES"]
    if flags & both == both:
        raise ConfigError("MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other", f"{where}.flags")
    return MPOL_MODES[mode], flags, nodes


def parse_list(text, where: str, highest: int) -> "list | None":
    """A CPU or node list ("0-3,7"), as runc reads it: numbers and ranges, commas between,
    spaces around and empty elements allowed. None for an empty or missing list."""
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        raise ConfigError("must be a string like \"0-3,7\"", where)
    found = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, dash, hi = part.partition("-")
        if not (lo.isdigit() and lo.isascii()) or (dash and not (hi.isdigit() and hi.isascii())):
            raise ConfigError(f"{text!r}: {part!r} is not a number or a range like 0-3", where)
        first, last = int(lo), int(hi) if dash else int(lo)
        if first > last:
            raise ConfigError(f"{text!r}: the range {part!r} runs backwards", where)
        if last > highest:
            raise ConfigError(f"{text!r}: {last} is above the highest supported ({highest})", where)
        found.update(range(first, last + 1))
    if not found:
        raise ConfigError(f"{text!r} lists nothing", where)
    return sorted(found)


def _obj(value, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError("must be an object", where)
    return value


def _int(obj: dict, key: str, where: str, lo: int = -(1 << 31), hi: int = (1 << 31) - 1) -> int:
    v = obj.get(key, 0)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError("must be an integer", f"{where}.{key}")
    if not lo <= v <= hi:
        raise ConfigError(f"{v} is out of range ({lo} to {hi})", f"{where}.{key}")
    return v


# ---- what the host must have ------------------------------------------------------------------

def check_lsm(doc: dict) -> None:
    """Refuse an AppArmor setting this host can't give, naming the field: a profile where
    AppArmor is off ("unconfined" and "" ask for nothing, so they pass), or one that isn't
    loaded: that is confinement the user asked for. SELinux labels where SELinux is off are a
    warning."""
    process = doc.get("process") or {}
    linux = doc.get("linux") or {}
    profile = process.get("apparmorProfile")
    if profile and profile != "unconfined":
        if not apparmor_enabled():
            raise ConfigError("AppArmor is not enabled on this host", "process.apparmorProfile")
        if profile not in apparmor_profiles():
            raise ConfigError(f"the AppArmor profile {profile!r} is not loaded (apparmor_parser -r FILE loads it)",
                              "process.apparmorProfile")
    for where, value in (("process.selinuxLabel", process.get("selinuxLabel")),
                         ("linux.mountLabel", linux.get("mountLabel"))):
        if value and not selinux_enabled():
            # as crun: a label means nothing where SELinux is off, and refusing it would fail
            # every caller that labels by default on such a host (selinux_label drops it)
            from . import log

            log.warning(f"{where}: SELinux is not enabled on this host: {value!r} ignored")


def selinux_label(value):
    """An SELinux label to apply: None where SELinux is off (check_lsm has warned)."""
    return value if value and selinux_enabled() else None


def _labels(process: dict, where: str) -> tuple:
    """The AppArmor profile and SELinux label the process's execve takes (check_lsm has
    checked them). "unconfined" where AppArmor is off asks for nothing."""
    profile = process.get("apparmorProfile") or None
    if profile == "unconfined" and not apparmor_enabled():
        profile = None
    for key, v in (("apparmorProfile", profile), ("selinuxLabel", process.get("selinuxLabel"))):
        if v is not None and (not isinstance(v, str) or "\0" in v or "\n" in v):
            raise ConfigError("must be a one-line string", f"{where}.{key}")
    return profile, selinux_label(process.get("selinuxLabel"))


APPARMOR_PROFILES = "/sys/kernel/security/apparmor/profiles"


def apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


def selinux_enabled() -> bool:
    import os

    return os.path.exists("/sys/fs/selinux/enforce")


def apparmor_profiles() -> set[str]:
    """The names of the loaded AppArmor profiles ("name (mode)" a line)."""
    try:
        with open(APPARMOR_PROFILES) as f:
            return {line.rsplit(" (", 1)[0] for line in f.read().splitlines()}
    except OSError:
        return set()


def check_intel_rdt(doc: dict) -> None:
    """linux.intelRdt needs the resctrl file system; ocirun does not manage RDT groups yet, so
    where resctrl is mounted the field is refused as unsupported rather than ignored."""
    linux = doc.get("linux") or {}
    rdt = linux.get("intelRdt")
    if rdt is None:
        return
    rdt = _obj(rdt, "linux.intelRdt")
    clos = rdt.get("closID")
    if clos is not None and (not isinstance(clos, str) or clos in (".", "..") or "/" in clos):
        raise ConfigError(f"{clos!r} is not a resctrl group name", "linux.intelRdt.closID")
    if not _resctrl_mounted():
        raise ConfigError("Intel RDT is not available on this host: no resctrl file system is mounted "
                          "(mount -t resctrl resctrl /sys/fs/resctrl, on a CPU with RDT)", "linux.intelRdt")
    raise ConfigError("resctrl is mounted, but ocirun does not manage Intel RDT groups yet", "linux.intelRdt")


def _resctrl_mounted() -> bool:
    try:
        with open("/proc/self/mountinfo") as f:
            return any(" - resctrl " in line for line in f)
    except OSError:
        return False
