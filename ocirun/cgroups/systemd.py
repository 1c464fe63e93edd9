"""The systemd cgroup driver (`--systemd-cgroup`): the container's cgroup is a transient scope
that systemd makes around the init, over D-Bus, as runc and crun do on systemd hosts.

cgroupsPath is `slice:prefix:name`: the scope `prefix-name.scope` in `slice` (default
`system.slice`; `-.slice` is the root). StartTransientUnit creates it with the init's pid,
Delegate=yes and CollectMode=inactive-or-failed, plus the `org.systemd.property.*` annotations.
linux.resources is then written to the scope's files exactly as the cgroupfs driver writes
them (resources.py), and what has a unit property is also set as one (SetUnitProperties), so a
`systemctl daemon-reload` keeps it. delete stops the scope and waits until systemd has let go of
it.

The D-Bus client is jeepney (pure Python, no dependencies), imported only here: the cgroupfs
path never loads it. docs/architecture.md has the choice and its cost.
"""
import re

from ..errors import OciError
from . import Cgroupfs, Hierarchy, create, join

WHERE = "linux.cgroupsPath"
_SYSTEMD = "org.freedesktop.systemd1"
_MANAGER_PATH = "/org/freedesktop/systemd1"
_MANAGER = "org.freedesktop.systemd1.Manager"
_UNIT_CHARS = re.compile(r"[A-Za-z0-9:_.\\-]+")
_MAX = (1 << 64) - 1  # systemd's "infinity"
_JOB_WAIT_S = 30.0
_ANNOTATION = "org.systemd.property."
# v2 limit files and the unit property that holds the same number ("max": infinity)
_LIMIT_PROPERTIES = {"memory.max": "MemoryMax", "memory.low": "MemoryLow", "memory.swap.max": "MemorySwapMax",
                     "pids.max": "TasksMax"}


class Systemd(Cgroupfs):
    self_join = False  # systemd makes the scope around the init's pid

    def __init__(self, dirs: list[str], made=(), unit: str = "", slice_: str = "", props=(), found=(),
                 started=None):
        super().__init__(dirs, made)
        self.unit, self.slice, self.props, self.found = unit, slice_, list(props), list(found)
        self.pending = None
        # Whether the scope may exist: unknown (None) for a container read back from its state.
        self.started = started

    @classmethod
    def for_path(cls, cgroups_path: str, container_id: str, found: list[Hierarchy],
                 annotations: dict | None = None) -> "Systemd":
        slice_, prefix, name = parse_path(cgroups_path, container_id)
        unit = f"{prefix}-{name}.scope" if prefix else f"{name}.scope"
        if len(unit) > 255:
            raise OciError(f"the scope name {unit!r} is longer than systemd allows (255)", WHERE)
        rel = slice_path(slice_) + "/" + unit
        dirs = [h.mountpoint + rel for h in found]
        props = [("Description", ("s", f"ocirun container {container_id}")), ("Slice", ("s", slice_)),
                 ("Delegate", ("b", True)), ("DefaultDependencies", ("b", False)),
                 ("CollectMode", ("s", "inactive-or-failed"))]
        props += [(k, ("b", True)) for k in ("MemoryAccounting", "CPUAccounting", "IOAccounting",
                                             "TasksAccounting")]
        props += annotation_properties(annotations or {})
        return cls(dirs, (), unit, slice_, props, found, started=False)

    def record(self) -> dict:
        return {**super().record(), "cgroup_made": [], "cgroup_unit": self.unit}

    def state(self) -> dict:
        return {**super().state(), "cgroup_unit": self.unit}

    def prepare(self, resources: dict, devices) -> None:
        self.pending = (resources, devices)  # written once the scope exists (place)

    def place(self, pid: int) -> None:
        with Bus() as bus:
            job = bus.call("StartTransientUnit", "ssa(sv)a(sa(sv))",
                           (self.unit, "fail", self.props + [("PIDs", ("au", [pid]))], []),
                           f"start the scope {self.unit}")
            self.started = True
            bus.wait_job(job, self.unit)
            _check_placed(pid, self.dirs, self.found)
            # v1 hierarchies systemd doesn't manage (a hybrid host) are ours, as with cgroupfs.
            v1 = [d for h, d in zip(self.found, self.dirs) if h.version == 1]
            self.made = create(v1)
            join(v1, pid)
            resources, devices = self.pending
            self._write(bus, resources, devices, update=False)

    def update(self, resources: dict, devices) -> None:
        with Bus() as bus:
            self._write(bus, resources, devices, update=True)

    def _write(self, bus: "Bus", resources, devices, update: bool) -> None:
        """The files, as cgroupfs writes them; then the unit properties of those writes."""
        from .resources import apply

        props = unit_properties(apply(self.dirs, resources, update, devices))
        if props:
            bus.call("SetUnitProperties", "sba(sv)", (self.unit, True, props), f"set the properties of {self.unit}")

    def destroy(self) -> list[str]:
        if self.started is not False:
            with Bus() as bus:
                bus.stop_and_forget(self.unit)
        return super().destroy()


