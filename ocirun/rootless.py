"""Rootless: ocirun run by a user with no privilege on the host, as runc's --rootless.

Three things change when the caller can't act as root on the host:
- the id maps: a single mapping of the caller's own id is written directly (gid_map after
  `deny` in setgroups, as the kernel asks of an unprivileged writer); any wider mapping goes
  through the setuid helpers newuidmap/newgidmap (Debian's uidmap), which check it against
  /etc/subuid and /etc/subgid;
- the cgroups: only a hierarchy whose place for the container the caller may write to (one
  delegated to the user) is used. The others are never written to (runc's CVE-2023-25809
  class: a rootless runtime must not touch a cgroup that isn't its own), and asking for
  linux.resources without one is refused;
- device nodes are bound from the host (plan.py does that for every user namespace).
"""
import posix

from .errors import ConfigError, OciError
from .posixio import dirname, exists, in_user_ns, write_file

HELPERS = {"uid_map": "newuidmap", "gid_map": "newgidmap"}


def enabled(flag: str = "auto") -> bool:
    """--rootless: true, false, or auto (the default): rootless when not root on the host."""
    if flag not in ("auto", "true", "false"):
        raise OciError(f"--rootless must be true, false or auto, not {flag!r}")
    if flag != "auto":
        return flag == "true"
    return posix.geteuid() != 0 or in_user_ns()


def _direct(maps, own: int) -> bool:
    """The one mapping an unprivileged writer may write itself: its own id, alone."""
    return len(maps) == 1 and maps[0].host_id == own and maps[0].size == 1


def setgroups_denied(gid_maps) -> bool:
    """Whether writing these gid maps turns setgroups off in the namespace (unprivileged)."""
    return posix.geteuid() != 0 and _direct(gid_maps, posix.getegid())


def write_id_map(pid: int, name: str, maps, where: str) -> None:
    """uid_map or gid_map (`name`) of pid's user namespace: directly where allowed, else
    through newuidmap/newgidmap."""
    own = posix.geteuid() if name == "uid_map" else posix.getegid()
    if posix.geteuid() == 0 or _direct(maps, own):
        if name == "gid_map" and posix.geteuid() != 0:
            write_file(f"/proc/{pid}/setgroups", "deny", where)
        write_file(f"/proc/{pid}/{name}", "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps), where)
        return
    _run_helper(HELPERS[name], pid, maps, where)


def helper_path(helper: str) -> str | None:
    return next((f"{d}/{helper}" for d in ("/usr/bin", "/bin", "/usr/sbin") if exists(f"{d}/{helper}")), None)


def _run_helper(helper: str, pid: int, maps, where: str) -> None:
    path = helper_path(helper)
    if path is None:
        raise ConfigError(f"maps more than the caller's own id, which needs {helper} "
                          "(Debian's uidmap package); it is not installed", where)
    import subprocess

    args = [path, str(pid)] + [str(n) for m in maps for n in (m.container_id, m.host_id, m.size)]
    r = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if r.returncode != 0:
        said = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]
        raise ConfigError(f"{helper}: {said}", where)


def delegated(d: str) -> bool:
    """Whether the caller may make (or use) cgroup directory d: the nearest directory that
    exists on its path, and that cgroup's cgroup.procs, are writable by it."""
    while not exists(d):
        d = dirname(d)
    return posix.access(d, posix.W_OK) and posix.access(d + "/cgroup.procs", posix.W_OK)


def usable_hierarchies(found, cgroups_path: str, container_id: str, resources: dict) -> list:
    """The hierarchies where the container's cgroup is delegated to the caller; the others are
    left alone, with a debug line, as runc does. Limits asked for without every hierarchy
    delegated can't be kept: refused."""
    from . import log
    from .cgroups import container_dirs

    usable = []
    for h, d in zip(found, container_dirs(cgroups_path, container_id, found)):
        if delegated(d):
            usable.append(h)
        else:
            log.debug(f"rootless: no cgroup in {h.mountpoint}: {d} is not delegated to uid {posix.geteuid()}")
    if len(usable) < len(found) and any(k != "devices" for k in resources):
        raise ConfigError("limits need the container's cgroup delegated to the user, in every hierarchy "
                          "(rootless)", "linux.resources")
    return usable
