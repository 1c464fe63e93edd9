"""CVE-2023-27561 class (a regression of CVE-2019-19921): the image makes /proc a symlink.

runc 1.0.0-rc10 refused to mount procfs on a /proc that is not a plain directory (the
CVE-2019-19921 fix); a refactoring dropped that check in 1.0.0-rc95 and it was restored in
1.1.5 as CVE-2023-27561. With the check gone, a malicious image whose /proc is a symlink has
the procfs mounted wherever the link points, while the runtime's later work on /proc
(maskedPaths, readonlyPaths, LSM labels written to /proc/self/attr) follows the link again and
need not reach the same place.

ocirun resolves every mount destination and every masked or read-only path inside the rootfs
(csrc/trampoline.c: mkpath_in_root for the proc mount, open_in_root in do_mask and
do_readonly), so a symlinked /proc can only put the procfs somewhere in the rootfs. What must
hold besides: every procfs the container can reach has its maskedPaths masked and its
readonlyPaths read-only, or `create` fails cleanly. That is what each variant checks, from the
host (through /proc/PID/root, nothing written) and for real from inside (a write to
kernel.hostname, a UTS-namespaced sysctl, through every procfs the container reaches), and that
the host is unchanged.

The variants are the image alone (the default config, no other container): /proc a symlink to
a directory, absolute and relative; to a path through a directory that a later mount of the
default config (/dev, /sys) covers, so that the same link resolves elsewhere once that mount is
made; to the rootfs's /; dangling; to itself; and /proc a regular file.
"""
import json
import os

import pytest

from escape_kit import Snapshot, one_error_line, procfs_exposure, write_attempts

VARIANTS = {
    # name: (how /proc is made in the image, directories the image also has)
    "symlink-to-dir": (("link", "/realproc"), ["realproc"]),
    "relative-symlink": (("link", "realproc"), ["realproc"]),
    "through-dir-under-dev": (("link", "/dev/x/../../realproc"), ["realproc", "dev/x"]),
    "through-dir-under-sys": (("link", "/sys/x/../../realproc"), ["realproc", "sys/x"]),
    "symlink-to-root": (("link", "/"), []),
    "dangling": (("link", "/nonexistent/proc"), []),
    "loop": (("link", "/proc"), []),
    "regular-file": (("file", "not a directory\n"), []),
}


def make_image(rootfs, how, dirs) -> None:
    os.rmdir(rootfs / "proc")
    for d in dirs:
        os.makedirs(rootfs / d, exist_ok=True)
    kind, what = how
    if kind == "link":
        os.symlink(what, rootfs / "proc")
    else:
        (rootfs / "proc").write_text(what)
    # what an attacker would have the runtime write to instead of the real procfs
    for d in dirs:
        if d == "realproc":
            os.makedirs(rootfs / d / "self/attr")
            (rootfs / d / "self/attr/exec").write_text("decoy\n")


@pytest.mark.parametrize("variant", VARIANTS)
def test_image_with_a_symlinked_proc(rt, bundle, unique_id, variant):
    how, dirs = VARIANTS[variant]
    b = bundle(["sleep", "1000"])
    make_image(b / "rootfs", how, dirs)
    cfg = json.loads((b / "config.json").read_text())
    host = Snapshot(b / "rootfs")
    r = rt("run", "--detach", "--bundle", b, unique_id, check=False)
    if r.returncode:
        line = one_error_line(r)
        assert "proc" in line, f"the error does not name /proc: {line}"
        host.assert_unchanged()
        return
    try:
        pid = rt.state(unique_id)["pid"]
        points, problems = procfs_exposure(pid, cfg["linux"]["maskedPaths"], cfg["linux"]["readonlyPaths"])
        wrote = write_attempts(rt, unique_id, points)
    finally:
        rt("delete", "--force", unique_id)
    assert not problems + wrote, (
        f"/proc -> {how[1]!r}: the procfs the container reaches at {points} escaped the masks:\n  "
        + "\n  ".join(problems + wrote))
    host.assert_unchanged()
