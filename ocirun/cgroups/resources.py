"""`linux.resources` as cgroup file writes, for v1, v2 and hybrid hosts.

Each directory of the container's cgroup is looked at for what it is: a cgroup2 directory has
cgroup.controllers (its controllers are listed there; the freezer and the eBPF device filter come
with every v2 cgroup), a v1 one controls what its file names start with (memory.*, cpu.*, ...).
A setting goes to the v1 hierarchy of its controller when there is one, else to the v2 directory
that has it enabled (so on a hybrid host the v1 controllers win, and the cgroup2 mount gets the
`unified` keys and whatever controllers only it has).

Numbers follow runc: for memory limit/reservation/swap/kernel/kernelTCP, cpu shares/quota/period and
the realtime pair, blockIO weights, 0 means "not set" and -1 means "unlimited"; pids.limit follows
runtime-spec 1.3 (-1: max, 0 and up: that limit, absent: unchanged).

Every failure is a ConfigError naming the field: a value the kernel rejects (with the file and
the value), a controller or a setting the host lacks, a bad value.
"""
import posix

from ..errors import ConfigError, OciError
from ..posixio import dirname
from . import devices as dev

R = "linux.resources"
_INF = 1 << 63
_V1_NOT_CONTROLLERS = {"cgroup", "notify_on_release", "release_agent", "tasks"}


# --- the host's files --------------------------------------------------------------------

def write_file(path: str, value: str) -> None:
    """One write(2) of value; tests replace this to record the writes."""
    fd = posix.open(path, posix.O_WRONLY | posix.O_CLOEXEC)
    try:
        posix.write(fd, value.encode())
    finally:
        posix.close(fd)


def read_file(path: str) -> str:
    with open(path) as f:
        return f.read()


def _controllers(d: str) -> list[str]:
    try:
        return read_file(d + "/cgroup.controllers").split()
    except OSError:
        return []


class Dir:
    """One directory of the container's cgroup: its version, controllers and file names."""

    __slots__ = ("path", "version", "controllers", "files")

    def __init__(self, path, version, controllers, files):
        self.path, self.version, self.controllers, self.files = path, version, controllers, files

    def __repr__(self):
        return f"Dir({self.path!r}, v{self.version}, {sorted(self.controllers)})"

    def read(self, name: str) -> str:
        return read_file(f"{self.path}/{name}")


def describe(path: str) -> Dir:
    try:
        names = set(posix.listdir(path))
    except OSError as e:
        raise OciError(f"read cgroup directory: {e.strerror}", path) from None
    if "cgroup.controllers" in names:
        ctrls = set(read_file(path + "/cgroup.controllers").split())
        ctrls.add("devices")  # an eBPF program on the directory
        if "cgroup.freeze" in names:
            ctrls.add("freezer")
        return Dir(path, 2, ctrls, names)
    ctrls = {n.split(".", 1)[0] for n in names if "." in n} - _V1_NOT_CONTROLLERS
    return Dir(path, 1, ctrls, names)


class Layout:
    def __init__(self, dirs: list[str]):
        self.dirs = [describe(d) for d in dirs]

    def find(self, ctrl: str) -> Dir | None:
        for version in (1, 2):
            for d in self.dirs:
                if d.version == version and ctrl in d.controllers:
                    return d
        return None

    def need(self, ctrl: str, where: str) -> Dir:
        d = self.find(ctrl)
        if d is None:
            v2 = self.v2()
            parent = v2 and dirname(v2.path)
            if parent and ctrl in _controllers(parent):
                raise ConfigError(f"the {ctrl} controller can't reach this container's cgroup: {parent} "
                                  "has processes of its own, so cgroup v2 lets it pass no controller on "
                                  "(use a cgroupsPath elsewhere, or --systemd-cgroup)", where)
            raise ConfigError(f"the host has no {ctrl} cgroup controller for this container "
                              f"(not a v1 hierarchy, not enabled on cgroup v2)", where)
        return d

    def v2(self) -> Dir | None:
        return next((d for d in self.dirs if d.version == 2), None)


# --- what to write -----------------------------------------------------------------------------

