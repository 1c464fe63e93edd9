"""The state store: one directory per container under --root.

    ROOT/ID/            made with mkdir(2), so two `create`s of one id can't both succeed
    ROOT/ID/state.json  written atomically (write a temporary file, then rename)
    ROOT/ID/exec.fifo   exists from create until start: the init blocks opening it

Status is never stored: it is computed from the live process (guarded against pid reuse by the
process start time), the fifo, and the freezer.
"""
import posix

from . import jsonio
from .posixio import exists, isdir, join, write_atomically
from .errors import OciError

OCI_VERSION = "1.3.0"
STATE_FILE = "state.json"
FIFO = "exec.fifo"


def default_root() -> str:
    if posix.geteuid() == 0:
        return "/run/ocirun"
    runtime_dir = posix.environ.get(b"XDG_RUNTIME_DIR", b"").decode() or f"/run/user/{posix.geteuid()}"
    return join(runtime_dir, "ocirun")


def check_id(container_id: str) -> None:
    ok = container_id not in ("", ".", "..") and all(c.isalnum() or c in "_+-." for c in container_id)
    if not ok or not container_id.isascii():
        raise OciError("invalid container id: use letters, digits, and _ + - .", container_id)


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    return fields[0].decode(), int(fields[19])


class Container:
    """A container known to the store. `data` is state.json as written by create."""

    __slots__ = ("root", "id", "dir", "data")

    def __init__(self, root: str, container_id: str, data: dict | None = None):
        self.root, self.id = root, container_id
        self.dir = join(root, container_id)
        self.data = data

    @property
    def fifo(self) -> str:
        return join(self.dir, FIFO)

    @property
    def pid(self) -> int:
        return self.data["pid"]

    @property
    def private(self) -> dict:
        return self.data["ocirun"]

    def alive(self) -> bool:
        st = proc_stat(self.pid)
        return st is not None and st[0] not in "ZX" and st[1] == self.private["start_time"]

    def status(self) -> str:
        if self.data is None:
            return "creating"
        if not self.alive():
            return "stopped"
        # paused before created: a created container can be frozen too
        from .cgroups.freezer import is_frozen

        if is_frozen(self.private.get("cgroup_dirs") or []):
            return "paused"
        if exists(self.fifo):
            return "created"
        return "running"

    def oci_state(self) -> dict:
        """The state document of runtime.md (plus runc's rootfs, created and owner)."""
        status = self.status()
        d = self.data or {}
        out = {
            "ociVersion": d.get("ociVersion", OCI_VERSION),
            "id": self.id,
            "pid": d.get("pid", 0) if status != "stopped" else 0,
            "status": status,
            "bundle": d.get("bundle", ""),
            "rootfs": d.get("rootfs", ""),
            "created": d.get("created", ""),
            "owner": d.get("owner", ""),
        }
        if d.get("annotations"):
            out["annotations"] = d["annotations"]
        return out

    def save(self) -> None:
        write_atomically(join(self.dir, STATE_FILE), jsonio.dumps(self.data))


def new(root: str, container_id: str) -> Container:
    """Claim the id: fails if a container of that id exists, even one still being created."""
    check_id(container_id)
    if not isdir(root):
        import os

        os.makedirs(root, mode=0o700, exist_ok=True)
    c = Container(root, container_id)
    try:
        posix.mkdir(c.dir, 0o700)
    except FileExistsError:
        raise OciError("container already exists", container_id) from None
    return c


def load(root: str, container_id: str) -> Container:
    check_id(container_id)
    c = Container(root, container_id)
    path = join(c.dir, STATE_FILE)
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        if isdir(c.dir):
            return c  # still being created
        raise OciError("container does not exist", container_id) from None
    c.data = jsonio.loads(text, path)
    return c


def all_ids(root: str) -> list[str]:
    try:
        return sorted(n for n in posix.listdir(root) if isdir(join(root, n)))
    except FileNotFoundError:
        return []


def remove(c: Container) -> None:
    for name in (STATE_FILE, FIFO, f".{STATE_FILE}.tmp"):
        try:
            posix.unlink(join(c.dir, name))
        except FileNotFoundError:
            pass
    try:
        posix.rmdir(c.dir)
    except FileNotFoundError:
        pass
