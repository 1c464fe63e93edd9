"""The file-system calls of the hot path, on the `posix` module alone.

`import os` costs 1-1.5 ms here (os.path, _collections_abc, environ): a tenth of a whole
`state` command, and a twentieth of a `run`. No command's hot path needs it: the few path
operations they use are here.
"""
from posix import O_CLOEXEC, O_PATH, close, getcwd, open as _open, readlink, rename, stat, unlink

from .errors import OciError

_S_IFMT, _S_IFDIR = 0o170000, 0o040000


def exists(path: str) -> bool:
    try:
        stat(path)
    except OSError:
        return False
    return True


def isdir(path: str) -> bool:
    try:
        return stat(path).st_mode & _S_IFMT == _S_IFDIR
    except OSError:
        return False


def in_user_ns() -> bool:
    """Whether this process is in a user namespace other than the host's (whose uid 0 maps the
    whole id range)."""
    try:
        with open("/proc/self/uid_map", "rb") as f:
            return f.read().split() != [b"0", b"0", b"4294967295"]
    except OSError:
        return False


def write_file(path: str, text: str, where: str) -> None:
    """Write text to an existing file (a /proc or cgroup file); a failure names `where`."""
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as e:
        raise OciError(f"write {path}: {e.strerror}", where) from None


def write_atomically(path: str, text: str) -> None:
    """Readers see the old file or the new one, never a part: a temporary file, then rename.
    The temporary is .NAME.tmp beside it, and is gone again if anything fails."""
    tmp = join(dirname(path), f".{basename(path)}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
        rename(tmp, path)
    except OSError:
        try:
            unlink(tmp)
        except OSError:
            pass
        raise


def join(first: str, *rest: str) -> str:
    """os.path.join: an absolute part starts the path again."""
    path = first
    for part in rest:
        if part.startswith("/"):
            path = part
        elif not path or path.endswith("/"):
            path += part
        else:
            path += "/" + part
    return path


def normpath(path: str) -> str:
    """Without `.`, `..` (lexically) and repeated slashes. Unlike os.path.normpath, a path
    starting with exactly two slashes becomes one starting with one: `//proc` is `/proc`."""
    absolute = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == ".." and parts and parts[-1] != "..":
            parts.pop()
        elif part != ".." or not absolute:
            parts.append(part)
    return ("/" if absolute else "") + "/".join(parts) or "."


def abspath(path: str) -> str:
    return normpath(path if path.startswith("/") else join(getcwd(), path))


def realpath(path: str) -> str:
    """The path with every symlink resolved, as the kernel resolves it; the path must exist."""
    fd = _open(path, O_PATH | O_CLOEXEC)
    try:
        return readlink(f"/proc/self/fd/{fd}")
    finally:
        close(fd)


def dirname(path: str) -> str:
    head = path.rpartition("/")[0]
    return head or "/"


def basename(path: str) -> str:
    return path.rpartition("/")[2]