class W:
    """Write value to dir/name; `verify`: read it back and fail if the kernel changed it."""

    __slots__ = ("where", "dir", "name", "value", "verify")

    def __init__(self, where, d, name, value, verify=False):
        self.where, self.dir, self.name, self.value, self.verify = where, d, name, str(value), verify

    def __repr__(self):
        return f"W({self.name}={self.value!r})"

    def run(self) -> None:
        try:
            write_file(f"{self.dir.path}/{self.name}", self.value)
        except OSError as e:
            raise ConfigError(f"write {self.value} to {self.name}: {e.strerror}", self.where) from None
        if self.verify:
            got = self.dir.read(self.name).strip()
            if got != self.value:
                raise ConfigError(f"{self.value} is out of range: the kernel set {self.name} to {got}", self.where)


class Pair:
    """Two writes the kernel checks against each other (period and quota): if the first is
    refused as invalid, the other order is tried."""

    __slots__ = ("first", "second")

    def __init__(self, first: W, second: W):
        self.first, self.second = first, second

    def __repr__(self):
        return f"Pair({self.first!r}, {self.second!r})"

    def run(self) -> None:
        try:
            self.first.run()
        except ConfigError:
            try:
                self.second.run()
            except ConfigError:
                pass
            else:
                self.first.run()
                return
            raise
        self.second.run()


class Bpf:
    """Install a device filter program on a v2 directory."""

    __slots__ = ("where", "dir", "rules")

    def __init__(self, where, d, rules):
        self.where, self.dir, self.rules = where, d, rules

    def __repr__(self):
        return f"Bpf({self.dir.path!r}, {len(self.rules)} rules)"

    def run(self) -> None:
        from . import bpf

        bpf.install(self.dir.path, dev.encode(dev.program(self.rules)), self.where)


def apply(dirs: list[str], resources: dict, update: bool = False, devices=()) -> list:
    """Write `resources` (linux.resources) into the container's cgroup directories; returns
    the writes made (the systemd driver sets their unit properties from them).

    devices: the config's `linux.devices` as allow rules (`devices.device_allows`), always allowed;
    None: no device cgroup at all (rootless: neither v1's files nor v2's eBPF are the user's).
    update: an `update` of a running container: only the fields given change, the device rules
    only when `devices` is given, and memory.checkBeforeUpdate applies.
    """
    ops = plan(dirs, resources, update, devices)
    for op in ops:
        op.run()
    return ops


def plan(dirs: list[str], resources: dict, update: bool = False, devices=()) -> list:
    if resources is None:
        resources = {}
    if not isinstance(resources, dict):
        raise ConfigError("must be an object", R)
    layout = Layout(dirs)
    ops: list = []
    _cpuset(layout, _section(resources, "cpu"), ops)
    if devices is not None and ("devices" in resources or not update):
        _devices(layout, resources.get("devices"), devices, update, ops)
    _memory(layout, _section(resources, "memory"), update, ops)
    _cpu(layout, _section(resources, "cpu"), ops)
    _pids(layout, _section(resources, "pids"), ops)
    _block_io(layout, _section(resources, "blockIO"), ops)
    _hugetlb(layout, resources.get("hugepageLimits"), ops)
    _network(layout, _section(resources, "network"), ops)
    _rdma(layout, resources.get("rdma"), ops)
    _unified(layout, resources.get("unified"), ops)
    return ops


# --- value checks -------------------------------------------------------------------------------

def _section(resources: dict, key: str) -> dict:
    v = resources.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ConfigError("must be an object", f"{R}.{key}")
    return v


def _int(obj: dict, key: str, where: str, lo: int | None = None, hi: int | None = None, zero_unset=False):
    v = obj.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"must be an integer, not {v!r}", f"{where}.{key}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ConfigError(f"{v} is out of range ({lo} to {hi})", f"{where}.{key}")
    if zero_unset and v == 0:
        return None
    return v


def _bool(obj: dict, key: str, where: str):
    v = obj.get(key)
    if v is not None and not isinstance(v, bool):
        raise ConfigError(f"must be true or false, not {v!r}", f"{where}.{key}")
    return v


def _str(obj: dict, key: str, where: str):
    v = obj.get(key)
    if v is not None and not isinstance(v, str):
        raise ConfigError(f"must be a string, not {v!r}", f"{where}.{key}")
    return v or None


def _need_file(d: Dir, name: str, where: str) -> None:
    if name not in d.files:
        raise ConfigError(f"this host's kernel has no {name}: the setting is not supported here", where)


