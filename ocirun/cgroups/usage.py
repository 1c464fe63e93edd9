"""Usage figures of a container's cgroup in the shape of runc's `events --stats` data, v1 and v2.

    {"cpu": {"usage": {"total", "percpu", "percpu_kernel", "percpu_user", "kernel", "user"},
             "throttling": {"periods", "throttledPeriods", "throttledTime"}},
     "memory": {"cache", "usage": {"limit", "usage", "max", "failcnt"}, "swap": {...},
                "kernel": {...}, "kernelTCP": {...}, "raw": {memory.stat}},
     "pids": {"current", "limit"},
     "blkio": {"ioServiceBytesRecursive": [{"major", "minor", "op", "value"}], "ioServicedRecursive": [...]},
     "hugetlb": {"2MB": {"usage", "max", "failcnt"}}}

Times are nanoseconds, sizes bytes; an unlimited limit is 2^64-1 for memory (as runc shows it) and
0 for pids. On cgroup v2 "swap" is memory+swap, as v1's memsw is, so the two read alike.
"""
import os

from ..errors import OciError
from .resources import describe

MAX_U64 = (1 << 64) - 1


def _read(d: str, name: str) -> str | None:
    try:
        with open(f"{d}/{name}") as f:
            return f.read()
    except OSError:
        return None


def _int(d: str, name: str, default: int = 0) -> int:
    text = _read(d, name)
    if text is None:
        return default
    text = text.strip()
    if text == "max":
        return MAX_U64
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return default


