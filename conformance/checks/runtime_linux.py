"""runtime-linux.md: file descriptors and the /dev symbolic links."""
from __future__ import annotations

import os

from ._harness import check, remove_mount


@check("runtime-linux.md#fds-default", "MUST", "only stdin, stdout and stderr are open in the container process (caller's other fds not leaked)")
def fds_default(ctx):
    # The runtime's caller holds two extra inheritable descriptors: neither may reach the container.
    f1 = os.open(ctx.tmp, os.O_RDONLY | os.O_DIRECTORY)
    r, w = os.pipe()
    try:
        res = ctx.run(ctx.config(["ls", "-l", "/proc/self/fd"]), pass_fds=(f1, w))
    finally:
        os.close(f1)
        os.close(r)
        os.close(w)
    ctx.expect(res.ok, f"container failed: {res.brief()}")
    fds = {}
    for line in res.out.splitlines():
        parts = line.split()
        if "->" in parts:
            i = parts.index("->")
            fds[parts[i - 1]] = " ".join(parts[i + 1:])
    # ls's own directory descriptor reads /proc/<pid>/fd: not the runtime's doing.
    extra = {fd: t for fd, t in fds.items() if fd not in ("0", "1", "2") and not t.endswith("/fd")}
    ctx.expect(set(fds) >= {"0", "1", "2"}, f"stdio missing: {fds}")
    ctx.expect(not extra, f"extra descriptors open in the container: {extra}")


def _symlink_check(ctx, path: str, target: str, cfg=None):
    out = ctx.must_inside(f"readlink {path}; test -e {path} && echo exists", cfg)
    lines = out.split()
    ctx.expect(lines and lines[0] == target, f"{path} -> {lines[0] if lines else None!r}, expected {target}")
    ctx.expect("exists" in lines, f"{path} does not resolve")


@check("runtime-linux.md#dev-fd", "MUST", "/dev/fd is a symlink to /proc/self/fd")
def dev_fd(ctx):
    _symlink_check(ctx, "/dev/fd", "/proc/self/fd")


@check("runtime-linux.md#dev-stdin", "MUST", "/dev/stdin is a symlink to /proc/self/fd/0")
def dev_stdin(ctx):
    _symlink_check(ctx, "/dev/stdin", "/proc/self/fd/0")


@check("runtime-linux.md#dev-stdout", "MUST", "/dev/stdout is a symlink to /proc/self/fd/1, and writing it reaches stdout")
def dev_stdout(ctx):
    out = ctx.must_inside("readlink /dev/stdout; echo via-dev-stdout >> /dev/stdout")
    ctx.expect(out.split()[:1] == ["/proc/self/fd/1"], f"/dev/stdout -> {out.split()[:1]}")
    ctx.expect("via-dev-stdout" in out, "writing /dev/stdout did not reach the container's stdout")


@check("runtime-linux.md#dev-stderr", "MUST", "/dev/stderr is a symlink to /proc/self/fd/2")
def dev_stderr(ctx):
    _symlink_check(ctx, "/dev/stderr", "/proc/self/fd/2")


@check("runtime-linux.md#dev-symlinks-no-dev-mount", "MUST", "the /dev symlinks are made in the rootfs's own /dev when no /dev mount is configured")
def dev_symlinks_no_dev_mount(ctx):
    cfg = ctx.config()
    for d in ("/dev", "/dev/pts", "/dev/shm", "/dev/mqueue"):
        remove_mount(cfg, d)
    out = ctx.must_inside("for l in fd stdin stdout stderr; do printf '%s=%s\\n' $l $(readlink /dev/$l); done", cfg)
    got = dict(line.split("=", 1) for line in out.split())
    want = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"}
    ctx.expect(got == want, f"/dev links {got}, expected {want}")
