"""CVE-2019-16884 class: a fake /proc, so that LSM labels are written to plain files.

runc applied an AppArmor profile by writing /proc/self/attr/exec after the container's mounts
were made. A malicious image (Docker turned its `VOLUME /proc` into a mount over /proc) put a
plain directory with fake attr files where the procfs should be: the label went to a regular
file and the container ran unconfined. runc 1.0.0-rc9 refused mounts over /proc and inside it
unless they are procfs (checkProcMount), and later writes labels through a verified procfs.

ocirun mounts the procfs where the config says, resolving the destination inside the rootfs
(csrc/trampoline.c: mkpath_in_root), so an image's fake /proc directory is simply covered and a
/proc symlink can only lead to a directory of the rootfs; it writes an LSM label never through
the container's /proc but through a procfs instance of its own, made with fsopen and never
mounted (csrc/attrs.c: apply_lsm, private_proc), and refuses a profile or label it can't apply
instead of running the container without it (ocirun/attrs.py: check_lsm). runc's other half of the fix, refusing
a mount over /proc or inside it that is not procfs, is ocirun/plan.py's rootfs_ops (by the
destination as written) and csrc/trampoline.c's do_mount (by where the destination resolves:
an image's symlink to /proc).

What is tried here: an image whose /proc is a directory of fake files, and one whose /proc is a
symlink to such a directory (the container's /proc, self/attr included, must be the real
procfs, masked and read-only as configured); a config mount of a fake directory over /proc and
over /proc/self/attr (refused cleanly, or the real procfs still there); an AppArmor profile or
SELinux label asked for on a host without that LSM (a clean error naming the field, never a
silently unconfined container). The host, and the fake files, must be unchanged.
"""
import json
import os

import pytest

from escape_kit import Snapshot, default_mounts, bind, host_dir, one_error_line, procfs_exposure, remove_host_dir

FAKE = {"self/attr/current": "unconfined\n", "self/attr/exec": "", "1/attr/exec": "",
        "sys/kernel/core_pattern": "core\n", "kcore": "fake\n"}
PROBE = "for p in /proc /proc/self/attr /proc/1/attr /proc/sys/kernel; do echo \"$p=$(stat -f -c %T $p)\"; done"


def fake_proc(d) -> None:
    for rel, text in FAKE.items():
        os.makedirs(os.path.dirname(d / rel), exist_ok=True)
        (d / rel).write_text(text)


def run_and_check(rt, b, cid, expect_proc=("/proc", "/proc/self/attr", "/proc/1/attr", "/proc/sys/kernel")):
    """Run the bundle detached, check every procfs it reaches from the host, and what /proc,
    /proc/self/attr... are inside. Returns (create's result, problems)."""
    cfg = json.loads((b / "config.json").read_text())
    r = rt("run", "--detach", "--bundle", b, cid, check=False)
    if r.returncode:
        return r, []
    try:
        pid = rt.state(cid)["pid"]
        points, problems = procfs_exposure(pid, cfg["linux"]["maskedPaths"], cfg["linux"]["readonlyPaths"])
        out = rt("exec", cid, "sh", "-c", PROBE).stdout
    finally:
        rt("delete", "--force", cid)
    seen = dict(ln.split("=", 1) for ln in out.splitlines() if "=" in ln)
    problems += [f"the container's {p} is not procfs but {seen.get(p)!r}" for p in expect_proc
                 if seen.get(p) != "proc"]
    return r, problems


def test_image_with_a_fake_proc_directory(rt, bundle, unique_id):
    b = bundle(["sleep", "1000"])
    fake_proc(b / "rootfs/proc")
    host = Snapshot(b / "rootfs")
    r, problems = run_and_check(rt, b, unique_id)
    assert r.returncode == 0, r.stderr
    assert not problems, "\n".join(problems)
    host.assert_unchanged()


def test_image_proc_symlink_to_a_fake_proc(rt, bundle, unique_id):
    b = bundle(["sleep", "1000"])
    (b / "rootfs/proc").rmdir()
    fake_proc(b / "rootfs/fakeproc")
    (b / "rootfs/proc").symlink_to("/fakeproc")
    host = Snapshot(b / "rootfs")
    r, problems = run_and_check(rt, b, unique_id)
    if r.returncode:
        assert "proc" in one_error_line(r)
    assert not problems, "\n".join(problems)
    host.assert_unchanged()


@pytest.mark.parametrize("dest,link", [("/proc", None), ("/proc/self/attr", None),
                                       ("/proc", "/etc/pp"), ("/proc/self/attr", "/etc/pa")])
def test_config_mount_of_a_fake_dir_over_proc(rt, bundle, unique_id, dest, link):
    """The `VOLUME /proc` of the original exploit, as the config mount an engine makes of it:
    refused (runc: "cannot be mounted because it is not of type proc"), or else the container's
    /proc and its attr directories must still be the real procfs. With `link`, the mount's
    destination is a symlink of the image's to `dest`: the check must follow the resolution."""
    fake = host_dir("fakeproc")
    try:
        fake_proc(fake)
        source = fake if dest == "/proc" else fake / "self/attr"
        b = bundle(["sleep", "1000"], mounts=default_mounts() + [bind(source, link or dest, "rw")])
        if link:
            os.symlink(dest, b / f"rootfs{link}")
        host = Snapshot(fake, b / "rootfs")
        r, problems = run_and_check(rt, b, unique_id)
        if r.returncode:
            line = one_error_line(r)
            assert "mounts[" in line and "proc" in line, f"the error does not name the mount: {line}"
        assert not problems, (f"a mount of a plain directory over {dest} is accepted, so the container's "
                              "procfs (where LSM labels are written) is a fake:\n  " + "\n  ".join(problems))
        host.assert_unchanged()
    finally:
        remove_host_dir(fake)


def _lsm_enabled(lsm: str) -> bool:
    if lsm == "apparmor":
        try:
            with open("/sys/module/apparmor/parameters/enabled") as f:
                return f.read().strip() == "Y"
        except OSError:
            return False
    return os.path.exists("/sys/fs/selinux/enforce")


@pytest.mark.parametrize("field,lsm,value", [("apparmorProfile", "apparmor", "ocirun-test-profile"),
                                              ("selinuxLabel", "selinux", "system_u:system_r:container_t:s0")])
def test_lsm_label_is_never_silently_dropped(rt, bundle, unique_id, field, lsm, value):
    """A profile or label asked for on a host where that LSM is off. An AppArmor profile fails
    create naming the field: running the container without it is the outcome the CVE's attacker
    was after. An SELinux label can't mean anything where SELinux is off, and crun (and callers
    that label by default) take it as a warning (issue 13): the container runs, and stderr names
    the field; never silently."""
    if _lsm_enabled(lsm):
        pytest.skip(f"{lsm} is enabled here: the label must be applied, which needs a loaded profile")
    b = bundle(["true"], process={field: value})
    r = rt("run", "--bundle", b, unique_id, check=False)
    if lsm == "selinux":
        assert r.returncode == 0, r.stderr
        assert f"process.{field}: SELinux is not enabled on this host" in r.stderr, \
            f"the label was dropped without a word: {r.stderr!r}"
        return
    assert r.returncode != 0, (f"process.{field} {value!r} on a host without {lsm}: the container ran "
                               f"without it (silently unconfined)")
    line = one_error_line(r)
    assert field in line and lsm.lower() in line.lower(), f"the error does not name process.{field} and {lsm}: {line}"