def _read_int(d: Dir, name: str, default: int) -> int:
    try:
        text = d.read(name).split()[0]
    except (OSError, IndexError):
        return default
    if text == "max":
        return _INF
    try:
        return int(text)
    except ValueError:
        return default


def _limit_text(v: int, version: int) -> str:
    if v < 0:
        return "max" if version == 2 else "-1"
    return str(v)


# --- memory ------------------------------------------------------------------------------------

def _memory(layout: Layout, m: dict, update: bool, ops: list) -> None:
    w = f"{R}.memory"
    lim = _int(m, "limit", w, lo=-1, zero_unset=True)
    res = _int(m, "reservation", w, lo=-1, zero_unset=True)
    swap = _int(m, "swap", w, lo=-1, zero_unset=True)
    kernel = _int(m, "kernel", w, lo=-1, zero_unset=True)
    ktcp = _int(m, "kernelTCP", w, lo=-1, zero_unset=True)
    swappiness = _int(m, "swappiness", w, lo=0, hi=100)
    no_oom = _bool(m, "disableOOMKiller", w)
    hierarchy = _bool(m, "useHierarchy", w)
    check = _bool(m, "checkBeforeUpdate", w)
    given = [k for k, v in (("limit", lim), ("reservation", res), ("swap", swap), ("kernel", kernel),
                            ("kernelTCP", ktcp), ("swappiness", swappiness), ("disableOOMKiller", no_oom),
                            ("useHierarchy", hierarchy)) if v is not None]
    if not given:
        return
    d = layout.need("memory", f"{w}.{given[0]}")
    if lim is not None and lim > 0 and swap is not None and 0 < swap < lim:
        raise ConfigError(f"memory+swap {swap} must not be lower than the memory limit {lim}", f"{w}.swap")
    if d.version == 1:
        _memory_v1(d, w, lim, res, swap, kernel, ktcp, swappiness, no_oom, hierarchy, update, ops)
    else:
        _memory_v2(d, w, lim, res, swap, update and bool(check), ops)


def _memory_v1(d, w, lim, res, swap, kernel, ktcp, swappiness, no_oom, hierarchy, update, ops):
    memsw = "memory.memsw.limit_in_bytes"
    if swap is None and lim == -1 and memsw in d.files:
        swap = -1  # unlimited memory: lift the memory+swap limit as well
    if swap is not None and memsw not in d.files:
        if swap != -1:
            raise ConfigError("swap accounting is off on this host (no memory.memsw.limit_in_bytes)", f"{w}.swap")
        swap = None
    lim_w = None if lim is None else W(f"{w}.limit", d, "memory.limit_in_bytes", _limit_text(lim, 1))
    swap_w = None if swap is None else W(f"{w}.swap", d, memsw, _limit_text(swap, 1))
    if lim_w and swap_w:
        # The kernel keeps limit <= memory+swap at every step: raise memory+swap first when the
        # new limit goes above the current memory+swap, else lower the limit first.
        new = _INF if lim < 0 else lim
        ops += [swap_w, lim_w] if new > _read_int(d, memsw, _INF) else [lim_w, swap_w]
    else:
        ops += [x for x in (lim_w, swap_w) if x]
    if res is not None:
        ops.append(W(f"{w}.reservation", d, "memory.soft_limit_in_bytes", _limit_text(res, 1)))
    # Kernel memory limits are gone from newer kernels; like runc, ignore them where they are.
    if kernel is not None and "memory.kmem.limit_in_bytes" in d.files:
        ops.append(W(f"{w}.kernel", d, "memory.kmem.limit_in_bytes", _limit_text(kernel, 1)))
    if ktcp is not None and "memory.kmem.tcp.limit_in_bytes" in d.files:
        ops.append(W(f"{w}.kernelTCP", d, "memory.kmem.tcp.limit_in_bytes", _limit_text(ktcp, 1)))
    if swappiness is not None:
        ops.append(W(f"{w}.swappiness", d, "memory.swappiness", swappiness))
    if no_oom or (no_oom is False and update):
        ops.append(W(f"{w}.disableOOMKiller", d, "memory.oom_control", int(no_oom)))
    if hierarchy is not None and _read_int(d, "memory.use_hierarchy", -1) != int(hierarchy):
        ops.append(W(f"{w}.useHierarchy", d, "memory.use_hierarchy", int(hierarchy)))


