"""Helpers for tests/guest/test_callers.py: podman and containerd with their defaults for a
systemd host, the three runtimes they are compared with, and what the host shows of them
(systemd units, cgroup directories, mounts, processes, AppArmor profiles).

The podman and ctr wrappers are tests/integration's (integ_support), with that suite's cgroupfs
configuration taken away: here podman reads only its packaged containers.conf."""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from ocitest_conftest import MARK, _describe, _procs, settled

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import integ_support  # noqa: E402
from integ_support import IMAGE, cgroup_dirs, mounts, processes_naming, run_cmd, wait_for  # noqa: E402,F401

CMD_TIMEOUT = 120  # one podman or ctr call, under TCG (the first `podman run` takes ~30 s)


# --- the runtimes ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Oci:
    name: str
    path: str
    # The scope's Description= each writes: shows which runtime made the unit.
    describes: str
    # Where the container's processes sit below the scope: crun puts them in a child cgroup.
    below_scope: str = ""


RUNTIMES = {o.name: o for o in (
    Oci("ocirun", integ_support.RUNTIME, "ocirun container"),
    Oci("runc", integ_support.RUNC, "libcontainer container"),
    Oci("crun", "/usr/bin/crun", "libcrun container", below_scope="/container"),
)}


def runtimes(**known):
    """Parametrize a test over RUNTIMES (the `runtime` fixture). known[name] says why a comparison
    runtime fails the check: a strict xfail for it, so that the difference stays documented. The
    runtime under test is never excused."""
    assert "ocirun" not in known, "ocirun's checks are never expected to fail"
    assert set(known) <= set(RUNTIMES), known
    params = [pytest.param(n, id=n, marks=[pytest.mark.xfail(reason=f"{n}: {known[n]}", raises=AssertionError, strict=True)]
                           if n in known else []) for n in RUNTIMES]
    return pytest.mark.parametrize("runtime", params, indirect=True)


# --- podman and ctr -------------------------------------------------------------------------

class Podman(integ_support.Podman):
    """podman as on a systemd host: its packaged containers.conf (cgroup manager systemd,
    AppArmor's default profile, the CNI default network, journald), only the storage private
    (--root/--runroot under `d`) and the runtime chosen with --runtime."""

    def __init__(self, d: Path, runtime: str):
        super().__init__(d, runtime)
        for k in ("CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF"):
            self.env.pop(k)
        self.image = IMAGE
        self.issued: list[str] = []

    def argv(self, *args, runtime=None) -> list[str]:
        return ["podman", "--root", str(self.dir / "storage"), "--runroot", str(self.dir / "run"),
                "--runtime", runtime or self.runtime, *map(str, args)]

    def __call__(self, *args, timeout=CMD_TIMEOUT, **kw) -> subprocess.CompletedProcess:
        return super().__call__(*args, timeout=timeout, **kw)

    def name(self, what="c") -> str:
        """A fresh container name, carrying MARK and the runtime's name."""
        n = f"{MARK}-{Path(self.runtime).name}-{what}{next(_count)}"
        self.issued.append(n)
        return n


_count = itertools.count(1)


CONTAINERD_TOML = """\
# A private containerd for tests/guest/test_callers.py. The CRI plugin is off: `ctr run` hands the
# runc v2 shim the options a CRI runtime entry with BinaryName and SystemdCgroup = true would
# (--runc-binary, --runc-systemd-cgroup).
version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{d}/containerd.sock"
[debug]
  address = "{d}/debug.sock"
"""


