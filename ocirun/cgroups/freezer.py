"""Freeze and thaw a container's cgroup: the v1 freezer (freezer.state) where the host has one,
else cgroup v2's cgroup.freeze. Both wait until the kernel reports the change done."""
import time

from ..errors import OciError
from ..posixio import basename, dirname, exists


def _find(dirs: list[str]) -> tuple[int, str]:
    for d in dirs:
        if exists(d + "/freezer.state"):
            return 1, d
    for d in dirs:
        if exists(d + "/cgroup.freeze"):
            return 2, d
    raise OciError("the host has no cgroup freezer for this container (no freezer.state, no cgroup.freeze)",
                   dirs[0] if dirs else None)


def _write(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        raise OciError(f"write {value} to {basename(path)}: {e.strerror}", dirname(path)) from None


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _v2_frozen(d: str) -> bool | None:
    for line in _read(d + "/cgroup.events").splitlines():
        k, _, v = line.partition(" ")
        if k == "frozen":
            return v.strip() == "1"
    return None


def is_frozen(dirs: list[str]) -> bool:
    try:
        version, d = _find(dirs)
    except OciError:
        return False
    if version == 1:
        return _read(d + "/freezer.state").strip() == "FROZEN"
    return bool(_v2_frozen(d))


def freeze(dirs: list[str], timeout: float = 10.0) -> None:
    """Freeze every process of the cgroup; returns once all are frozen."""
    version, d = _find(dirs)
    deadline = time.monotonic() + timeout
    delay = 0.0005
    if version == 1:
        state = d + "/freezer.state"
        while True:
            # Writing FROZEN again retries tasks that were busy (in a system call) the last time.
            _write(state, "FROZEN")
            if _read(state).strip() == "FROZEN":
                return
            if time.monotonic() > deadline:
                _write(state, "THAWED")
                raise OciError(f"the container's processes did not freeze within {timeout:g}s", d)
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
    _write(d + "/cgroup.freeze", "1")
    while not _v2_frozen(d):
        if time.monotonic() > deadline:
            _write(d + "/cgroup.freeze", "0")
            raise OciError(f"the container's processes did not freeze within {timeout:g}s", d)
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def thaw(dirs: list[str], timeout: float = 10.0) -> None:
    version, d = _find(dirs)
    deadline = time.monotonic() + timeout
    delay = 0.0005
    if version == 1:
        state = d + "/freezer.state"
        _write(state, "THAWED")
        while _read(state).strip() not in ("THAWED", ""):
            if time.monotonic() > deadline:
                raise OciError(f"the container's processes did not thaw within {timeout:g}s", d)
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return
    _write(d + "/cgroup.freeze", "0")
    while _v2_frozen(d):
        if time.monotonic() > deadline:
            raise OciError(f"the container's processes did not thaw within {timeout:g}s", d)
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