def _kv(d: str, name: str) -> dict:
    out = {}
    for line in (_read(d, name) or "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


def _find(dirs, ctrl: str, v2_file: str | None = None):
    """(version, dir) providing ctrl: a v1 hierarchy first, else a v2 directory with it enabled
    (or, for figures v2 keeps without a controller, one that has v2_file)."""
    described = []
    for d in dirs:
        try:
            described.append(describe(d))
        except OciError:
            continue
    for version in (1, 2):
        for x in described:
            if x.version == version and ctrl in x.controllers:
                return version, x.path
    if v2_file:
        for x in described:
            if x.version == 2 and v2_file in x.files:
                return 2, x.path
    return None, None


def stats(dirs: list[str]) -> dict:
    return {
        "cpu": _cpu(dirs),
        "memory": _memory(dirs),
        "pids": _pids(dirs),
        "blkio": _blkio(dirs),
        "hugetlb": _hugetlb(dirs),
    }


def _cpu(dirs) -> dict:
    usage = {"total": 0, "percpu": [], "percpu_kernel": [], "percpu_user": [], "kernel": 0, "user": 0}
    throttling = {"periods": 0, "throttledPeriods": 0, "throttledTime": 0}
    version, d = _find(dirs, "cpuacct")
    if version == 1:
        usage["total"] = _int(d, "cpuacct.usage")
        usage["percpu"] = [int(x) for x in (_read(d, "cpuacct.usage_percpu") or "").split()]
        usage["percpu_kernel"] = [int(x) for x in (_read(d, "cpuacct.usage_percpu_sys") or "").split()]
        usage["percpu_user"] = [int(x) for x in (_read(d, "cpuacct.usage_percpu_user") or "").split()]
        if _read(d, "cpuacct.usage_user") is not None:
            usage["user"] = _int(d, "cpuacct.usage_user")
            usage["kernel"] = _int(d, "cpuacct.usage_sys")
        else:
            ticks = _kv(d, "cpuacct.stat")
            ns = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
            usage["user"], usage["kernel"] = ticks.get("user", 0) * ns, ticks.get("system", 0) * ns
    version, d = _find(dirs, "cpu", "cpu.stat")
    if version == 1:
        s = _kv(d, "cpu.stat")
        throttling.update(periods=s.get("nr_periods", 0), throttledPeriods=s.get("nr_throttled", 0),
                          throttledTime=s.get("throttled_time", 0))
    elif version == 2:
        s = _kv(d, "cpu.stat")
        if not usage["total"]:
            usage.update(total=s.get("usage_usec", 0) * 1000, user=s.get("user_usec", 0) * 1000,
                         kernel=s.get("system_usec", 0) * 1000)
        throttling.update(periods=s.get("nr_periods", 0), throttledPeriods=s.get("nr_throttled", 0),
                          throttledTime=s.get("throttled_usec", 0) * 1000)
    return {"usage": usage, "throttling": throttling}


def _entry(d: str, usage: str, max_: str, failcnt: str, limit: str) -> dict:
    return {"limit": _int(d, limit), "usage": _int(d, usage), "max": _int(d, max_), "failcnt": _int(d, failcnt)}


def _memory(dirs) -> dict:
    empty = {"limit": 0, "usage": 0, "max": 0, "failcnt": 0}
    out = {"cache": 0, "usage": dict(empty), "swap": dict(empty), "kernel": dict(empty),
           "kernelTCP": dict(empty), "raw": {}}
    version, d = _find(dirs, "memory")
    if version == 1:
        def limit(v):  # v1 shows "unlimited" as the largest page-aligned number
            return MAX_U64 if v >= (1 << 62) else v

        out["usage"] = _entry(d, "memory.usage_in_bytes", "memory.max_usage_in_bytes", "memory.failcnt",
                              "memory.limit_in_bytes")
        out["swap"] = _entry(d, "memory.memsw.usage_in_bytes", "memory.memsw.max_usage_in_bytes",
                             "memory.memsw.failcnt", "memory.memsw.limit_in_bytes")
        out["kernel"] = _entry(d, "memory.kmem.usage_in_bytes", "memory.kmem.max_usage_in_bytes",
                               "memory.kmem.failcnt", "memory.kmem.limit_in_bytes")
        out["kernelTCP"] = _entry(d, "memory.kmem.tcp.usage_in_bytes", "memory.kmem.tcp.max_usage_in_bytes",
                                  "memory.kmem.tcp.failcnt", "memory.kmem.tcp.limit_in_bytes")
        for e in ("usage", "swap", "kernel", "kernelTCP"):
            out[e]["limit"] = limit(out[e]["limit"])
        out["raw"] = _kv(d, "memory.stat")
        out["cache"] = out["raw"].get("total_cache", out["raw"].get("cache", 0))
    elif version == 2:
        events = _kv(d, "memory.events")
        usage, mem_max = _int(d, "memory.current"), _int(d, "memory.max", MAX_U64)
        out["usage"] = {"limit": mem_max, "usage": usage, "max": _int(d, "memory.peak"),
                        "failcnt": events.get("max", 0)}
        swap, swap_max = _int(d, "memory.swap.current"), _int(d, "memory.swap.max", MAX_U64)
        both = MAX_U64 if MAX_U64 in (mem_max, swap_max) else mem_max + swap_max
        swap_events = _kv(d, "memory.swap.events")
        out["swap"] = {"limit": both, "usage": usage + swap, "max": 0, "failcnt": swap_events.get("max", 0)}
        out["raw"] = _kv(d, "memory.stat")
        out["cache"] = out["raw"].get("file", 0)
    return out


def _pids(dirs) -> dict:
    version, d = _find(dirs, "pids")
    if version is None:
        return {"current": 0, "limit": 0}
    limit = _int(d, "pids.max")
    return {"current": _int(d, "pids.current"), "limit": 0 if limit == MAX_U64 else limit}


_BLKIO_FILES = (
    ("ioServiceBytesRecursive", ("blkio.throttle.io_service_bytes_recursive", "blkio.io_service_bytes_recursive",
                                 "blkio.bfq.io_service_bytes_recursive")),
    ("ioServicedRecursive", ("blkio.throttle.io_serviced_recursive", "blkio.io_serviced_recursive",
                             "blkio.bfq.io_serviced_recursive")),
)


def _blkio(dirs) -> dict:
    out = {"ioServiceBytesRecursive": [], "ioServicedRecursive": []}
    version, d = _find(dirs, "blkio")
    if version is None:
        version, d = _find(dirs, "io", "io.stat")
    if version == 1:
        for key, names in _BLKIO_FILES:
            for name in names:
                text = _read(d, name)
                if text is None:
                    continue
                for line in text.splitlines():
                    parts = line.split()
                    if len(parts) == 3 and ":" in parts[0]:
                        major, minor = parts[0].split(":")
                        out[key].append({"major": int(major), "minor": int(minor), "op": parts[1],
                                         "value": int(parts[2])})
                break
    elif version == 2:
        for line in (_read(d, "io.stat") or "").splitlines():
            parts = line.split()
            if not parts or ":" not in parts[0]:
                continue
            major, minor = (int(x) for x in parts[0].split(":"))
            f = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
            for key, read, write in (("ioServiceBytesRecursive", "rbytes", "wbytes"),
                                     ("ioServicedRecursive", "rios", "wios")):
                r, w = int(f.get(read, 0)), int(f.get(write, 0))
                for op, v in (("Read", r), ("Write", w), ("Total", r + w)):
                    out[key].append({"major": major, "minor": minor, "op": op, "value": v})
    return out


def _hugetlb(dirs) -> dict:
    out = {}
    version, d = _find(dirs, "hugetlb")
    if version is None:
        return out
    try:
        names = os.listdir(d)
    except OSError:
        return out
    for name in names:
        parts = name.split(".")
        if len(parts) != 3 or parts[0] != "hugetlb":
            continue
        size, leaf = parts[1], parts[2]
        if version == 1 and leaf == "usage_in_bytes":
            out[size] = {"usage": _int(d, name), "max": _int(d, f"hugetlb.{size}.max_usage_in_bytes"),
                         "failcnt": _int(d, f"hugetlb.{size}.failcnt")}
        elif version == 2 and leaf == "current":
            out[size] = {"usage": _int(d, name), "max": 0,
                         "failcnt": _kv(d, f"hugetlb.{size}.events").get("max", 0)}
    return out


def oom_kills(dirs: list[str]) -> int:
    """How many processes of the cgroup the OOM killer has killed (v1 memory.oom_control, v2 memory.events)."""
    version, d = _find(dirs, "memory")
    if version == 1:
        return _kv(d, "memory.oom_control").get("oom_kill", 0)
    if version == 2:
        return _kv(d, "memory.events").get("oom_kill", 0)
    return 0