class Containerd:
    """containerd on its own socket, root and state under `d`/containerd, started here and
    stopped by its pid."""

    def __init__(self, d: Path):
        self.dir = d / "containerd"
        self.dir.mkdir()
        (self.dir / "config.toml").write_text(CONTAINERD_TOML.format(d=self.dir))
        self.log = open(self.dir / "containerd.log", "w")
        self.proc = subprocess.Popen(["containerd", "--config", str(self.dir / "config.toml")],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.workdir = d
        self.ctr = self.ctr_for(RUNTIMES["ocirun"])
        # The shims' default runtime root (/run/containerd/runc/<namespace>), their sockets and
        # ctr's fifos are made under /run/containerd: what of it they make goes at stop().
        self.run_dir0 = {d for d, _, _ in os.walk("/run/containerd")}
        wait_for(lambda: self.proc.poll() is not None or run_cmd(self.ctr.argv("version"), timeout=10).returncode == 0,
                 timeout=60, what="containerd's socket")
        assert self.proc.poll() is None, f"containerd exited: {self.log_tail()}"

    def ctr_for(self, runtime: Oci) -> "Ctr":
        return Ctr(self.workdir, runtime)

    def log_tail(self) -> str:
        return (self.dir / "containerd.log").read_text()[-3000:]

    def stop(self) -> None:
        try:
            self.ctr.remove_all()
            self.ctr("images", "rm", IMAGE, check=False)
            self.ctr("namespaces", "remove", MARK, check=False)
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.log.close()
            for d, _, _ in os.walk("/run/containerd", topdown=False):
                if d not in self.run_dir0:
                    try:
                        os.rmdir(d)  # only when empty: once every task is deleted
                    except OSError:
                        pass


class Ctr(integ_support.Ctr):
    """ctr on the private containerd in the namespace MARK, for one runtime: run_flags(id) are
    the runc v2 shim's options for it with the systemd cgroup driver (BinaryName, SystemdCgroup)
    and the systemd cgroupsPath the CRI plugin gives, `system.slice:cri-containerd:ID`."""

    def __init__(self, d: Path, runtime: Oci):
        super().__init__(d, runtime.path)
        self.namespace = MARK
        self.oci = runtime

    def name(self, what="c") -> str:
        n = f"{MARK}-{self.oci.name}-{what}{next(_count)}"
        self.issued.append(n)
        return n

    def run_flags(self, cid: str) -> list[str]:
        return ["--runc-binary", self.oci.path, "--runc-systemd-cgroup", "--cgroup", f"system.slice:cri-containerd:{cid}"]


def ctr_scope(cid: str) -> str:
    """The cgroup of cgroupsPath system.slice:cri-containerd:ID (unit cri-containerd-ID.scope)."""
    return f"/system.slice/cri-containerd-{cid}.scope"


def task_pid(ctr, cid: str) -> int:
    t = ctr.tasks().get(cid)
    assert t and t["status"] == "RUNNING", f"{cid}: task {t}"
    return t["pid"]


# --- systemd --------------------------------------------------------------------------------

def units(*words: str) -> set[str]:
    """Loaded units (any state) whose name contains one of `words`."""
    r = run_cmd(["systemctl", "list-units", "--all", "--plain", "--no-legend", "--no-pager"], check=True, timeout=30)
    names = {line.split()[0] for line in r.stdout.splitlines() if line.strip()}
    return {n for n in names if any(w in n for w in words)}


def proc_cgroup(pid: int) -> str:
    """The v2 cgroup of `pid`, as /proc/PID/cgroup says (`0::PATH`)."""
    lines = [ln for ln in Path(f"/proc/{pid}/cgroup").read_text().splitlines() if ln.startswith("0::")]
    assert lines, f"pid {pid}: no v2 entry in /proc/{pid}/cgroup"
    return lines[0][3:]


# --- what a container leaves on the host ----------------------------------------------------

# Names that podman's and containerd's units and cgroups carry: libpod-<id>.scope,
# libpod-conmon-<id>.scope, cri-containerd-<MARK-id>.scope; the storage's mount units carry MARK.
WORDS = ("libpod", "cri-containerd", MARK)


class Snapshot:
    """What is there now: units and cgroup directories named after containers, mounts under the
    session's storage or of network namespaces, and live processes in a container's cgroup or
    naming one. leaks() lists what came since."""

    def __init__(self, root: Path, ids=()):
        self.root, self.ids = str(root), list(ids)
        self.units = units(*WORDS)
        self.cgroups = set(cgroup_dirs(WORDS))
        self.mounts = set(self._mounts())
        self.procs = set(self._procs())

    def _mounts(self):
        return [m for m in mounts() if m.startswith(self.root + "/") or m.startswith("/run/netns/") or MARK in m]

    def _procs(self):
        ids = [*WORDS, *self.ids]
        for pid, p in _procs().items():
            if p["state"] in "ZX":
                continue
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
                cg = Path(f"/proc/{pid}/cgroup").read_text()
            except OSError:
                continue
            if any(w in cg or w in cmd for w in ids):
                yield pid, p["start"]

    def leaks(self, timeout: float = 20.0) -> list[str]:
        def now():
            found = [f"unit: {u}" for u in sorted(units(*WORDS) - self.units)]
            found += [f"cgroup: {c}" for c in sorted(set(cgroup_dirs(WORDS)) - self.cgroups)]
            found += [f"mount: {m}" for m in sorted(set(self._mounts()) - self.mounts)]
            found += [f"process: {_describe(pid)}" for pid, _ in sorted(set(self._procs()) - self.procs)]
            integ_support.reap_zombies()
            return found
        # conmon's exit command (`podman container cleanup`) and systemd's unit GC may still be
        # finishing after the caller returned.
        return settled(now, timeout=timeout, step=0.3)


def leftovers(cid: str, timeout: float = 20.0) -> list[str]:
    """What still names container `cid` (a podman id or a ctr id): units, cgroup directories,
    processes, mounts."""
    def now():
        integ_support.reap_zombies()
        found = [f"unit: {u}" for u in sorted(units(cid))]
        found += [f"cgroup: {c}" for c in cgroup_dirs([cid])]
        found += [f"process: {p}" for p in processes_naming([cid])]
        found += [f"mount: {m}" for m in mounts() if cid in m]
        return found
    return settled(now, timeout=timeout, step=0.3)


# --- AppArmor -------------------------------------------------------------------------------

AA = Path("/sys/kernel/security/apparmor")

# Everything a busybox container does is allowed but writing /tmp/denied: a confined process shows
# the profile by the one write it fails. `signal` lets the (unconfined) runtime stop it.
DENY_PROFILE = """\
abi <abi/3.0>,
profile {name} flags=(attach_disconnected,mediate_deleted) {{
  file,
  capability,
  network,
  signal,
  ptrace,
  unix,
  mount,
  umount,
  pivot_root,
  deny /tmp/denied w,
}}
"""

# A probe of that rule, for a container's shell: `allowed-ok` and the shell's error for
# /tmp/denied under the profile; `allowed-ok` and `denied-ok` without it.
PROBE_WRITES = ("echo x > /tmp/allowed && echo allowed-ok; "
                "(echo x > /tmp/denied && echo denied-ok) 2>&1; rm -f /tmp/allowed /tmp/denied")
DENIED = "can't create /tmp/denied: Permission denied"


def apparmor_enabled() -> bool:
    try:
        return Path("/sys/module/apparmor/parameters/enabled").read_text().strip() == "Y"
    except OSError:
        return False


def loaded_profiles() -> dict[str, str]:
    """name -> mode (enforce, complain, ...) of every loaded AppArmor profile."""
    out = {}
    for line in (AA / "profiles").read_text().splitlines():
        name, _, mode = line.rpartition(" (")
        out[name] = mode.rstrip(")")
    return out


def remove_profile(name: str) -> None:
    """Unload a profile by name (apparmor_parser -R wants its text; podman wrote its own)."""
    with open(AA / ".remove", "w") as f:
        f.write(name)


def load_deny_profile(d: Path) -> tuple[str, Path]:
    name = f"{MARK}-deny"
    path = d / "deny.apparmor"
    path.write_text(DENY_PROFILE.format(name=name))
    run_cmd(["apparmor_parser", "--replace", str(path)], check=True, timeout=60)
    assert loaded_profiles().get(name) == "enforce", loaded_profiles()
    return name, path


def unload_deny_profile(name: str, path: Path) -> None:
    run_cmd(["apparmor_parser", "--remove", str(path)], check=True, timeout=60)
    assert name not in loaded_profiles()


def private_dir() -> Path:
    """The session's podman/containerd directory: on the guest's disk (overlay and image layers
    want room), marked."""
    d = Path(tempfile.mkdtemp(prefix=f"{MARK}-", dir="/var/tmp"))
    os.chmod(d, 0o700)
    return d
