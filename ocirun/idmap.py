"""The user namespaces that idmapped mounts take their mappings from (MOUNT_ATTR_IDMAP).

A mount is given the mappings of a user namespace, not a list: a short-lived child makes one,
waits while its maps are written (as the container's are, `containerID hostID size`), and
exits once the namespace is held by an fd. Only for configs with idmap/ridmap mounts.
"""
import posix

from . import kernel
from .errors import OciError
from .spawn import write_id_maps


def userns_fd(uid_maps, gid_maps, where: str) -> int:
    """An O_RDONLY fd of a new user namespace with these mappings."""
    unshare = kernel.libc().unshare
    ready_r, ready_w = posix.pipe()
    hold_r, hold_w = posix.pipe()
    pid = posix.fork()
    if pid == 0:  # unshare, say so, and wait until the parent closes its end (the fd is taken)
        posix.close(ready_r)
        posix.close(hold_w)
        ok = unshare(kernel.CLONE_NEWUSER) == 0
        posix.write(ready_w, b"1" if ok else b"0")
        posix.read(hold_r, 1)
        posix._exit(0)
    posix.close(ready_w)
    posix.close(hold_r)
    try:
        if posix.read(ready_r, 1) != b"1":
            raise OciError("make a user namespace for the mapping", where)
        write_id_maps(pid, (uid_maps, gid_maps), (f"{where}.uidMappings", f"{where}.gidMappings"))
        return posix.open(f"/proc/{pid}/ns/user", posix.O_RDONLY | posix.O_CLOEXEC)
    finally:
        posix.close(ready_r)
        posix.close(hold_w)
        posix.waitpid(pid, 0)
