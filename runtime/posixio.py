"""The file-system calls of the hot path, on the `posix` module alone.

`import os` costs about a millisecond here (os.path, _collections_abc, environ): a tenth of a
whole `state` command. state, start, kill and delete need only these few calls, so their
modules use this one instead; the create path, which pays far more, uses os as usual.
"""
from posix import rename, stat, unlink

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


def join(*parts: str) -> str:
    return "/".join(p.rstrip("/") for p in parts[:-1]) + "/" + parts[-1]


def dirname(path: str) -> str:
    head = path.rpartition("/")[0]
    return head or "/"


def basename(path: str) -> str:
    return path.rpartition("/")[2]
