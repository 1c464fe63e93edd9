"""Shared tooling for the escape-class regression tests in tests/security/ (test_cve_*.py).

The attacker side
  kit_bin()       a small static C program (KIT_C) copied into attacker rootfs: `kit swap` races
                  renameat2(RENAME_EXCHANGE) over pairs of names in a directory, `kit caps`
                  reports the capability sets and tries what CAP_NET_BIND_SERVICE allows.
                  The tests that need it skip, with the reason, when `cc -static` can't build it.
  Racer           a running attacker container sharing a host directory (a "volume") with its
                  victims and swapping names in it until told to stop (bounded in time).

The host side
  mountinfo(pid)          a process's mount table, parsed
  host_mount_ids()        the host's mount table, to show that nothing was mounted on the host
  procfs_exposure()       every procfs a container can reach, checked against its maskedPaths and
                          readonlyPaths from the host, without writing anything
  write_attempts()        the attack itself, from inside: writes to a namespaced sysctl (harmless
                          to the host) through every procfs the container can reach
  Snapshot                file trees and host sysctls, hashed, to show that the host is unchanged
  ConsoleSocket           a --console-socket receiver
"""
from __future__ import annotations

import atexit
import errno
import hashlib
import os
import select
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from ocitest_conftest import MARK

KIT_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>

/* kit swap DIR SECONDS A1 B1 [A2 B2 ...]: exchange DIR/Ak and DIR/Bk (renameat2
 * RENAME_EXCHANGE), pair after pair, as fast as it can, until DIR/stop exists or SECONDS pass. */
