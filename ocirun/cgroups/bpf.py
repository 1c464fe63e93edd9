"""Load a device program and attach it to a cgroup v2 directory, replacing the one there before.

The syscalls are csrc/bpf.c, compiled into ocirun._trampoline. Programs never pile up: the new
program replaces the old one atomically (BPF_F_REPLACE) when exactly one is attached, and otherwise
is attached first and every older one detached after, so there is no moment without a filter.
"""
import os

from ..errors import OciError

PROG_TYPE_CGROUP_DEVICE = 15   # BPF_PROG_TYPE_CGROUP_DEVICE
CGROUP_DEVICE = 6              # enum bpf_attach_type BPF_CGROUP_DEVICE
F_ALLOW_MULTI = 2              # BPF_F_ALLOW_MULTI
F_REPLACE = 4                  # BPF_F_REPLACE
LICENSE = b"Apache-2.0"

# Tests put a (ffi, lib) pair here when ocirun._trampoline was built without csrc/bpf.c.
override = None


def _lib():
    if override is not None:
        return override
    try:
        from .._trampoline import ffi, lib
    except ImportError:
        raise OciError("cgroup v2 device rules need ocirun._trampoline, which is not built") from None
    if not hasattr(lib, "oci_bpf_prog_load"):
        raise OciError("cgroup v2 device rules need csrc/bpf.c in ocirun._trampoline (rebuild it)")
    return ffi, lib


def _check(r: int, what: str, where: str) -> int:
    if r < 0:
        raise OciError(f"{what}: {os.strerror(-r)}", where)
    return r


def load(code: bytes, where: str = "linux.resources.devices") -> int:
    """Load the program; returns its fd."""
    ffi, lib = _lib()
    log = ffi.new("char[]", 1 << 16)
    buf = ffi.from_buffer(code)
    r = lib.oci_bpf_prog_load(PROG_TYPE_CGROUP_DEVICE, buf, len(code) // 8, LICENSE, log, 1 << 16)
    if r < 0:
        text = ffi.string(log).decode(errors="replace").strip().splitlines()
        detail = f" ({text[-1]})" if text else ""
        raise OciError(f"load the device filter program: {os.strerror(-r)}{detail}", where)
    return r


def attached(dirfd: int) -> tuple[list[int], int]:
    """Ids of the device programs attached directly to the cgroup, and their attach flags."""
    ffi, lib = _lib()
    room = 64
    while True:
        ids = ffi.new("unsigned int[]", room)
        cnt = ffi.new("unsigned int *", room)
        flags = ffi.new("unsigned int *", 0)
        r = lib.oci_bpf_prog_query(dirfd, CGROUP_DEVICE, flags, ids, cnt)
        if r == -28 and cnt[0] > room:  # ENOSPC
            room = cnt[0]
            continue
        _check(r, "query the cgroup's device programs", "linux.resources.devices")
        return [ids[i] for i in range(cnt[0])], flags[0]


def install(cgroup_dir: str, code: bytes, where: str = "linux.resources.devices") -> None:
    """Make `code` the one device program of the cgroup."""
    ffi, lib = _lib()
    prog = load(code, where)
    dirfd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        old, flags = attached(dirfd)
        if old and not flags & F_ALLOW_MULTI:
            # Someone attached a single (non-multi) program: attaching again replaces it.
            _check(lib.oci_bpf_prog_attach(prog, dirfd, CGROUP_DEVICE, 0, -1),
                   "attach the device filter program", where)
            return
        if len(old) == 1:
            oldfd = lib.oci_bpf_prog_get_fd_by_id(old[0])
            if oldfd >= 0:
                try:
                    r = lib.oci_bpf_prog_attach(prog, dirfd, CGROUP_DEVICE, F_ALLOW_MULTI | F_REPLACE, oldfd)
                finally:
                    os.close(oldfd)
                if r == 0:
                    return
        _check(lib.oci_bpf_prog_attach(prog, dirfd, CGROUP_DEVICE, F_ALLOW_MULTI, -1),
               "attach the device filter program", where)
        for prog_id in old:
            fd = lib.oci_bpf_prog_get_fd_by_id(prog_id)
            if fd < 0:
                continue  # gone meanwhile
            try:
                r = lib.oci_bpf_prog_detach(fd, dirfd, CGROUP_DEVICE)
                if r < 0 and r != -2:  # ENOENT: detached meanwhile
                    _check(r, "detach the old device filter program", where)
            finally:
                os.close(fd)
    finally:
        os.close(dirfd)
        os.close(prog)
