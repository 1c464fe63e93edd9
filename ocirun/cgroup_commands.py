"""update, pause, resume, ps, events: the commands that work on a container's cgroup.

The CLI parses the flags and calls these; each loads the container from the state store and uses
the cgroup directories create recorded there (`ocirun.cgroup_dirs`).
"""
import posix
import sys
import time

from . import cgroups, state
from .errors import ConfigError, OciError, WrongState


def _load(root: str, container_id: str, what: str, ok=("created", "running", "paused"),
          lock: bool = False) -> state.Container:
    """The container, in one of the `ok` states; with `lock`, locked (the caller unlocks)."""
    c = state.load(root, container_id, lock=lock)
    status = c.status()
    if status not in ok:
        c.unlock()
        raise WrongState(f"cannot {what} a container that is {status}", container_id, status)
    return c


def _dirs(c: state.Container) -> list[str]:
    return c.private.get("cgroup_dirs") or []


def update(root: str, container_id: str, resources: dict) -> None:
    """Change the cgroup resources of a live container (`update --resources` or its flags)."""
    if not isinstance(resources, dict):
        raise OciError("the resources must be a JSON object (linux.resources)", container_id)
    c = _load(root, container_id, "update", lock=True)
    devices = c.private["cgroup_devices"] if "devices" in resources else ()
    try:
        cgroups.manager_of(c.private).update(resources, devices)
    except ConfigError as e:
        # Not config.json's fault here: the same message, without the "config.json:" prefix.
        raise OciError(e.message, e.where) from None
    finally:
        c.unlock()


def pause(root: str, container_id: str) -> None:
    c = _load(root, container_id, "pause", ok=("created", "running"), lock=True)
    try:
        cgroups.freeze(_dirs(c))
    finally:
        c.unlock()


def resume(root: str, container_id: str) -> None:
    c = _load(root, container_id, "resume", ok=("paused",), lock=True)
    try:
        cgroups.thaw(_dirs(c))
    finally:
        c.unlock()


def ps(root: str, container_id: str) -> list[int]:
    """Host pids of every process in the container's cgroup."""
    c = state.load(root, container_id)
    if c.data is None:
        raise OciError("container is being created", container_id)
    return sorted(cgroups.pids(_dirs(c)))


def ps_table(root: str, container_id: str, ps_args: list[str] | None = None) -> str:
    """runc's `ps` table: the host's `ps` (default `-ef`) with the header and the container's lines."""
    pids = set(ps(root, container_id))
    lines = _run_ps(ps_args or ["-ef"], container_id).splitlines()
    if not lines:
        return ""
    header = lines[0].split()
    if "PID" not in header:
        raise OciError("ps output has no PID column (pass options that print one)", container_id)
    col = header.index("PID")
    keep = [lines[0]]
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in pids:
            keep.append(line)
    return "\n".join(keep) + "\n"


def _run_ps(args: list[str], container_id: str) -> str:
    """ps(1)'s output, through posix_spawn: subprocess would pull in locale, re and enum (and
    os, a millisecond, is left out of this module like the rest of the hot path)."""
    r, w = posix.pipe()
    try:
        pid = posix.posix_spawnp("ps", ["ps", *args], posix.environ, file_actions=[(posix.POSIX_SPAWN_DUP2, w, 1)])
    except OSError as e:
        posix.close(r)
        raise OciError(f"run ps: {e.strerror}", container_id) from None
    finally:
        posix.close(w)
    chunks = []
    while chunk := posix.read(r, 65536):
        chunks.append(chunk)
    posix.close(r)
    status = posix.waitpid(pid, 0)[1]
    if status:
        raise OciError(f"ps {' '.join(args)} failed with wait status {status}", container_id)
    return b"".join(chunks).decode(errors="replace")


def read_resources(path: str) -> dict:
    """`update --resources FILE` (or `-` for stdin): a linux.resources JSON object."""
    from .jsonio import loads

    if path == "-":
        text, what = sys.stdin.read(), "stdin"
    else:
        try:
            with open(path) as f:
                text = f.read()
        except OSError as e:
            raise OciError(e.strerror.lower(), path) from None
        what = path
    doc = loads(text, what)
    if not isinstance(doc, dict):
        raise OciError("must be a JSON object (linux.resources)", what)
    return doc