# --- cgroupsPath ---------------------------------------------------------------------------------

def parse_path(cgroups_path: str, container_id: str) -> tuple[str, str, str]:
    """slice:prefix:name, checked as systemd would check it; empty: system.slice:ocirun:<id>."""
    if not cgroups_path:
        return "system.slice", "ocirun", container_id
    parts = cgroups_path.split(":")
    if len(parts) != 3 or cgroups_path.startswith("/"):
        raise OciError(f"{cgroups_path!r}: --systemd-cgroup takes cgroupsPath as slice:prefix:name", WHERE)
    slice_, prefix, name = parts
    slice_ = slice_ or "system.slice"
    if not name:
        raise OciError(f"{cgroups_path!r}: the name part (slice:prefix:name) is empty", WHERE)
    if name.endswith(".slice"):
        raise OciError(f"{cgroups_path!r}: ocirun makes a scope for the container, not the slice {name!r}", WHERE)
    for part, what in ((prefix, "prefix"), (name, "name")):
        if part and not _UNIT_CHARS.fullmatch(part):
            raise OciError(f"{cgroups_path!r}: the {what} {part!r} has characters systemd refuses in a unit name",
                           WHERE)
    slice_path(slice_)  # checks it
    return slice_, prefix, name


def slice_path(slice_: str) -> str:
    """Where systemd puts a slice: a-b.slice is /a.slice/a-b.slice, -.slice the root ('')."""
    if slice_ == "-.slice":
        return ""
    stem = slice_.removesuffix(".slice")
    if (stem == slice_ or not stem or not _UNIT_CHARS.fullmatch(stem) or stem.startswith("-")
            or stem.endswith("-") or "--" in stem):
        raise OciError(f"{slice_!r} is not a slice name systemd accepts (like system.slice or a-b.slice)",
                       WHERE)
    parts = stem.split("-")
    return "".join("/" + "-".join(parts[:i + 1]) + ".slice" for i in range(len(parts)))


def _check_placed(pid: int, dirs: list[str], found: list[Hierarchy]) -> None:
    """The scope must be where the dirs recorded before its start say (the mounts of the
    cgroup in the container and delete both go by them)."""
    want = next((d for h, d in zip(found, dirs) if h.version == 2), None)
    if want is None:
        return
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            got = next(line[3:].rstrip("\n") for line in f if line.startswith("0::"))
    except (OSError, StopIteration):
        raise OciError(f"read /proc/{pid}/cgroup: the init is gone", WHERE) from None
    mount = next(h.mountpoint for h in found if h.version == 2)
    if mount + got.rstrip("/") != want:
        raise OciError(f"systemd put the scope at {got}, not at {want.removeprefix(mount)}", WHERE)


# --- unit properties -----------------------------------------------------------------------------

