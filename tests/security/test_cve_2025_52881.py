"""CVE-2025-52881 class: the runtime's own procfs writes redirected.

runc wrote LSM labels (/proc/self/attr/...), sysctls (/proc/sys/...) and other procfs files
by path, from inside the container's mount namespace once its mounts were made. With mounts the
attacker shaped (shared volumes and a race, or binds over procfs files), those writes went to a
different file: a label meant for /proc/self/attr/exec was written to /proc/sysrq-trigger or
/proc/sys/kernel/core_pattern, crashing or taking over the host, or a sysctl went elsewhere.

ocirun writes procfs only from places the container's mounts can't reach: the parent writes
oom_score_adj and the id maps through the host's /proc/<pid> (ocirun/spawn.py: _write_proc),
stage 1 writes /proc/self/timens_offsets before any container mount exists, hostname and
domainname are set with sethostname(2)/setdomainname(2), not through /proc/sys, `linux.sysctl`
is written through a procfs instance of ocirun's own that was never attached where the container
could mount over it (csrc/attrs.c: private_proc, then openat2 RESOLVE_BENEATH |
RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV in write_proc), and an AppArmor profile or SELinux label
goes through the same private procfs (csrc/attrs.c: apply_lsm; the decoy test for it needs an
LSM, so it runs in the guest: tests/guest).

The attack here: the config binds host decoy files (regular files, writable) over every procfs
file ocirun could have written inside the container: /proc/self/oom_score_adj,
/proc/self/timens_offsets, /proc/sys/kernel/hostname and domainname, and for the sysctl test
/proc/sys/net/ipv4/ip_unprivileged_port_start. Asserted: every decoy is unchanged, the real values are where
they belong (read from the host: /proc/<pid>/oom_score_adj and timens_offsets, the container's
UTS and network namespaces through nsenter), and the host's sysctls are unchanged.
"""
import json
import os
import shutil
import subprocess

import pytest

from escape_kit import Snapshot, default_mounts, bind, host_dir, one_error_line, remove_host_dir

DECOY = "decoy: ocirun must never write here\n"


def ns_read(pid: int, flag: str, path: str) -> str:
    nsenter = shutil.which("nsenter")
    if not nsenter:
        pytest.skip("nsenter (util-linux) is needed to read the container's namespaced sysctls")
    r = subprocess.run([nsenter, "-t", str(pid), flag, "cat", path], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def decoys(d, names) -> dict:
    out = {}
    for name, target in names.items():
        f = d / name
        f.write_text(DECOY)
        out[target] = f
    return out


def test_oom_score_adj_timens_hostname_writes_are_not_redirected(rt, bundle, unique_id):
    d = host_dir("decoys")
    try:
        targets = {"oom_score_adj": "/proc/self/oom_score_adj", "hostname": "/proc/sys/kernel/hostname",
                   "domainname": "/proc/sys/kernel/domainname"}
        namespaces = [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")]
        time_ns = os.path.exists("/proc/self/ns/time")
        if time_ns:
            targets["timens_offsets"] = "/proc/self/timens_offsets"
            namespaces.append({"type": "time"})
        files = decoys(d, targets)
        mounts = default_mounts() + [bind(f, target, "rw") for target, f in files.items()]
        overrides = {"mounts": mounts, "hostname": "ocirun-52881", "domainname": "d52881",
                     "process": {"oomScoreAdj": 423}}
        b = bundle(["sleep", "1000"], overrides)
        if time_ns:
            cfg = json.loads((b / "config.json").read_text())
            cfg["linux"]["namespaces"] = namespaces
            cfg["linux"]["timeOffsets"] = {"monotonic": {"secs": 86400, "nanosecs": 0}}
            (b / "config.json").write_text(json.dumps(cfg))
        host = Snapshot(d, b / "rootfs")
        r = rt("run", "--detach", "--bundle", b, unique_id, check=False)
        if r.returncode:  # refusing the binds over procfs closes the attack too
            one_error_line(r)
            host.assert_unchanged()
            return
        try:
            pid = rt.state(unique_id)["pid"]
            # the binds really cover those files inside: the attack is set up
            inside = rt("exec", unique_id, "cat", *(t.replace("/self/", "/1/") for t in files)).stdout
            oom = open(f"/proc/{pid}/oom_score_adj").read().strip()
            offsets = open(f"/proc/{pid}/timens_offsets").read() if time_ns else ""
            hostname = ns_read(pid, "-u", "/proc/sys/kernel/hostname")
            domainname = ns_read(pid, "-u", "/proc/sys/kernel/domainname")
        finally:
            rt("delete", "--force", unique_id)
        assert inside.count("decoy:") == len(files), f"the decoys do not cover the procfs files inside: {inside!r}"
        host.assert_unchanged()  # every decoy is untouched, and the host's sysctls
        assert oom == "423", f"process.oomScoreAdj did not reach the container's process: {oom}"
        assert (hostname, domainname) == ("ocirun-52881", "d52881"), (hostname, domainname)
        if time_ns:
            assert any(ln.split()[:2] in (["monotonic", "86400"], ["1", "86400"]) for ln in offsets.splitlines()), (
                f"linux.timeOffsets did not reach the container's time namespace: {offsets!r}")
    finally:
        remove_host_dir(d)


def test_sysctl_write_is_not_redirected(rt, bundle, unique_id):
    d = host_dir("decoys")
    try:
        files = decoys(d, {"port_start": "/proc/sys/net/ipv4/ip_unprivileged_port_start"})
        mounts = default_mounts() + [bind(f, target, "rw") for target, f in files.items()]
        b = bundle(["sleep", "1000"], mounts=mounts, linux={"sysctl": {"net.ipv4.ip_unprivileged_port_start": "1000"}})
        host = Snapshot(d, b / "rootfs")
        r = rt("run", "--detach", "--bundle", b, unique_id, check=False)
        if r.returncode:
            one_error_line(r)
            host.assert_unchanged()
            return
        try:
            value = ns_read(rt.state(unique_id)["pid"], "-n", "/proc/sys/net/ipv4/ip_unprivileged_port_start")
        finally:
            rt("delete", "--force", unique_id)
        host.assert_unchanged()  # the decoy is untouched, and the host's sysctls
        assert value == "1000", (f"linux.sysctl net.ipv4.ip_unprivileged_port_start did not reach the container's "
                                 f"network namespace (1024 is the kernel's default): {value!r}")
    finally:
        remove_host_dir(d)
