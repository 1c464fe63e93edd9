"""CVE-2025-31133 class: maskedPaths masked with a /dev/null the container controls.

runc masked a file by bind-mounting the container's own /dev/null over it. An attacker who
controls /dev (a shared volume there, or a race with another container) replaced /dev/null
with a symlink to, say, /proc/sys/kernel/core_pattern before the masking: runc then bound that
procfs file, writable, over the masked path, and the container wrote the host's core_pattern
through it; with a regular file or a missing /dev/null, masking silently did nothing.

ocirun masks a file with the host's /dev/null, opened by the init before pivot_root with
O_NOFOLLOW and checked to be the character device 1:3 (csrc/trampoline.c: do_mask), and a
directory with an empty read-only tmpfs; the masked path itself is resolved inside the rootfs
(open_in_root) and mounted on through its fd. Nothing of the container's /dev is used.

The attack here: the victim's /dev is a volume V (so ocirun creates no device nodes there and
V's `null` is the one the container sees), where `null` is a symlink to a procfs file or to a
host path, a regular file, a directory, or missing; then, with an attacker container swapping
V/null (a real null device) with a symlink to /proc/sys/kernel/hostname while victims are
created. maskedPaths has the default entries and a file and a directory of the image. Asserted:
every masked path the kernel has is the null device or an empty read-only directory, writes to
the masked files vanish, the image's files and the host's sysctls and decoy are unchanged.
Writes are only tried where a redirect would be harmless (the UTS-namespaced hostname); where
the symlink names core_pattern only the host-side checks run.
"""
import json
import os

import pytest

from escape_kit import (Racer, Snapshot, default_mounts, bind, host_dir, masked_problems, one_error_line,
                        procfs_exposure, remove_host_dir)

EXTRA_MASKED = ["/etc/secret", "/etc/secretdir"]
NULL_VARIANTS = ["symlink-core_pattern", "symlink-hostname", "symlink-host-path", "regular-file", "directory",
                 "missing"]


def dev_volume_bundle(bundle, vol):
    """A victim whose /dev is the volume (in place of the default tmpfs), with an image secret
    file and directory in maskedPaths."""
    mounts = [m if m["destination"] != "/dev" else bind(vol, "/dev", "rw") for m in default_mounts()]
    b = bundle(["sleep", "1000"], mounts=mounts)
    cfg = json.loads((b / "config.json").read_text())
    cfg["linux"]["maskedPaths"] += EXTRA_MASKED
    (b / "config.json").write_text(json.dumps(cfg))
    (b / "rootfs/etc/secret").write_text("image secret\n")
    (b / "rootfs/etc/secretdir").mkdir()
    (b / "rootfs/etc/secretdir/file").write_text("image secret\n")
    return b, cfg


def check_victim(rt, cid, cfg, write: bool) -> list[str]:
    pid = rt.state(cid)["pid"]
    _, problems = procfs_exposure(pid, cfg["linux"]["maskedPaths"], [])
    problems += masked_problems(pid, EXTRA_MASKED)
    if write:
        # For real: write through the masked file, then read it back and look at the hostname
        # (where a null swapped for /proc/sys/kernel/hostname would have sent the write).
        out = rt("exec", cid, "sh", "-c", "echo pwned > /etc/secret; echo pwned > /proc/timer_list; "
                 "echo secret=$(cat /etc/secret); hostname", check=False).stdout
        if "secret=\n" not in out or "pwned" in out:
            problems.append(f"a write to a masked file went somewhere: {out!r}")
    return problems


@pytest.mark.parametrize("null", NULL_VARIANTS)
def test_container_dev_null_is_never_the_mask(rt, bundle, unique_id, null):
    vol, decoy = host_dir("dev-vol", 0o755), host_dir("decoy")
    try:
        (decoy / "file").write_text("host only\n")
        target = {"symlink-core_pattern": "/proc/sys/kernel/core_pattern",
                  "symlink-hostname": "/proc/sys/kernel/hostname",
                  "symlink-host-path": str(decoy / "file")}.get(null)
        if target:
            os.symlink(target, vol / "null")
        elif null == "regular-file":
            (vol / "null").write_text("not the null device\n")
        elif null == "directory":
            (vol / "null").mkdir()
        b, cfg = dev_volume_bundle(bundle, vol)
        host = Snapshot(decoy, b / "rootfs")
        r = rt("run", "--detach", "--bundle", b, unique_id, check=False)
        if r.returncode:
            one_error_line(r)
        else:
            try:
                problems = check_victim(rt, unique_id, cfg, write=null != "symlink-core_pattern")
            finally:
                rt("delete", "--force", unique_id)
            assert not problems, f"/dev/null {null}:\n  " + "\n  ".join(problems)
        host.assert_unchanged()
    finally:
        remove_host_dir(vol)
        remove_host_dir(decoy)


def test_dev_null_swapped_during_create(rt, bundle, new_id):
    vol = host_dir("dev-vol", 0o777)
    victims, problems, refused = [], [], 0
    try:
        os.mknod(vol / "null", 0o20666, os.makedev(1, 3))
        os.symlink("/proc/sys/kernel/hostname", vol / "evil")
        racer = Racer(rt, bundle, new_id(), vol, [("null", "evil")])
        for _ in range(6):
            cid = new_id()
            b, cfg = dev_volume_bundle(bundle, vol)
            r = rt("run", "--detach", "--bundle", b, cid, check=False)
            if r.returncode:
                one_error_line(r)
                refused += 1
            else:
                victims.append((cid, cfg, Snapshot(b / "rootfs")))
        swaps = racer.stop()
        for cid, cfg, image in victims:
            problems += [f"{cid}: {p}" for p in check_victim(rt, cid, cfg, write=True)]
        assert not problems, f"({refused} refused, racer swaps {swaps}):\n  " + "\n  ".join(problems)
        assert swaps > 1000, f"the racer hardly ran ({racer.report}): the test proves nothing"
        for cid, cfg, image in victims:
            rt("delete", "--force", cid)
            image.assert_unchanged()
        victims = []
    finally:
        for cid, _, _ in victims:
            rt("delete", "--force", cid, check=False)
        remove_host_dir(vol)
