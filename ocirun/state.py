"""The state store: one directory per container under --root.

    ROOT/ID/            made with mkdir(2), so two `create`s of one id can't both succeed; its
                        flock(2) is the container's lock (create holds it throughout, and start,
                        delete, pause, resume and update take it)
    ROOT/ID/init.json   what create has made, written before it makes anything: the cgroup
                        directories, then the init's pid. `delete -f` cleans up from it when
                        create died halfway or state.json is damaged
    ROOT/ID/state.json  the container, written once create has finished
    ROOT/ID/exec.fifo   exists from create until start: the init blocks opening it

Every file is written atomically (a temporary file, then rename), so a killed ocirun leaves
the old file or the new one, never a part. Nothing is fsync'ed: the store describes processes,
which a crash of the machine ends too.

Status is never stored: it is computed from the live process (guarded against pid reuse by the
process start time), its executable, the fifo, and the freezer. A directory without state.json
is "creating" while its lock is held, and "stopped" (a create that died: delete it) when not.
"""
import posix

from . import jsonio
from .posixio import exists, in_user_ns, isdir, join, write_atomically
from .errors import AlreadyExists, NotFound, OciError

OCI_VERSION = "1.3.0"
STATE_FILE = "state.json"
RECORD_FILE = "init.json"
FIFO = "exec.fifo"
# What /proc/PID/exe of an init that has not exec'd yet names (csrc/sealexe.c).
SEALED_EXE = "/memfd:ocirun-init (deleted)"
LOCK_WAIT = 30.0  # seconds a command waits for another one's lock on the container