def _memory_v2(d, w, lim, res, swap, check, ops):
    # swappiness, disableOOMKiller, useHierarchy, kernel and kernelTCP have no v2 files: ignored, as runc does.
    swap_max = "memory.swap.max"
    if swap is None and lim == -1 and swap_max in d.files:
        swap = -1
    if swap is not None:
        if swap == -1:
            swap_value = "max" if swap_max in d.files else None
        elif lim is None or lim < 0:
            raise ConfigError("a memory+swap limit needs a memory limit (linux.resources.memory.limit)", f"{w}.swap")
        else:
            _need_file(d, swap_max, f"{w}.swap")
            swap_value = str(swap - lim)  # v2 limits swap alone
        if check and swap > 0:
            used = _read_int(d, "memory.current", 0) + _read_int(d, "memory.swap.current", 0)
            if used > swap:
                raise ConfigError(f"memory+swap limit {swap} is below the current usage {used} (checkBeforeUpdate)",
                                  f"{w}.swap")
        if swap_value is not None:
            ops.append(W(f"{w}.swap", d, swap_max, swap_value))
    if lim is not None:
        if check and lim > 0:
            used = _read_int(d, "memory.current", 0)
            if used > lim:
                raise ConfigError(f"memory limit {lim} is below the current usage {used} (checkBeforeUpdate)",
                                  f"{w}.limit")
        ops.append(W(f"{w}.limit", d, "memory.max", _limit_text(lim, 2)))
    if res is not None:
        ops.append(W(f"{w}.reservation", d, "memory.low", _limit_text(res, 2)))


# --- cpu, cpuset -----------------------------------------------------------------------------

def shares_to_weight(shares: int) -> int:
    """cpu.shares (2..262144) to cpu.weight (1..10000), the conversion runc and crun use."""
    shares = min(max(shares, 2), 262144)
    return 1 + (shares - 2) * 9999 // 262142


def _cpuset(layout: Layout, c: dict, ops: list) -> None:
    w = f"{R}.cpu"
    for key in ("cpus", "mems"):
        v = _str(c, key, w)
        if v is not None:
            d = layout.need("cpuset", f"{w}.{key}")
            ops.append(W(f"{w}.{key}", d, f"cpuset.{key}", v))


def _cpu(layout: Layout, c: dict, ops: list) -> None:
    w = f"{R}.cpu"
    shares = _int(c, "shares", w, lo=0, zero_unset=True)
    quota = _int(c, "quota", w, zero_unset=True)
    period = _int(c, "period", w, lo=0, zero_unset=True)
    burst = _int(c, "burst", w, lo=0)
    rt_runtime = _int(c, "realtimeRuntime", w, zero_unset=True)
    rt_period = _int(c, "realtimePeriod", w, lo=0, zero_unset=True)
    idle = _int(c, "idle", w)
    given = [k for k, v in (("shares", shares), ("quota", quota), ("period", period), ("burst", burst),
                            ("realtimeRuntime", rt_runtime), ("realtimePeriod", rt_period), ("idle", idle))
             if v is not None]
    if not given:
        return
    d = layout.need("cpu", f"{w}.{given[0]}")
    if d.version == 1:
        if shares is not None:
            ops.append(W(f"{w}.shares", d, "cpu.shares", shares, verify=True))
        _pair(ops, W(f"{w}.period", d, "cpu.cfs_period_us", period) if period is not None else None,
              W(f"{w}.quota", d, "cpu.cfs_quota_us", -1 if quota < 0 else quota) if quota is not None else None)
        if burst is not None:
            _need_file(d, "cpu.cfs_burst_us", f"{w}.burst")
            ops.append(W(f"{w}.burst", d, "cpu.cfs_burst_us", burst))
        if rt_runtime is not None or rt_period is not None:
            _need_file(d, "cpu.rt_runtime_us", f"{w}.{'realtimeRuntime' if rt_runtime is not None else 'realtimePeriod'}")
        _pair(ops, W(f"{w}.realtimePeriod", d, "cpu.rt_period_us", rt_period) if rt_period is not None else None,
              W(f"{w}.realtimeRuntime", d, "cpu.rt_runtime_us", rt_runtime) if rt_runtime is not None else None)
    else:
        if shares is not None:
            ops.append(W(f"{w}.shares", d, "cpu.weight", shares_to_weight(shares)))
        if quota is not None or period is not None:
            if quota is not None:
                q = "max" if quota < 0 else str(quota)
            else:  # keep the current quota, change the period
                try:
                    q = d.read("cpu.max").split()[0]
                except (OSError, IndexError):
                    q = "max"
            value = q if period is None else f"{q} {period}"
            ops.append(W(f"{w}.{'quota' if quota is not None else 'period'}", d, "cpu.max", value))
        if burst is not None:
            _need_file(d, "cpu.max.burst", f"{w}.burst")
            ops.append(W(f"{w}.burst", d, "cpu.max.burst", burst))
        if rt_runtime is not None or rt_period is not None:
            raise ConfigError("realtime cpu limits need the cgroup v1 cpu controller; cgroup v2 has none",
                              f"{w}.{'realtimeRuntime' if rt_runtime is not None else 'realtimePeriod'}")
    if idle is not None:
        _need_file(d, "cpu.idle", f"{w}.idle")
        ops.append(W(f"{w}.idle", d, "cpu.idle", idle))


