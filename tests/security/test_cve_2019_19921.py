"""CVE-2019-19921 class: a shared volume makes the victim's /proc a symlink, and an attacker
races it while the victim is created.

An attacker who can run two containers with custom volume mounts and images gets the victim's
/proc to be a symlink into a volume the attacker's other container writes. runc mounted procfs
through the symlink and then, following the link again, wrote LSM labels to /proc/self/attr and
applied maskedPaths and readonlyPaths; with the link target swapped in between, those landed on
the attacker's directories while the real procfs stayed writable. runc 1.0.0-rc10 refused procfs
mounts onto anything but a directory.

ocirun resolves the proc mount's destination and every masked and read-only path inside the
rootfs (csrc/trampoline.c: mkpath_in_root, open_in_root), so nothing can land outside it; what
must hold besides is that the procfs the victim ends up able to reach has every maskedPaths entry
masked and every readonlyPaths entry read-only (or `create` fails cleanly). ocirun writes no LSM
label yet (and no procfs file by path at all inside the container): see test_cve_2025_52881.py.

The attack here, tried for real: the victim's image has /proc -> /vol/p, and its config binds
the volume V at /vol before the proc mount. The attacker container exchanges V/p and V/q (two
directories) in a loop while victims are created. After the race is stopped, every procfs each
running victim can reach is checked from the host (nothing written), a write to kernel.hostname
(UTS-namespaced: harmless) is tried through each from inside, and the host is checked unchanged.
"""
import json

from escape_kit import (Racer, Snapshot, default_mounts, bind, host_dir, one_error_line, procfs_exposure,
                        remove_host_dir, write_attempts)

VICTIMS = 12


def test_proc_symlink_into_a_raced_volume(rt, bundle, new_id):
    vol = host_dir("vol", 0o777)
    victims, problems, refused = [], [], 0
    try:
        for name in ("p", "q"):
            (vol / name).mkdir(mode=0o755)
        (vol / "q/decoy").write_text("attacker's directory\n")
        host = Snapshot(vol)
        racer = Racer(rt, bundle, new_id(), vol, [("p", "q")])
        mounts = [bind(vol, "/vol", "rw")] + default_mounts()
        cfg = None
        for _ in range(VICTIMS):
            cid = new_id()
            b = bundle(["sleep", "1000"], mounts=mounts)
            cfg = json.loads((b / "config.json").read_text())
            (b / "rootfs/proc").rmdir()
            (b / "rootfs/proc").symlink_to("/vol/p")
            r = rt("run", "--detach", "--bundle", b, cid, check=False)
            if r.returncode:
                one_error_line(r)
                refused += 1
            else:
                victims.append(cid)
        swaps = racer.stop()
        reached = []
        for cid in victims:
            points, found = procfs_exposure(rt.state(cid)["pid"], cfg["linux"]["maskedPaths"],
                                            cfg["linux"]["readonlyPaths"])
            reached += points
            problems += [f"{cid}: {p}" for p in found + write_attempts(rt, cid, points)]
        assert not problems, (f"{len(problems)} problems in {len(victims)} victims ({refused} refused, racer "
                              f"swaps {swaps}): masks and read-only paths missed the procfs the victim "
                              "reaches:\n  " + "\n  ".join(problems[:16]))
        assert swaps > 1000, f"the racer hardly ran ({racer.report}): the test proves nothing"
        for cid in victims:
            rt("delete", "--force", cid)
        victims = []
        host.assert_unchanged()
        print(f"{len(reached)} procfs mounts reached, {refused} refused, racer swaps {swaps}")
    finally:
        for cid in victims:
            rt("delete", "--force", cid, check=False)
        remove_host_dir(vol)