def parse_interval(text) -> float:
    """`events --interval`: a Go duration as runc takes it (5s, 100ms, 1m30s, 1.5s), or plain seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    s = str(text).strip()
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    try:
        return float(s)
    except ValueError:
        pass
    total, num, i = 0.0, "", 0
    while i < len(s):
        ch = s[i]
        if ch.isdigit() or ch == ".":
            num += ch
            i += 1
            continue
        unit = next((u for u in ("ns", "us", "µs", "ms", "s", "m", "h") if s.startswith(u, i)), None)
        if unit is None or not num:
            break
        try:
            total += float(num) * units[unit]
        except ValueError:
            break
        num, i = "", i + len(unit)
    else:
        if not num and total > 0:
            return total
    raise OciError(f"invalid duration {text!r}: use e.g. 5s, 100ms, 1m", "--interval")


def events_stats(root: str, container_id: str) -> dict:
    """One stats event, as `runc events --stats` prints it."""
    c = _load(root, container_id, "get the stats of")
    return {"type": "stats", "id": container_id, "data": cgroups.stats(_dirs(c))}


def events_stream(root: str, container_id: str, interval: float, out=None, stop=None) -> None:
    """Print events(...) as one JSON event per line."""
    from .jsonio import dumps

    out = out or sys.stdout
    for event in events(root, container_id, interval, stop):
        out.write(dumps(event) + "\n")
        out.flush()


def events(root: str, container_id: str, interval: float, stop=None):
    """A stats event every `interval` seconds, and an OOM event as soon as the OOM killer kills a
    process of the container. Ends once the container has stopped.

    stop: optional callable; the events also end when it returns true (tests, signal handlers).
    """
    c = _load(root, container_id, "get the events of")
    dirs = _dirs(c)
    if interval <= 0:
        raise OciError(f"--interval must be positive, not {interval}", container_id)
    tick = min(interval, 0.1)
    ooms = cgroups.oom_events(dirs)
    next_stats = time.monotonic()
    while True:
        stopped = c.status() == "stopped" or (stop is not None and stop())
        now_ooms = cgroups.oom_events(dirs)
        if now_ooms > ooms:
            yield {"type": "oom", "id": container_id, "data": {"count": now_ooms - ooms}}
            ooms = now_ooms
        if stopped:
            return
        now = time.monotonic()
        if now >= next_stats:
            yield {"type": "stats", "id": container_id, "data": cgroups.stats(dirs)}
            next_stats = now + interval
        time.sleep(min(tick, max(0.0, next_stats - time.monotonic())) or tick)


# --- runc update's flags ------------------------------------------------------------------------

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}

# flag (as the option name, dashes or underscores) -> (section, field, parser)
_MEMORY = ("memory", "memory-reservation", "memory-swap", "kernel-memory", "kernel-memory-tcp")


def parse_size(text, flag: str) -> int:
    """A size as runc (docker's RAMInBytes) reads it: 1024, 512m, 1g, 1.5GiB; -1 is unlimited."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    s = str(text).strip().lower()
    if s == "-1":
        return -1
    num = s.rstrip("kmgtpbi ")
    unit = s[len(num):].strip()
    if unit.endswith("b"):
        unit = unit[:-1]
    if unit.endswith("i"):
        unit = unit[:-1]
    try:
        value = float(num)
    except ValueError:
        value = -1.0
    if unit not in _UNITS or value < 0 or not num:
        raise OciError(f"invalid size {text!r}: use a number of bytes with an optional k, m, g, t or p suffix, "
                       f"or -1", flag)
    return int(value * _UNITS[unit])


def _integer(text, flag: str, lo: int | None = None) -> int:
    try:
        v = int(str(text).strip())
    except ValueError:
        raise OciError(f"invalid number {text!r}", flag) from None
    if lo is not None and v < lo:
        raise OciError(f"{v} is out of range (at least {lo})", flag)
    return v


def resources_from_flags(opts: dict) -> dict:
    """runc update's individual flags as linux.resources.

    opts keys are the flag names with or without the leading dashes, with dashes or underscores:
    memory, memory-reservation, memory-swap, kernel-memory, kernel-memory-tcp, cpu-share(s),
    cpu-quota, cpu-period, cpu-burst, cpu-rt-runtime, cpu-rt-period, cpu-idle, cpuset-cpus,
    cpuset-mems, pids-limit, blkio-weight. Values are strings (or ints); absent or None: not changed.
    """
    flags = {}
    for k, v in opts.items():
        if v is not None:
            flags[k.lstrip("-").replace("_", "-")] = v
    r: dict = {}

    def put(section, field, value):
        r.setdefault(section, {})[field] = value

    for flag, field in (("memory", "limit"), ("memory-reservation", "reservation"), ("memory-swap", "swap"),
                        ("kernel-memory", "kernel"), ("kernel-memory-tcp", "kernelTCP")):
        if flag in flags:
            put("memory", field, parse_size(flags[flag], f"--{flag}"))
    for flag in ("cpu-share", "cpu-shares"):
        if flag in flags:
            put("cpu", "shares", _integer(flags[flag], f"--{flag}", lo=0))
    for flag, field, lo in (("cpu-quota", "quota", None), ("cpu-period", "period", 0), ("cpu-burst", "burst", 0),
                            ("cpu-rt-runtime", "realtimeRuntime", None), ("cpu-rt-period", "realtimePeriod", 0),
                            ("cpu-idle", "idle", None)):
        if flag in flags:
            put("cpu", field, _integer(flags[flag], f"--{flag}", lo=lo))
    for flag, field in (("cpuset-cpus", "cpus"), ("cpuset-mems", "mems")):
        if flag in flags:
            put("cpu", field, str(flags[flag]))
    if "pids-limit" in flags:
        put("pids", "limit", _integer(flags["pids-limit"], "--pids-limit"))
    if "blkio-weight" in flags:
        w = _integer(flags["blkio-weight"], "--blkio-weight", lo=0)
        if w and not 10 <= w <= 1000:
            raise OciError(f"{w} is out of range (10 to 1000)", "--blkio-weight")
        put("blockIO", "weight", w)
    return r