def _pair(ops: list, first: W | None, second: W | None) -> None:
    if first and second:
        ops.append(Pair(first, second))
    elif first or second:
        ops.append(first or second)


# --- pids ----------------------------------------------------------------------------------------

def _pids(layout: Layout, p: dict, ops: list) -> None:
    w = f"{R}.pids"
    limit = _int(p, "limit", w)
    if limit is None:
        return
    d = layout.need("pids", f"{w}.limit")
    ops.append(W(f"{w}.limit", d, "pids.max", "max" if limit < 0 else limit))


# --- block I/O -------------------------------------------------------------------------------

_THROTTLES = (("throttleReadBpsDevice", "read_bps_device", "rbps"),
              ("throttleWriteBpsDevice", "write_bps_device", "wbps"),
              ("throttleReadIOPSDevice", "read_iops_device", "riops"),
              ("throttleWriteIOPSDevice", "write_iops_device", "wiops"))


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio.weight (10..1000) to io.weight (1..10000)."""
    weight = min(max(weight, 10), 1000)
    return 1 + (weight - 10) * 9999 // 990


def _device_list(b: dict, key: str, w: str) -> list[tuple[str, dict]]:
    v = b.get(key)
    if v is None:
        return []
    if not isinstance(v, list):
        raise ConfigError("must be a list", f"{w}.{key}")
    out = []
    for i, e in enumerate(v):
        where = f"{w}.{key}[{i}]"
        if not isinstance(e, dict):
            raise ConfigError("must be an object", where)
        for k in ("major", "minor"):
            if _int(e, k, where, lo=0) is None:
                raise ConfigError("is required", f"{where}.{k}")
        out.append((where, e))
    return out


def _block_io(layout: Layout, b: dict, ops: list) -> None:
    w = f"{R}.blockIO"
    weight = _int(b, "weight", w, lo=0, hi=65535, zero_unset=True)
    leaf = _int(b, "leafWeight", w, lo=0, hi=65535, zero_unset=True)
    devs = _device_list(b, "weightDevice", w)
    throttles = [(key, v1, v2, _device_list(b, key, w)) for key, v1, v2 in _THROTTLES]
    given = ([k for k, v in (("weight", weight), ("leafWeight", leaf)) if v is not None]
             + (["weightDevice"] if devs else []) + [t[0] for t in throttles if t[3]])
    if not given:
        return
    d = layout.find("blkio") or layout.find("io")
    if d is None:
        layout.need("blkio", f"{w}.{given[0]}")
    if d.version == 1:
        _block_io_v1(d, w, weight, leaf, devs, throttles, ops)
    else:
        _block_io_v2(d, w, weight, devs, throttles, ops)


def _block_io_v1(d, w, weight, leaf, devs, throttles, ops):
    cfq = "blkio.weight" in d.files
    bfq = "blkio.bfq.weight" in d.files
    weight_file = "blkio.weight" if cfq else "blkio.bfq.weight"
    if weight is not None:
        if not (cfq or bfq):
            _need_file(d, "blkio.weight", f"{w}.weight")
        ops.append(W(f"{w}.weight", d, weight_file, weight))
    if leaf is not None:
        _need_file(d, "blkio.leaf_weight", f"{w}.leafWeight")
        ops.append(W(f"{w}.leafWeight", d, "blkio.leaf_weight", leaf))
    for where, e in devs:
        dev_id = f"{e['major']}:{e['minor']}"
        wt = _int(e, "weight", where, lo=0, hi=65535)
        lw = _int(e, "leafWeight", where, lo=0, hi=65535)
        if wt is not None:
            name = weight_file + "_device"
            _need_file(d, name, f"{where}.weight")
            ops.append(W(f"{where}.weight", d, name, f"{dev_id} {wt}"))
        if lw is not None:
            _need_file(d, "blkio.leaf_weight_device", f"{where}.leafWeight")
            ops.append(W(f"{where}.leafWeight", d, "blkio.leaf_weight_device", f"{dev_id} {lw}"))
    for key, v1, _, entries in throttles:
        for where, e in entries:
            rate = _int(e, "rate", where, lo=0)
            if rate is None:
                raise ConfigError("is required", f"{where}.rate")
            name = f"blkio.throttle.{v1}"
            _need_file(d, name, where)
            ops.append(W(where, d, name, f"{e['major']}:{e['minor']} {rate}"))


def _block_io_v2(d, w, weight, devs, throttles, ops):
    # leafWeight has no v2 counterpart: ignored, as runc does.
    bfq = "io.bfq.weight" in d.files
    if weight is not None:
        if bfq:
            ops.append(W(f"{w}.weight", d, "io.bfq.weight", weight))
        else:
            _need_file(d, "io.weight", f"{w}.weight")
            ops.append(W(f"{w}.weight", d, "io.weight", f"default {blkio_weight_to_io_weight(weight)}"))
    for where, e in devs:
        wt = _int(e, "weight", where, lo=0, hi=65535)
        if wt is None:
            continue
        dev_id = f"{e['major']}:{e['minor']}"
        if bfq:
            ops.append(W(f"{where}.weight", d, "io.bfq.weight", f"{dev_id} {wt}"))
        else:
            _need_file(d, "io.weight", f"{where}.weight")
            ops.append(W(f"{where}.weight", d, "io.weight", f"{dev_id} {blkio_weight_to_io_weight(wt)}"))
    for key, _, v2, entries in throttles:
        for where, e in entries:
            rate = _int(e, "rate", where, lo=0)
            if rate is None:
                raise ConfigError("is required", f"{where}.rate")
            _need_file(d, "io.max", where)
            ops.append(W(where, d, "io.max", f"{e['major']}:{e['minor']} {v2}={rate or 'max'}"))


# --- hugetlb, network, rdma ----------------------------------------------------------------------

def _hugetlb(layout: Layout, limits, ops: list) -> None:
    w = f"{R}.hugepageLimits"
    if not limits:
        return
    if not isinstance(limits, list):
        raise ConfigError("must be a list", w)
    d = layout.need("hugetlb", w)
    for i, h in enumerate(limits):
        where = f"{w}[{i}]"
        if not isinstance(h, dict):
            raise ConfigError("must be an object", where)
        size = _str(h, "pageSize", where)
        limit = _int(h, "limit", where, lo=0)
        if size is None or limit is None:
            raise ConfigError("pageSize and limit are required", where)
        names = ((f"hugetlb.{size}.limit_in_bytes", f"hugetlb.{size}.rsvd.limit_in_bytes") if d.version == 1
                 else (f"hugetlb.{size}.max", f"hugetlb.{size}.rsvd.max"))
        if names[0] not in d.files:
            raise ConfigError(f"the host has no {size} huge pages (no {names[0]})", f"{where}.pageSize")
        for name in names:
            if name in d.files:
                ops.append(W(f"{where}.limit", d, name, limit))


def _network(layout: Layout, n: dict, ops: list) -> None:
    w = f"{R}.network"
    class_id = _int(n, "classID", w, lo=0, hi=0xffffffff)
    prios = n.get("priorities")
    if class_id is not None:
        d = layout.need("net_cls", f"{w}.classID")
        ops.append(W(f"{w}.classID", d, "net_cls.classid", class_id))
    if prios:
        if not isinstance(prios, list):
            raise ConfigError("must be a list", f"{w}.priorities")
        d = layout.need("net_prio", f"{w}.priorities")
        for i, p in enumerate(prios):
            where = f"{w}.priorities[{i}]"
            if not isinstance(p, dict):
                raise ConfigError("must be an object", where)
            name = _str(p, "name", where)
            prio = _int(p, "priority", where, lo=0, hi=0xffffffff)
            if name is None or prio is None:
                raise ConfigError("name and priority are required", where)
            ops.append(W(where, d, "net_prio.ifpriomap", f"{name} {prio}"))


def _rdma(layout: Layout, rdma, ops: list) -> None:
    w = f"{R}.rdma"
    if not rdma:
        return
    if not isinstance(rdma, dict):
        raise ConfigError("must be an object", w)
    d = layout.need("rdma", w)
    for name, lim in rdma.items():
        where = f"{w}.{name}"
        if not isinstance(lim, dict):
            raise ConfigError("must be an object", where)
        parts = [name]
        for key, word in (("hcaHandles", "hca_handle"), ("hcaObjects", "hca_object")):
            v = _int(lim, key, where, lo=0, hi=0xffffffff)
            if v is not None:
                parts.append(f"{word}={v}")
        if len(parts) == 1:
            raise ConfigError("needs hcaHandles or hcaObjects", where)
        ops.append(W(where, d, "rdma.max", " ".join(parts)))


# --- unified -------------------------------------------------------------------------------------

class UnifiedW(W):
    __slots__ = ()

    def run(self) -> None:
        try:
            super().run()
        except ConfigError as e:
            if self.name not in self.dir.files:
                ctrl = self.name.split(".", 1)[0]
                raise ConfigError(f"no file {self.name} in {self.dir.path}: the {ctrl} controller is not "
                                  f"enabled there, or the kernel lacks this setting", self.where) from None
            raise e


def _unified(layout: Layout, unified, ops: list) -> None:
    w = f"{R}.unified"
    if not unified:
        return
    if not isinstance(unified, dict):
        raise ConfigError("must be an object of file names to values", w)
    d = layout.v2()
    if d is None:
        raise ConfigError("this host has cgroup v1 only: unified (cgroup v2) keys can't be set", w)
    for key, value in unified.items():
        where = f"{w}.{key}"
        if not isinstance(value, str):
            raise ConfigError("must be a string", where)
        if "/" in key or key in ("", ".", "..") or "." not in key:
            raise ConfigError(f"{key!r} is not a cgroup file name", w)
        ops.append(UnifiedW(where, d, key, value))


# --- devices -------------------------------------------------------------------------------------

class DefaultDeviceW(W):
    """Allowing one of the default devices: where the parent cgroup doesn't allow it either (ocirun
    itself runs in a restricted container), the container goes without it rather than failing."""

    __slots__ = ()

    def run(self) -> None:
        try:
            super().run()
        except ConfigError:
            if not _parent_denies(self.dir.path):
                raise


def _parent_denies(path: str) -> bool:
    try:
        return "a *:* rwm" not in read_file(dirname(path) + "/devices.list").splitlines()
    except OSError:
        return False


def _devices(layout: Layout, rules, extra, update: bool, ops: list) -> None:
    w = f"{R}.devices"
    parsed = dev.parse_rules(rules, w)
    allows = dev.parse_rules(list(extra or ()), "linux.devices")
    d = layout.find("devices")
    if d is None:
        if not parsed:
            return  # nothing asked for, and nowhere to enforce the defaults
        layout.need("devices", w)
    if d.version == 1:
        try:
            current = d.read("devices.list")
        except OSError:
            current = "a *:* rwm\n"
        explicit = {r.key() for r in parsed + allows}
        defaults = {(t, ma, mi) for t, ma, mi, _ in dev.DEFAULT_ALLOWED}
        for name, line in dev.v1_writes(dev.v1_rules(parsed, allows), current, keep_order=not update):
            t, nums, _ = line.split()
            ma, mi = (dev.WILD if n == "*" else int(n) for n in nums.split(":"))
            key = (t, ma, mi)
            optional = name == "devices.allow" and key in defaults and key not in explicit
            ops.append((DefaultDeviceW if optional else W)(w, d, name, line))
    else:
        ops.append(Bpf(w, d, dev.effective_rules(parsed, allows)))