def default_root() -> str:
    """/run/ocirun for root; a user's $XDG_RUNTIME_DIR/ocirun, also as root in a user namespace
    of the user's own (rootless podman runs the runtime so), as runc decides."""
    env = posix.environ
    runtime_dir = env.get(b"XDG_RUNTIME_DIR", b"").decode()
    if posix.geteuid() == 0 and not (runtime_dir and env.get(b"USER", b"") != b"root" and in_user_ns()):
        return "/run/ocirun"
    return join(runtime_dir or f"/run/user/{posix.geteuid()}", "ocirun")



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
    """A container known to the store. `data` is state.json as written by create (None while
    it is created, or when it is damaged); `record` is init.json."""

    __slots__ = ("root", "id", "dir", "data", "record", "lock_fd")

    def __init__(self, root: str, container_id: str, data: dict | None = None):
        self.root, self.id = root, container_id
        self.dir = join(root, container_id)
        self.data = data
        self.record: dict = {}
        self.lock_fd = -1

    @property
    def fifo(self) -> str:
        return join(self.dir, FIFO)

    @property
    def pid(self) -> int:
        return self.data["pid"] if self.data is not None else self.record.get("pid", 0)

    @property
    def private(self) -> dict:
        """ocirun's part of state.json; without one, init.json (what a dead create recorded)."""
        return self.data["ocirun"] if self.data is not None else self.record

    def alive(self) -> bool:
        st = proc_stat(self.pid) if self.pid else None
        return st is not None and st[0] not in "ZX" and st[1] == self.private.get("start_time")

    def status(self) -> str:
        if self.data is None:
            # A create's first act is to write init.json, a delete's last to remove state.json:
            # locked by another ocirun with init.json, it is being created; else it is a create
            # that died, or one being deleted.
            return "creating" if self.record and self.lock_fd < 0 and self.locked_by_other() else "stopped"
        if not self.alive():
            return "stopped"
        # paused before created: a created container can be frozen too
        from .cgroups.freezer import is_frozen

        if is_frozen(self.private.get("cgroup_dirs") or []):
            return "paused"
        return "running" if self.exec_done() else "created"

    def exec_done(self) -> bool:
        """Whether the init has run its execve: its executable is no longer the sealed memfd (a
        `start` killed after the release leaves the fifo behind, and a fifo may be removed by
        hand). Where the executable can't be read, the fifo alone tells."""
        try:
            return posix.readlink(f"/proc/{self.pid}/exe") != SEALED_EXE
        except OSError:
            return not exists(self.fifo)

    # -- the lock ---------------------------------------------------------------------------

    def lock(self, wait: float = LOCK_WAIT) -> None:
        """Take the container's lock, waiting while another ocirun holds it."""
        try:
            fd = posix.open(self.dir, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound("container does not exist", self.id) from None
        except OSError as e:
            raise OciError(f"open the state directory: {e.strerror}", self.dir) from None
        try:
            if not _flock(fd, wait):
                raise OciError(f"another ocirun has held the container's lock for {wait:g} s", self.id)
        except BaseException:
            posix.close(fd)
            raise
        self.lock_fd = fd

    def unlock(self) -> None:
        if self.lock_fd >= 0:
            posix.close(self.lock_fd)
            self.lock_fd = -1

    def locked_by_other(self) -> bool:
        import fcntl

        try:
            fd = posix.open(self.dir, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            posix.close(fd)

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
        _write(join(self.dir, STATE_FILE), self.data)

    def save_record(self, **fields) -> None:
        self.record.update(fields)
        _write(join(self.dir, RECORD_FILE), self.record)


def _write(path: str, doc: dict) -> None:
    try:
        write_atomically(path, jsonio.dumps(doc))
    except OSError as e:
        raise OciError(f"write: {e.strerror}", path) from None


def _flock(fd: int, wait: float) -> bool:
    """flock(LOCK_EX) for at most `wait` seconds."""
    import fcntl
    import time

    deadline = None
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            now = time.monotonic()
            deadline = deadline or now + wait
            if now > deadline:
                return False
            time.sleep(0.002)


def new(root: str, container_id: str) -> Container:
    """Claim the id, locked: fails if a container of that id exists, even one being created."""
    check_id(container_id)
    if not isdir(root):
        import os

        try:
            os.makedirs(root, mode=0o700, exist_ok=True)
        except OSError as e:
            raise OciError(f"make the state root: {e.strerror}", root) from None
    c = Container(root, container_id)
    try:
        posix.mkdir(c.dir, 0o700)
    except FileExistsError:
        raise AlreadyExists("container already exists", container_id) from None
    except OSError as e:
        raise OciError(f"make the state directory: {e.strerror}", c.dir) from None
    c.lock(wait=0)
    # A `delete -f` may have taken the directory for a dead create's between our mkdir and
    # flock: go on only if it is still the one we made.
    try:
        same = posix.stat(c.dir).st_ino == posix.fstat(c.lock_fd).st_ino
    except OSError:
        same = False
    if not same:
        c.unlock()
        raise OciError("container was deleted while being created", container_id)
    return c


class DamagedState(OciError):
    """state.json can't be read; `container` holds what init.json says, for cleaning up (not
    locked)."""

    def __init__(self, message: str, path: str, container: Container):
        super().__init__(message, path)
        self.container = container


def load(root: str, container_id: str, lock: bool = False) -> Container:
    """The container (with `lock`, locked first), or an OciError naming the file that is
    missing or damaged: a DamagedState when the directory is there."""
    check_id(container_id)
    c = Container(root, container_id)
    if lock:
        c.lock()
    try:
        _load(c)
    except BaseException:
        c.unlock()
        raise
    return c


def _load(c: Container) -> None:
    path = join(c.dir, STATE_FILE)
    try:
        with open(path, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        if isdir(c.dir):
            c.record = _read_record(c) or {}
            return  # being created, or a create that died
        raise NotFound("container does not exist", c.id) from None
    except OSError as e:
        c.record = _read_record(c) or {}
        raise DamagedState(f"read: {e.strerror}", path, c) from None
    try:
        data = _parse(text, path)
        if not _well_formed(data):
            raise OciError("damaged: not a state written by ocirun", path)
    except OciError as e:
        c.record = _read_record(c) or {}
        raise DamagedState(e.message, path, c) from None
    c.data = data


def _read_record(c: Container) -> dict | None:
    try:
        with open(join(c.dir, RECORD_FILE), "rb") as f:
            doc = _parse(f.read(), join(c.dir, RECORD_FILE))
    except (OSError, OciError):
        return None
    if not isinstance(doc, dict):
        return None
    # A field of the wrong type is as good as missing: cleanup goes on with the others.
    kinds = {"pid": int, "start_time": int, "cgroup_dirs": list, "cgroup_made": list, "cgroup_unit": str,
             "net_devices": dict}
    return {k: v for k, v in doc.items() if k in kinds and isinstance(v, kinds[k]) and _strings_only(v)}


def _strings_only(v) -> bool:
    """A list of strings, or a dict of strings to strings, or any other value."""
    items = [*v.keys(), *v.values()] if isinstance(v, dict) else v if isinstance(v, list) else []
    return all(isinstance(d, str) for d in items)


def _parse(data: bytes, path: str):
    try:
        return jsonio.loads(data.decode(), path)
    except UnicodeDecodeError:
        raise OciError("damaged: not UTF-8", path) from None


def _well_formed(d) -> bool:
    try:
        p = d["ocirun"]
        return (isinstance(d["pid"], int) and isinstance(p["start_time"], int)
                and isinstance(p["cgroup_dirs"], list) and isinstance(p["cgroup_made"], list))
    except (KeyError, TypeError):
        return False


def all_ids(root: str) -> list[str]:
    try:
        return sorted(n for n in posix.listdir(root) if isdir(join(root, n)))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise OciError(f"read the state root: {e.strerror}", root) from None


def remove(c: Container) -> None:
    """state.json last: a removal cut short leaves a container that delete -f still finds, and
    until the end `state` reads it as stopped, not as being created."""
    for name in (FIFO, f".{STATE_FILE}.tmp", RECORD_FILE, f".{RECORD_FILE}.tmp", STATE_FILE):
        path = join(c.dir, name)
        try:
            posix.unlink(path)
        except FileNotFoundError:
            pass
        except IsADirectoryError:  # damaged: a directory where a file belongs
            import shutil

            shutil.rmtree(path, ignore_errors=True)  # never follows a symlink out of it
        except OSError as e:
            raise OciError(f"remove: {e.strerror}", path) from None
    _remove_dir(c.dir)


def _remove_dir(path: str) -> None:
    try:
        posix.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise OciError(f"remove the directory: {e.strerror}", path) from None