static int swap(int argc, char **argv)
{
    if (argc < 5 || (argc - 3) % 2)
        return 2;
    int d = open(argv[1], O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (d < 0)
        return perror(argv[1]), 1;
    double secs = atof(argv[2]);
    int npairs = (argc - 3) / 2;
    long swaps = 0, fails = 0;
    int last_errno = 0;
    char parity[128] = {0};
    if (npairs > 128)
        return 2;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("READY\n");
    for (long i = 0;; i++) {
        if ((i & 255) == 0) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            if ((t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 > secs || faccessat(d, "stop", F_OK, 0) == 0)
                break;
        }
        int k = (int)(i % npairs);
        if (syscall(SYS_renameat2, d, argv[3 + 2 * k], d, argv[4 + 2 * k], RENAME_EXCHANGE) == 0)
            swaps++, parity[k] ^= 1;
        else
            fails++, last_errno = errno;
    }
    /* Leave every pair as it was found. */
    for (int k = 0; k < npairs; k++)
        if (parity[k])
            syscall(SYS_renameat2, d, argv[3 + 2 * k], d, argv[4 + 2 * k], RENAME_EXCHANGE);
    printf("DONE swaps=%ld fails=%ld errno=%d\n", swaps, fails, last_errno);
    return 0;
}

/* kit caps: the capability lines of /proc/self/status, then whether port 80 can be bound
 * (CAP_NET_BIND_SERVICE, in the container's own network namespace). */
static int caps(void)
{
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return perror("/proc/self/status"), 1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "Cap", 3) || !strncmp(line, "NoNewPrivs", 10) || !strncmp(line, "Uid", 3))
            fputs(line, stdout);
    fclose(f);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(80)};
    int r = s < 0 ? -1 : bind(s, (struct sockaddr *)&a, sizeof a);
    printf("BIND80 %s\n", r == 0 ? "ok" : strerror(errno));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "swap"))
        return swap(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "caps"))
        return caps();
    fprintf(stderr, "usage: kit swap DIR SECONDS A B [A B]... | kit caps\n");
    return 2;
}
"""

_kit: Path | None = None
_kit_error: str | None = None


def kit_bin() -> Path:
    """The static kit binary, built once per test session (or pytest.skip with the reason)."""
    global _kit, _kit_error
    if _kit is None and _kit_error is None:
        cc = shutil.which("cc") or shutil.which("gcc")
        if not cc:
            _kit_error = "no C compiler to build the attacker's tools"
        else:
            d = Path(tempfile.mkdtemp(prefix=f"{MARK}-kit-"))
            atexit.register(shutil.rmtree, d, True)
            (d / "kit.c").write_text(KIT_C)
            r = subprocess.run([cc, "-static", "-O2", "-o", str(d / "kit"), str(d / "kit.c")],
                               capture_output=True, text=True)
            if r.returncode:
                _kit_error = f"cannot build a static attacker (static libc missing?): {r.stderr.strip()[-300:]}"
            else:
                _kit = d / "kit"
    if _kit_error:
        pytest.skip(_kit_error)
    return _kit


def install_kit(rootfs: Path) -> None:
    shutil.copy(kit_bin(), rootfs / "kit")
    os.chmod(rootfs / "kit", 0o755)


# --- mount tables ---------------------------------------------------------------------------

def _unescape(s: str) -> str:
    return s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


class Mount:
    __slots__ = ("id", "parent", "dev", "root", "point", "options", "fstype", "source", "line")

    def __init__(self, line: str):
        f = line.split()
        sep = f.index("-")
        self.id, self.parent = int(f[0]), int(f[1])
        major, minor = f[2].split(":")
        self.dev = os.makedev(int(major), int(minor))
        self.root, self.point = _unescape(f[3]), _unescape(f[4])
        self.options = set(f[5].split(","))
        self.fstype, self.source = f[sep + 1], f[sep + 2]
        self.line = line.rstrip("\n")

    @property
    def readonly(self) -> bool:
        return "ro" in self.options


def mountinfo(pid: int | str = "self") -> list[Mount]:
    with open(f"/proc/{pid}/mountinfo") as f:
        return [Mount(line) for line in f]


def host_mount_ids() -> dict[int, str]:
    return {m.id: m.line for m in mountinfo()}


def new_host_mounts(before: dict[int, str], *paths) -> list[str]:
    """Host mounts made since `before` that sit on / or on (or under) one of `paths` (what the
    test's containers could have reached): other sessions' mounts elsewhere are not ours."""
    found = []
    for mid, line in host_mount_ids().items():
        if mid in before:
            continue
        point = Mount(line).point
        if point == "/" or MARK in line or any(point == str(p) or point.startswith(str(p).rstrip("/") + "/")
                                                for p in paths):
            found.append(line)
    return found


# --- procfs exposure ------------------------------------------------------------------------

def _host_has(rel: str) -> bool:
    return os.path.lexists(f"/proc/{rel}")


def procfs_exposure(pid: int, masked, readonly) -> tuple[list[str], list[str]]:
    """Every procfs mount in the container of `pid` (whatever its mount point: /proc, or where a
    symlink led the mount) checked from the host, through /proc/PID/root, with nothing written:
    each masked entry this kernel has must be the null device (1:3) or an empty directory, and
    each read-only entry must sit on a read-only mount. A procfs stacked on the container's /
    itself, under the root its lookups start from, is out of the container's reach and not
    checked. Returns (reachable mount points, problems)."""
    points, problems = [], []
    for m in mountinfo(pid):
        if m.fstype != "proc" or m.root != "/":
            continue
        base = f"/proc/{pid}/root{m.point.rstrip('/')}"
        try:
            if os.stat(base + "/.").st_dev != m.dev:
                continue  # covered by another mount, or stacked under the container's root
        except OSError:
            continue
        points.append(m.point)
        for p in masked:
            if not p.startswith("/proc/"):
                continue
            rel = p[len("/proc/"):]
            if not _host_has(rel):
                continue
            try:
                st = os.lstat(f"{base}/{rel}")
            except OSError as e:
                problems.append(f"procfs at {m.point}: masked {p}: cannot check ({e.strerror})")
                continue
            if stat.S_ISDIR(st.st_mode):
                if os.listdir(f"{base}/{rel}"):
                    problems.append(f"procfs at {m.point}: masked {p} is a directory with content (not masked)")
            elif not (stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)):
                problems.append(f"procfs at {m.point}: masked {p} is not the null device "
                                f"(mode {stat.filemode(st.st_mode)}, rdev {os.major(st.st_rdev)}:{os.minor(st.st_rdev)})")
        for p in readonly:
            if not p.startswith("/proc/"):
                continue
            rel = p[len("/proc/"):]
            if not _host_has(rel):
                continue
            try:
                ro = os.statvfs(f"{base}/{rel}").f_flag & os.ST_RDONLY
            except OSError as e:
                problems.append(f"procfs at {m.point}: read-only {p}: cannot check ({e.strerror})")
                continue
            if not ro:
                problems.append(f"procfs at {m.point}: {p} is writable (readonlyPaths not applied)")
    return points, problems


def masked_problems(pid: int, paths) -> list[str]:
    """maskedPaths outside procfs (canonical paths in the container), checked from the host: a
    file must be the null device (1:3), a directory an empty read-only mount."""
    out = []
    for p in paths:
        host = f"/proc/{pid}/root{p}"
        try:
            st = os.lstat(host)
        except OSError as e:
            out.append(f"masked {p}: cannot check ({e.strerror})")
            continue
        if stat.S_ISDIR(st.st_mode):
            if os.listdir(host) or not os.statvfs(host).f_flag & os.ST_RDONLY:
                out.append(f"masked {p}: a directory that is not an empty read-only mount: {os.listdir(host)}")
        elif not (stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)):
            out.append(f"masked {p} is not the null device (mode {stat.filemode(st.st_mode)}, "
                       f"rdev {os.major(st.st_rdev)}:{os.minor(st.st_rdev)})")
    return out


WRITE_PROBE = "ocirun-escape-test"


def write_attempts(rt, cid: str, points: list[str]) -> list[str]:
    """The attack, for real but harmless: from inside the container, write to kernel.hostname (a
    UTS-namespaced sysctl: only the container's own hostname could change) through every procfs
    it can reach, and open (never write) the host-global files runc's attackers went for.
    Returns what succeeded."""
    if not points:
        return []
    script = "; ".join(
        f"echo {WRITE_PROBE} 2>/dev/null > {p}/sys/kernel/hostname && echo 'WROTE {p}/sys/kernel/hostname'; "
        f"for f in {p}/sysrq-trigger {p}/sys/kernel/core_pattern; do "
        f"[ -e $f ] && (: >> $f) 2>/dev/null && echo \"OPENED-FOR-WRITING $f\"; done"
        for p in points) + "; true"
    r = rt("exec", cid, "sh", "-c", script, check=False)
    return [ln for ln in r.stdout.splitlines() if ln.startswith(("WROTE", "OPENED"))]


# --- the host, before and after ------------------------------------------------------------

HOST_SYSCTLS = ("/proc/sys/kernel/core_pattern", "/proc/sys/kernel/hostname", "/proc/sys/kernel/domainname",
                "/proc/sys/kernel/modprobe")


def _tree(path: Path) -> dict[str, str]:
    out = {}
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return {"": "absent"}
    if path.is_symlink() or not path.is_dir():
        return {"": _entry(path)}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            out[str(p.relative_to(path))] = _entry(p)
    return out


def _entry(p: Path) -> str:
    st = os.lstat(p)
    if stat.S_ISLNK(st.st_mode):
        return "link:" + os.readlink(p)
    if stat.S_ISREG(st.st_mode):
        with open(p, "rb") as f:
            return f"file:{oct(st.st_mode)}:" + hashlib.sha256(f.read()).hexdigest()
    if stat.S_ISDIR(st.st_mode):
        return f"dir:{oct(st.st_mode)}"
    return f"{stat.filemode(st.st_mode)}:{st.st_rdev}"


def _sysctl(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        return f"unreadable: {e.strerror}"


class Snapshot:
    """Host state the attacks aim at: the given file trees (hashed), host sysctls, host mounts."""

    def __init__(self, *trees):
        self.trees = [Path(t) for t in trees]
        self.files = {str(t): _tree(t) for t in self.trees}
        self.sysctls = {p: _sysctl(p) for p in HOST_SYSCTLS}
        self.mounts = host_mount_ids()

    def changes(self) -> list[str]:
        out = []
        for t in self.trees:
            now = _tree(t)
            was = self.files[str(t)]
            for name in sorted(set(now) | set(was)):
                if now.get(name) != was.get(name):
                    out.append(f"host file {t / name if name else t}: {was.get(name, 'absent')} -> "
                               f"{now.get(name, 'absent')}")
        for p, v in self.sysctls.items():
            if _sysctl(p) != v:
                out.append(f"host {p} changed: {v!r} -> {_sysctl(p)!r}")
        out += [f"host mount: {ln}" for ln in new_host_mounts(self.mounts, *self.trees)]
        return out

    def assert_unchanged(self) -> None:
        ch = self.changes()
        assert not ch, "the host changed:\n  " + "\n  ".join(ch)


def host_dir(kind: str, mode: int = 0o755) -> Path:
    d = Path(tempfile.mkdtemp(prefix=f"{MARK}-{kind}-", dir="/tmp"))
    os.chmod(d, mode)
    return d


def remove_host_dir(d: Path) -> None:
    """Remove a test's host directory, never through a mount that leaked onto it."""
    prefix = str(d).rstrip("/") + "/"
    if any(m.point == str(d) or m.point.startswith(prefix) for m in mountinfo()):
        return
    shutil.rmtree(d, ignore_errors=True)


# --- errors ----------------------------------------------------------------------------------

def one_error_line(r) -> str:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode != 0 and len(lines) == 1, (
        f"want a clean failure (exit != 0, one error line), got exit {r.returncode}:\n{r.stderr}")
    return lines[0]


def bind(source, destination, *options) -> dict:
    return {"destination": destination, "type": "bind", "source": str(source),
            "options": ["bind", *options]}


# --- the attacker container --------------------------------------------------------------------

class Racer:
    """An attacker container with the host directory `volume` bound at `dest` (rw), running
    `kit swap` over `pairs` of names in it. Bounded: `seconds`, or until stop()."""

    def __init__(self, rt, bundle, cid: str, volume: Path, pairs, dest: str = "/vol", seconds: float = 20):
        self.rt, self.cid, self.volume = rt, cid, Path(volume)
        args = ["/kit", "swap", dest, str(seconds)] + [n for pair in pairs for n in pair]
        b = bundle(args, mounts=default_mounts() + [bind(volume, dest, "rw")])
        install_kit(b / "rootfs")
        rt("run", "--detach", "--bundle", b, cid)
        self._wait(lambda out: "READY" in out, "start")
        self.report = ""

    def _wait(self, done, what: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while True:
            out = self.rt.out(self.cid)
            if done(out):
                return out
            assert time.monotonic() < deadline, f"the racer did not {what} in time: {out[-500:]}"
            time.sleep(0.01)

    def stop(self) -> int:
        """Stop it (the pairs are left as they were found) and return how many swaps it made."""
        (self.volume / "stop").touch()
        self.report = self._wait(lambda out: "DONE" in out, "finish")
        self.rt.wait_status(self.cid, "stopped")
        self.rt("delete", self.cid)
        os.unlink(self.volume / "stop")
        return int(self.report.split("swaps=")[1].split()[0])


def default_mounts() -> list[dict]:
    import busybox_bundle

    return busybox_bundle.default_config()["mounts"]


# --- terminals ---------------------------------------------------------------------------------

class ConsoleSocket:
    """Listens on a unix socket for the pty master that `--console-socket` hands over."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix=f"{MARK}-cs-", dir="/tmp")
        self.path = os.path.join(self.dir, "sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(4)

    def receive(self, timeout: float = 10) -> int:
        self.sock.settimeout(timeout)
        conn, _ = self.sock.accept()
        with conn:
            msg, anc, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(4))
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                return int.from_bytes(data[:4], "little")
        raise AssertionError("no fd came with the console-socket message")

    def close(self) -> None:
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def read_until(fd: int, marker: bytes, timeout: float = 10) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while marker not in out:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError as e:
            if e.errno == errno.EIO:
                break
            raise
        if not chunk:
            break
        out += chunk
    return out