def unit_properties(ops: list) -> list:
    """The unit properties that say what the v2 file writes in ops say, so that systemd keeps
    them: memory.max is MemoryMax, cpu.max CPUQuotaPerSecUSec (rounded up to 10 ms, as systemd
    stores it) and CPUQuotaPeriodUSec, pids.max TasksMax, cpuset.* AllowedCPUs/AllowedMemoryNodes."""
    from .resources import Pair, W

    writes = []
    for op in ops:
        writes += [op.first, op.second] if isinstance(op, Pair) else [op]
    props = []
    for w in writes:
        if not isinstance(w, W) or w.dir.version != 2:
            continue  # a v1 file, or the device filter
        name, value = w.name, w.value
        if name in _LIMIT_PROPERTIES:
            props.append((_LIMIT_PROPERTIES[name], ("t", _MAX if value == "max" else int(value))))
        elif name == "cpu.weight":
            props.append(("CPUWeight", ("t", int(value))))
        elif name == "cpu.max":
            quota, _, period = value.partition(" ")
            period_us = int(period) if period else 100000
            if quota == "max":
                per_sec = _MAX
            else:
                per_sec = -(-int(quota) * 1000000 // period_us)
                per_sec = -(-per_sec // 10000) * 10000
            props.append(("CPUQuotaPerSecUSec", ("t", per_sec)))
            if period:
                props.append(("CPUQuotaPeriodUSec", ("t", period_us)))
        elif name in ("cpuset.cpus", "cpuset.mems"):
            props.append(("AllowedCPUs" if name == "cpuset.cpus" else "AllowedMemoryNodes",
                          ("ay", _bitmask(value))))
    return props


def _bitmask(ranges: str) -> bytes:
    """A cpuset list ("0-2,5") as systemd's byte mask: bit n of byte n//8 is cpu n."""
    bits = 0
    for part in ranges.strip().split(","):
        if part:
            lo, _, hi = part.partition("-")
            for n in range(int(lo), int(hi or lo) + 1):
                bits |= 1 << n
    return bits.to_bytes(max(1, (bits.bit_length() + 7) // 8), "little")


def annotation_properties(annotations: dict) -> list:
    """`org.systemd.property.NAME: VALUE` annotations as unit properties, as runc takes them.
    VALUE is a GVariant text: 'text' or "text", true/false, a number (int32, or with a type
    word: uint64 123, int64 -1, uint32, int32, uint16, int16, byte, double), or ['a', 'b'].
    NAMESec (not USec) with a number is NAMEUSec in microseconds."""
    props = []
    for key, text in annotations.items():
        if not key.startswith(_ANNOTATION):
            continue
        where = f"annotations.{key}"
        name = key[len(_ANNOTATION):]
        if not re.fullmatch(r"[A-Z][A-Za-z0-9]*", name):
            raise OciError(f"{name!r} is not a systemd property name", where)
        value = _variant(text, where)
        if name.endswith("Sec") and not name.endswith("USec"):
            if value[0] not in "yqutnixd":
                raise OciError(f"{name} takes seconds, not {text!r}", where)
            name, value = name[:-3] + "USec", ("t", int(value[1] * 1000000))
        props.append((name, value))
    return props


_NUMBER_TYPES = {"byte": "y", "int16": "n", "uint16": "q", "int32": "i", "uint32": "u", "int64": "x",
                 "uint64": "t", "double": "d"}


def _variant(text: str, where: str) -> tuple[str, object]:
    t = text.strip()
    if t in ("true", "false"):
        return "b", t == "true"
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        return "s", t[1:-1]
    if t.startswith("[") and t.endswith("]"):
        items = [_variant(x, where) for x in t[1:-1].split(",") if x.strip()]
        if not all(sig == "s" for sig, _ in items):
            raise OciError(f"{text!r}: only arrays of strings are taken", where)
        return "as", [v for _, v in items]
    word, _, number = t.partition(" ")
    sig = _NUMBER_TYPES.get(word)
    if sig is None:
        sig, number = ("d" if "." in t else "i"), t
    try:
        return sig, (float(number) if sig == "d" else int(number.strip(), 0))
    except ValueError:
        raise OciError(f"{text!r} is not a GVariant value (like 'text', true, 42 or uint64 42)", where) from None


# --- D-Bus ---------------------------------------------------------------------------------------

class Bus:
    """A connection to systemd over the system bus."""

    def __enter__(self) -> "Bus":
        try:
            from jeepney import DBusAddress
            from jeepney.io.blocking import open_dbus_connection
        except ImportError:
            raise OciError("--systemd-cgroup needs the Python package jeepney (pip install jeepney)", WHERE) from None
        try:
            self.conn = open_dbus_connection(bus="SYSTEM")
        except (OSError, ValueError) as e:
            why = getattr(e, "strerror", None) or str(e)
            raise OciError(f"--systemd-cgroup needs systemd on the D-Bus system bus, which is not reachable: {why}",
                           WHERE) from None
        self.manager = DBusAddress(_MANAGER_PATH, bus_name=_SYSTEMD, interface=_MANAGER)
        # Before any job is queued, so that no JobRemoved can be missed.
        from jeepney import MatchRule, message_bus

        # No sender: jeepney matches it against the signal's unique sender name (":1.2"), which
        # is never the well-known one. Only systemd has this path and interface.
        rule = MatchRule(type="signal", interface=_MANAGER, member="JobRemoved", path=_MANAGER_PATH)
        self.conn.send_and_get_reply(message_bus.AddMatch(rule))
        self.jobs = self.conn.filter(rule, bufsize=64).queue
        return self

    def __exit__(self, *exc) -> None:
        self.conn.close()

    def call(self, method: str, signature: str, body: tuple, what: str, quiet=()):
        """One method call of systemd's manager; a D-Bus error is an OciError saying `what`,
        except the error names in `quiet`, which return None."""
        from jeepney import DBusErrorResponse, new_method_call
        from jeepney.wrappers import unwrap_msg

        try:
            # An error reply comes back as a message: unwrap_msg raises it.
            body = unwrap_msg(self.conn.send_and_get_reply(new_method_call(self.manager, method, signature, body),
                                                           timeout=_JOB_WAIT_S))
        except DBusErrorResponse as e:
            if e.name in quiet:
                return None
            detail = e.data[0] if e.data and isinstance(e.data[0], str) else e.name
            raise OciError(f"{what}: systemd said: {detail}", WHERE) from None
        except TimeoutError:
            raise OciError(f"{what}: systemd did not answer in {_JOB_WAIT_S:.0f} s", WHERE) from None
        return body[0] if body else None

    def wait_job(self, job: str, unit: str) -> None:
        """Wait for the job's JobRemoved signal; anything but "done" is an error."""
        result = self._job_result(job)
        if result != "done":
            raise OciError(f"systemd's job for {unit} ended: {result}", WHERE)

    def _job_result(self, job: str) -> str:
        import time

        deadline = time.monotonic() + _JOB_WAIT_S
        while True:
            try:
                msg = self.conn.recv_until_filtered(self.jobs, timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return "timeout"
            _, path, _, result = msg.body
            if path == job:
                return result

    def stop_and_forget(self, unit: str) -> None:
        """Stop the scope (its processes are dead by now) and wait until systemd has collected
        it: nothing of it stays in `systemctl list-units`."""
        import time

        job = self.call("StopUnit", "ss", (unit, "replace"), f"stop {unit}",
                        quiet=("org.freedesktop.systemd1.NoSuchUnit",))
        if job is not None:
            self._job_result(job)
        self.call("ResetFailedUnit", "s", (unit,), f"reset {unit}",
                  quiet=("org.freedesktop.systemd1.NoSuchUnit", "org.freedesktop.DBus.Error.InvalidArgs"))
        deadline = time.monotonic() + _JOB_WAIT_S
        while self.call("GetUnit", "s", (unit,), f"look up {unit}",
                        quiet=("org.freedesktop.systemd1.NoSuchUnit",)) is not None:
            if time.monotonic() > deadline:
                raise OciError(f"systemd still has the unit {unit} after it was stopped", WHERE)
            time.sleep(0.01)
