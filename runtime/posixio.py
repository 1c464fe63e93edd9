"""The file-system calls of the hot path, on the `posix` module alone.

`import os` costs about a millisecond here (os.path, _collections_abc, environ): a tenth of a
whole `state` command. state, start, kill and delete need only these few calls, so their
modules use this one instead; the create path, which pays far more, uses os as usual.
"""
from posix import stat

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


def join(*parts: str) -> str:
    return "/".join(p.rstrip("/") for p in parts[:-1]) + "/" + parts[-1]


def dirname(path: str) -> str:
    head = path.rpartition("/")[0]
    return head or "/"


def basename(path: str) -> str:
    return path.rpartition("/")[2]
